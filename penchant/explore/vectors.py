"""Item vectors for similarity: one provider interface over learned, text or co-occurrence vectors.

Policies that need "how alike are these two items" (diversity) or "how close are these two interests"
(novel interests) take an :class:`ItemVectors`, never a model, so they work with any recommender.
:func:`item_vectors_for` picks the best source available: text vectors when the caller has them,
else the model's own item embeddings when it exposes them, else co-occurrence vectors learned from
the training events (an EASE-like item-item view reduced to a few dimensions).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.sparse.linalg import svds as sparse_svds

from penchant.data.dataset import History
from penchant.models.base import Recommender


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    """Each row of ``matrix`` scaled to length 1 (zero rows stay zero)."""
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 0)


@dataclass
class ItemVectors:
    """Unit-length item vectors ``(n_items, d)``; items with no information get the zero vector."""

    vectors: np.ndarray  # (I, d) float32, rows of norm 1 or 0
    source: str

    @classmethod
    def from_array(cls, matrix: np.ndarray, source: str = "given") -> ItemVectors:
        matrix = np.asarray(matrix, dtype=np.float32)
        if matrix.ndim != 2:
            raise ValueError(f"item vectors must be a (n_items, d) array, got shape {matrix.shape}")
        return cls(unit_rows(matrix), source)

    @property
    def n_items(self) -> int:
        return self.vectors.shape[0]

    def similarity(self, items: np.ndarray) -> np.ndarray:
        """Cosine similarity ``(n, n)`` among the given item indices."""
        v = self.vectors[items]
        return v @ v.T

    def centroids(self, membership: np.ndarray) -> np.ndarray:
        """Unit-length centroid ``(K, d)`` of each interest, items weighted by membership ``(I, K)``."""
        return ItemVectors.from_array(membership.T @ self.vectors).vectors

    def appended(self, matrix: np.ndarray) -> ItemVectors:
        """These vectors and the rows of ``matrix`` (made unit length) after them, as new vectors
        that share this one's rows: the new rows are written into spare room after them when there
        is some (this one is unchanged), else into a copy with room for an eighth more. So adding
        an item to a million copies nothing, most of the time. Only append to the newest vectors of
        a storage: rows past an older one's end may belong to a newer one."""
        rows = ItemVectors.from_array(matrix).vectors
        n, store = self.n_items, self.vectors.base
        roomy = (
            isinstance(store, np.ndarray)
            and store.ndim == 2
            and len(store) >= n + len(rows)
            and store.__array_interface__["data"][0] == self.vectors.__array_interface__["data"][0]
            and self.vectors.flags.c_contiguous
        )
        if not roomy:
            store = np.empty((n + max(len(rows), n // 8, 16), self.vectors.shape[1]), dtype=np.float32)
            store[:n] = self.vectors
        store[n : n + len(rows)] = rows
        return ItemVectors(store[: n + len(rows)], self.source)


def model_item_embeddings(model: Recommender, start: int = 0) -> np.ndarray | None:
    """The model's learned item embeddings ``(n_items - start, d)`` of the items from ``start`` on,
    or None when it exposes none.

    A model may offer ``item_embeddings()``; the interest transformer's input embedding table (which is
    also its output layer) is read directly. Linear and count models have no embeddings.
    """
    method = getattr(model, "item_embeddings", None)
    if callable(method):
        return np.asarray(method(start) if start else method(), dtype=np.float32)
    net = getattr(model, "net", None)
    table = getattr(net, "item_emb", None)
    if table is not None:
        # Row 0 is the padding token; catalogue item i is row i + 1.
        return table.weight.detach().cpu().numpy()[1 + start :].astype(np.float32)
    return None


DENSE_SVD_CELLS = 20_000_000  # up to this many users x items cells, an exact dense SVD


def cooccurrence_vectors(histories: Iterable[History], n_items: int, dim: int = 64) -> ItemVectors:
    """Item vectors from who-interacted-with-what: a truncated SVD of the user-item matrix.

    Items that share many users get close vectors, like the rows of an EASE or item-kNN model, at a
    fixed small dimension. Columns are weighted by 1/sqrt(popularity) so that blockbusters do not all
    collapse onto one direction.
    """
    rows, cols = [], []
    for u, history in enumerate(histories):
        items = np.unique(history.items)
        rows.append(np.full(len(items), u))
        cols.append(items)
    if not rows:
        return ItemVectors(np.zeros((n_items, 1), dtype=np.float32), "co-occurrence")
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    n_users = int(rows.max()) + 1
    counts = np.bincount(cols, minlength=n_items).astype(np.float64)
    weights = (1.0 / np.sqrt(np.maximum(counts, 1.0)))[cols]
    x = sparse.csr_matrix((weights, (rows, cols)), shape=(n_users, n_items))
    smallest = min(x.shape)
    dim = max(1, min(dim, smallest - 1 if smallest > 1 else 1))
    if n_users * n_items <= DENSE_SVD_CELLS or dim >= smallest - 1:
        # Item side of the SVD, scaled by the singular values (deterministic, exact at this size).
        _, s, vt = np.linalg.svd(x.toarray(), full_matrices=False)
    else:
        # Large: a truncated SVD of the sparse matrix (memory grows with the events, not users x
        # items), from a seeded start so that it is reproducible.
        start = np.random.default_rng(0).random(smallest)
        _, s, vt = sparse_svds(x, k=dim, v0=start)
        order = np.argsort(s)[::-1]
        s, vt = s[order], vt[order]
    vectors = (vt[:dim].T * s[:dim][None, :]).astype(np.float32)
    return ItemVectors.from_array(vectors, "co-occurrence")


def item_vectors_for(
    model: Recommender,
    train_histories: Iterable[History] | None = None,
    text_vectors: np.ndarray | None = None,
) -> ItemVectors:
    """The best item vectors available: text, else the model's embeddings, else co-occurrence."""
    if text_vectors is not None:
        return ItemVectors.from_array(text_vectors, "text")
    learned = model_item_embeddings(model)
    if learned is not None:
        return ItemVectors.from_array(learned, f"{model.name} embeddings")
    if train_histories is None:
        train_histories = model.histories.values()
    return cooccurrence_vectors(train_histories, model.n_items)
