"""Online state: the loaded run, swapped whole when a newer one is loaded, and per-user histories
read from the event store at request time.

Each user's model state (what the retriever computes from their history: the catalogue's scores, or
the query vector for ANN retrieval) is cached per loaded run, keyed by the user's history version in
the store (event count and newest event id). Writing an event computes it, after the event is
committed; a read checks the version with one indexed query and recomputes on a mismatch, so every
process sharing the database sees the events any of them stored, and a read is never stale.

A request takes :attr:`ModelHolder.current` once (through :class:`penchant.serve.answers.Answers`)
and uses that snapshot throughout, so a reload (``POST /admin/reload`` or SIGHUP) replaces the model between requests without failing any: the new
run is loaded beside the old one and the reference swapped in one assignment. Adding an item to a
model that scores items by their text (``POST /items``) is swapped in the same way: a copy of the
model with the item, its retriever and interests grown and an empty state cache. The ANN index is
built and grown in background threads (:mod:`penchant.serve.index_upkeep`) and swapped in the same way.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from penchant.data.dataset import History
from penchant.errors import InputError
from penchant.runs import Run, erase_user, load_run
from penchant.serve.index_upkeep import IndexUpkeep, Update
from penchant.serve.interests import RunInterests
from penchant.serve.retrieval import ExactRetriever, Retriever, build_retriever
from penchant.serve.settings import Settings
from penchant.serve.store import EventStore, Item

log = logging.getLogger("penchant.serve")


USER_STATES = 100_000  # at most this many users' model states in one process (LRU) ...
USER_STATE_BYTES = 256 * 2**20  # ... and at most about this much memory, counted by what each one holds
REFRESH_USERS = 32  # users of one write whose state is computed before the response; others on read


@dataclass(frozen=True)
class UserState:
    version: tuple[int, int]  # EventStore.history_version when the history was read
    history: History
    state: np.ndarray  # Retriever.user_state(history)


class UserStates:
    """An LRU of :class:`UserState` by user ID, safe across request threads, bounded by count and by
    the bytes the states really hold: an exact retriever's score row is 4 bytes per item, an ANN
    query vector 4 per dimension, so far more users fit under ANN at a large catalogue."""

    def __init__(self, capacity: int = USER_STATES, max_bytes: int = USER_STATE_BYTES):
        self.capacity = capacity
        self.max_bytes = max_bytes
        self.bytes = 0
        self._states: OrderedDict[str, UserState] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, user_id: str, version: tuple[int, int]) -> UserState | None:
        with self._lock:
            cached = self._states.get(user_id)
            if cached is None or cached.version != version:
                return None
            self._states.move_to_end(user_id)
            return cached

    def put(self, user_id: str, state: UserState) -> None:
        with self._lock:
            old = self._states.pop(user_id, None)
            if old is not None:
                self.bytes -= _size(old)
            self._states[user_id] = state
            self.bytes += _size(state)
            # The newest entry always stays, even alone over the budget.
            while len(self._states) > 1 and (
                len(self._states) > self.capacity or self.bytes > self.max_bytes
            ):
                _, evicted = self._states.popitem(last=False)
                self.bytes -= _size(evicted)

    def discard(self, user_id: str) -> None:
        with self._lock:
            old = self._states.pop(user_id, None)
            if old is not None:
                self.bytes -= _size(old)

    def __len__(self) -> int:
        return len(self._states)


def _size(entry: UserState) -> int:
    """Bytes a cached state holds: its model state and its history arrays."""
    return int(entry.state.nbytes + entry.history.items.nbytes + entry.history.times.nbytes)


@dataclass(frozen=True)
class LoadedRun:
    run: Run
    run_key: str  # content hash of run.json: names this run in the store's import log
    retriever: Retriever
    loaded_at: float
    interests: RunInterests | None  # None: the catalogue has no categories (see serve.interests)
    users: UserStates = field(default_factory=UserStates, compare=False)  # this model's states only

    @property
    def model_name(self) -> str:
        return self.run.model.name


TEXT_ITEM_REPRS = ("text", "fused")


def can_add_items(model) -> bool:
    """Whether the model can score items it was not trained on: a transformer with item text."""
    return getattr(model, "item_repr", None) in TEXT_ITEM_REPRS and hasattr(model, "net")


def _with_items(model, items: list[Item]):
    """A copy of ``model`` with ``items`` added (their text encoded); the model itself is untouched, so
    requests still running on it are unaffected. Raises :class:`InputError` when the model cannot."""
    if hasattr(type(model), "encoder"):
        model.encoder  # noqa: B018 -- load the lazy text encoder once, on the model the copies share it with
    grown = copy.copy(model)  # shares the read-only parts (histories, encoder, event text)
    grown.item_map = model.item_map.copy()  # add_items appends to it; the network and the
    # transition counts it replaces by grown copies that share the existing items' rows
    grown.add_items(
        pd.DataFrame(
            {
                "item_id": [i.item_id for i in items],
                "title": [i.title for i in items],
                "description": [i.description for i in items],
                "categories": [i.categories or [] for i in items],
            }
        )
    )
    return grown


class ModelHolder:
    """The served run: loaded at start, replaced whole by a reload, copied with new items by
    :meth:`add_item`, its ANN index kept current in the background by :attr:`index`. Readers take
    :attr:`current` once per request."""

    def __init__(self, settings: Settings, store: EventStore):
        self.settings = settings
        self.store = store
        # Reloads, catalogue additions and retriever swaps, one at a time.
        self._reload_lock = threading.Lock()
        self.index = IndexUpkeep(settings, self.swap_retriever)
        with self._reload_lock:  # a background build swaps its index in only once this is set
            self.current: LoadedRun = self._load()
            # Stored items added to the model at load may be many.
            self.index.fold_if_due(self.current.retriever)

    def _load(self) -> LoadedRun:
        run_dir = Path(self.settings.run_dir)
        run = load_run(run_dir, self.settings.device)
        run_key = hashlib.sha256((run_dir / "run.json").read_bytes()).hexdigest()[:32]
        # The run's events are read only to import them: once the store holds them (an earlier start,
        # or another replica), a start loads the model and the catalogue, not the event log.
        if not self.store.imported(run_key):
            added = self.store.import_run(
                run_key, str(run_dir.resolve()), run.dataset.events, run.dataset.items
            )
            if added is not None:
                log.info("imported run %s into the event store: %d events, %d items", run_dir, *added)
        retriever = self.index.retriever(run, run_key)
        interests = RunInterests.build(run)
        if interests is None:
            log.warning(
                "%s: the catalogue has neither item categories nor item text; no profiles, explanations "
                "or explore",
                run_dir,
            )
        users = UserStates()
        loaded = LoadedRun(run, run_key, retriever, time.time(), interests, users)
        if can_add_items(run.model):
            # Seconds at a million items, spent here rather than on the first POST /items.
            run.model.make_room_for_items(max(1024, run.model.n_items // 8))
            # Items added to the store after the run was trained (POST /items) stay recommendable.
            missing = self.store.items(not_in=run.model.item_map)
            if missing:
                loaded = self._extended(loaded, missing)
                log.info("added %d stored items the run was not trained on to its model", len(missing))
        return loaded

    def swap_retriever(self, update: Update) -> bool:
        """Serve the retriever ``update(current)`` gives instead of the current one (None: keep it),
        applied under the reload lock to the run served at that moment; returns whether it swapped.
        States cached for one kind of retriever (exact score rows) are not states of another (ANN
        query vectors): a change of kind starts an empty cache."""
        with self._reload_lock:
            loaded = self.current
            retriever = update(loaded)
            if retriever is None:
                return False
            users = loaded.users if retriever.kind == loaded.retriever.kind else UserStates()
            self.current = dataclasses.replace(loaded, retriever=retriever, users=users)
            return True

    def _extended(self, loaded: LoadedRun, items: list[Item]) -> LoadedRun:
        """A new LoadedRun whose model also scores ``items``, with everything sized by the catalogue
        grown by them (the retriever, sharing its ANN index, and the interests) and an empty
        user-state cache."""
        model = _with_items(loaded.run.model, items)
        run = dataclasses.replace(loaded.run, model=model)
        if self.index.building(loaded.run_key):  # the background build extends its index when it ends
            retriever: Retriever = ExactRetriever(model)
        else:
            retriever = build_retriever(
                model, self.settings.ann_threshold, self.settings.ann_ef_search, previous=loaded.retriever
            )
        interests = (
            loaded.interests.with_items(model, [i.categories for i in items]) if loaded.interests else None
        )
        users = UserStates()
        return LoadedRun(run, loaded.run_key, retriever, loaded.loaded_at, interests, users)

    def add_item(self, item: Item) -> bool:
        """Make a stored item recommendable at once when the served model can score it by its text;
        returns whether the served model knows the item. Requests running meanwhile finish on the
        previous model; the swap is one reference assignment, as in :meth:`reload`."""
        if not can_add_items(self.current.run.model):
            return item.item_id in self.current.run.model.item_map
        with self._reload_lock:
            loaded = self.current
            if item.item_id in loaded.run.model.item_map:
                return True  # known already (a stored item's text is not re-encoded on update)
            try:
                extended = self._extended(loaded, [item])
            except InputError as e:
                log.warning("item %s stored but not added to the model: %s", item.item_id, e)
                return False
            self.current = extended
            self.index.fold_if_due(self.current.retriever)
            return True

    def erase_user(self, user_id: str) -> int:
        """Remove an erased user from the served run: its directory (data, model history, event
        text) and this process's copy; returns how many of the run's
        events were theirs. Another replica drops its copy at its next reload, which reads the
        rewritten directory."""
        with self._reload_lock:
            removed = erase_user(self.current.run, user_id)
            self._forget(user_id)
            return removed

    def forget_erased(self, user_id: str) -> None:
        """Drop, in this process only, a user another replica erased (the run directory is already
        rewritten): their history in the loaded model and their cached state."""
        with self._reload_lock:
            self.current.run.model.forget_user(user_id)
            self._forget(user_id)

    def _forget(self, user_id: str) -> None:
        self.current.users.discard(user_id)

    def reload(self) -> LoadedRun:
        """Load the run directory again (a newer run written there) and swap it in; requests already
        running finish on the old one. Reloads do not overlap."""
        with self._reload_lock:
            loaded = self._load()
            self.current = loaded  # one reference assignment: atomic for every reader
            self.index.fold_if_due(self.current.retriever)
            log.info(
                "loaded run %s (%s, %s retrieval)",
                self.settings.run_dir,
                loaded.model_name,
                loaded.retriever.kind,
            )
            return loaded
