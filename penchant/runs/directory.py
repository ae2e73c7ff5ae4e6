"""Run directories: a trained model saved together with the cleaned data and the protocol it was
trained under.

A run directory holds ``run.json`` (what was done), ``data/`` (cleaned events, items, users as
Parquet) and ``model/``. Evaluation re-derives the split from the saved data, which is deterministic,
so the test users' targets are exactly the ones held out during training.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from penchant.data.dataset import Catalogue, Dataset
from penchant.data.split import Protocol, Split, split
from penchant.errors import InputError
from penchant.interests.taxonomy import Taxonomy
from penchant.models import Recommender, load_model
from penchant.models.saving import run_meta
from penchant.text.cache import EmbeddingCache

ERASED_FILE = "erased.json"  # how many users were erased from the run since it was trained


@dataclass
class Run:
    """A run directory, loaded. Its data (``dataset``: the cleaned events, items and users) is read
    from ``data/`` when first used: a service whose event store already holds the run's events needs
    only the model and the catalogue."""

    directory: Path
    _dataset: Dataset | None  # None: not read yet
    model: Recommender
    protocol: Protocol
    meta: dict

    @property
    def dataset(self) -> Dataset:
        if self._dataset is None:
            self._dataset = Dataset.load(self.directory / "data", name=self.meta["dataset"]["name"])
        return self._dataset

    @dataset.setter
    def dataset(self, dataset: Dataset) -> None:
        self._dataset = dataset

    def catalogue(self) -> Catalogue:
        """The items, without reading the events when the data is not loaded yet."""
        if self._dataset is not None:
            return self._dataset.catalogue
        return Catalogue.load(self.directory / "data", name=self.meta["dataset"]["name"])

    def erased_in_weights(self) -> int:
        """How many users :func:`erase_user` removed from this run since it was trained: the trained
        weights still reflect them until the model is trained again."""
        path = self.directory / ERASED_FILE
        return int(json.loads(path.read_text())["erased_users"]) if path.exists() else 0

    def split(self) -> Split:
        """The held-out split the model was trained under (evaluation needs it)."""
        if self.meta.get("source", {}).get("saved_by") == "model.save":
            raise InputError(
                f"{self.directory}: saved by model.save, which records no held-out split, so it cannot "
                "be evaluated; train a run to evaluate with penchant train or penchant.runs.train_run"
            )
        return split(self.dataset, self.protocol)

    def taxonomy(self, n_topics: int | None = None) -> Taxonomy:
        """The run's interests: the catalogue's categories, otherwise topics clustered from the item
        text by the run's own text encoder (a Chinese catalogue trained with the multilingual encoder
        is clustered by it too). InputError when the catalogue has neither."""
        encoder = getattr(self.model.config, "text_encoder", None) or "minilm"
        return Taxonomy.for_dataset(self.catalogue(), n_topics=n_topics, encoder=encoder)


def save_run(
    directory: str | Path,
    dataset: Dataset,
    model: Recommender,
    parts: Split,
    source: dict | None = None,
    extra: dict | None = None,
) -> Run:
    """Write a trained model, its data and what was done into a run directory."""
    directory = Path(directory)
    meta = run_meta(
        dataset, model, source, protocol=parts.protocol.to_dict(), split_notes=parts.notes, **(extra or {})
    )
    directory.mkdir(parents=True, exist_ok=True)
    dataset.save(directory / "data")
    model.save_model(directory / "model")
    (directory / "run.json").write_text(json.dumps(meta, indent=2))
    return Run(directory, dataset, model, parts.protocol, meta)


def load_run(directory: str | Path, device: str = "auto") -> Run:
    """Load a run directory; a neural model is placed on ``device`` (auto, cpu, cuda[:N], mps)."""
    directory = Path(directory)
    meta_path = directory / "run.json"
    if not meta_path.exists():
        if (directory / "model.json").exists():
            raise InputError(
                f"{directory}: a model saved without its data (run.json missing): model.save writes a run "
                "only for a model fitted in that process; or use penchant.runs.train_run(dataset, model, "
                "directory)"
            )
        raise InputError(
            f"{directory}: not a penchant run directory (run.json missing); create one with penchant train"
        )
    meta = json.loads(meta_path.read_text())
    model = load_model(directory / "model").to(device)
    protocol = Protocol(**meta["protocol"]) if meta.get("protocol") else Protocol()  # None: model.save
    return Run(directory, None, model, protocol, meta)


def erase_user(run: Run, user_id: str) -> int:
    """Remove one user from a run directory and from the loaded run: their events, with any review
    or query text, from ``data/``; their history and their events' text vectors from ``model/``; and
    those texts' vectors from the embedding cache. Returns how many events were removed.

    The trained weights stay as they are: what the user's events taught the model leaves it only
    when the model is trained again (``penchant train``) on data without them."""
    events = run.dataset.events
    mine = (events["user_id"] == user_id).to_numpy()
    texts = events.loc[mine, "text"].dropna().astype(str).tolist() if "text" in events else []
    known = run.model.forget_user(user_id)
    if not mine.any() and not known:
        return 0
    run.dataset = Dataset(
        events=events.loc[~mine].drop(columns=["user", "item"]).reset_index(drop=True),
        items=run.dataset.items,
        users=run.dataset.users.drop(index=user_id, errors="ignore"),
        name=run.dataset.name,
        report=run.dataset.report,
    )
    run.dataset.save(run.directory / "data")
    run.model.save_model(run.directory / "model")
    if mine.any():  # counted beside run.json, not in it: run.json's hash names the run in the store
        (run.directory / ERASED_FILE).write_text(json.dumps({"erased_users": run.erased_in_weights() + 1}))
    if texts:
        cache = EmbeddingCache()
        try:
            cache.delete(texts)
        finally:
            cache.close()
    return int(mine.sum())


def add_items_to_run(run: Run, items: pd.DataFrame, source: str | None = None) -> list[str]:
    """Add new catalogue items (canonical columns) to a trained run without retraining, and save it.

    The model extends its item map and item vectors (text-encoded, see ``Recommender.add_items``);
    the run's catalogue grows by the same rows, in the same order, so the two stay aligned.
    """
    ids = run.model.add_items(items)
    new = items.reset_index() if "item_id" not in items.columns else items
    new = new.assign(item_id=new["item_id"].astype(str)).set_index("item_id")
    catalogue = pd.concat([run.dataset.items, new])
    if "categories" in catalogue:
        catalogue["categories"] = [
            c if isinstance(c, list | tuple | np.ndarray) else [] for c in catalogue["categories"]
        ]
    dataset = Dataset(
        events=run.dataset.events.drop(columns=["user", "item"]),
        items=catalogue,
        users=run.dataset.users,
        name=run.dataset.name,
        report=run.dataset.report,
    )
    dataset.save(run.directory / "data")
    run.model.save_model(run.directory / "model")
    run.dataset = dataset
    run.meta["dataset"] = dataset.summary()
    run.meta.setdefault("items_added", []).append(
        {"count": len(ids), "source": source, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    )
    (run.directory / "run.json").write_text(json.dumps(run.meta, indent=2))
    return ids
