"""Top-k accuracy and coverage metrics over saved recommendation lists.

Everything here works on plain arrays of internal item indices, so recommendations can be scored
without the model that made them. Per-user values (:func:`per_user_metrics`) are kept apart from
their aggregation (:func:`aggregate`) so that callers can slice, bootstrap or compare users.

Conventions shared by every function:

* a recommendation list is a row of a ``(U, K)`` int array, best item first;
* ``-1`` is padding for "no item" and never counts as a hit or as a covered item;
* a row lists each real item at most once.

The plain-Python reference these functions are tested against lives in
``tests/evaluate/test_metrics.py``.
"""

from __future__ import annotations

import numpy as np

from penchant.models.topk import PAD, topk_indices

ACCURACY_METRICS = ("hr", "recall", "precision", "f1", "ndcg", "mrr", "map")

__all__ = ["ACCURACY_METRICS", "PAD", "aggregate", "catalogue_coverage", "per_user_metrics", "topk_indices"]


def per_user_metrics(topk: np.ndarray, targets: list[np.ndarray], k: int) -> dict[str, np.ndarray]:
    """Compute each metric in :data:`ACCURACY_METRICS` for every user at cutoff ``k``.

    Args:
        topk: ``(U, K)`` int array with ``K >= k`` of recommended item indices, best first; ``-1``
            pads lists that are shorter than ``K`` and never matches.
        targets: ``U`` arrays of relevant item indices, each non-empty and without repeats.
        k: the cutoff; only the first ``k`` columns of ``topk`` are scored.

    Returns:
        A dict mapping each metric name to a float array of shape ``(U,)``:

        * ``hr``: 1 if any of the top-k is relevant, else 0;
        * ``recall``: hits / number of relevant items;
        * ``precision``: hits / k;
        * ``f1``: harmonic mean of that user's precision and recall (0 when both are 0);
        * ``ndcg``: DCG / IDCG with binary gains, where DCG sums ``1 / log2(r + 1)`` over hit ranks
          ``r`` (1-based) and IDCG is the DCG of ``min(|rel|, k)`` hits at the top;
        * ``mrr``: 1 / rank of the first hit within the top-k, else 0;
        * ``map``: AP@k, the sum of precision@r over hit ranks ``r``, divided by ``min(|rel|, k)``.

    Raises:
        ValueError: on a malformed ``topk``, a cutoff out of range, a user count mismatch or an
            empty target set.
    """
    topk = np.asarray(topk)
    if topk.ndim != 2:
        raise ValueError(f"topk must be a (users, K) array, got shape {topk.shape}")
    n_users, width = topk.shape
    if not 1 <= k <= width:
        raise ValueError(f"cutoff k={k} must be between 1 and the list width {width}")
    if len(targets) != n_users:
        raise ValueError(f"got {len(targets)} target sets for {n_users} recommendation lists")

    top = topk[:, :k]
    hits, n_relevant = _hit_matrix(top, targets)  # (U, k) bool, (U,) int
    return _metrics_from_hits(hits, n_relevant, k)


def aggregate(per_user: dict[str, np.ndarray], k: int) -> dict[str, float]:
    """Average per-user metric values over users.

    Args:
        per_user: metric name -> ``(U,)`` array, as returned by :func:`per_user_metrics`.
        k: the cutoff the values were computed at; it is appended to each name.

    Returns:
        ``{"<name>@<k>": mean}`` (e.g. ``"ndcg@10"``) with plain Python floats, in the input order.

    Raises:
        ValueError: if any metric has no users to average over.
    """
    out: dict[str, float] = {}
    for name, values in per_user.items():
        values = np.asarray(values, dtype=np.float64)
        if values.size == 0:
            raise ValueError(f"cannot average metric {name!r} over zero users")
        out[f"{name}@{k}"] = float(values.mean())
    return out


