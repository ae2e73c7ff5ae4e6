"""Tests for penchant.evaluate.metrics.

The vectorised metrics are checked two ways: against hand-computed answers on tiny cases, and
against the plain-Python reference below (loops only) on seeded random cases.
"""

import math

import numpy as np
import pytest

from penchant.evaluate.metrics import (
    ACCURACY_METRICS,
    aggregate,
    catalogue_coverage,
    per_user_metrics,
    topk_indices,
)

# --------------------------------------------------------------------------------------------------
# Reference implementation: one user at a time, straight from the definitions.
# --------------------------------------------------------------------------------------------------


def reference_user_metrics(recommended: list[int], relevant: list[int], k: int) -> dict[str, float]:
    """Every accuracy metric for one user, computed by the textbook definition."""
    relevant_set = set(relevant)
    top = recommended[:k]
    hit_ranks = [rank for rank, item in enumerate(top, start=1) if item != -1 and item in relevant_set]
    n_hits = len(hit_ranks)

    hr = 1.0 if n_hits > 0 else 0.0
    recall = n_hits / len(relevant_set)
    precision = n_hits / k
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0

    dcg = sum(1 / math.log2(rank + 1) for rank in hit_ranks)
    idcg = sum(1 / math.log2(rank + 1) for rank in range(1, min(len(relevant_set), k) + 1))
    ndcg = dcg / idcg

    mrr = 1 / hit_ranks[0] if hit_ranks else 0.0

    precision_sum = 0.0
    for rank in hit_ranks:
        hits_so_far = sum(1 for r in hit_ranks if r <= rank)
        precision_sum += hits_so_far / rank
    average_precision = precision_sum / min(len(relevant_set), k)

    return {
        "hr": hr,
        "recall": recall,
        "precision": precision,
        "f1": f1,
        "ndcg": ndcg,
        "mrr": mrr,
        "map": average_precision,
    }


def reference_topk(scores: list[float], k: int) -> list[int]:
    """Indices of the k highest scores, ties to the lower index, -inf and missing slots as -1."""
    order = sorted(range(len(scores)), key=lambda item: (-scores[item], item))
    chosen = [item if scores[item] != -math.inf else -1 for item in order[:k]]
    return chosen + [-1] * (k - len(chosen))


def reference_coverage(topk: list[list[int]], k: int, n_items: int) -> float:
    seen = set()
    for row in topk:
        for item in row[:k]:
            if item != -1:
                seen.add(item)
    return len(seen) / n_items


def assert_matches_reference(topk: np.ndarray, targets: list[np.ndarray], k: int) -> None:
    got = per_user_metrics(topk, targets, k)
    assert set(got) == set(ACCURACY_METRICS)
    for name in ACCURACY_METRICS:
        assert got[name].shape == (len(targets),)
    for user, (row, relevant) in enumerate(zip(topk.tolist(), targets, strict=True)):
        want = reference_user_metrics(row, relevant.tolist(), k)
        for name in ACCURACY_METRICS:
            assert got[name][user] == pytest.approx(want[name], abs=1e-12), (name, user)


