"""The in-memory dataset: validated, cleaned tables plus the mapping between external and internal IDs.

External IDs (strings) are what people see; internal indices (``0..n-1``) are what arrays use.
Events are kept sorted by user, then time, then the order they arrived in, so that ties in time
keep the input's order and every split is deterministic.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from penchant.data.filters import Filters, apply_filters
from penchant.data.schema import CleaningReport
from penchant.errors import InputError


class IdMap:
    """Bidirectional map between external string IDs and contiguous internal indices."""

    def __init__(self, ids: Iterable[str]):
        self.ids: list[str] = [str(i) for i in ids]
        self._index = {external: i for i, external in enumerate(self.ids)}
        self._lookup: pd.Index | None = None  # a vectorised copy of _index, built on first use
        if len(self._index) != len(self.ids):
            raise ValueError("IdMap IDs must be unique")

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, external: object) -> bool:
        return external in self._index

    def index(self, external: str) -> int:
        """Internal index of an external ID; KeyError when unknown."""
        return self._index[external]

    def get(self, external: str, default: int = -1) -> int:
        return self._index.get(external, default)

    def indices(self, externals: Iterable[str]) -> np.ndarray:
        """Vector of internal indices (-1 for unknown IDs)."""
        if not isinstance(externals, (list, tuple, np.ndarray, pd.Series, pd.Index)):
            externals = list(externals)
        if len(externals) < 64:  # a request's handful: the dict is faster than building an index
            return np.fromiter(
                (self._index.get(e, -1) for e in externals), dtype=np.int64, count=len(externals)
            )
        if self._lookup is None or len(self._lookup) != len(self.ids):
            self._lookup = pd.Index(self.ids, dtype=object)
        # A log repeats its IDs: look up each distinct one, then spread by the codes.
        if not isinstance(externals, (pd.Series, pd.Index, np.ndarray)):
            externals = np.asarray(externals, dtype=object)
        codes, uniques = pd.factorize(externals, use_na_sentinel=True)
        found = np.append(self._lookup.get_indexer(pd.Index(uniques, dtype=object)), -1)
        return found[codes].astype(np.int64)

    def copy(self) -> IdMap:
        """An independent copy (a shallow copy of the list and dict: IDs are strings)."""
        other = object.__new__(IdMap)
        other.ids, other._index, other._lookup = list(self.ids), dict(self._index), None
        return other

    def add(self, external: str) -> int:
        """Append a new ID (no-op when present) and return its index."""
        if external not in self._index:
            self._index[external] = len(self.ids)
            self.ids.append(external)
        return self._index[external]


@dataclass
class History:
    """One user's time-ordered behaviour as internal item indices and Unix timestamps (seconds).

    ``user`` is the external user ID when the history is a known user's (it keys per-event data such
    as review text); None for a history given ad hoc."""

    items: np.ndarray  # (T,) int64
    times: np.ndarray  # (T,) float64
    user: str | None = None

    def __len__(self) -> int:
        return len(self.items)

    @classmethod
    def empty(cls) -> History:
        return cls(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64))

    def append(self, item: int, time: float) -> History:
        return History(np.append(self.items, item), np.append(self.times, time), self.user)

    def take(self, index: slice | np.ndarray) -> History:
        """The same user's events at ``index`` (a slice, positions or a mask), in order."""
        return History(self.items[index], self.times[index], self.user)


@dataclass(frozen=True)
class Catalogue:
    """The item catalogue alone (``items`` as in :class:`Dataset`), for what needs no events: a
    service whose event store already holds a run's events reads only this from the run."""

    items: pd.DataFrame
    name: str = "custom"

    @property
    def n_items(self) -> int:
        return len(self.items)

    @classmethod
    def load(cls, directory: str | Path, name: str = "custom") -> Catalogue:
        """The catalogue :meth:`Dataset.save` wrote into ``directory``."""
        return cls(pd.read_parquet(Path(directory) / "items.parquet").set_index("item_id"), name)


