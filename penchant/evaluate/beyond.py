"""Beyond-accuracy metrics over saved recommendation lists, and evaluation with an exploration policy.

Like :mod:`penchant.evaluate.metrics`, every metric is computed per user on plain arrays (a row of a
``(U, K)`` int array is one list, ``-1`` pads) and then aggregated, so saved lists can be scored
without the model. Definitions (``L`` is a user's top-k without padding):

* ``coverage``: share of the catalogue in at least one user's top-k;
* ``diversity``: intra-list diversity, the mean of ``1 - cos(v_i, v_j)`` over pairs in ``L``, with item
  vectors independent of the model (interest memberships when the catalogue has categories);
* ``novelty``: mean self-information ``-log2 p(i)`` over ``L``, where ``p(i)`` is the share of training
  users who interacted with ``i`` (counts smoothed by +1 so unseen items stay finite);
* ``serendipity``: ``|{i in L: i relevant and i not in the popularity top-k}| / k`` (Ge et al. 2010);
* ``interest_coverage``: share of all interests that some item of ``L`` belongs to;
* ``calibration_kl``: ``KL(p || q~)`` between the user's history interest distribution ``p`` and the
  list's ``q``, ``q~ = 0.99·q + 0.01·p`` (Steck 2018); users with no interest in their history skipped;
* ``new_interest_hr@k``: over users whose test item belongs to an interest absent from their history,
  the share whose test item is in ``L``; users without such a test item are not counted.

The plain-Python oracles these are tested against live in ``tests/evaluate/test_beyond_metrics.py``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from penchant.data.dataset import Dataset, History
from penchant.data.split import EvalSet, Protocol
from penchant.evaluate.metrics import PAD, catalogue_coverage
from penchant.evaluate.ranking import rank, score_lists
from penchant.explore.policies import Policy
from penchant.explore.rerank import DEFAULT_CANDIDATES, rerank_scores
from penchant.interests.taxonomy import Taxonomy, dense_rows
from penchant.models.base import Recommender

BEYOND_METRICS = (
    "coverage",
    "diversity",
    "novelty",
    "serendipity",
    "interest_coverage",
    "calibration_kl",
    "new_interest_hr",
)
CALIBRATION_SMOOTHING = 0.01
BEYOND_CHUNK = 4096  # users per chunk of the beyond-accuracy metrics

__all__ = [
    "BEYOND_METRICS",
    "aggregate_beyond",
    "beyond_metrics",
    "calibration_kl",
    "category_taxonomy",
    "evaluate_with_policy",
    "intra_list_diversity",
    "interest_coverage",
    "new_interest_hits",
    "novelty",
    "popularity_topk",
    "serendipity",
    "user_interest_distributions",
]


def _lists(topk: np.ndarray, k: int) -> np.ndarray:
    topk = np.asarray(topk)
    if topk.ndim != 2:
        raise ValueError(f"topk must be a (users, K) array, got shape {topk.shape}")
    if not 1 <= k <= topk.shape[1]:
        raise ValueError(f"cutoff k={k} must be between 1 and the list width {topk.shape[1]}")
    return topk[:, :k]


def intra_list_diversity(topk: np.ndarray, k: int, vectors: np.ndarray) -> np.ndarray:
    """Per-user mean pairwise cosine distance ``(U,)``; NaN for lists with fewer than two items.
    ``vectors``: (I, D) item vectors, dense or scipy sparse."""
    top = _lists(topk, k)
    out = np.full(len(top), np.nan)
    for row, items in enumerate(top):
        items = items[items != PAD]
        n = len(items)
        if n < 2:
            continue
        v = dense_rows(vectors, items)
        norms = np.linalg.norm(v, axis=1, keepdims=True)
        v = np.divide(v, norms, out=np.zeros_like(v), where=norms > 0)
        sim = v @ v.T  # (n, n)
        out[row] = 1.0 - (sim.sum() - np.trace(sim)) / (n * (n - 1))
    return out


def novelty(topk: np.ndarray, k: int, user_counts: np.ndarray, n_users: int) -> np.ndarray:
    """Per-user mean self-information ``(U,)`` in bits; NaN for empty lists.

    ``user_counts[i]`` is how many training users interacted with item ``i``.
    """
    top = _lists(topk, k)
    info = -np.log2((np.asarray(user_counts, dtype=np.float64) + 1.0) / (n_users + 1.0))  # (I,)
    real = top != PAD
    values = np.where(real, info[np.where(real, top, 0)], 0.0)
    counts = real.sum(axis=1)
    return np.divide(values.sum(axis=1), counts, out=np.full(len(top), np.nan), where=counts > 0)


def popularity_topk(user_counts: np.ndarray, k: int) -> np.ndarray:
    """What a popularity recommender shows everyone: the ``k`` most-interacted items (ties: lower index)."""
    counts = np.asarray(user_counts, dtype=np.float64)
    return np.lexsort((np.arange(len(counts)), -counts))[:k]


def serendipity(topk: np.ndarray, k: int, targets: Sequence[np.ndarray], popular: np.ndarray) -> np.ndarray:
    """Per-user share ``(U,)`` of the k slots holding a relevant item that is not in ``popular``."""
    top = _lists(topk, k)
    out = np.zeros(len(top))
    popular_set = set(int(i) for i in popular)
    for row, items in enumerate(top):
        relevant = np.isin(items, targets[row]) & (items != PAD)
        out[row] = sum(1 for i in items[relevant] if int(i) not in popular_set) / k
    return out


def interest_coverage(topk: np.ndarray, k: int, membership: np.ndarray) -> np.ndarray:
    """Per-user share ``(U,)`` of all interests that at least one listed item belongs to."""
    top = _lists(topk, k)
    real = top != PAD
    m = dense_rows(membership, np.where(real, top, 0)) * real[:, :, None]  # (U, k, K)
    return (m.sum(axis=1) > 0).mean(axis=1)


def user_interest_distributions(histories: Sequence[History], membership: np.ndarray) -> np.ndarray:
    """Each history's interest distribution ``(U, K)`` (a zero row when it has no interests)."""
    out = np.zeros((len(histories), membership.shape[1]))
    for row, history in enumerate(histories):
        mass = dense_rows(membership, history.items).sum(axis=0)
        total = mass.sum()
        if total > 0:
            out[row] = mass / total
    return out