def random_case(rng: np.random.Generator, n_users: int, n_items: int, width: int, max_targets: int):
    """Random recommendation lists (unique items, some -1 tail padding) and target sets."""
    topk = np.full((n_users, width), -1, dtype=np.int64)
    targets = []
    for user in range(n_users):
        length = rng.integers(0, width + 1)
        topk[user, :length] = rng.choice(n_items, size=length, replace=False)
        n_targets = rng.integers(1, max_targets + 1)
        # Half the targets are drawn from the list so that hits happen; the rest from anywhere,
        # so many fall outside the top-k or outside the list entirely.
        from_list = topk[user, :length][: n_targets // 2]
        anywhere = rng.choice(n_items, size=n_targets, replace=False)
        unique_in_order = dict.fromkeys(from_list.tolist() + anywhere.tolist())
        targets.append(np.array(list(unique_in_order)[:n_targets]))
    return topk, targets


# --------------------------------------------------------------------------------------------------
# per_user_metrics: known answers
# --------------------------------------------------------------------------------------------------


def test_single_target_hit_at_rank_three():
    topk = np.array([[5, 7, 2, 9]])
    got = per_user_metrics(topk, [np.array([2])], k=4)
    assert got["hr"][0] == 1.0
    assert got["recall"][0] == 1.0  # 1 hit / 1 relevant
    assert got["precision"][0] == 0.25  # 1 hit / k=4
    assert got["f1"][0] == pytest.approx(0.4)  # 2 * 0.25 * 1 / (0.25 + 1)
    assert got["ndcg"][0] == pytest.approx(0.5)  # (1/log2(4)) / (1/log2(2)) = 0.5 / 1
    assert got["mrr"][0] == pytest.approx(1 / 3)  # first hit at rank 3
    assert got["map"][0] == pytest.approx(1 / 3)  # precision@3 = 1/3, / min(1, 4)


def test_single_target_miss_and_cutoff():
    topk = np.array([[5, 7, 2, 9], [1, 2, 3, 4]])
    # User 0's target sits at rank 3, beyond the cutoff k=2; user 1's target is not listed at all.
    got = per_user_metrics(topk, [np.array([2]), np.array([8])], k=2)
    for name in ACCURACY_METRICS:
        np.testing.assert_array_equal(got[name], [0.0, 0.0])


def test_multi_target_known_answer():
    topk = np.array([[10, 11, 12, 13, 14]])
    relevant = np.array([11, 13, 99])  # hits at ranks 2 and 4; 99 never recommended
    got = per_user_metrics(topk, [relevant], k=5)
    assert got["hr"][0] == 1.0
    assert got["recall"][0] == pytest.approx(2 / 3)  # 2 hits / 3 relevant
    assert got["precision"][0] == pytest.approx(0.4)  # 2 hits / k=5
    # f1 = 2 * 0.4 * (2/3) / (0.4 + 2/3) = 0.5333... / 1.0666... = 0.5
    assert got["f1"][0] == pytest.approx(0.5)
    # DCG = 1/log2(3) + 1/log2(5) = 0.63093 + 0.43068 = 1.06161
    # IDCG over min(3, 5) = 3 slots = 1 + 0.63093 + 0.5 = 2.13093
    assert got["ndcg"][0] == pytest.approx(1.0616063 / 2.1309298, rel=1e-6)
    assert got["mrr"][0] == pytest.approx(0.5)  # first hit at rank 2
    # AP = (P@2 + P@4) / min(3, 5) = (1/2 + 2/4) / 3 = 1/3
    assert got["map"][0] == pytest.approx(1 / 3)


def test_more_relevant_than_k_caps_ideal_at_k():
    topk = np.array([[1, 2, 9]])
    relevant = np.array([1, 2, 3, 4, 5])
    got = per_user_metrics(topk, [relevant], k=2)
    assert got["ndcg"][0] == pytest.approx(1.0)  # both top-2 slots hit; IDCG over min(5, 2) = 2
    assert got["map"][0] == pytest.approx(1.0)  # (1/1 + 2/2) / min(5, 2)
    assert got["recall"][0] == pytest.approx(0.4)  # 2 / 5
    assert got["precision"][0] == pytest.approx(1.0)  # 2 / 2


def test_padding_never_matches():
    topk = np.array([[-1, -1, -1], [4, -1, -1]])
    got = per_user_metrics(topk, [np.array([0]), np.array([4, 0])], k=3)
    np.testing.assert_array_equal(got["hr"], [0.0, 1.0])
    np.testing.assert_allclose(got["precision"], [0.0, 1 / 3])  # user 1: 1 hit / k=3
    np.testing.assert_allclose(got["f1"], [0.0, 0.4])  # 2 * (1/3) * (1/2) / (1/3 + 1/2) = 0.4


def test_aggregate_means_and_names():
    per_user = {"hr": np.array([1.0, 0.0, 1.0, 1.0]), "ndcg": np.array([1.0, 0.0, 0.5, 0.5])}
    got = aggregate(per_user, k=10)
    assert got == {"hr@10": 0.75, "ndcg@10": 0.5}  # 3/4 and 2/4
    assert all(type(value) is float for value in got.values())


def test_aggregate_of_per_user_metrics_has_every_metric():
    topk = np.array([[1, 2], [3, 4]])
    got = aggregate(per_user_metrics(topk, [np.array([1]), np.array([9])], k=2), k=2)
    assert list(got) == [f"{name}@2" for name in ACCURACY_METRICS]
    assert got["hr@2"] == 0.5  # one of two users hit


# --------------------------------------------------------------------------------------------------
# per_user_metrics: against the reference
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("k", [1, 3, 10])
def test_multi_target_matches_reference(seed, k):
    rng = np.random.default_rng(seed)
    topk, targets = random_case(rng, n_users=40, n_items=30, width=12, max_targets=8)
    assert_matches_reference(topk, targets, k)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("k", [1, 5, 12])
def test_single_target_matches_reference(seed, k):
    rng = np.random.default_rng(seed)
    topk, _ = random_case(rng, n_users=50, n_items=20, width=12, max_targets=1)
    targets = [np.array([rng.integers(20)]) for _ in range(50)]
    assert_matches_reference(topk, targets, k)


def test_mixed_single_and_multi_target_users_match_reference():
    topk = np.array([[0, 1, 2, 3], [4, 5, 6, -1], [7, 8, 9, 10]])
    targets = [np.array([3]), np.array([6, 4, 11]), np.array([12])]
    assert_matches_reference(topk, targets, 3)


def test_large_multi_target_case_is_vectorised():
    # ~1000 users x k=100 must be instant; the per-row loop of the oracle runs on a sample only.
    rng = np.random.default_rng(7)
    n_users, n_items, k = 1000, 5000, 100
    topk = np.argsort(rng.random((n_users, n_items)), axis=1)[:, :k]
    targets = [rng.choice(n_items, size=rng.integers(1, 50), replace=False) for _ in range(n_users)]
    got = per_user_metrics(topk, targets, k)
    for user in range(0, n_users, 97):
        want = reference_user_metrics(topk[user].tolist(), targets[user].tolist(), k)
        for name in ACCURACY_METRICS:
            assert got[name][user] == pytest.approx(want[name], abs=1e-12)


@pytest.mark.parametrize(
    ("topk", "targets", "k", "message"),
    [
        (np.array([1, 2]), [np.array([1])], 1, "shape"),
        (np.array([[1, 2]]), [np.array([1])], 3, "cutoff"),
        (np.array([[1, 2]]), [np.array([1])], 0, "cutoff"),
        (np.array([[1, 2]]), [np.array([1]), np.array([2])], 1, "target sets"),
        (np.array([[1, 2]]), [np.array([], dtype=np.int64)], 1, "no relevant"),
        (np.array([[1, 2]]), [np.array([-3])], 1, "non-negative"),
    ],
)
def test_per_user_metrics_rejects_bad_input(topk, targets, k, message):
    with pytest.raises(ValueError, match=message):
        per_user_metrics(topk, targets, k)


# --------------------------------------------------------------------------------------------------
# catalogue_coverage
# --------------------------------------------------------------------------------------------------


def test_catalogue_coverage_known_answer():
    topk = np.array([[0, 1, 5], [1, 2, -1], [0, -1, -1]])
    # top-2 items: {0, 1} | {1, 2} | {0} = {0, 1, 2} -> 3 of 10 items
    assert catalogue_coverage(topk, k=2, n_items=10) == pytest.approx(0.3)
    # top-3 adds item 5 -> 4 of 10
    assert catalogue_coverage(topk, k=3, n_items=10) == pytest.approx(0.4)


def test_catalogue_coverage_matches_reference():
    rng = np.random.default_rng(3)
    topk, _ = random_case(rng, n_users=25, n_items=60, width=10, max_targets=1)
    for k in (1, 4, 10):
        assert catalogue_coverage(topk, k, 60) == pytest.approx(reference_coverage(topk.tolist(), k, 60))


def test_catalogue_coverage_rejects_out_of_range_items():
    with pytest.raises(ValueError, match="outside"):
        catalogue_coverage(np.array([[0, 10]]), k=2, n_items=10)


# --------------------------------------------------------------------------------------------------
# topk_indices
# --------------------------------------------------------------------------------------------------


def test_topk_indices_orders_best_first():
    scores = np.array([[0.1, 0.9, 0.5, 0.7]])
    np.testing.assert_array_equal(topk_indices(scores, 3), [[1, 3, 2]])


def test_topk_indices_breaks_ties_by_lower_index():
    scores = np.array(
        [
            [1.0, 2.0, 2.0, 2.0, 0.0],  # three-way tie, all inside the top 3
            [3.0, 1.0, 1.0, 1.0, 1.0],  # tie crosses the cutoff: keep items 1 and 2, drop 3 and 4
            [0.0, 0.0, 0.0, 0.0, 0.0],  # everything tied
        ]
    )
    np.testing.assert_array_equal(topk_indices(scores, 3), [[1, 2, 3], [0, 1, 2], [0, 1, 2]])


def test_topk_indices_tie_at_cutoff_in_a_wide_row():
    # Many items tie at the cutoff value, far more than argpartition would pick in index order.
    scores = np.zeros((2, 1000))
    scores[:, 500] = 1.0
    scores[1, ::7] = 0.5
    np.testing.assert_array_equal(topk_indices(scores, 4), [[500, 0, 1, 2], [500, 0, 7, 14]])


def test_topk_indices_replaces_minus_inf_with_padding():
    inf = np.inf
    scores = np.array([[-inf, 0.3, -inf, 0.8], [-inf, -inf, -inf, -inf]])
    # Only two finite scores in row 0, none in row 1.
    np.testing.assert_array_equal(topk_indices(scores, 3), [[3, 1, -1], [-1, -1, -1]])


def test_topk_indices_k_larger_than_catalogue():
    scores = np.array([[0.2, -np.inf, 0.4]])
    np.testing.assert_array_equal(topk_indices(scores, 5), [[2, 0, -1, -1, -1]])


def test_topk_indices_keeps_plus_inf():
    scores = np.array([[0.0, np.inf, 1.0]])
    np.testing.assert_array_equal(topk_indices(scores, 2), [[1, 2]])


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("k", [1, 3, 8, 20])
def test_topk_indices_matches_reference(seed, k):
    rng = np.random.default_rng(seed)
    # Few distinct values so that ties are everywhere, and a random -inf mask.
    scores = rng.integers(0, 4, size=(30, 15)).astype(np.float64)
    scores[rng.random(scores.shape) < 0.4] = -np.inf
    got = topk_indices(scores, k)
    assert got.shape == (30, k)
    for row, expected in zip(got.tolist(), scores.tolist(), strict=True):
        assert row == reference_topk(expected, k)


def test_topk_indices_feeds_per_user_metrics():
    scores = np.array([[0.1, 0.9, 0.5], [0.3, -np.inf, -np.inf]])
    topk = topk_indices(scores, 2)  # [[1, 2], [0, -1]]
    got = per_user_metrics(topk, [np.array([2]), np.array([0])], k=2)
    np.testing.assert_allclose(got["mrr"], [0.5, 1.0])  # hit at rank 2; hit at rank 1


def test_topk_indices_rejects_nan_and_bad_k():
    with pytest.raises(ValueError, match="NaN"):
        topk_indices(np.array([[0.0, np.nan]]), 1)
    with pytest.raises(ValueError, match="positive"):
        topk_indices(np.array([[0.0, 1.0]]), 0)
