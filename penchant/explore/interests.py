"""Interest-level models the exploration policies share: a user's interest distribution, which
interests tend to come next across all users (an interest-transition model), and how close interests
are in meaning (cosine of interest centroids).

The novel-interest policy follows the recipe published for language-model-driven interest exploration
(Wang et al., "LLMs for User Interest Exploration in Large-scale Recommendation Systems", RecSys 2024):
learn from real users which *new* interest follows a set of current ones, and pick items inside the
predicted new interests with the ordinary recommender. Here the transition model is learned directly
on penchant's own taxonomy instead of prompting a language model, and semantic closeness of interest
centroids smooths it for interests that rarely occur.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from penchant.data.dataset import History
from penchant.interests.taxonomy import dense_rows


def interest_distribution(membership: np.ndarray, items: np.ndarray) -> np.ndarray:
    """Share of each interest ``(K,)`` in a bag of items (zeros for an empty or interest-less bag)."""
    # A dense array or a scipy sparse matrix (whose sum is a (1, K) matrix).
    weights = np.asarray(membership[np.asarray(items, dtype=np.int64)].sum(axis=0, dtype=np.float64)).ravel()
    total = weights.sum()
    return weights / total if total > 0 else weights


@dataclass
class InterestTransitions:
    """``P(new interest b | current interest a)``, learned from when users first engage with an interest.

    For every event that brings a user an interest they had not touched before, the user's interest
    distribution over their last ``window`` items is credited as the "from" side and the new
    interests of that event as the "to" side. Rows are smoothed with ``alpha`` pseudo-counts.
    """

    matrix: np.ndarray  # (K, K) rows sum to 1
    counts: np.ndarray  # (K, K) raw credited transitions

    @classmethod
    def fit(
        cls, histories: Iterable[History], membership: np.ndarray, window: int = 20, alpha: float = 0.1
    ) -> InterestTransitions:
        k = membership.shape[1]
        counts = np.zeros((k, k), dtype=np.float64)
        for history in histories:
            if len(history) < 2:
                continue
            m = dense_rows(membership, history.items)  # (T, K)
            cum = np.cumsum(m, axis=0)  # (T, K) interest mass up to and including t
            before = np.vstack([np.zeros((1, k)), cum[:-1]])  # (T, K) mass strictly before t
            lag = np.vstack([np.zeros((window, k)), cum])[: len(m)]  # mass before t - window + 1 ... t
            recent = before - np.vstack([np.zeros((1, k)), lag[:-1]])  # (T, K) last `window` items before t
            new = m * (before <= 0)  # (T, K) interests of item t the user never had before
            new[0] = 0.0  # the first event has no "current" interests to come from
            totals = recent.sum(axis=1, keepdims=True)
            source = np.divide(recent, totals, out=np.zeros_like(recent), where=totals > 0)
            counts += source.T @ new
        smoothed = counts + alpha
        np.fill_diagonal(smoothed, 0.0)  # an interest never "newly" follows itself
        matrix = smoothed / smoothed.sum(axis=1, keepdims=True)
        return cls(matrix=matrix, counts=counts)

    def next_interests(self, profile: np.ndarray) -> np.ndarray:
        """Distribution ``(K,)`` over interests likely to come next after a profile ``(K,)``."""
        out = profile @ self.matrix
        total = out.sum()
        return out / total if total > 0 else out


def interest_closeness(centroids: np.ndarray, temperature: float = 0.1) -> np.ndarray:
    """Row-stochastic closeness ``(K, K)``: a softmax over the cosine of interest centroids.

    Row ``a`` says how much each other interest is a "semantic neighbour" of ``a``; a low temperature
    keeps the mass on the nearest few, so closeness does not spread over the whole taxonomy.
    """
    cosine = centroids @ centroids.T
    logits = (cosine - cosine.max(axis=1, keepdims=True)) / temperature
    np.fill_diagonal(logits, -np.inf)
    weights = np.exp(logits)
    totals = weights.sum(axis=1, keepdims=True)
    return np.divide(weights, totals, out=np.zeros_like(weights), where=totals > 0)


def novel_interest_scores(
    profile: np.ndarray,
    transitions: InterestTransitions,
    closeness: np.ndarray,
    semantic_weight: float = 0.5,
    engaged_above: float = 0.0,
    model_mass: np.ndarray | None = None,
    model_weight: float = 0.0,
    transition_weight: float | None = None,
) -> np.ndarray:
    """Score ``(K,)`` of each interest the user has not engaged with (share <= ``engaged_above``), else 0.

    The score mixes three signals, each a distribution over *all* interests, so a score is comparable
    across users (a user whose likely next interests are ones they already have gets low scores
    everywhere, not a forced pick):

    * the transition model's next-interest probability (``transition_weight``; default
      ``1 - semantic_weight``);
    * the profile-weighted closeness of the interest to the user's current ones (``semantic_weight``);
    * ``model_mass``, the share of the recommender's own probability on each interest
      (``model_weight``).

    The weights are normalised to sum to one.
    """
    novel = profile <= engaged_above
    if not novel.any() or profile.sum() <= 0:
        return np.zeros_like(profile, dtype=np.float64)
    if transition_weight is None:
        transition_weight = 1.0 - semantic_weight
    if model_mass is None:
        model_weight = 0.0
    total = transition_weight + semantic_weight + model_weight
    if total <= 0:
        return np.zeros_like(profile, dtype=np.float64)
    mixed = transition_weight * transitions.next_interests(profile) + semantic_weight * (profile @ closeness)
    if model_weight:
        mixed = mixed + model_weight * model_mass
    return np.where(novel, mixed / total, 0.0)


def interest_descriptions(
    names: list[str], keywords: list[list[str]] | None, examples: list[list[str]]
) -> list[str]:
    """A sentence per interest for a text encoder: its name, its keywords (topics) and a few of its
    best-known item titles."""
    out = []
    for j, name in enumerate(names):
        parts = [name]
        if keywords and keywords[j]:
            parts.append(", ".join(keywords[j][:8]))
        if examples[j]:
            parts.append("for example " + "; ".join(examples[j][:5]))
        out.append(". ".join(parts))
    return out
