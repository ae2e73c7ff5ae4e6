"""Beyond-accuracy metrics against plain-Python references, known answers, and a policy end to end."""

from __future__ import annotations

import math

import numpy as np
import pytest

from penchant.data.dataset import Dataset, History
from penchant.data.split import EvalSet, split
from penchant.evaluate.beyond import (
    aggregate_beyond,
    beyond_metrics,
    calibration_kl,
    category_taxonomy,
    evaluate_with_policy,
    interest_coverage,
    intra_list_diversity,
    new_interest_hits,
    novelty,
    popularity_topk,
    serendipity,
)
from penchant.explore import Calibrated
from penchant.interests.taxonomy import Taxonomy
from penchant.models import EASE

# ----------------------------------------------------------------------------- references


def ref_diversity(items, vectors):
    items = [i for i in items if i != -1]
    if len(items) < 2:
        return math.nan
    total, pairs = 0.0, 0
    for a in range(len(items)):
        for b in range(len(items)):
            if a != b:
                u, v = vectors[items[a]], vectors[items[b]]
                nu, nv = math.sqrt(sum(x * x for x in u)), math.sqrt(sum(x * x for x in v))
                cos = sum(x * y for x, y in zip(u, v, strict=True)) / (nu * nv) if nu and nv else 0.0
                total += 1 - cos
                pairs += 1
    return total / pairs


def ref_novelty(items, counts, n_users):
    items = [i for i in items if i != -1]
    return sum(-math.log2((counts[i] + 1) / (n_users + 1)) for i in items) / len(items) if items else math.nan


def ref_serendipity(items, targets, popular, k):
    return sum(1 for i in items if i != -1 and i in targets and i not in popular) / k


def ref_interest_coverage(items, membership):
    covered = {g for i in items if i != -1 for g in range(membership.shape[1]) if membership[i][g] > 0}
    return len(covered) / membership.shape[1]


def ref_calibration(items, history, membership, alpha=0.01):
    k = membership.shape[1]
    p = [sum(membership[i][g] for i in history) for g in range(k)]
    if sum(p) == 0:
        return math.nan
    p = [x / sum(p) for x in p]
    q = [sum(membership[i][g] for i in items if i != -1) for g in range(k)]
    q = [x / sum(q) for x in q] if sum(q) else [0.0] * k
    q = [(1 - alpha) * q[g] + alpha * p[g] for g in range(k)]
    return sum(p[g] * math.log(p[g] / q[g]) for g in range(k) if p[g] > 0)


def ref_new_interest(items, targets, history, membership):
    had = {g for i in history for g in range(membership.shape[1]) if membership[i][g] > 0}
    new = [
        t for t in targets if any(membership[t][g] > 0 and g not in had for g in range(membership.shape[1]))
    ]
    if not new:
        return math.nan
    return float(any(t in items for t in new))


@pytest.fixture(scope="module")
def random_case():
    rng = np.random.default_rng(11)
    n_items, n_users, k_interests = 25, 40, 5
    membership = rng.random((n_items, k_interests)) * (rng.random((n_items, k_interests)) < 0.4)
    membership[3] = 0.0  # an item with no interest at all
    sums = membership.sum(axis=1, keepdims=True)
    membership = np.divide(membership, sums, out=np.zeros_like(membership), where=sums > 0)
    topk = np.array([rng.permutation(n_items)[:6] for _ in range(n_users)])
    topk[::7, 4:] = -1  # some short lists
    topk[5, 1:] = -1
    targets = [rng.choice(n_items, size=int(rng.integers(1, 3)), replace=False) for _ in range(n_users)]
    histories = [
        History(rng.integers(0, n_items, size=int(rng.integers(0, 6))), np.zeros(1)) for _ in range(n_users)
    ]
    counts = rng.integers(0, 30, size=n_items).astype(float)
    vectors = rng.normal(size=(n_items, 3))
    vectors[7] = 0.0
    return dict(
        membership=membership, topk=topk, targets=targets, histories=histories, counts=counts, vectors=vectors
    )


def both_nan_or_close(fast, reference):
    fast, reference = np.asarray(fast, dtype=float), np.asarray(reference, dtype=float)
    assert np.array_equal(np.isnan(fast), np.isnan(reference))
    assert np.allclose(fast[~np.isnan(fast)], reference[~np.isnan(reference)])


@pytest.mark.parametrize("k", [1, 4, 6])
def test_each_metric_matches_its_reference(random_case, k):
    c = random_case
    top = c["topk"]
    popular = set(popularity_topk(c["counts"], k).tolist())
    both_nan_or_close(
        intra_list_diversity(top, k, c["vectors"]), [ref_diversity(r[:k], c["vectors"]) for r in top]
    )
    both_nan_or_close(novelty(top, k, c["counts"], 40), [ref_novelty(r[:k], c["counts"], 40) for r in top])
    both_nan_or_close(
        serendipity(top, k, c["targets"], popularity_topk(c["counts"], k)),
        [ref_serendipity(r[:k], set(t.tolist()), popular, k) for r, t in zip(top, c["targets"], strict=True)],
    )
    both_nan_or_close(
        interest_coverage(top, k, c["membership"]),
        [ref_interest_coverage(r[:k], c["membership"]) for r in top],
    )
    profiles = np.array([c["membership"][h.items].sum(axis=0) for h in c["histories"]])
    totals = profiles.sum(axis=1, keepdims=True)
    profiles = np.divide(profiles, totals, out=np.zeros_like(profiles), where=totals > 0)
    both_nan_or_close(
        calibration_kl(top, k, profiles, c["membership"]),
        [
            ref_calibration(r[:k], list(h.items), c["membership"])
            for r, h in zip(top, c["histories"], strict=True)
        ],
    )
    both_nan_or_close(
        new_interest_hits(top, k, c["targets"], c["histories"], c["membership"]),
        [
            ref_new_interest(list(r[:k]), list(t), list(h.items), c["membership"])
            for r, t, h in zip(top, c["targets"], c["histories"], strict=True)
        ],
    )


