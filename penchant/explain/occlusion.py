"""Occlusion explanations: how much of an item's score each past item is responsible for.

The weight of history event t for item i is ``score(history)[i] - score(history without t)[i]``,
measured on the model itself through :meth:`Recommender.score`, so it works for any model and is
faithful by construction: a positive weight means the model scores the item lower without that
event. All occluded histories go through the model in one batched ``score`` call. An interest's
weight is the sum of its items' weights, split by taxonomy membership.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from penchant.data.dataset import History
from penchant.errors import InputError
from penchant.interests.profile import InterestWeight
from penchant.interests.taxonomy import Taxonomy
from penchant.models.base import Recommender

METHOD = (
    "occlusion: an item's weight is the drop in the recommended item's score when that one event is "
    "removed from the history (negative: the item pulls the score down); an interest's weight is the "
    "sum of its items' weights, split by interest membership"
)


@dataclass(frozen=True)
class HistoryContribution:
    item_id: str
    title: str | None
    position: int  # 0 = the user's first event
    timestamp: float
    weight: float
    interests: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "item_id": self.item_id,
            "title": self.title,
            "position": self.position,
            "timestamp": self.timestamp,
            "weight": round(self.weight, 6),
            "interests": self.interests,
        }


@dataclass
class Explanation:
    user_id: str | None
    item_id: str
    title: str | None
    score: float
    rank: int  # of the item in the user's full-catalogue ranking, 1 = top
    n_history: int
    items: list[HistoryContribution]  # the strongest contributions, largest weight first
    interests: list[InterestWeight]  # largest weight first
    weights: np.ndarray = field(repr=False)  # (T,) every event's weight, in history order

    def to_dict(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "item_id": self.item_id,
            "title": self.title,
            "score": round(self.score, 6),
            "rank": self.rank,
            "n_history": self.n_history,
            "method": METHOD,
            "items": [c.to_dict() for c in self.items],
            "interests": [{"interest": w.interest, "weight": round(w.weight, 6)} for w in self.interests],
        }


def occluded(history: History, removed: list[np.ndarray]) -> list[History]:
    """Copies of ``history`` each without the events at one set of positions."""
    return [History(np.delete(history.items, r), np.delete(history.times, r), history.user) for r in removed]


def occlusion_weights(model: Recommender, history: History, item: int) -> tuple[np.ndarray, np.ndarray]:
    """Each event's weight (T,) for ``item`` and the full history's scores (I,): the full history is
    scored over the catalogue (for the item's rank), each occluded one for ``item`` only, a few
    catalogue rows at a time, so memory stays bounded at any catalogue size."""
    singles = [np.array([t]) for t in range(len(history))]
    scores = model.score([history])[0]  # (I,)
    occluded_scores = model.score_items(occluded(history, singles), np.array([item]))[:, 0]  # (T,)
    return scores[item] - occluded_scores, scores


def explain(
    model: Recommender,
    taxonomy: Taxonomy,
    item_id: str,
    user_id: str | None = None,
    history: History | None = None,
    top: int = 10,
) -> Explanation:
    """Why ``model`` scores ``item_id`` as it does for a known user (or for an explicit history)."""
    item = model.item_map.get(item_id)
    if item < 0:
        raise InputError(f"unknown item '{item_id}': not in the run's item catalogue")
    if history is None:
        if user_id is None:
            raise InputError("explain needs a user_id or a history")
        history = model.history_of(user_id)
    if len(history) == 0:
        raise InputError(f"user '{user_id}' has no history to explain a recommendation from")
    weights, scores = occlusion_weights(model, history, item)
    order = np.argsort(-weights, kind="stable")[:top]
    titles = model.titles or [None] * model.n_items
    contributions = [
        HistoryContribution(
            item_id=model.item_map.ids[history.items[t]],
            title=titles[history.items[t]],
            position=int(t),
            timestamp=float(history.times[t]),
            weight=float(weights[t]),
            interests=taxonomy.interests_of(int(history.items[t])),
        )
        for t in order
    ]
    membership = taxonomy.rows(history.items)  # (T, K)
    by_interest = weights @ membership  # (K,)
    present = (membership > 0).any(axis=0)
    interests = [
        InterestWeight(taxonomy.names[j], float(by_interest[j]))
        for j in np.argsort(-by_interest, kind="stable")
        if present[j]
    ]
    return Explanation(
        user_id=user_id,
        item_id=item_id,
        title=titles[item],
        score=float(scores[item]),
        rank=int((scores > scores[item]).sum()) + 1,
        n_history=len(history),
        items=contributions,
        interests=interests,
        weights=weights,
    )


@dataclass(frozen=True)
class FaithfulnessCase:
    """One (history, item) check: the score drop from removing the top-weighted vs random events."""

    drop_top: float
    drop_random: float  # mean over the random draws

    @property
    def passed(self) -> bool:
        return self.drop_top > self.drop_random


def faithfulness(
    model: Recommender,
    history: History,
    item: int,
    n_remove: int = 3,
    n_random: int = 10,
    seed: int = 0,
    random_from_last: int | None = None,
    occlusion: tuple[np.ndarray, np.ndarray] | None = None,
) -> FaithfulnessCase:
    """Remove the ``n_remove`` top-weighted events, and ``n_random`` random sets of as many events.

    Random events come from the whole history, or with ``random_from_last`` from the most recent
    events only (a stricter check for models that mostly look at recent behaviour). The occlusion
    weights and every removal are scored by the model itself: one ``score`` call for the weights, one
    for the removals. ``occlusion`` is an earlier :func:`occlusion_weights` result for the same
    history and item, to check several settings without recomputing it.
    """
    pool = len(history) if random_from_last is None else min(random_from_last, len(history))
    if pool <= n_remove:
        raise ValueError(f"{pool} events to draw from cannot lose {n_remove} and still say anything")
    weights, scores = occlusion if occlusion is not None else occlusion_weights(model, history, item)
    rng = np.random.default_rng(seed)
    top = np.argsort(-weights, kind="stable")[:n_remove]
    offset = len(history) - pool
    draws = [offset + rng.choice(pool, size=n_remove, replace=False) for _ in range(n_random)]
    removed = model.score(occluded(history, [top, *draws]))[:, item]  # (1 + n_random,)
    drops = scores[item] - removed
    return FaithfulnessCase(drop_top=float(drops[0]), drop_random=float(drops[1:].mean()))
