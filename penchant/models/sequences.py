"""Turning per-user histories into padded tensors for sequential models.

Training uses every position of every user's history: a history longer than the model's window is
cut into consecutive windows (with a random offset each epoch), each predicting its next items.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import torch

from penchant.data.dataset import History
from penchant.models.transformer import GAP_BUCKETS

EventKey = tuple[str | None, int, float]  # (user ID, item index, timestamp) of one event


def gap_buckets(gaps: np.ndarray) -> np.ndarray:
    """Log2 buckets of gaps in seconds (``2 + floor(log2(gap + 1))``, capped); NaN (no previous event) -> 1."""
    buckets = 2 + np.floor(np.log2(np.clip(np.nan_to_num(gaps, nan=0.0), 0.0, None) + 1.0)).astype(np.int64)
    buckets = np.minimum(buckets, GAP_BUCKETS - 1)
    return np.where(np.isnan(gaps), 1, buckets)


def pack(histories: Sequence[History], max_len: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The last ``max_len`` events of each history, right-padded: token ids (B, T), gap buckets (B, T)
    and lengths (B,). An empty history becomes a single padding token with length 1."""
    t = max(1, min(max_len, max((len(h) for h in histories), default=1)))
    items = np.zeros((len(histories), t), dtype=np.int64)
    gaps = np.zeros((len(histories), t), dtype=np.int64)
    lengths = np.ones(len(histories), dtype=np.int64)
    for row, history in enumerate(histories):
        n = min(len(history), t)
        if n == 0:
            continue
        items[row, :n] = history.items[-n:] + 1
        # Gap of each window event to the event before it (NaN for the user's very first event).
        previous = (
            history.times[-n - 1 : -1]
            if len(history) > n
            else np.concatenate([[np.nan], history.times[: n - 1]])
        )
        gaps[row, :n] = gap_buckets(history.times[-n:] - previous)
        lengths[row] = n
    return torch.from_numpy(items), torch.from_numpy(gaps), torch.from_numpy(lengths)


def training_windows(
    histories: Sequence[History], max_len: int, rng: np.random.Generator
) -> list[tuple[History, int, int]]:
    """(history, start, end) windows covering every next-item target of every history once.

    A window's inputs are events ``start..end-1`` and its targets ``start+1..end``; windows end at the
    last event and step back ``max_len`` at a time from a random offset, so over epochs every target
    is seen with varied amounts of context.
    """
    windows = []
    for history in histories:
        n = len(history)
        if n < 2:
            continue
        end = n - 1
        windows.append((history, max(0, end - max_len), end))
        end -= int(rng.integers(1, max_len + 1)) if n - 1 > max_len else n
        while end >= 1:
            windows.append((history, max(0, end - max_len), end))
            end -= max_len
    return windows


def event_text_rows(
    histories: Sequence[History], max_len: int, index: Mapping[EventKey, int]
) -> torch.Tensor:
    """Rows (B, T) into an event-text table for the events :func:`pack` lays out; 0 = no text.

    ``index`` maps (user ID, item index, timestamp) of an event to its row: one user's events on one
    item at one instant are one event. A history without a user (given ad hoc) has no event text.
    """
    t = max(1, min(max_len, max((len(h) for h in histories), default=1)))
    rows = np.zeros((len(histories), t), dtype=np.int64)
    for row, history in enumerate(histories):
        n = min(len(history), t)
        for j, (item, time) in enumerate(
            zip(history.items[len(history) - n :], history.times[len(history) - n :], strict=True)
        ):
            rows[row, j] = index.get((history.user, int(item), float(time)), 0)
    return torch.from_numpy(rows)


def batches(
    windows: list[tuple[History, int, int]],
    batch_size: int,
    rng: np.random.Generator,
    event_index: Mapping[EventKey, int] | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]]:
    """Shuffled (items, gaps, targets, event-text rows) batches, each (B, T), right-padded; targets are
    next-item tokens; the rows (see :func:`event_text_rows`) are None without an ``event_index``."""
    # Batch windows of similar length together (less padding), then shuffle the batches.
    lengths = np.array([e - s for _, s, e in windows])
    order = np.lexsort((rng.random(len(windows)), lengths))
    groups = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    for g in rng.permutation(len(groups)):
        chunk = [windows[i] for i in groups[g]]
        inputs = [h.take(slice(None, e)) for h, s, e in chunk]
        t = max(e - s for _, s, e in chunk)
        items, gaps, lengths = pack(inputs, t)
        targets = torch.zeros_like(items)
        for row, (h, s, e) in enumerate(chunk):
            n, length = e - s, int(lengths[row])
            targets[row, length - n : length] = torch.from_numpy(h.items[s + 1 : e + 1] + 1)
        rows = event_text_rows(inputs, t, event_index) if event_index is not None else None
        yield items, gaps, targets, rows
