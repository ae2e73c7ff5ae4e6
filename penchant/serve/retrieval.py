"""Retrieval: the top-k items for one history, exactly or through an ANN index.

Exact retrieval scores the whole catalogue with the model, which is fast for the catalogues of tens
of thousands of items most models here are trained on. Past a size threshold, a model that can put
users and items in one vector space (the interest transformer: ``user_vectors`` and ``item_vectors``)
is served through an HNSW index over its item vectors (FAISS); the candidates it returns are then
scored exactly, so the final order is the model's own among them.

The model ranks by inner product, and an HNSW graph built on inner products navigates badly when
the queries point away from the item vectors' common direction, as the ml-100k transformer's do
(cosine -0.4 with the mean item vector): its served path found 47% of the exact top 10
(benchmarks/serve_retrieval.py). :class:`MipsIndex` uses the reduction of maximum inner product
search to nearest neighbours instead (Bachrach et al., RecSys 2014).
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Protocol

import numpy as np

from penchant.data.dataset import History
from penchant.models import Recommender
from penchant.models.topk import PAD, topk_indices

log = logging.getLogger("penchant.serve")

HNSW_M = 32  # links per node: recall vs memory
HNSW_EF_CONSTRUCTION = 200  # build-time search breadth: recall vs build time
# Items added to a served catalogue are scored exactly beside the index's candidates; once this many
# have come, a background thread inserts them into a copy of the index (about 5 s at 10^6 items).
FOLD = 2048


class MipsIndex:
    """Top inner products through an L2 HNSW index: each item vector gets one more coordinate,
    ``sqrt(R² - |v|²)``, and each query a 0, so that ``|q - v|² = |q|² + R² - 2 q·v`` orders the items
    exactly as the inner product does. ``R`` is the largest norm at build time with ``headroom``
    for items added later; one added past it gets 0 there (its distance then slightly favours it)."""

    def __init__(
        self,
        vectors: np.ndarray,
        m: int = HNSW_M,
        ef_construction: int = HNSW_EF_CONSTRUCTION,
        headroom: float = 1.25,
    ):
        import faiss

        self._faiss = faiss
        vectors = np.asarray(vectors, dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1) if len(vectors) else np.zeros(1)
        self.radius = float(max(norms.max(), 1e-6) * headroom)
        self.index = faiss.IndexHNSWFlat(vectors.shape[1] + 1, m, faiss.METRIC_L2)
        self.index.hnsw.efConstruction = ef_construction
        self.add(vectors)

    def add(self, vectors: np.ndarray) -> None:
        vectors = np.asarray(vectors, dtype=np.float32)
        extra = np.sqrt(np.maximum(self.radius**2 - (vectors.astype(np.float64) ** 2).sum(axis=1), 0.0))
        self.index.add(np.ascontiguousarray(np.hstack([vectors, extra[:, None].astype(np.float32)])))

    @property
    def ntotal(self) -> int:
        return self.index.ntotal

    def copy(self) -> MipsIndex:
        """A copy to add to while requests keep searching this one."""
        other = object.__new__(MipsIndex)
        other._faiss, other.radius = self._faiss, self.radius
        other.index = self._faiss.clone_index(self.index)
        return other

    def save(self, path: Path) -> None:
        """Write the index to ``path`` (and its radius beside it), atomically: a reader finds the
        whole file or none."""
        partial = path.with_name(path.name + ".partial")
        self._faiss.write_index(self.index, str(partial))
        path.with_suffix(".json").write_text(json.dumps({"radius": self.radius}))
        os.replace(partial, path)

    @classmethod
    def load(cls, path: Path) -> MipsIndex:
        import faiss

        index = object.__new__(cls)
        index._faiss = faiss
        index.radius = float(json.loads(path.with_suffix(".json").read_text())["radius"])
        index.index = faiss.read_index(str(path))
        return index

    def search(self, queries: np.ndarray, n: int, ef_search: int) -> np.ndarray:
        """Item indices (Q, n) of the largest inner products with ``queries`` (Q, D), -1 past the end."""
        queries = np.asarray(queries, dtype=np.float32)
        padded = np.ascontiguousarray(np.hstack([queries, np.zeros((len(queries), 1), dtype=np.float32)]))
        params = self._faiss.SearchParametersHNSW(efSearch=max(ef_search, n))
        return self.index.search(padded, n, params=params)[1]


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
    boost included). Items added to the catalogue since the index was built (:meth:`extended`) are
    scored exactly beside the index's candidates until they go into a copy of it (:meth:`folded`)."""

    kind = "ann"

    def __init__(
        self,
        model: Recommender,
        ef_search: int = 128,
        m: int = HNSW_M,
        ef_construction: int = HNSW_EF_CONSTRUCTION,
        cache: Path | None = None,
    ):
        """``cache``: a folder where the index built for these item vectors is kept, so that the
        next start (or another replica) loads it instead of building it again."""
        if not supports_vectors(model):
            raise TypeError(f"{model.name} has no user and item vectors; serve it with exact retrieval")
        self.model = model
        self.ef_search = ef_search
        self.vectors = np.ascontiguousarray(model.item_vectors(), dtype=np.float32)  # (I, D), indexed
        self.recent = self.vectors[:0]  # (R, D): items added since, after the indexed ones
        path = cache / index_file(self.vectors, m, ef_construction) if cache is not None else None
        if path is not None and path.exists():
            self.index = MipsIndex.load(path)
        else:
            self.index = MipsIndex(self.vectors, m, ef_construction)
            if path is not None:
                _keep(self.index, path)
        self.repeat = model.repeat_bias()
        self._exact = ExactRetriever(model)

    @property
    def n_items(self) -> int:
        return len(self.vectors) + len(self.recent)

    def extended(self, model: Recommender) -> AnnRetriever:
        """This retriever for ``model``, whose catalogue grew by items appended after the known ones
        (their vectors unchanged). The index is shared, not copied: only the new items' vectors are
        computed, and they are scored exactly with every query, beside the index's candidates, until
        they are inserted into a copy of the index (:meth:`folded`, which a service runs in the
        background once :data:`FOLD` have come). So adding an item costs the same at a thousand
        items as at a million."""
        grown = copy.copy(self)
        grown.model, grown.repeat, grown._exact = model, model.repeat_bias(), ExactRetriever(model)
        new = np.asarray(model.item_vectors(start=self.n_items), dtype=np.float32)
        grown.recent = np.concatenate([self.recent, new])
        return grown

    def folded(self) -> AnnRetriever:
        """This retriever with its recent items inserted into a copy of the index (a copy: requests
        still search this one). Seconds at a million items."""
        grown = copy.copy(self)
        grown.index = self.index.copy()
        grown.index.add(self.recent)
        grown.vectors = np.concatenate([self.vectors, self.recent])
        grown.recent = grown.vectors[:0]
        return grown

    def rebased(self, folded: AnnRetriever) -> AnnRetriever:
        """This retriever on the index of ``folded``, made from an earlier state of this one (same
        index, fewer recent items): the items added since the fold began stay recent."""
        out = copy.copy(self)
        out.index, out.vectors = folded.index, folded.vectors
        out.recent = self.recent[len(folded.vectors) - len(self.vectors) :]
        return out

    def user_state(self, history: History) -> np.ndarray:
        """The history's query vector, (1, D) float32; the popularity scores for an empty history."""
        if len(history) == 0:
            return self._exact.user_state(history)
        return np.ascontiguousarray(self.model.user_vectors([history]), dtype=np.float32)  # (1, D)

    def _rows(self, items: np.ndarray) -> np.ndarray:
        """The vectors of ``items`` (indexed or recent), (N, D)."""
        if not len(self.recent):
            return self.vectors[items]
        indexed = items < len(self.vectors)
        out = np.empty((len(items), self.vectors.shape[1]), dtype=np.float32)
        out[indexed] = self.vectors[items[indexed]]
        out[~indexed] = self.recent[items[~indexed] - len(self.vectors)]
        return out

    def top_k(
        self, history: History, k: int, exclude_seen: bool, state: np.ndarray | None = None
    ) -> list[tuple[int, float]]:
        if len(history) == 0:
            return self._exact.top_k(history, k, exclude_seen, state)
        query = self.user_state(history) if state is None else state  # (1, D)
        seen = np.unique(history.items)
        wanted = min(len(self.vectors), 2 * k + (len(seen) if exclude_seen else 0))
        ids = self.index.search(query, wanted, self.ef_search)
        candidates = ids[0][ids[0] >= 0]
        if len(self.recent):  # not in the index yet: every one is a candidate
            candidates = np.union1d(candidates, np.arange(len(self.vectors), self.n_items))
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
        scores = (self._rows(candidates) @ query[0]).astype(np.float64)
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