def test_known_answers_on_a_two_interest_catalogue():
    membership = np.array([[1, 0], [1, 0], [0, 1], [0, 1]], dtype=np.float32)
    taxonomy = Taxonomy(names=["a", "b"], membership=membership)
    cases = EvalSet(
        users=np.array([0, 1]),
        histories=[History(np.array([0]), np.zeros(1)), History(np.array([0, 2]), np.zeros(2))],
        targets=[np.array([2]), np.array([1])],
    )
    topk = np.array([[1, 2], [0, 1]])
    per_user = beyond_metrics(
        topk, 2, cases, taxonomy, user_counts=np.array([3.0, 3.0, 1.0, 0.0]), n_train_users=3
    )
    assert per_user["interest_coverage"].tolist() == [1.0, 0.5]
    assert per_user["diversity"].tolist() == [1.0, 0.0]
    # User 0 only had interest a and its target (item 2) is in b: a new-interest case, and recommended.
    # User 1 had both interests, so its target is no new-interest case.
    assert per_user["new_interest_hr"][0] == 1.0 and np.isnan(per_user["new_interest_hr"][1])
    # The popularity top-2 is items 0 and 1; user 0's hit (item 2) is outside it, user 1's (item 1) inside.
    assert per_user["serendipity"].tolist() == [0.5, 0.0]
    assert per_user["novelty"][0] == pytest.approx((-math.log2(4 / 4) - math.log2(2 / 4)) / 2)
    # User 0 wants only a and is shown half a: KL = log(1 / (0.99 * 0.5 + 0.01)).
    assert per_user["calibration_kl"][0] == pytest.approx(math.log(1 / 0.505))
    means = aggregate_beyond(per_user, 2)
    assert means["new_interest_hr@2"] == 1.0 and means["interest_coverage"] == 0.75


def test_metrics_in_chunks_of_users_are_the_metrics_of_all_at_once(monkeypatch):
    import penchant.evaluate.beyond as beyond

    rng = np.random.default_rng(2)
    n_items, n_users = 40, 23
    membership = (rng.random((n_items, 5)) < 0.3).astype(np.float32)
    taxonomy = Taxonomy(names=list("abcde"), membership=membership)
    cases = EvalSet(
        users=np.arange(n_users),
        histories=[History(rng.choice(n_items, 6), np.arange(6.0)) for _ in range(n_users)],
        targets=[rng.choice(n_items, 2, replace=False) for _ in range(n_users)],
    )
    topk = np.stack([rng.permutation(n_items)[:5] for _ in range(n_users)])
    counts = rng.integers(0, 9, n_items).astype(float)
    whole = beyond_metrics(topk, 5, cases, taxonomy, counts, 9)
    monkeypatch.setattr(beyond, "BEYOND_CHUNK", 4)
    chunked = beyond_metrics(topk, 5, cases, taxonomy, counts, 9)
    assert whole.keys() == chunked.keys()
    for name in whole:
        assert len(chunked[name]) == n_users
        np.testing.assert_array_equal(whole[name], chunked[name])


def categorised(dataset: Dataset) -> Dataset:
    """The cycle dataset with three categories, by item ID, so that interests follow one another."""
    items = dataset.items.reset_index()
    items["categories"] = [[f"c{int(i[1:]) * 3 // len(items)}"] for i in items["item_id"]]
    events = dataset.events[["user_id", "item_id", "timestamp"]]
    return Dataset.from_frames(events, items, name="cycle-categories")


def test_evaluate_with_a_policy_reports_every_metric_and_is_exact_at_knob_zero(cycle_dataset):
    data = categorised(cycle_dataset)
    parts = split(data)
    model = EASE().fit(data, parts.train, progress=False)
    taxonomy = category_taxonomy(data)
    train = list(data.histories(parts.train).values())
    plain = evaluate_with_policy(model, data, train, parts.test, parts.protocol, taxonomy=taxonomy)
    zero = evaluate_with_policy(
        model,
        data,
        train,
        parts.test,
        parts.protocol,
        policy=Calibrated(taxonomy),
        explore=0.0,
        taxonomy=taxonomy,
    )
    assert plain["metrics"] == zero["metrics"]
    assert zero["explore"]["explore_share"] == 0.0
    for name in (
        "coverage",
        "diversity",
        "novelty",
        "serendipity",
        "interest_coverage",
        "calibration_kl",
        "new_interest_hr@10",
        "ndcg@10",
    ):
        assert name in plain["metrics"]
    full = evaluate_with_policy(
        model,
        data,
        train,
        parts.test,
        parts.protocol,
        policy=Calibrated(taxonomy),
        explore=1.0,
        taxonomy=taxonomy,
    )
    assert full["metrics"]["calibration_kl"] < plain["metrics"]["calibration_kl"]
    assert category_taxonomy(cycle_dataset) is None
