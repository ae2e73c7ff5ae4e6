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
model with the item, its retriever and interests rebuilt and an empty state cache.
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
from penchant.serve import retrieval
from penchant.serve.interests import RunInterests
from penchant.serve.retrieval import (
    AnnRetriever,
    ExactRetriever,
    Retriever,
    build_retriever,
    has_kept_index,
    wants_ann,
)
from penchant.serve.settings import Settings
from penchant.serve.store import EventStore, Item

log = logging.getLogger("penchant.serve")


USER_STATES = 100_000  # at most this many users' model states in one process (LRU) ...
USER_STATE_BYTES = 256 * 2**20  # ... and at most about this much memory, counted by what each one holds
ANN_FOLDER = "ann"  # inside the run directory: the HNSW index kept between starts
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
    :meth:`add_item`. Readers take :attr:`current` once per request."""

    def __init__(self, settings: Settings, store: EventStore):
        self.settings = settings
        self.store = store
        self._reload_lock = threading.Lock()  # reloads, catalogue additions and index swaps, one at a time
        self._building: str | None = None  # the run key whose ANN index a background thread builds
        self._folding = False  # whether a background thread inserts added items into an index copy
        with self._reload_lock:  # a background build swaps its index in only once this is set
            self.current: LoadedRun = self._load()
            self._fold_if_due()  # stored items added to the model at load may be many

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
        retriever = self._retriever(run, run_key)
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

    def _retriever(self, run: Run, run_key: str) -> Retriever:
        """The run's retriever. An ANN index that is not kept from an earlier start and would take
        long to build (``ann_background_from`` items) is built in a background thread while exact
        retrieval serves, and swapped in when ready; the service answers from the start."""
        model, settings = run.model, self.settings
        cache = Path(settings.run_dir) / ANN_FOLDER
        if (
            wants_ann(model, settings.ann_threshold)
            and model.n_items >= settings.ann_background_from
            and not has_kept_index(model, cache)
        ):
            if self._building != run_key:
                self._building = run_key
                threading.Thread(
                    target=self._build_index, args=(run_key, model, cache), name="ann-index", daemon=True
                ).start()
                log.info(
                    "building the ANN index over %d items in the background; exact retrieval until it is ready",
                    model.n_items,
                )
            return ExactRetriever(model)
        return build_retriever(model, settings.ann_threshold, settings.ann_ef_search, cache=cache)

    def _build_index(self, run_key: str, model, cache: Path) -> None:
        started = time.perf_counter()
        try:
            built = AnnRetriever(model, ef_search=self.settings.ann_ef_search, cache=cache)
        except Exception:  # the service keeps answering exactly
            log.exception("building the ANN index failed; exact retrieval goes on")
            with self._reload_lock:
                self._building = None
            return
        with self._reload_lock:
            if self._building != run_key or self.current.run_key != run_key:
                return  # another run was loaded meanwhile; the index stays kept for it on disk
            loaded = self.current
            if loaded.run.model is not model:  # items were added (or the same run reloaded) meanwhile
                built = built.extended(loaded.run.model)
            # States cached for exact retrieval (score rows) are not ANN states (query vectors).
            self.current = dataclasses.replace(loaded, retriever=built, users=UserStates())
            self._building = None
        log.info(
            "ANN index over %d items ready in %.0f s; serving through it",
            len(built.vectors),
            time.perf_counter() - started,
        )

    def _extended(self, loaded: LoadedRun, items: list[Item]) -> LoadedRun:
        """A new LoadedRun whose model also scores ``items``, with everything sized by the catalogue
        rebuilt: the retriever (and ANN index), the interests, and an empty user-state cache."""
        model = _with_items(loaded.run.model, items)
        run = dataclasses.replace(loaded.run, model=model)
        if self._building == loaded.run_key:  # the background build extends its index when it ends
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
            self._fold_if_due()
            return True

    def _fold_if_due(self) -> None:
        """Once :data:`~penchant.serve.retrieval.FOLD` added items are scored beside the ANN index,
        insert them into a copy of it in a background thread (seconds at a million items), so that
        no request waits for it."""
        retriever = self.current.retriever
        if (
            isinstance(retriever, AnnRetriever)
            and len(retriever.recent) >= retrieval.FOLD
            and not self._folding
        ):
            self._folding = True
            threading.Thread(target=self._fold, args=(retriever,), name="ann-fold", daemon=True).start()

    def _fold(self, retriever: AnnRetriever) -> None:
        started = time.perf_counter()
        try:
            folded = retriever.folded()
        except Exception:  # the added items stay scored beside the index
            log.exception("inserting the added items into the ANN index failed")
            folded = None
        with self._reload_lock:
            self._folding = False
            current = self.current.retriever
            if (
                folded is None
                or not isinstance(current, AnnRetriever)
                or current.index is not retriever.index
            ):
                return  # another run or index was swapped in meanwhile
            self.current = dataclasses.replace(self.current, retriever=current.rebased(folded))
        log.info(
            "%d added items inserted into the ANN index in %.1f s",
            len(retriever.recent),
            time.perf_counter() - started,
        )

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
            self._fold_if_due()
            log.info(
                "loaded run %s (%s, %s retrieval)",
                self.settings.run_dir,
                loaded.model_name,
                loaded.retriever.kind,
            )
            return loaded