@dataclass
class Dataset:
    """Events, items and users in canonical columns, with ID maps.

    ``events`` columns: user_id, item_id (str), timestamp (float seconds), event_type (str or missing),
    value (float or NaN), text (str or missing), plus internal ``user`` and ``item`` indices.
    ``items`` is indexed by item_id, in internal-index order; every item in the catalogue is a
    candidate for ranking, whether or not it has events.
    """

    events: pd.DataFrame
    items: pd.DataFrame
    users: pd.DataFrame
    name: str = "custom"
    report: CleaningReport = field(default_factory=CleaningReport)

    def __post_init__(self) -> None:
        self.item_map = IdMap(self.items.index)
        # Users are indexed in the order they first appear: one pass gives the IDs and the indices.
        users, ids = pd.factorize(self.events["user_id"])
        self.user_map = IdMap(ids)
        self.events["item"] = self.item_map.indices(self.events["item_id"])
        self.events["user"] = users.astype(np.int64)

    @property
    def n_items(self) -> int:
        return len(self.item_map)

    @property
    def n_users(self) -> int:
        return len(self.user_map)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_frames(
        cls,
        events: pd.DataFrame,
        items: pd.DataFrame | None = None,
        users: pd.DataFrame | None = None,
        name: str = "custom",
        report: CleaningReport | None = None,
        filters: Filters | None = None,
    ) -> Dataset:
        """Clean canonical-column frames and build a dataset.

        Cleaning drops events with a missing user, item or time, exact duplicate events (same user,
        item, time, type and text), and events whose item is not in the given catalogue, then applies
        ``filters`` (positive rule, k-core), and records each step in the report. Without a
        catalogue, the catalogue is the set of items in the events kept.
        """
        report = report or CleaningReport(events_read=len(events))
        events = events.copy(deep=False)  # columns are replaced below, never written in place
        for column in ("user_id", "item_id", "timestamp"):
            missing = events[column].isna()
            if not pd.api.types.is_numeric_dtype(events[column]):  # a number is never blank
                missing |= events[column].astype(str).str.strip() == ""
            if missing.any():
                report.missing_dropped[column] = report.missing_dropped.get(column, 0) + int(missing.sum())
                events = events[~missing]
        for column, default in (("event_type", None), ("value", np.nan), ("text", None)):
            if column not in events:
                events[column] = default
        events["user_id"] = events["user_id"].astype(str)
        events["item_id"] = events["item_id"].astype(str)
        events["timestamp"] = events["timestamp"].astype(float)
        events["value"] = events["value"].astype(float)

        # Sorted first, by user ID, then time, then the input order among events with equal
        # timestamps (integer codes in the IDs' own order sort much faster than the strings); what
        # follows only drops rows, so the order holds.
        users_sorted = pd.factorize(events["user_id"], sort=True)[0]
        order = np.lexsort((events["timestamp"].to_numpy(), users_sorted))  # stable: input order last
        # An event's text is part of what it is: two tags written in the same second are two events.
        repeated = _repeated(events, order, users_sorted[order])
        report.duplicates_dropped += int(repeated.sum())
        events = events.iloc[order[~repeated]].reset_index(drop=True)  # one take for both

        catalogue = None
        if items is not None and len(items) > 0:
            catalogue = items.copy()
            catalogue["item_id"] = catalogue["item_id"].astype(str)
            before = len(catalogue)
            catalogue = catalogue.drop_duplicates(subset="item_id", keep="first").set_index("item_id")
            report.duplicate_items_dropped += before - len(catalogue)
            known = events["item_id"].isin(catalogue.index)
            if not known.all():
                report.unknown_items_dropped += int((~known).sum())
                events = events[known]
        if filters is not None and filters.active:
            events = apply_filters(events, filters, report)
        if catalogue is None:
            catalogue = pd.DataFrame(
                index=pd.Index(sorted(pd.unique(events["item_id"]), key=_natural), name="item_id")
            )
        else:
            idle = int((~catalogue.index.isin(events["item_id"])).sum())
            if idle > len(catalogue) / 2:
                report.notes.append(
                    f"warning: {idle} of {len(catalogue)} catalogue items ({idle / len(catalogue):.0%}) have "
                    "no events; they are kept for cold start and cost no training time, but only their "
                    "text (if any) can score them"
                )

        if users is None:
            users = pd.DataFrame(columns=["user_id"])
        users = users.copy()
        users["user_id"] = users["user_id"].astype(str)
        users = users.drop_duplicates(subset="user_id").set_index("user_id")

        events = events.reset_index(drop=True)
        report.events_kept = len(events)
        if len(events) == 0:
            raise InputError(f"{name}: no events left after cleaning ({'; '.join(report.lines())})")
        return cls(events=events, items=catalogue, users=users, name=name, report=report)

    # ------------------------------------------------------------------ views
    def histories(self, events: pd.DataFrame | None = None) -> dict[int, History]:
        """Per-user time-ordered histories (internal user index -> History) for the given events."""
        events = self.events if events is None else events
        users = events["user"].to_numpy()
        items = events["item"].to_numpy()
        times = events["timestamp"].to_numpy()
        order = np.lexsort((np.arange(len(users)), times, users))
        users, items, times = users[order], items[order], times[order]
        bounds = np.flatnonzero(np.diff(users)) + 1
        starts = np.concatenate([[0], bounds])
        ends = np.concatenate([bounds, [len(users)]])
        return {
            int(users[s]): History(items[s:e].copy(), times[s:e].copy(), self.user_map.ids[int(users[s])])
            for s, e in zip(starts, ends, strict=True)
            if e > s
        }

    @property
    def catalogue(self) -> Catalogue:
        return Catalogue(self.items, self.name)

    def titles(self) -> list[str | None]:
        """Item titles in internal-index order (None when the catalogue has none)."""
        if "title" not in self.items:
            return [None] * self.n_items
        return [None if pd.isna(t) else str(t) for t in self.items["title"]]

    def summary(self) -> dict:
        return {
            "name": self.name,
            "n_events": int(len(self.events)),
            "n_users": self.n_users,
            "n_items": self.n_items,
            "time_range": [float(self.events["timestamp"].min()), float(self.events["timestamp"].max())],
        }

    # ------------------------------------------------------------------ persistence
    def save(self, directory: str | Path) -> None:
        """Write the cleaned tables as Parquet."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.events.drop(columns=["user", "item"]).to_parquet(directory / "events.parquet", index=False)
        _to_parquet(self.items.reset_index(), directory / "items.parquet")
        _to_parquet(self.users.reset_index(), directory / "users.parquet")

    @classmethod
    def load(cls, directory: str | Path, name: str = "custom") -> Dataset:
        directory = Path(directory)
        events = pd.read_parquet(directory / "events.parquet")
        items = pd.read_parquet(directory / "items.parquet").set_index("item_id")
        users = pd.read_parquet(directory / "users.parquet").set_index("user_id")
        report = CleaningReport(events_read=len(events), events_kept=len(events))
        return cls(events=events, items=items, users=users, name=name, report=report)


def _to_parquet(frame: pd.DataFrame, path: Path) -> None:
    # List-valued columns (categories) round-trip through Arrow; everything else as is.
    frame.to_parquet(path, index=False)


def _repeated(events: pd.DataFrame, order: np.ndarray, users: np.ndarray) -> np.ndarray:
    """Which of ``events.iloc[order]`` (sorted by user, then time, then input order; ``users``: their
    user codes in that order) repeat an earlier event exactly: user, item, time, type and text.
    Repeats share user and time, so only runs of equal (user, time) are compared, which real logs
    have few of."""
    times = events["timestamp"].to_numpy()[order]
    tie = (users[1:] == users[:-1]) & (times[1:] == times[:-1])
    candidates = np.flatnonzero(np.concatenate([[False], tie]) | np.concatenate([tie, [False]]))
    out = np.zeros(len(order), dtype=bool)
    if len(candidates):
        columns = ["user_id", "item_id", "timestamp", "event_type", "text"]
        rows = events.iloc[order[candidates]]
        out[candidates] = rows.duplicated(subset=columns, keep="first").to_numpy()
    return out


def _natural(external: str) -> tuple:
    """Sort numeric-looking IDs numerically, others lexically (numbers first)."""
    return (0, int(external), "") if external.isdigit() else (1, 0, external)


def items_to_indices(item_map: IdMap, item_ids: Sequence[str], source: str = "items") -> np.ndarray:
    """Map external item IDs to indices, naming the first unknown one in the error."""
    idx = item_map.indices(item_ids)
    if (idx < 0).any():
        bad = item_ids[int(np.flatnonzero(idx < 0)[0])]
        raise InputError(f"{source}: unknown item_id '{bad}'")
    return idx
