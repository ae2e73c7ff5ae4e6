"""Data: read, validate and clean events, items and users; map external IDs; per-user sequences."""

from penchant.data.builtin import load_builtin, load_ml100k
from penchant.data.dataset import Dataset, History, IdMap
from penchant.data.filters import Filters
from penchant.data.io import SqlSource, load_dataset, read_events, read_items, read_users
from penchant.data.schema import CleaningReport, ColumnMap

__all__ = [
    "CleaningReport",
    "ColumnMap",
    "Dataset",
    "Filters",
    "History",
    "IdMap",
    "SqlSource",
    "load_builtin",
    "load_dataset",
    "load_ml100k",
    "read_events",
    "read_items",
    "read_users",
]
