"""Runs: a trained model saved together with the cleaned data and the protocol it was trained under.

A run directory holds ``run.json`` (what was done), ``data/`` (cleaned events, items, users as
Parquet) and ``model/``. Evaluation re-derives the split from the saved data, which is deterministic,
so the test users' targets are exactly the ones held out during training.
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from penchant import __version__
from penchant.data.dataset import Dataset
from penchant.data.split import Protocol, Split, split
from penchant.errors import InputError
from penchant.evaluate.ranking import evaluate, validator
from penchant.models import Recommender, load_model


@dataclass
class Run:
    directory: Path
    dataset: Dataset
    model: Recommender
    protocol: Protocol
    meta: dict

    def split(self) -> Split:
        return split(self.dataset, self.protocol)


def train(dataset: Dataset, model: Recommender, protocol: Protocol | None = None, progress: bool = True) -> Split:
    """Fit ``model`` on the protocol's training events with early stopping on validation NDCG@10.

    Afterwards the model knows every user's full history, so ``recommend(user_id)`` uses all of it;
    evaluation always passes the split's own histories, so this leaks nothing into the metrics.
    """
    parts = split(dataset, protocol)
    model.fit(dataset, parts.train, validate=validator(parts.validation), progress=progress)
    model.observe(dataset, dataset.events)
    return parts


def train_run(
    dataset: Dataset,
    model: Recommender,
    directory: str | Path,
    protocol: Protocol | None = None,
    source: dict | None = None,
    progress: bool = True,
) -> Run:
    """Train and save a run directory."""
    protocol = protocol or Protocol()
    parts = train(dataset, model, protocol, progress)
    return save_run(directory, dataset, model, parts, source)


def save_run(
    directory: str | Path, dataset: Dataset, model: Recommender, parts: Split, source: dict | None = None, extra: dict | None = None
) -> Run:
    """Write a trained model, its data and what was done into a run directory."""
    directory = Path(directory)
    meta = {
        "penchant_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "model": model.name,
        "config": model.config.to_dict(),
        "source": source or {"dataset": dataset.name},
        "protocol": parts.protocol.to_dict(),
        "split_notes": parts.notes,
        "dataset": dataset.summary(),
        "cleaning": dataset.report.lines(),
        "fit": asdict(model.fit_stats),
        "machine": machine(),
        **(extra or {}),
    }
    directory.mkdir(parents=True, exist_ok=True)
    dataset.save(directory / "data")
    model.save(directory / "model")
    (directory / "run.json").write_text(json.dumps(meta, indent=2))
    return Run(directory, dataset, model, parts.protocol, meta)


def load_run(directory: str | Path) -> Run:
    directory = Path(directory)
    meta_path = directory / "run.json"
    if not meta_path.exists():
        raise InputError(f"{directory}: not a penchant run directory (run.json missing); create one with penchant train")
    meta = json.loads(meta_path.read_text())
    dataset = Dataset.load(directory / "data", name=meta["dataset"]["name"])
    model = load_model(directory / "model")
    return Run(directory, dataset, model, Protocol(**meta["protocol"]), meta)


def evaluate_run(run: Run, ks: Sequence[int] = (10,), exclude_seen: bool = False) -> dict:
    """Test-set metrics of a run under its own protocol."""
    result = evaluate(run.model, run.split().test, run.protocol, ks, exclude_seen)
    result["model"] = run.model.name
    return result


def machine() -> dict:
    """What the numbers were measured on."""
    import os

    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
    }
