"""Scoring a model on evaluation cases: full-catalogue ranking, then per-user metrics, then means."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from tqdm.auto import tqdm

from penchant.data.split import EvalSet, Protocol
from penchant.evaluate.metrics import aggregate, catalogue_coverage, per_user_metrics, topk_indices
from penchant.models.base import ModelConfig, Recommender
from penchant.models.validation import validator

__all__ = ["RandomScores", "evaluate", "rank", "score_lists", "validator"]  # validator: re-exported


def rank(
    model: Recommender,
    cases: EvalSet,
    k: int,
    exclude_seen: bool = False,
    batch_size: int = 256,
    progress: bool = False,
) -> np.ndarray:
    """Top-k internal item indices (U, k) over the whole catalogue for every case; ``progress``: a
    bar over the users (minutes for a few hundred thousand users over a million items)."""
    out = np.full((len(cases), k), -1, dtype=np.int64)
    with tqdm(desc="ranking", total=len(cases), unit="user", leave=False, disable=not progress) as bar:
        for start in range(0, len(cases), batch_size):
            histories = cases.histories[start : start + batch_size]
            scores = model.score(histories)
            if exclude_seen:
                for row, history in enumerate(histories):
                    scores[row, history.items] = -np.inf
            out[start : start + len(histories)] = topk_indices(scores, k)
            bar.update(len(histories))
    return out


def score_lists(topk: np.ndarray, cases: EvalSet, ks: Sequence[int], n_items: int) -> dict[str, float]:
    """Metrics at each cutoff for saved top-k lists (no model needed)."""
    metrics: dict[str, float] = {}
    for k in sorted(ks):
        metrics.update(aggregate(per_user_metrics(topk, cases.targets, k), k))
        metrics[f"coverage@{k}"] = catalogue_coverage(topk, k, n_items)
    return metrics


def evaluate(
    model: Recommender,
    cases: EvalSet,
    protocol: Protocol,
    ks: Sequence[int] = (10,),
    exclude_seen: bool = False,
    progress: bool = False,
) -> dict:
    """``{"protocol", "metrics", "n_users"}`` for a model on evaluation cases."""
    topk = rank(model, cases, max(ks), exclude_seen, progress=progress)
    return {
        "protocol": protocol.describe(exclude_seen),
        "metrics": score_lists(topk, cases, ks, model.n_items),
        "n_users": len(cases),
    }


class RandomScores(Recommender):
    """Uniformly random scores, seeded: the chance level a model is compared with (a reference for
    reports, not a model to serve, hence not in ``penchant.models.MODELS``)."""

    name = "random"
    config_class = ModelConfig

    def _fit(self, dataset, train_events, validate, progress) -> None:
        self._rng = np.random.default_rng(self.config.seed)

    def score(self, histories) -> np.ndarray:
        return self._rng.random((len(histories), self.n_items))
