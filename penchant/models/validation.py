"""The early-stopping score: NDCG@k of held-out validation targets, ranked over the full catalogue.

It belongs to training (every iterative model stops on it), so it lives beside the training loop;
``penchant.evaluate`` reports the same metric for test sets, and the tests hold this one against it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from tqdm.auto import tqdm

from penchant.data.split import EvalSet
from penchant.models.base import Recommender, Validator
from penchant.models.topk import topk_indices

# Early stopping ranks a seeded sample of this many validation users when there are more: on a
# 57k-item catalogue all 52k users took longer to rank than an epoch took to train, and the sample's
# NDCG@10 moves with the full set's (the same users every epoch, so differences are paired).
VALIDATION_USERS = 10_000


def ndcg_at_k(top: np.ndarray, targets: list[np.ndarray], k: int) -> np.ndarray:
    """Per-user NDCG@k (binary gains) of top-k lists ``top`` (U, >=k), ``-1`` padded."""
    discounts = 1.0 / np.log2(np.arange(2, k + 2))  # (k,)
    dcg = np.zeros(len(targets))
    ideal = np.zeros(len(targets))
    for row, wanted in enumerate(targets):
        hits = np.isin(top[row, :k], wanted)
        dcg[row] = discounts[hits].sum()
        ideal[row] = discounts[: min(len(wanted), k)].sum()
    return dcg / ideal


def ndcg_of_single_targets(scores: np.ndarray, targets: np.ndarray, k: int) -> np.ndarray:
    """Per-user NDCG@k when each user has one target (U,): from the target's rank alone, with ties
    broken by the lower item index as :func:`penchant.models.topk.topk_indices` does."""
    s = np.ascontiguousarray(scores)
    t = targets.astype(np.int64)
    own = s[np.arange(len(t)), t][:, None]  # (U, 1)
    rank = np.count_nonzero(s > own, axis=1)  # numpy counts a boolean matrix ~10x faster than torch
    # Ties with the target (untrained items all score alike) are few: only those rows pay for
    # counting the tied items at lower indices.
    tied = np.flatnonzero(np.count_nonzero(s == own, axis=1) > 1)
    if len(tied):
        lower = np.arange(s.shape[1])[None, :] < t[tied, None]
        rank[tied] += np.count_nonzero((s[tied] == own[tied]) & lower, axis=1)
    gain = np.where(rank < k, 1.0 / np.log2(rank + 2.0), 0.0)
    return np.where(np.isneginf(own[:, 0]), 0.0, gain)


def validator(
    cases: EvalSet,
    k: int = 10,
    max_users: int | None = VALIDATION_USERS,
    batch_size: int = 256,
    progress: bool = False,
) -> Validator:
    """A training callback: mean NDCG@k over ``cases`` (seen items not excluded, full catalogue),
    over a seeded sample of ``max_users`` of them when there are more (None: all). ``progress``: a
    bar over the users while it ranks them (minutes at a million items)."""
    cases = cases.sample(max_users)
    # Shortest histories first, so each scoring batch pads its windows little (the mean is the same).
    rows = np.argsort([len(h) for h in cases.histories], kind="stable")
    histories = [cases.histories[i] for i in rows]
    targets = [cases.targets[i] for i in rows]
    single = all(len(t) == 1 for t in targets)

    def ndcg_sum(scores: np.ndarray, wanted: list[np.ndarray]) -> float:
        if single:
            return float(ndcg_of_single_targets(scores, np.concatenate(wanted), k).sum())
        return float(ndcg_at_k(topk_indices(scores, k), wanted, k).sum())

    def bar(desc: str):
        return tqdm(desc=desc, total=len(rows), unit="user", leave=False, disable=not progress)

    def validate(model: Recommender) -> float:
        total = 0.0
        with bar("validation") as shown:
            for start in range(0, len(rows), batch_size):
                scores = model.score(histories[start : start + batch_size])
                total += ndcg_sum(scores, targets[start : start + batch_size])
                shown.update(len(scores))
        return total / max(len(rows), 1)

    def validate_each(model, weights: Sequence[float]) -> dict[float, float]:
        """``validate`` under each transition weight of a model with ``score_each``, from one pass of
        the network over the validation histories instead of one per weight."""
        totals = dict.fromkeys(weights, 0.0)
        with bar("transition weights") as shown:
            for (start, end), weight, scores in model.score_each(histories, weights):
                totals[weight] += ndcg_sum(scores, targets[start:end])
                shown.update((end - start) * (weight == weights[-1]))
        return {weight: total / max(len(rows), 1) for weight, total in totals.items()}

    validate.each = validate_each  # type: ignore[attr-defined]
    return validate
