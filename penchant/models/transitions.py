"""Item-to-item transitions: how often item ``b`` followed item ``a`` within a few events in the
training histories, as a sparse matrix, and the next-item distribution they give a history.

The interest transformer adds ``weight * log(P(b | history) + floor)`` to its logits (a product of
the two models' distributions). On a sparse catalogue the transformer, regularised to generalise,
misses pairs seen only a few times that a count remembers (on Amazon Beauty, 57k items and 7.6 events
a user, ``benchmarks/transitions.py`` and benchmarks/results/scale.md). The weight is chosen on
validation, so a catalogue where the counts add nothing gets 0.

Erasing a user subtracts the pairs their events added, so no trace of them stays in the counts.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from penchant.data.dataset import History

SPAN = 3  # a pair is (a, b) with b 1..SPAN events after a; counted 1 / distance
RECENT = 3  # the history's last RECENT items predict, the latest weighted most
DECAY = 0.5  # weight of each older one of them relative to the next
SMOOTHING = 1.0  # added to each row's total: an item seen once predicts less surely
FLOOR = 1e-4  # added to P before the log, so items without transitions keep the model's order
# Weights tried on validation when the setting is "auto" (0: the transformer alone).
WEIGHTS = (0.0, 0.5, 1.0, 2.0, 3.0, 5.0)


def _pairs(items: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(from, to, weight) of every pair in one sequence of items."""
    out = [(items[:-d], items[d:], np.full(max(len(items) - d, 0), 1.0 / d)) for d in range(1, SPAN + 1)]
    return tuple(np.concatenate(parts) for parts in zip(*out, strict=True))


def _padded(matrix: sp.csr_matrix, n: int) -> sp.csr_matrix:
    """``matrix`` (m, m) as (n, n) with empty rows and columns after it, sharing its data."""
    indptr = np.concatenate([matrix.indptr, np.full(n - matrix.shape[0], matrix.indptr[-1])])
    return sp.csr_matrix((matrix.data, matrix.indices, indptr), shape=(n, n), copy=False)


