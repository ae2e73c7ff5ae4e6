"""Next-interest prediction: which interests will the user's next item have?

The model's next-item scores become a distribution over the catalogue (softmax); the probability
that the next item carries interest j is then the total probability of the items tagged j,
``P(j) = sum_i p_i [j in interests(i)]``. Ranking interests by it is what maximises the expected
number of correct interests in a top-k list. The baseline ranks interests by how many items of the
history carry them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from penchant.data.dataset import History
from penchant.interests.taxonomy import Taxonomy
from penchant.models.base import Recommender


def interest_probabilities(scores: np.ndarray, taxonomy: Taxonomy, temperature: float = 1.0) -> np.ndarray:
    """(B, K) probability that the next item carries each interest, from next-item scores (B, I)."""
    logits = scores.astype(np.float64) / temperature
    top = logits.max(axis=1, keepdims=True)
    empty = ~np.isfinite(top[:, 0])
    logits[empty] = 0.0  # a row with every item excluded: uniform over the catalogue
    logits -= np.where(empty[:, None], 0.0, top)
    p = np.exp(logits)
    p /= p.sum(axis=1, keepdims=True)  # (B, I)
    return np.asarray(p @ taxonomy.tags())  # (B, K): dense times sparse, no (I, K) copy


def predict_interests(
    model: Recommender,
    histories: Sequence[History],
    taxonomy: Taxonomy,
    temperature: float = 1.0,
    exclude_seen: bool = False,
    batch_size: int = 256,
) -> np.ndarray:
    """(B, K) next-interest probabilities for a batch of histories, one scoring pass per batch.

    With ``exclude_seen`` the items already in a history get no probability (for catalogues where
    people never come back to an item).
    """
    out = np.empty((len(histories), taxonomy.n_interests))
    for start in range(0, len(histories), batch_size):
        chunk = list(histories[start : start + batch_size])
        scores = model.score(chunk).astype(np.float64, copy=True)
        if exclude_seen:
            for row, history in enumerate(chunk):
                scores[row, history.items] = -np.inf
        out[start : start + len(chunk)] = interest_probabilities(scores, taxonomy, temperature)
    return out


def history_frequency(histories: Sequence[History], taxonomy: Taxonomy) -> np.ndarray:
    """(B, K) baseline scores: how many items of each history carry each interest.

    Ties (and empty histories) are broken by how common the interest is in the catalogue, so the
    baseline is never worse than it has to be.
    """
    tags = taxonomy.tags()
    prior = np.asarray(tags.sum(axis=0)).ravel() / max(tags.sum(), 1.0)  # (K,) in [0, 1)
    counts = (
        np.stack([np.asarray(tags[h.items].sum(axis=0)).ravel() for h in histories])
        if len(histories)
        else np.zeros((0, len(prior)))
    )
    return counts + prior[None, :]


def top_interests(scores: np.ndarray, k: int) -> np.ndarray:
    """(B, k) indices of the k best interests per row, best first (stable on ties)."""
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]