def catalogue_coverage(topk: np.ndarray, k: int, n_items: int) -> float:
    """Share of the ``n_items`` catalogue that appears in at least one user's top-k.

    ``-1`` padding is ignored.

    Raises:
        ValueError: if ``n_items`` is not positive, ``k`` is out of range, or an index falls
            outside ``[0, n_items)``.
    """
    topk = np.asarray(topk)
    if topk.ndim != 2:
        raise ValueError(f"topk must be a (users, K) array, got shape {topk.shape}")
    if n_items <= 0:
        raise ValueError(f"n_items must be positive, got {n_items}")
    if not 1 <= k <= topk.shape[1]:
        raise ValueError(f"cutoff k={k} must be between 1 and the list width {topk.shape[1]}")

    items = topk[:, :k].ravel()
    items = items[items != PAD]
    if items.size and (items.min() < 0 or items.max() >= n_items):
        raise ValueError(f"topk holds item indices outside [0, {n_items})")
    seen = np.zeros(n_items, dtype=bool)
    seen[items] = True
    return float(seen.mean())


def _hit_matrix(top: np.ndarray, targets: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Mark which of each user's top-k items are relevant.

    Returns the ``(U, k)`` bool hit matrix and the ``(U,)`` count of relevant items per user.
    """
    n_users = top.shape[0]
    targets = [np.asarray(t).ravel() for t in targets]
    n_relevant = np.fromiter((t.size for t in targets), dtype=np.int64, count=n_users)
    if n_users and n_relevant.min() == 0:
        raise ValueError(f"user {int(np.argmin(n_relevant))} has no relevant items")
    if n_users == 0:
        return np.zeros(top.shape, dtype=bool), n_relevant
    flat_targets = np.concatenate(targets).astype(np.int64)
    if flat_targets.min() < 0:
        raise ValueError("target item indices must be non-negative")
    if top.min() < PAD:
        raise ValueError(f"topk holds negative item indices other than the {PAD} padding")
    real = top != PAD

    if n_relevant.max() == 1:
        # Leave-one-out: one target per user, so a row-wise comparison suffices.
        return (top == flat_targets[:, None]) & real, n_relevant

    # Several targets: make (user, item) pairs comparable as single int64 keys, then one
    # sort-based isin over all users at once.
    stride = int(max(int(top.max(initial=0)), int(flat_targets.max()))) + 1
    rows = np.arange(n_users, dtype=np.int64)
    top_keys = rows[:, None] * stride + top.astype(np.int64)
    target_keys = np.repeat(rows, n_relevant) * stride + flat_targets
    hits = np.isin(top_keys, target_keys) & real
    return hits, n_relevant


def _metrics_from_hits(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """Turn a ``(U, k)`` hit matrix into the per-user metrics of :func:`per_user_metrics`."""
    hits_f = hits.astype(np.float64)
    ranks = np.arange(1, k + 1, dtype=np.float64)  # (k,)
    discounts = 1.0 / np.log2(ranks + 1.0)  # (k,)
    ideal_hits = np.minimum(n_relevant, k)  # (U,), >= 1

    n_hits = hits_f.sum(axis=1)
    any_hit = n_hits > 0
    recall = n_hits / n_relevant
    precision = n_hits / k
    denom = precision + recall
    f1 = np.divide(2.0 * precision * recall, denom, out=np.zeros_like(denom), where=denom > 0)

    dcg = hits_f @ discounts
    idcg = np.cumsum(discounts)[ideal_hits - 1]
    first = hits.argmax(axis=1)  # 0 where there is no hit; masked below
    mrr = np.where(any_hit, 1.0 / (first + 1.0), 0.0)
    precision_at_rank = np.cumsum(hits_f, axis=1) / ranks  # (U, k)
    average_precision = (precision_at_rank * hits_f).sum(axis=1) / ideal_hits

    return {
        "hr": any_hit.astype(np.float64),
        "recall": recall,
        "precision": precision,
        "f1": f1,
        "ndcg": dcg / idcg,
        "mrr": mrr,
        "map": average_precision,
    }
