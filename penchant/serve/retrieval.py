"""Retrieval: the top-k items for one history, exactly or through an ANN index.

Exact retrieval scores the whole catalogue with the model, which is fast for the catalogues of tens
of thousands of items most models here are trained on. Past a size threshold, a model that can put
users and items in one vector space (the interest transformer: ``user_vectors`` and ``item_vectors``)
is served through an HNSW index over its item vectors (FAISS, inner product); the candidates it
returns are then scored exactly, so the final order is the model's own among them.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from penchant.data.dataset import History
from penchant.models import Recommender
from penchant.models.topk import PAD, topk_indices

HNSW_M = 32  # links per node: recall vs memory
HNSW_EF_CONSTRUCTION = 200  # build-time search breadth: recall vs build time


class Retriever(Protocol):
    kind: str

    def user_state(self, history: History) -> np.ndarray:
        """What :meth:`top_k` computes from the history with the model: worth caching per user."""

    def top_k(
        self, history: History, k: int, exclude_seen: bool, state: np.ndarray | None = None
    ) -> list[tuple[int, float]]:
        """(item index, score) pairs, best first, at most ``k``; ``state`` is the history's
        :meth:`user_state` when the caller already has it."""


class ExactRetriever:
    """Full-catalogue scoring with the model; an empty history gets the most popular items."""

    kind = "exact"

    def __init__(self, model: Recommender):
        self.model = model
        self._popular = np.log1p(model.popularity).astype(np.float64)[None, :]  # (1, I)

    def user_state(self, history: History) -> np.ndarray:
        """The history's scores over the whole catalogue, (1, I), as the model gives them (float32
        for most: half the memory of the float64 they are ranked in)."""
        if len(history) == 0:
            return self._popular
        return self.model.score([history])  # (1, I)

    def top_k(
        self, history: History, k: int, exclude_seen: bool, state: np.ndarray | None = None
    ) -> list[tuple[int, float]]:
        scores = (self.user_state(history) if state is None else state).astype(np.float64)  # a copy
        if exclude_seen and len(history) > 0:
            scores[0, history.items] = -np.inf
        top = topk_indices(scores, min(k, scores.shape[1]))[0]
        return [(int(i), float(scores[0, i])) for i in top if i != PAD]


class AnnRetriever:
    """HNSW candidates over the model's item vectors, re-scored exactly (repeat bias and transition
    boost included)."""

    kind = "ann"

    def __init__(
        self,
        model: Recommender,
        ef_search: int = 128,
        m: int = HNSW_M,
        ef_construction: int = HNSW_EF_CONSTRUCTION,
    ):
        import faiss

        if not supports_vectors(model):
            raise TypeError(f"{model.name} has no user and item vectors; serve it with exact retrieval")
        self.model = model
        self.ef_search = ef_search
        self._faiss = faiss
        self.vectors = np.ascontiguousarray(model.item_vectors(), dtype=np.float32)  # (I, D)
        self.index = faiss.IndexHNSWFlat(self.vectors.shape[1], m, faiss.METRIC_INNER_PRODUCT)
        self.index.hnsw.efConstruction = ef_construction
        self.index.add(self.vectors)
        self.repeat = model.repeat_bias()
        self._exact = ExactRetriever(model)

    def extended(self, model: Recommender) -> AnnRetriever:
        """This retriever for ``model``, whose catalogue grew by items appended after the known ones
        (their vectors unchanged): a copy of the index with only the new items inserted, not a
        rebuild. The copy leaves this index untouched for the requests still using it."""
        grown = object.__new__(AnnRetriever)
        grown.model, grown.ef_search, grown._faiss = model, self.ef_search, self._faiss
        grown.vectors = np.ascontiguousarray(model.item_vectors(), dtype=np.float32)
        grown.index = self._faiss.clone_index(self.index)
        grown.index.add(grown.vectors[len(self.vectors) :])
        grown.repeat = model.repeat_bias()
        grown._exact = ExactRetriever(model)
        return grown

    def user_state(self, history: History) -> np.ndarray:
        """The history's query vector, (1, D) float32; the popularity scores for an empty history."""
        if len(history) == 0:
            return self._exact.user_state(history)
        return np.ascontiguousarray(self.model.user_vectors([history]), dtype=np.float32)  # (1, D)

    def top_k(
        self, history: History, k: int, exclude_seen: bool, state: np.ndarray | None = None
    ) -> list[tuple[int, float]]:
        if len(history) == 0:
            return self._exact.top_k(history, k, exclude_seen, state)
        n = len(self.vectors)
        query = self.user_state(history) if state is None else state  # (1, D)
        seen = np.unique(history.items)
        wanted = min(n, 2 * k + (len(seen) if exclude_seen else 0))
        params = self._faiss.SearchParametersHNSW(efSearch=max(self.ef_search, wanted))
        _, ids = self.index.search(query, wanted, params=params)
        candidates = ids[0][ids[0] >= 0]
        window = np.unique(history.items[-self.model.window :])
        if exclude_seen:
            candidates = np.setdiff1d(candidates, seen)
        elif self.repeat > 0:
            # Items the user already has may be lifted above the index's neighbours by the repeat bias.
            candidates = np.union1d(candidates, window)
        # Items the history's last items were often followed by get the model's transition boost
        # (penchant.models.transitions), which may lift them above the index's neighbours too.
        listed, boost, base = (
            self.model.transition_boost(history)
            if hasattr(self.model, "transition_boost")
            else (np.zeros(0, dtype=np.int64), np.zeros(0), 0.0)
        )
        candidates = np.union1d(candidates, np.setdiff1d(listed, seen) if exclude_seen else listed)
        scores = (self.vectors[candidates] @ query[0]).astype(np.float64)
        scores[np.isin(candidates, window)] += self.repeat
        counts = getattr(self.model, "transitions", None)
        unseen = ~counts.seen[candidates] if base and counts is not None else np.zeros(len(candidates), bool)
        if unseen.any():
            # As in exact scoring, with the normaliser over the candidates: an approximation.
            deferred = counts.unseen_boost(scores[None, :], self.model.transition_weight, candidates)[0]
        scores += base
        if unseen.any():
            scores[unseen] += deferred - base
        if len(listed):
            at = np.searchsorted(candidates, listed)
            inside = at < len(candidates)
            inside[inside] &= candidates[at[inside]] == listed[inside]
            scores[at[inside]] += boost[inside] - base
        top = topk_indices(scores[None, :], min(k, len(candidates)))[0] if len(candidates) else []
        return [(int(candidates[j]), float(scores[j])) for j in top if j != PAD]


def supports_vectors(model: Recommender) -> bool:
    return all(hasattr(model, name) for name in ("user_vectors", "item_vectors", "repeat_bias"))


def build_retriever(
    model: Recommender, ann_threshold: int, ef_search: int = 128, previous: Retriever | None = None
) -> Retriever:
    """Exact below ``ann_threshold`` items (or for models without vectors), HNSW from there on; with
    the ``previous`` retriever of the same model before items were appended, its index is extended."""
    if model.n_items >= ann_threshold and supports_vectors(model):
        if isinstance(previous, AnnRetriever):
            return previous.extended(model)
        return AnnRetriever(model, ef_search=ef_search)
    return ExactRetriever(model)
