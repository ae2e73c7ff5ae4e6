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

from penchant.data.dataset import Dataset
from penchant.errors import InputError
from penchant.interests.topics import ctfidf_keywords, default_n_topics, kmeans, topic_names


@dataclass
class Taxonomy:
    """``names[j]`` is interest j; ``membership`` (n_items, n_interests) has rows summing to 1 (or 0)."""

    names: list[str]
    membership: np.ndarray  # (I, K) float32
    source: str = "categories"
    keywords: list[list[str]] | None = None  # topics only: the distinctive terms of each topic

    @property
    def n_interests(self) -> int:
        return len(self.names)

    @functools.cached_property
    def sparse(self):
        """The membership as a scipy CSR matrix (float64), built once per taxonomy: what the
        exploration policies share, in memory proportional to the memberships, not to I x K."""
        from scipy import sparse

        return sparse.csr_matrix(self.membership, dtype=np.float64)

    def primary(self) -> np.ndarray:
        """Each item's strongest interest (-1 for items with none): (I,) int."""
        out = self.membership.argmax(axis=1)
        out[self.membership.sum(axis=1) == 0] = -1
        return out

    def of_items(self, items: np.ndarray) -> np.ndarray:
        """Summed interest weights (K,) of a bag of item indices."""
        return self.membership[items].sum(axis=0)

    def tags(self) -> np.ndarray:
        """(I, K) bool: whether item i has interest j at all, whatever its share."""
        return self.membership > 0

    def interests_of(self, item: int) -> list[str]:
        """Names of one item's interests (internal index), strongest first."""
        row = self.membership[item]
        return [self.names[j] for j in np.argsort(-row, kind="stable") if row[j] > 0]

    @classmethod
    def for_dataset(cls, dataset: Dataset, n_topics: int | None = None, encoder: str = "minilm") -> Taxonomy:
        """Categories when the catalogue has them, otherwise topics found in the item text."""
        if "categories" in dataset.items and any(_categories(c) for c in dataset.items["categories"]):
            return cls.from_categories(dataset)
        return cls.from_text(dataset, n_topics=n_topics, encoder=encoder)

    @classmethod
    def from_text(
        cls, dataset: Dataset, n_topics: int | None = None, encoder: str = "minilm", seed: int = 0
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
        membership = np.zeros((n_items, k), dtype=np.float32)
        membership[np.arange(n_items), labels] = 1.0
        return cls(names=topic_names(keywords), membership=membership, source="topics", keywords=keywords)

    @classmethod
    def from_categories(cls, dataset: Dataset) -> Taxonomy:
        if "categories" not in dataset.items:
            raise InputError(f"{dataset.name}: the item catalogue has no categories to build interests from")
        lists = [_categories(c) for c in dataset.items["categories"]]  # missing (None, NaN) -> none
        names = sorted({c for cats in lists for c in cats})
        index = {name: j for j, name in enumerate(names)}
        membership = np.zeros((dataset.n_items, len(names)), dtype=np.float32)
        for i, cats in enumerate(lists):
            for c in cats:
                membership[i, index[c]] = 1.0 / len(cats)
        return cls(names=names, membership=membership, source="categories")


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
