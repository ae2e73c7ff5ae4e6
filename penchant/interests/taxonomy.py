"""The interest taxonomy: which interests exist and how strongly each item belongs to each.

Interests come from item categories when the catalogue has them (ml-100k genres). An item with
several categories belongs to each with weight 1/len(categories), so every item's memberships sum
to one and per-user interest weights are comparable across items.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from penchant.data.dataset import Dataset
from penchant.errors import InputError


@dataclass
class Taxonomy:
    """``names[j]`` is interest j; ``membership`` (n_items, n_interests) has rows summing to 1 (or 0)."""

    names: list[str]
    membership: np.ndarray  # (I, K) float32
    source: str = "categories"

    @property
    def n_interests(self) -> int:
        return len(self.names)

    def primary(self) -> np.ndarray:
        """Each item's strongest interest (-1 for items with none): (I,) int."""
        out = self.membership.argmax(axis=1)
        out[self.membership.sum(axis=1) == 0] = -1
        return out

    def of_items(self, items: np.ndarray) -> np.ndarray:
        """Summed interest weights (K,) of a bag of item indices."""
        return self.membership[items].sum(axis=0)

    @classmethod
    def from_categories(cls, dataset: Dataset) -> Taxonomy:
        if "categories" not in dataset.items:
            raise InputError(f"{dataset.name}: the item catalogue has no categories to build interests from")
        lists = [list(c) if c is not None and len(c) else [] for c in dataset.items["categories"]]
        names = sorted({c for cats in lists for c in cats})
        index = {name: j for j, name in enumerate(names)}
        membership = np.zeros((dataset.n_items, len(names)), dtype=np.float32)
        for i, cats in enumerate(lists):
            for c in cats:
                membership[i, index[c]] = 1.0 / len(cats)
        return cls(names=names, membership=membership, source="categories")