def calibration_kl(
    topk: np.ndarray,
    k: int,
    profiles: np.ndarray,
    membership: np.ndarray,
    smoothing: float = CALIBRATION_SMOOTHING,
) -> np.ndarray:
    """Per-user ``KL(p || q~)`` ``(U,)`` in nats; NaN where the user's profile ``p`` is empty."""
    top = _lists(topk, k)
    real = top != PAD
    mass = (dense_rows(membership, np.where(real, top, 0)) * real[:, :, None]).sum(axis=1)  # (U, K)
    totals = mass.sum(axis=1, keepdims=True)
    q = np.divide(mass, totals, out=np.zeros_like(mass, dtype=np.float64), where=totals > 0)
    q = (1.0 - smoothing) * q + smoothing * profiles
    terms = np.where(
        profiles > 0, profiles * np.log(np.where(profiles > 0, profiles, 1.0) / np.where(q > 0, q, 1.0)), 0.0
    )
    out = terms.sum(axis=1)
    out[profiles.sum(axis=1) <= 0] = np.nan
    return out


def new_interest_hits(
    topk: np.ndarray,
    k: int,
    targets: Sequence[np.ndarray],
    histories: Sequence[History],
    membership: np.ndarray,
) -> np.ndarray:
    """Per-user ``(U,)``: 1/0 whether a new-interest target was recommended, NaN when the user has none.

    A target is a new-interest target when it belongs to at least one interest the history never touched.
    """
    top = _lists(topk, k)
    out = np.full(len(top), np.nan)
    for row, (items, history) in enumerate(zip(targets, histories, strict=True)):
        had = dense_rows(membership, history.items).sum(axis=0) > 0  # (K,)
        new = np.asarray(items)[((dense_rows(membership, items) > 0) & ~had).any(axis=1)]
        if len(new):
            out[row] = float(np.isin(new, top[row]).any())
    return out


def new_interest_targets(
    targets: Sequence[np.ndarray], histories: Sequence[History], membership: np.ndarray
) -> np.ndarray:
    """Per-user ``(U,)`` count of targets in an interest the history never touched."""
    out = np.zeros(len(targets), dtype=np.int64)
    for row, (items, history) in enumerate(zip(targets, histories, strict=True)):
        had = dense_rows(membership, history.items).sum(axis=0) > 0
        out[row] = int(((dense_rows(membership, items) > 0) & ~had).any(axis=1).sum())
    return out


