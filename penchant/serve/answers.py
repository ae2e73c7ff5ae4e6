"""Answers about one user from the served run: their stored history and cached model state, their
recommendations (with or without an exploration policy), profile and explanations.

Every answer takes :attr:`ModelHolder.current` once and uses that snapshot throughout (see
:mod:`penchant.serve.state`)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from starlette.concurrency import run_in_threadpool

from penchant.data.dataset import History
from penchant.explain import Explanation
from penchant.interests import Profile
from penchant.models import Recommendation
from penchant.serve.db import PoolBusy
from penchant.serve.feedback import Feedback, Reward, Shown, Weights
from penchant.serve.interests import DEFAULT_CANDIDATES, ExploredItem, PolicyName, RunInterests
from penchant.serve.settings import Settings
from penchant.serve.state import REFRESH_USERS, LoadedRun, ModelHolder, UserState
from penchant.serve.store import Event, EventStore


@dataclass(frozen=True)
class UserRecommendations:
    items: list[Recommendation]
    history_length: int  # stored events the model saw (items it does not know are left out)
    loaded: LoadedRun
    roles: list[ExploredItem] | None = None  # with a policy: each item's role and interest
    exclude_seen: bool = False  # whether already-seen items were left out (asked for, or the run's default)
    request_id: str | None = None  # the impression this response was logged as (None: not logged)


class NoInterests(Exception):
    """The loaded run has no interests, so it has no profiles, explanations or policies."""


class UnknownUser(LookupError):
    """No stored events of the user that the model knows."""


class UnknownItem(LookupError):
    """An item the loaded model does not know."""


class Answers:
    def __init__(self, settings: Settings, store: EventStore, models: ModelHolder, feedback: Feedback):
        self.settings = settings
        self.store = store
        self.models = models
        self.feedback = feedback

    def history(self, user_id: str, loaded: LoadedRun) -> History:
        """The user's stored history in the model's item indices, oldest first."""
        item_ids, times = self.store.history(user_id, self.settings.history_limit)
        idx = loaded.run.model.item_map.indices(item_ids)
        known = idx >= 0  # stored items this model cannot score (added after training, no item text)
        return History(idx[known], np.asarray(times, dtype=np.float64)[known], user_id)

    def user_state(self, user_id: str, loaded: LoadedRun) -> UserState:
        """The user's history and model state, from the cache when the store has nothing newer."""
        version = self.store.history_version(user_id)
        cached = loaded.users.get(user_id, version)
        if cached is not None:
            return cached
        # The version is read before the history: an event committed in between makes the entry look
        # older than it is (one needless recompute), never newer (a stale read).
        if version == (0, 0) and user_id in loaded.run.model.histories and self.store.erased(user_id):
            # Erased through another replica: it rewrote the run directory; this copy forgets too.
            self.models.forget_erased(user_id)
        history = self.history(user_id, loaded)
        fresh = UserState(version, history, loaded.retriever.user_state(history))
        loaded.users.put(user_id, fresh)
        return fresh

    def refresh(self, user_ids: Iterable[str]) -> None:
        """Compute the state of users who just got events, so that their next read is cheap; past
        :data:`REFRESH_USERS` per call the remaining users are left to their next read."""
        loaded = self.models.current
        for user_id in list(dict.fromkeys(user_ids))[:REFRESH_USERS]:
            self.user_state(user_id, loaded)

    def forget(self, user_id: str) -> None:
        """Drop an erased user's cached state (the version check would reject it anyway) and their
        impressions not yet written."""
        self.models.current.users.discard(user_id)
        self.feedback.forget(user_id)

    def rewards(self, events: Iterable[tuple[Event, str | None]]) -> list[Reward]:
        """The impressions these just-stored events (each with the request ID it names, if any) reward."""
        rows = [(e.user_id, e.item_id, request_id) for e, request_id in events]
        return self.feedback.reward(rows, _weights(self.models.current))

    def recommend(
        self,
        user_id: str,
        k: int,
        exclude_seen: bool | None,
        policy: PolicyName | None = None,
        explore: float = 0.0,
    ) -> UserRecommendations:
        """The model's top k, or with a policy its top candidates re-ranked at ``explore``.
        ``exclude_seen`` None: as the run decided from its training data."""
        loaded = self.models.current
        return self._recommend(
            loaded, self.user_state(user_id, loaded), user_id, k, exclude_seen, policy, explore
        )

    async def recommend_async(
        self,
        user_id: str,
        k: int,
        exclude_seen: bool | None,
        policy: PolicyName | None = None,
        explore: float = 0.0,
    ) -> UserRecommendations:
        """:meth:`recommend`, answered on the event loop when that is cheap: a SQLite store (the
        version check is an in-process index lookup of tens of microseconds), the user's state cached
        and no policy. Otherwise (a forward pass, a history read, a re-ranking, a database over the
        network) it runs in a worker thread, and the loop goes on serving."""
        if policy is None and self.store.db.dialect == "sqlite":
            loaded = self.models.current
            try:  # a WAL reader never waits for the writer; a pool slot it may not wait for either
                version = self.store.history_version(user_id, wait=False)
            except PoolBusy:
                version = None
            cached = loaded.users.get(user_id, version) if version is not None else None
            if cached is not None:
                return self._recommend(loaded, cached, user_id, k, exclude_seen)
        return await run_in_threadpool(self.recommend, user_id, k, exclude_seen, policy, explore)

    def _recommend(
        self,
        loaded: LoadedRun,
        cached: UserState,
        user_id: str,
        k: int,
        exclude_seen: bool | None,
        policy: PolicyName | None = None,
        explore: float = 0.0,
    ) -> UserRecommendations:
        history = cached.history
        model = loaded.run.model
        if exclude_seen is None:
            exclude_seen = model.excludes_seen
        titles = model.titles
        roles = None
        if policy is None:
            top = loaded.retriever.top_k(history, k, exclude_seen, cached.state)
        else:
            candidates = loaded.retriever.top_k(
                history, max(DEFAULT_CANDIDATES, k), exclude_seen, cached.state
            )
            interests = _interests(loaded)
            stored = None
            if policy is PolicyName.bandit:  # the user's posterior, shared by every replica
                stored = self.feedback.posterior(user_id, _weights(loaded))
            roles, used = interests.rerank(policy, user_id, history, candidates, k, explore, stored)
            if used is not None:
                self.feedback.start_posterior(
                    user_id, {name: ab for name, ab in used.items() if name not in (stored or {})}
                )
            top = [(r.item, r.score) for r in roles]
        items = [
            Recommendation(model.item_map.ids[i], score, titles[i] if titles else None) for i, score in top
        ]
        shown = [
            Shown(r.item_id, role.role, role.interest, role.propensity) if role else Shown(r.item_id)
            for r, role in zip(items, roles or [None] * len(items), strict=True)
        ]
        # Only a list made from the user's own stored events is their impression: a fallback for a user
        # with none (new, or erased a moment ago) is not logged, so it leaves no trace of them.
        request_id = None
        if len(history) > 0:
            request_id = self.feedback.log(
                user_id, shown, policy.value if policy else None, explore, exclude_seen
            )
        return UserRecommendations(items, len(history), loaded, roles, exclude_seen, request_id)

    def profile(self, user_id: str) -> Profile:
        loaded = self.models.current
        return _interests(loaded).profile(user_id, self._known_history(user_id, loaded))

    def explain(self, user_id: str, item_id: str, top: int) -> Explanation:
        loaded = self.models.current
        interests = _interests(loaded)
        if item_id not in loaded.run.model.item_map:
            raise UnknownItem(f"item_id: the model does not know item '{item_id}'")
        history = self._known_history(user_id, loaded)
        # Occlusion scores one history per event; the most recent events bound the cost of a request.
        recent = slice(-self.settings.explain_events, None)
        return interests.explain(loaded.run, user_id, item_id, history.take(recent), top)

    def _known_history(self, user_id: str, loaded: LoadedRun) -> History:
        history = self.history(user_id, loaded)
        if len(history) == 0:
            raise UnknownUser(f"user_id: no stored events of user '{user_id}' with items the model knows")
        return history


def _weights(loaded: LoadedRun) -> Weights:
    """Item ID -> its interests and membership, in the loaded run's taxonomy (none without one)."""
    interests = loaded.interests
    if interests is None:
        return lambda item_id: {}
    return lambda item_id: interests.weights(item_id, loaded.run.model)


def _interests(loaded: LoadedRun) -> RunInterests:
    if loaded.interests is None:
        raise NoInterests(
            f"the served run ({loaded.model_name}) has neither item categories nor item text, so no "
            "interests: profiles, explanations and policies need a catalogue with categories or text"
        )
    return loaded.interests
