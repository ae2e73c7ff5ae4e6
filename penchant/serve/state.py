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
from penchant.explain import Explanation
from penchant.interests import Profile
from penchant.models import Recommendation
from penchant.serve.interests import DEFAULT_CANDIDATES, ExploredItem, PolicyName, RunInterests
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
    interests: RunInterests | None  # None: the catalogue has no categories (see serve.interests)

    @property
    def model_name(self) -> str:
        return self.run.model.name


@dataclass(frozen=True)
class UserRecommendations:
    items: list[Recommendation]
    history_length: int  # stored events the model saw (items it does not know are left out)
    loaded: LoadedRun
    roles: list[ExploredItem] | None = None  # with a policy: each item's role and interest


class NoInterests(Exception):
    """The loaded run has no interests, so it has no profiles, explanations or policies."""


class UnknownUser(LookupError):
    """No stored events of the user that the model knows."""


class UnknownItem(LookupError):
    """An item the loaded model does not know."""


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
        interests = RunInterests.build(run)
        if interests is None:
            log.warning(
                "%s: the catalogue has no item categories; no profiles, explanations or explore", run_dir
            )
        return LoadedRun(run, run_key, retriever, time.time(), interests)

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

    def recommend(
        self,
        user_id: str,
        k: int,
        exclude_seen: bool,
        policy: PolicyName | None = None,
        explore: float = 0.0,
    ) -> UserRecommendations:
        """The model's top k, or with a policy its top candidates re-ranked at ``explore``."""
        loaded = self.current
        history = self.history(user_id, loaded)
        model = loaded.run.model
        titles = model.titles
        roles = None
        if policy is None:
            top = loaded.retriever.top_k(history, k, exclude_seen)
        else:
            candidates = loaded.retriever.top_k(history, max(DEFAULT_CANDIDATES, k), exclude_seen)
            roles = _interests(loaded).rerank(policy, user_id, history, candidates, k, explore)
            top = [(r.item, r.score) for r in roles]
        items = [
            Recommendation(model.item_map.ids[i], score, titles[i] if titles else None) for i, score in top
        ]
        return UserRecommendations(items, len(history), loaded, roles)

    def profile(self, user_id: str) -> Profile:
        loaded = self.current
        return _interests(loaded).profile(user_id, self._known_history(user_id, loaded))

    def explain(self, user_id: str, item_id: str, top: int) -> Explanation:
        loaded = self.current
        interests = _interests(loaded)
        if item_id not in loaded.run.model.item_map:
            raise UnknownItem(f"item_id: the model does not know item '{item_id}'")
        history = self._known_history(user_id, loaded)
        # Occlusion scores one history per event; the most recent events bound the cost of a request.
        recent = slice(-self.settings.explain_events, None)
        return interests.explain(
            loaded.run, user_id, item_id, History(history.items[recent], history.times[recent]), top
        )

    def _known_history(self, user_id: str, loaded: LoadedRun) -> History:
        history = self.history(user_id, loaded)
        if len(history) == 0:
            raise UnknownUser(f"user_id: no stored events of user '{user_id}' with items the model knows")
        return history


def _interests(loaded: LoadedRun) -> RunInterests:
    if loaded.interests is None:
        raise NoInterests(
            f"the served run ({loaded.model_name}) has no item categories, so no interests: "
            "profiles, explanations and policies need a catalogue with categories"
        )
    return loaded.interests