def beyond_metrics(
    topk: np.ndarray,
    k: int,
    cases: EvalSet,
    taxonomy: Taxonomy,
    user_counts: np.ndarray,
    n_train_users: int,
    vectors: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Per-user values of every beyond-accuracy metric except catalogue coverage (a list-set metric).

    ``vectors`` are the item vectors for diversity; the default is the taxonomy's membership rows.
    Users go in chunks, so the (users, k, interests) blocks stay bounded whatever the data's size.
    """
    membership = taxonomy.membership  # sparse: only the rows of lists and histories become dense
    popular = popularity_topk(user_counts, k)
    parts = []
    for start in range(0, max(len(topk), 1), BEYOND_CHUNK):  # once for no users: empty arrays
        end = min(start + BEYOND_CHUNK, len(topk))
        top, targets, histories = topk[start:end], cases.targets[start:end], cases.histories[start:end]
        profiles = user_interest_distributions(histories, membership)
        parts.append(
            {
                "diversity": intra_list_diversity(top, k, membership if vectors is None else vectors),
                "novelty": novelty(top, k, user_counts, n_train_users),
                "serendipity": serendipity(top, k, targets, popular),
                "interest_coverage": interest_coverage(top, k, membership),
                "calibration_kl": calibration_kl(top, k, profiles, membership),
                "new_interest_hr": new_interest_hits(top, k, targets, histories, membership),
            }
        )
    return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}


def aggregate_beyond(per_user: dict[str, np.ndarray], k: int) -> dict[str, float]:
    """Means over the users each metric is defined for; ``new_interest_hr`` is reported as ``@k``."""
    out = {}
    for name, values in per_user.items():
        values = np.asarray(values, dtype=np.float64)
        defined = values[~np.isnan(values)]
        key = f"{name}@{k}" if name == "new_interest_hr" else name
        out[key] = float(defined.mean()) if defined.size else float("nan")
    return out


def category_taxonomy(dataset: Dataset) -> Taxonomy | None:
    """The taxonomy of the catalogue's categories, or None when it has no categories at all."""
    if "categories" not in dataset.items:
        return None
    taxonomy = Taxonomy.from_categories(dataset)
    return taxonomy if taxonomy.n_interests else None


def _train_user_counts(train_histories: Sequence[History], n_items: int) -> np.ndarray:
    counts = np.zeros(n_items, dtype=np.float64)
    for history in train_histories:
        counts[np.unique(history.items)] += 1.0
    return counts


def evaluate_with_policy(
    model: Recommender,
    dataset: Dataset,
    train_histories: Sequence[History],
    cases: EvalSet,
    protocol: Protocol,
    ks: Sequence[int] = (10,),
    exclude_seen: bool = False,
    policy: Policy | None = None,
    explore: float = 0.0,
    taxonomy: Taxonomy | None = None,
    n_candidates: int = DEFAULT_CANDIDATES,
) -> dict:
    """Accuracy and, when a taxonomy is given, beyond-accuracy metrics of a model, optionally re-ranked.

    Beyond-accuracy metrics are computed at ``k = 10`` when 10 is among ``ks``, else at the largest k.
    ``train_histories`` are the training users' histories (for novelty and the popularity list).
    """
    width = max(ks)
    if policy is None:
        topk = rank(model, cases, width, exclude_seen)
        explores = None
    else:
        topk = np.full((len(cases), width), PAD, dtype=np.int64)
        explores = np.zeros((len(cases), width), dtype=bool)
        users = [dataset.user_map.ids[u] for u in cases.users]
        for start in range(0, len(cases), 256):
            end = min(start + 256, len(cases))
            scores = model.score(cases.histories[start:end])
            batch = rerank_scores(
                policy,
                scores,
                cases.histories[start:end],
                width,
                explore,
                users[start:end],
                n_candidates,
                exclude_seen,
            )
            topk[start:end], explores[start:end] = batch.items, batch.explores
    metrics = score_lists(topk, cases, ks, model.n_items)
    result: dict = {"protocol": protocol.describe(exclude_seen), "metrics": metrics, "n_users": len(cases)}
    if policy is not None:
        result["explore"] = {
            "policy": policy.name,
            "explore": explore,
            "n_candidates": n_candidates,
            "explore_share": float(explores[:, : min(10, width)][topk[:, : min(10, width)] != PAD].mean()),
        }
    if taxonomy is not None:
        k = 10 if 10 in ks else width
        counts = _train_user_counts(train_histories, model.n_items)
        per_user = beyond_metrics(topk, k, cases, taxonomy, counts, len(train_histories))
        beyond = {"coverage": catalogue_coverage(topk, k, model.n_items), **aggregate_beyond(per_user, k)}
        n_new = int((~np.isnan(per_user["new_interest_hr"])).sum())
        result["metrics"].update(beyond)
        result["beyond"] = {"k": k, "new_interest_users": n_new, "diversity_vectors": "interest memberships"}
    return result
