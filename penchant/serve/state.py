"""Online state: the loaded run, swapped whole when a newer one is loaded, and per-user histories
read from the event store at request time.

A request takes :attr:`ModelHolder.current` once and uses that snapshot throughout, so a reload
(``POST /admin/reload`` or SIGHUP) replaces the model between requests without failing any: the new
run is loaded beside the old one and the reference swapped in one assignment.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from penchant.data.dataset import History
from penchant.evaluate.runs import Run, load_run
from penchant.models import Recommendation
from penchant.serve.retrieval import Retriever, build_retriever
from penchant.serve.settings import Settings
from penchant.serve.store import EventStore

log = logging.getLogger("penchant.serve")


@dataclass(frozen=True)
class LoadedRun:
    run: Run
    run_key: str  # content hash of run.json: names this run in the store's import log
    retriever: Retriever
    loaded_at: float

    @property
    def model_name(self) -> str:
        return self.run.model.name


@dataclass(frozen=True)
class UserRecommendations:
    items: list[Recommendation]
    history_length: int  # stored events the model saw (items it does not know are left out)
    loaded: LoadedRun


class ModelHolder:
    def __init__(self, settings: Settings, store: EventStore):
        self.settings = settings
        self.store = store
        self._reload_lock = threading.Lock()
        self.current: LoadedRun = self._load()

    def _load(self) -> LoadedRun:
        run_dir = Path(self.settings.run_dir)
        run = load_run(run_dir)
        run_key = hashlib.sha256((run_dir / "run.json").read_bytes()).hexdigest()[:32]
        added = self.store.import_run(run_key, str(run_dir.resolve()), run.dataset.events, run.dataset.items)
        if added is not None:
            log.info("imported run %s into the event store: %d events, %d items", run_dir, *added)
        retriever = build_retriever(run.model, self.settings.ann_threshold, self.settings.ann_ef_search)
        return LoadedRun(run, run_key, retriever, time.time())

    def reload(self) -> LoadedRun:
        """Load the run directory again (a newer run written there) and swap it in; requests already
        running finish on the old one. Reloads do not overlap."""
        with self._reload_lock:
            loaded = self._load()
            self.current = loaded  # one reference assignment: atomic for every reader
            log.info(
                "loaded run %s (%s, %s retrieval)",
                self.settings.run_dir,
                loaded.model_name,
                loaded.retriever.kind,
            )
            return loaded

    def history(self, user_id: str, loaded: LoadedRun) -> History:
        """The user's stored history in the model's item indices, oldest first."""
        item_ids, times = self.store.history(user_id, self.settings.history_limit)
        idx = loaded.run.model.item_map.indices(item_ids)
        known = idx >= 0  # items added after training are stored, but this model cannot score them
        return History(idx[known], np.asarray(times, dtype=np.float64)[known])

    def recommend(self, user_id: str, k: int, exclude_seen: bool) -> UserRecommendations:
        loaded = self.current
        history = self.history(user_id, loaded)
        model = loaded.run.model
        top = loaded.retriever.top_k(history, k, exclude_seen)
        titles = model.titles
        items = [
            Recommendation(model.item_map.ids[i], score, titles[i] if titles else None) for i, score in top
        ]
        return UserRecommendations(items, len(history), loaded)
