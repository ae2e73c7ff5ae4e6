"""Train several models on one dataset under one protocol and put their numbers side by side.

Used by the main job (``penchant demo``) and the benchmark, so both report the same thing.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import psutil

from penchant.data.dataset import Dataset
from penchant.data.split import Protocol, Split, split
from penchant.evaluate.ranking import evaluate
from penchant.models import Recommender
from penchant.runs import fit_split


@dataclass
class ModelResult:
    model: Recommender
    train_seconds: float
    metrics: dict[str, float]  # seen items not excluded
    metrics_exclude_seen: dict[str, float]
    latency_ms_per_user: float
    peak_rss_mb: float
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "model": self.model.name,
            "config": self.model.config.to_dict(),
            "train_seconds": round(self.train_seconds, 2),
            "epochs": self.model.fit_stats.epochs,
            "best_epoch": self.model.fit_stats.best_epoch,
            "best_validation_ndcg@10": self.model.fit_stats.best_validation,
            "metrics": self.metrics,
            "metrics_exclude_seen": self.metrics_exclude_seen,
            "latency_ms_per_user": round(self.latency_ms_per_user, 3),
            "peak_rss_mb": round(self.peak_rss_mb, 1),
        }


def compare(
    dataset: Dataset,
    models: Sequence[Recommender],
    protocol: Protocol | None = None,
    ks: Sequence[int] = (10,),
    progress: bool = True,
) -> tuple[Split, list[ModelResult]]:
    """Fit each model on the same split as ``penchant train`` does (early stopping on validation
    NDCG@10, then the validation events learnt from too) and evaluate on test."""
    parts = split(dataset, protocol)
    results = []
    process = psutil.Process()
    for model in models:
        gc.collect()
        tracker = _PeakRss(process)
        start = time.perf_counter()
        fit_split(model, dataset, parts, progress)
        seconds = time.perf_counter() - start
        plain = evaluate(model, parts.test, parts.protocol, ks, exclude_seen=False)["metrics"]
        excluded = evaluate(model, parts.test, parts.protocol, ks, exclude_seen=True)["metrics"]
        latency = recommendation_latency_ms(model, parts)
        peak = tracker.stop()
        model.observe(dataset, dataset.events)
        results.append(ModelResult(model, seconds, plain, excluded, latency, peak))
    return parts, results


def recommendation_latency_ms(model: Recommender, parts: Split, users: int = 200) -> float:
    """Mean wall time to rank the full catalogue for one user, one request at a time."""
    cases = parts.test
    n = min(users, len(cases))
    start = time.perf_counter()
    for i in range(n):
        model.score([cases.histories[i]])
    return (time.perf_counter() - start) / max(n, 1) * 1000.0


class _PeakRss:
    """Samples resident memory in a background thread (psutil) to report the peak during training."""

    def __init__(self, process: psutil.Process, interval: float = 0.05):
        import threading

        self.process = process
        self.peak = process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, args=(interval,), daemon=True)
        self._thread.start()

    def _sample(self, interval: float) -> None:
        while not self._stop.wait(interval):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)
        return self.peak / 2**20


__all__ = ["ModelResult", "compare", "recommendation_latency_ms"]
