"""Running a policy over a model: candidate generation, batch re-ranking and user-facing results."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from penchant.data.dataset import History
from penchant.explore.policies import EXPLOIT, EXPLORE, Candidates, Policy, UserContext
from penchant.models.base import Recommender

DEFAULT_CANDIDATES = 200


@dataclass(frozen=True)
class ExploredRecommendation:
    """A recommendation with the part it plays: ``role`` is "exploit" or "explore"."""

    item_id: str
    score: float
    title: str | None
    role: str
    interest: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "item_id": self.item_id,
            "score": self.score,
            "title": self.title,
            "role": self.role,
            "interest": self.interest,
        }


@dataclass
class SlateBatch:
    """Slates for many users as arrays: ``items`` (U, k) padded with -1, ``explores`` (U, k) bool,
    ``interests`` (U, k) int (-1: none or padding)."""

    items: np.ndarray
    explores: np.ndarray
    interests: np.ndarray


def rerank_scores(
    policy: Policy,
    scores: np.ndarray,
    histories: Sequence[History],
    k: int,
    explore: float,
    user_ids: Sequence[str] | None = None,
    n_candidates: int = DEFAULT_CANDIDATES,
    exclude_seen: bool = False,
) -> SlateBatch:
    """Re-rank full-catalogue model scores ``(U, I)`` with a policy, one user at a time."""
    n = len(histories)
    items = np.full((n, k), -1, dtype=np.int64)
    explores = np.zeros((n, k), dtype=bool)
    interests = np.full((n, k), -1, dtype=np.int64)
    for row, history in enumerate(histories):
        candidates = Candidates.from_scores(
            scores[row], max(n_candidates, k), history.items if exclude_seen else None
        )
        user = UserContext(history, user_ids[row] if user_ids is not None else str(row))
        slate = policy.rerank(user, candidates, k, explore)
        width = len(slate.items)
        items[row, :width] = slate.items
        explores[row, :width] = slate.explores
        interests[row, :width] = slate.interests
    return SlateBatch(items, explores, interests)


class Explorer:
    """A model and a policy together: ``recommend(user_id, k, explore)`` with roles and interests."""

    def __init__(self, model: Recommender, policy: Policy, n_candidates: int = DEFAULT_CANDIDATES):
        self.model = model
        self.policy = policy
        self.n_candidates = n_candidates

    def recommend(
        self,
        user_id: str,
        k: int = 10,
        explore: float = 0.0,
        exclude_seen: bool | None = None,
        history: History | None = None,
    ) -> list[ExploredRecommendation]:
        """``exclude_seen`` None: as the model decided from its training data (``excludes_seen``)."""
        history = self.model.history_of(user_id) if history is None else history
        if exclude_seen is None:
            exclude_seen = self.model.excludes_seen
        scores = self.model.scores_or_popular([history])[0]
        candidates = Candidates.from_scores(
            scores, max(self.n_candidates, k), history.items if exclude_seen else None
        )
        slate = self.policy.rerank(UserContext(history, user_id), candidates, k, explore)
        names = self.policy.taxonomy.names
        titles = self.model.titles
        return [
            ExploredRecommendation(
                item_id=self.model.item_map.ids[i],
                score=float(s),
                title=titles[i] if titles else None,
                role=EXPLORE if e else EXPLOIT,
                interest=names[j] if j >= 0 else None,
            )
            for i, s, e, j in zip(slate.items, slate.scores, slate.explores, slate.interests, strict=True)
        ]
