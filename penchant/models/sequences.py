"""Turning per-user histories into padded tensors for sequential models, without a Python loop per
window or per event on the training path.

Histories become one flat array per field (tokens, gap buckets, event-text rows) with per-user
offsets. Training cuts each history into consecutive windows (with a random offset each epoch),
each predicting its next items; a batch is a fancy-indexing gather from the flat arrays.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from penchant.data.dataset import History
from penchant.models.transformer import GAP_BUCKETS, Batch

EventKey = tuple[str | None, int, float]  # (user ID, item index, timestamp) of one event


def gap_buckets(gaps: np.ndarray) -> np.ndarray:
    """Log2 buckets of gaps in seconds (``2 + floor(log2(gap + 1))``, capped); NaN (no previous event) -> 1."""
    buckets = 2 + np.floor(np.log2(np.clip(np.nan_to_num(gaps, nan=0.0), 0.0, None) + 1.0)).astype(np.int64)
    buckets = np.minimum(buckets, GAP_BUCKETS - 1)
    return np.where(np.isnan(gaps), 1, buckets)


@dataclass
class Windows:
    """Windows over flat sequences: row ``users[w]``, positions ``starts[w]..ends[w]-1`` as inputs
    (and ``starts[w]+1..ends[w]`` as targets when training), positions counted within the user."""

    users: np.ndarray
    starts: np.ndarray
    ends: np.ndarray

    def __len__(self) -> int:
        return len(self.users)

    def take(self, index: np.ndarray) -> Windows:
        return Windows(self.users[index], self.starts[index], self.ends[index])


@dataclass
class Sequences:
    """Many histories as flat per-event arrays: ``tokens`` (item index + 1), ``gaps`` (buckets),
    ``text_rows`` (rows of an event-text table, 0 = no text; None without event text), with user
    ``u``'s events at ``offsets[u]:offsets[u + 1]``."""

    tokens: np.ndarray
    gaps: np.ndarray
    text_rows: np.ndarray | None
    offsets: np.ndarray

    @classmethod
    def from_histories(
        cls, histories: Sequence[History], event_index: Mapping[EventKey, int] | None = None
    ) -> Sequences:
        lengths = np.fromiter((len(h) for h in histories), dtype=np.int64, count=len(histories))
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        if offsets[-1] == 0:
            empty = np.zeros(0, dtype=np.int64)
            return cls(empty, empty, None if event_index is None else empty, offsets)
        items = np.concatenate([h.items for h in histories]).astype(np.int64)
        times = np.concatenate([h.times for h in histories]).astype(np.float64)
        gaps = np.empty(len(times))
        gaps[1:] = np.diff(times)
        gaps[offsets[:-1][lengths > 0]] = np.nan  # a user's first event has no previous one
        text_rows = None
        if event_index is not None:
            # A dictionary lookup per event, once per set of histories (not per batch).
            users = np.repeat(np.array([h.user for h in histories], dtype=object), lengths)
            text_rows = np.fromiter(
                (
                    event_index.get((u, int(i), float(t)), 0)
                    for u, i, t in zip(users, items, times, strict=True)
                ),
                dtype=np.int64,
                count=len(items),
            )
        return cls(items + 1, gap_buckets(gaps), text_rows, offsets)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def last_windows(self, window: int) -> Windows:
        """Each history's last ``window`` events as inputs (scoring: what comes next)."""
        lengths = self.lengths
        return Windows(np.arange(len(lengths)), np.maximum(0, lengths - window), lengths)

    def batch(
        self,
        windows: Windows,
        targets: bool = False,
        long_term_events: int = 0,
        event_vectors: np.ndarray | None = None,
    ) -> Batch:
        """The windows as one right-padded :class:`Batch`; an empty window becomes one padding token.

        ``targets``: the next token at every input position (training). ``long_term_events`` > 0:
        up to that many events before each window, for the long-term summary. ``event_vectors``: the
        event-text table the text rows point into.
        """
        n = windows.ends - windows.starts  # (B,)
        t = max(1, int(n.max(initial=1)))
        base = self.offsets[windows.users] + windows.starts  # (B,)
        steps = np.arange(t)
        valid = steps[None, :] < n[:, None]  # (B, T)
        position = np.where(valid, base[:, None] + steps[None, :], 0)
        tokens = np.where(valid, self.tokens[position] if len(self.tokens) else 0, 0)
        gaps = np.where(valid, self.gaps[position] if len(self.gaps) else 0, 0)
        batch = Batch(
            items=torch.from_numpy(tokens),
            gaps=torch.from_numpy(gaps),
            lengths=torch.from_numpy(np.maximum(n, 1)),
        )
        if targets:
            batch.targets = torch.from_numpy(
                np.where(valid, self.tokens[np.where(valid, position + 1, 0)], 0)
            )
        if self.text_rows is not None and event_vectors is not None and event_vectors.shape[1]:
            rows = np.where(valid, self.text_rows[position] if len(self.text_rows) else 0, 0)
            batch.event_text = torch.from_numpy(event_vectors[rows])
        if long_term_events:
            count = np.minimum(windows.starts, long_term_events)  # events before each window
            first = base - count
            rows = np.repeat(np.arange(len(n)), count)
            within = np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count)
            batch.long_tokens = torch.from_numpy(self.tokens[np.repeat(first, count) + within])
            batch.long_rows = torch.from_numpy(rows)
        return batch


def training_windows(lengths: np.ndarray, window: int, rng: np.random.Generator) -> Windows:
    """Windows covering every next-item target of every history at least once.

    A window's inputs are events ``start..end-1`` and its targets ``start+1..end``. Each history's
    first window ends at its last event; a history longer than the window then steps back from a
    random offset, ``window`` events at a time, so over epochs every target is seen with varied
    amounts of context.
    """
    users = np.flatnonzero(lengths >= 2)
    n = lengths[users]
    last = n - 1
    shift = rng.integers(1, window + 1, size=len(users))
    second = np.where(last > window, last - shift, 0)  # end of the second window; < 1: none
    more = np.where(second >= 1, (second - 1) // window + 1, 0)
    count = 1 + more
    first_of = np.cumsum(count) - count
    k = np.arange(int(count.sum())) - np.repeat(first_of, count)  # window number within its user
    ends = np.where(k == 0, np.repeat(last, count), np.repeat(second, count) - (k - 1) * window)
    return Windows(np.repeat(users, count), np.maximum(0, ends - window), ends)


def batch_order(
    windows: Windows, batch_size: int, rng: np.random.Generator, rank: int = 0, world: int = 1
) -> list[np.ndarray]:
    """Shuffled groups of window indices, windows of similar length together (less padding).

    With ``world`` > 1 processes, every process draws the same groups (same seed) and takes its
    share of each, windows ``rank, rank + world, ...``: as many steps as one process would take, each
    with the same batch in all, split between the processes (DistributedDataParallel averages their
    gradients). A group too small to give every process a window (at most the last) is left out.
    """
    lengths = windows.ends - windows.starts
    order = np.lexsort((rng.random(len(lengths)), lengths))
    groups = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    groups = [groups[g] for g in rng.permutation(len(groups))]
    if world > 1:
        groups = [group[rank::world] for group in groups if len(group) >= world]
    return groups


def training_batches(
    sequences: Sequences,
    windows: Windows,
    groups: list[np.ndarray],
    long_term_events: int = 0,
    event_vectors: np.ndarray | None = None,
) -> Iterator[Batch]:
    for group in groups:
        yield sequences.batch(windows.take(group), True, long_term_events, event_vectors)