class ItemTransitions:
    """Sparse (items x items) transition weights and, per user, how many of their first events
    were counted (so that erasure can take exactly those out)."""

    def __init__(self, counts: sp.csr_matrix, counted: dict[str, int], seen: np.ndarray | None = None):
        self.counts = counts.tocsr()
        self.counted = counted
        # Items with any counted event: the counts know nothing of the others (new or held-out
        # items), so those are left to the model (see :meth:`unseen_boost`).
        self.seen = np.ones(self.counts.shape[0], dtype=bool) if seen is None else seen
        self._rows: sp.csr_matrix | None = None

    @classmethod
    def fit(cls, histories: Iterable[History], n_items: int) -> ItemTransitions:
        sources, targets, weights, counted = [], [], [], {}
        seen = np.zeros(n_items, dtype=bool)
        for history in histories:
            seen[history.items] = True
            a, b, w = _pairs(history.items)
            sources.append(a)
            targets.append(b)
            weights.append(w)
            if history.user is not None:
                counted[history.user] = len(history)
        if not sources:
            return cls(sp.csr_matrix((n_items, n_items)), counted, seen)
        counts = sp.csr_matrix(
            (np.concatenate(weights), (np.concatenate(sources), np.concatenate(targets))),
            shape=(n_items, n_items),
        )
        counts.sum_duplicates()
        return cls(counts, counted, seen)

    @property
    def n_items(self) -> int:
        return self.counts.shape[0]

    def _normalised(self) -> sp.csr_matrix:
        """Each row divided by its total plus :data:`SMOOTHING` (cached)."""
        if self._rows is None:
            totals = np.asarray(self.counts.sum(axis=1)).ravel()
            self._rows = (sp.diags(1.0 / (totals + SMOOTHING)) @ self.counts).tocsr()
        return self._rows

    def probabilities(self, histories: Sequence[History]) -> sp.csr_matrix:
        """P(next item | history) (B, items), sparse: the rows of the last :data:`RECENT` items,
        weighted :data:`DECAY` per step back and normalised; an empty history's row is empty."""
        rows, cols, values = [], [], []
        for row, history in enumerate(histories):
            recent = history.items[::-1][:RECENT]
            weights = DECAY ** np.arange(len(recent))
            rows.append(np.full(len(recent), row))
            cols.append(recent)
            values.append(weights / weights.sum() if len(recent) else weights)
        if not histories:
            return sp.csr_matrix((0, self.n_items))
        mix = sp.csr_matrix(
            (np.concatenate(values), (np.concatenate(rows), np.concatenate(cols))),
            shape=(len(histories), self.n_items),
        )
        return (mix @ self._normalised()).tocsr()

    def log_boost(self, histories: Sequence[History], weight: float) -> tuple[sp.csr_matrix, float]:
        """What the transformer adds to its logits: ``weight * log(P + FLOOR)``, returned as the
        constant ``weight * log(FLOOR)`` every item gets and a sparse (B, items) matrix of the extra
        for items with P > 0 (so callers never build a dense matrix)."""
        p = self.probabilities(histories)
        base = weight * float(np.log(FLOOR))
        extra = p.copy()
        extra.data = weight * np.log(p.data + FLOOR) - base
        return extra, base

    def unseen_boost(self, logits: np.ndarray, weight: float, items: np.ndarray | None = None) -> np.ndarray:
        """What the items the counts never saw add, per row of ``logits`` (B, N) over ``items`` (N,;
        default: the whole catalogue): the counts defer to the model, taking its own probability
        for them, ``weight * log(softmax(logits) + FLOOR)``, so a new or held-out item scored by its
        text is not buried under counted pairs. Returns (B, number of unseen among ``items``)."""
        unseen = ~self.seen if items is None else ~self.seen[items]
        top = logits.max(axis=1, keepdims=True)
        log_norm = top + np.log(np.exp(logits - top).sum(axis=1, keepdims=True))
        return weight * np.log(np.exp(logits[:, unseen] - log_norm) + FLOOR)

    def forget(self, user: str, history: History) -> bool:
        """Take out the pairs ``user``'s counted events added (the first ``counted[user]`` events of
        ``history``, their known history); False when none were counted."""
        n = self.counted.pop(user, 0)
        if n < 2:
            return n > 0
        a, b, w = _pairs(history.items[:n])
        minus = sp.csr_matrix((w, (a, b)), shape=self.counts.shape)
        counts = (self.counts - minus).tocsr()
        counts.data = np.where(np.abs(counts.data) < 1e-9, 0.0, np.maximum(counts.data, 0.0))
        counts.eliminate_zeros()
        self.counts, self._rows = counts, None
        return True

    def grown(self, n_items: int) -> ItemTransitions:
        """These counts for a catalogue grown to ``n_items`` (new items have no transitions yet), as
        a new object that shares the counted pairs with this one, which stays as it was."""
        if n_items <= self.n_items:
            return self
        grown = ItemTransitions(_padded(self.counts, n_items), self.counted, self.seen)
        grown.seen = np.concatenate([self.seen, np.zeros(n_items - len(self.seen), dtype=bool)])
        grown._rows = None if self._rows is None else _padded(self._rows, n_items)
        return grown

    def save(self, path: Path) -> None:
        users = np.array(list(self.counted), dtype=str)
        c = self.counts
        np.savez(  # uncompressed: a byte search of the run directory sees every user ID in it
            path,
            data=c.data,
            indices=c.indices,
            indptr=c.indptr,
            shape=np.array(c.shape),
            users=users,
            counted=np.array(list(self.counted.values()), dtype=np.int64),
            seen=self.seen,
        )

    @classmethod
    def load(cls, path: Path) -> ItemTransitions:
        saved = np.load(path, allow_pickle=False)
        counts = sp.csr_matrix(
            (saved["data"], saved["indices"], saved["indptr"]), shape=tuple(saved["shape"])
        )
        counted = dict(zip(saved["users"].tolist(), saved["counted"].tolist(), strict=True))
        return cls(counts, counted, saved["seen"] if "seen" in saved else None)
