"""The interest taxonomy: which interests exist and how strongly each item belongs to each.

Interests come from item categories when the catalogue has them (ml-100k genres). An item with
several categories belongs to each with weight 1/len(categories), so every item's memberships sum
to one and per-user interest weights are comparable across items.

A catalogue without categories gets topics instead: items are clustered by the meaning of their text
(k-means over sentence embeddings) and each topic is named by its most distinctive keywords; an item
belongs to its one topic with weight 1.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse

from penchant.data.dataset import Catalogue, Dataset
from penchant.errors import InputError
from penchant.interests.topics import ctfidf_keywords, default_n_topics, kmeans, topic_names


@dataclass
class Taxonomy:
    """``names[j]`` is interest j; ``membership`` (n_items, n_interests) has rows summing to 1 (or 0).

    The membership is a scipy CSR matrix (float32), built once per run and shared by the profiles,
    the explanations, the metrics and the policies: memory grows with the memberships (one to a few
    per item), not with items x interests (18 GB dense at a million items and 500 categories). A
    dense array given to the constructor is converted. Readers take dense blocks of the few rows
    they need with :meth:`rows`."""

    names: list[str]
    membership: sparse.csr_matrix  # (I, K) float32
    source: str = "categories"
    keywords: list[list[str]] | None = None  # topics only: the distinctive terms of each topic

    def __post_init__(self) -> None:
        m = self.membership
        m = m.tocsr() if sparse.issparse(m) else sparse.csr_matrix(np.asarray(m, dtype=np.float32))
        m = m.astype(np.float32)
        m.eliminate_zeros()
        m.sort_indices()
        self.membership = m

    @property
    def n_interests(self) -> int:
        return len(self.names)

    @property
    def n_items(self) -> int:
        return self.membership.shape[0]

    @functools.cached_property
    def sparse(self) -> sparse.csr_matrix:
        """The membership as float64 CSR, built once per taxonomy: what the exploration policies share."""
        return self.membership.astype(np.float64)

    def rows(self, items) -> np.ndarray:
        """Dense memberships (*items.shape, K), float64, of the items at ``items`` (any shape of
        internal indices): for the few rows of a history or a top-k list."""
        return dense_rows(self.membership, items)

    def primary(self) -> np.ndarray:
        """Each item's strongest interest (-1 for items with none): (I,) int."""
        out = np.asarray(self.membership.argmax(axis=1)).ravel().astype(np.int64)
        out[np.diff(self.membership.indptr) == 0] = -1
        return out

    def of_items(self, items: np.ndarray) -> np.ndarray:
        """Summed interest weights (K,) of a bag of item indices."""
        return np.asarray(
            self.membership[np.asarray(items, dtype=np.int64)].sum(axis=0, dtype=np.float64)
        ).ravel()

    def tags(self) -> sparse.csr_matrix:
        """(I, K) CSR of 1.0 where item i has interest j at all, whatever its share."""
        out = self.membership.astype(np.float64)
        out.data[:] = 1.0
        return out

    def items_of(self, interest: int) -> np.ndarray:
        """The items (ascending) with any share of ``interest``."""
        return np.flatnonzero(self.membership[:, interest].toarray().ravel() > 0)

    def interests_of(self, item: int) -> list[str]:
        """Names of one item's interests (internal index), strongest first."""
        row = self.rows([item])[0]
        return [self.names[j] for j in np.argsort(-row, kind="stable") if row[j] > 0]

    def with_items(self, rows) -> Taxonomy:
        """This taxonomy with the memberships ``rows`` (n, K) of appended items."""
        extra = rows if sparse.issparse(rows) else sparse.csr_matrix(np.asarray(rows, dtype=np.float32))
        grown = sparse.vstack([self.membership, extra.astype(np.float32)], format="csr")
        return Taxonomy(self.names, grown, self.source, self.keywords)

    @classmethod
    def for_dataset(
        cls, dataset: Dataset | Catalogue, n_topics: int | None = None, encoder: str = "minilm"
    ) -> Taxonomy:
        """Categories when the catalogue has them, otherwise topics found in the item text."""
        if "categories" in dataset.items and any(_categories(c) for c in dataset.items["categories"]):
            return cls.from_categories(dataset)
        return cls.from_text(dataset, n_topics=n_topics, encoder=encoder)

    @classmethod
    def from_text(
        cls, dataset: Dataset | Catalogue, n_topics: int | None = None, encoder: str = "minilm", seed: int = 0
    ) -> Taxonomy:
        """Topics from the catalogue's text, embedded by a ``penchant.text`` encoder."""
        from penchant.text import item_texts, load_encoder  # text sits below interests; loaded on demand

        texts = item_texts(dataset.items)
        if not any(t.strip() for t in texts):
            raise InputError(
                f"{dataset.name}: the item catalogue has neither categories nor text to find interests in"
            )
        embeddings = load_encoder(name_or_path=encoder).encode(texts, progress=False)
        return cls.from_embeddings(embeddings, _label_texts(dataset.items, texts), n_topics, seed)

    @classmethod
    def from_embeddings(
        cls, embeddings: np.ndarray, texts: Sequence[str], n_topics: int | None = None, seed: int = 0
    ) -> Taxonomy:
        """Topics by k-means over item embeddings (I, D), named by c-TF-IDF keywords of ``texts``."""
        n_items = len(embeddings)
        if len(texts) != n_items:
            raise ValueError(f"{len(texts)} texts for {n_items} embeddings")
        k = n_topics or default_n_topics(n_items)
        if not 1 <= k <= n_items:
            raise InputError(f"n_topics must be between 1 and the {n_items} items, got {k}")
        labels, centroids = kmeans(embeddings, k, seed=seed)
        centres = centroids / np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)
        # How typical each item is of its topic (cosine to the topic's centre) weights its words.
        typical = (np.asarray(embeddings, dtype=np.float64) * centres[labels]).sum(axis=1)
        keywords = ctfidf_keywords(texts, labels, k, doc_weights=typical)
        membership = sparse.csr_matrix(
            (np.ones(n_items, dtype=np.float32), (np.arange(n_items), labels)), shape=(n_items, k)
        )
        return cls(names=topic_names(keywords), membership=membership, source="topics", keywords=keywords)

    @classmethod
    def from_categories(cls, dataset: Dataset | Catalogue) -> Taxonomy:
        if "categories" not in dataset.items:
            raise InputError(f"{dataset.name}: the item catalogue has no categories to build interests from")
        # Missing (None, NaN) -> none; a category listed twice counts once, so each row sums to 1.
        lists = [list(dict.fromkeys(_categories(c))) for c in dataset.items["categories"]]
        names = sorted({c for cats in lists for c in cats})
        index = {name: j for j, name in enumerate(names)}
        # One entry per (item, category), 1 / (the item's number of categories) each.
        rows = np.repeat(np.arange(len(lists)), [len(cats) for cats in lists])
        cols = np.fromiter((index[c] for cats in lists for c in cats), dtype=np.int64, count=len(rows))
        values = np.repeat([1.0 / len(cats) if cats else 0.0 for cats in lists], [len(c) for c in lists])
        membership = sparse.csr_matrix((values, (rows, cols)), shape=(dataset.n_items, len(names)))
        return cls(names=names, membership=membership, source="categories")


def dense_rows(matrix, items) -> np.ndarray:
    """Rows of a dense array or a scipy sparse matrix (a taxonomy's membership) at ``items`` (any
    shape of indices), as dense float64 (*items.shape, K): only the rows a list or history needs."""
    items = np.asarray(items, dtype=np.int64)
    block = matrix[items.ravel()]
    block = block.toarray() if sparse.issparse(block) else np.asarray(block)
    return block.astype(np.float64).reshape(*items.shape, matrix.shape[1])


def _categories(value) -> list:
    """An item's categories as a list; a missing value (None, NaN, empty) is no categories."""
    return list(value) if value is not None and not isinstance(value, float) and len(value) else []


def _label_texts(items: pd.DataFrame, fallback: Sequence[str]) -> list[str]:
    """Titles and descriptions, the words people would use for a topic; the encoder's text otherwise."""
    columns = [c for c in ("title", "description") if c in items]
    if not columns:
        return list(fallback)
    joined = items[columns].astype("string").fillna("").agg(" ".join, axis=1)
    return joined.tolist()