def wants_ann(model: Recommender, ann_threshold: int) -> bool:
    return model.n_items >= ann_threshold and supports_vectors(model)


def index_file(vectors: np.ndarray, m: int = HNSW_M, ef_construction: int = HNSW_EF_CONSTRUCTION) -> str:
    """The name an index over exactly these vectors, built with these settings, is kept under."""
    digest = hashlib.sha256(np.ascontiguousarray(vectors, dtype=np.float32).tobytes())
    digest.update(f"{vectors.shape} {m} {ef_construction}".encode())
    return f"hnsw-{digest.hexdigest()[:24]}.faiss"


def has_kept_index(model: Recommender, cache: Path) -> bool:
    """Whether ``cache`` holds the index for this model's item vectors (loading it takes seconds
    where building takes minutes at a million items)."""
    return (cache / index_file(np.asarray(model.item_vectors(), dtype=np.float32))).exists()


def _keep(index: MipsIndex, path: Path) -> None:
    """Save a built index, replacing the ones kept for earlier vectors; a folder that cannot be
    written (a read-only run) only costs the next start the build."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        index.save(path)
        for old in path.parent.glob("hnsw-*.faiss"):
            if old != path:
                old.unlink(missing_ok=True)
                old.with_suffix(".json").unlink(missing_ok=True)
    except OSError as e:
        log.warning(
            "the ANN index could not be kept in %s (%s); the next start builds it again", path.parent, e
        )


def build_retriever(
    model: Recommender,
    ann_threshold: int,
    ef_search: int = 128,
    previous: Retriever | None = None,
    cache: Path | None = None,
) -> Retriever:
    """Exact below ``ann_threshold`` items (or for models without vectors), HNSW from there on; with
    the ``previous`` retriever of the same model before items were appended, its index is extended.
    ``cache``: where the index is kept between starts (see :class:`AnnRetriever`)."""
    if wants_ann(model, ann_threshold):
        if isinstance(previous, AnnRetriever):
            return previous.extended(model)
        return AnnRetriever(model, ef_search=ef_search, cache=cache)
    return ExactRetriever(model)
