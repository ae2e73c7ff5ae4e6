"""The early-stopping score against the evaluation metrics it must agree with."""

import numpy as np
import pytest

from penchant.data.dataset import History
from penchant.data.split import EvalSet
from penchant.evaluate.metrics import per_user_metrics, topk_indices
from penchant.models.validation import ndcg_at_k, ndcg_of_single_targets, validator


def test_rank_based_ndcg_equals_the_top_k_metric_including_ties():
    rng = np.random.default_rng(0)
    # Coarse scores, so many items tie, also with the target, on both sides of the cutoff.
    scores = rng.integers(0, 6, size=(300, 40)).astype(np.float32)
    scores[:10, 5] = -np.inf
    targets = rng.integers(0, 40, size=300)
    targets[:10] = 5  # a masked target is never a hit
    reference = per_user_metrics(topk_indices(scores, 10), [np.array([t]) for t in targets], 10)["ndcg"]
    np.testing.assert_allclose(ndcg_of_single_targets(scores, targets, 10), reference)
    np.testing.assert_allclose(
        ndcg_at_k(topk_indices(scores, 10), [np.array([t]) for t in targets], 10), reference
    )


def test_multi_target_ndcg_equals_the_metric():
    rng = np.random.default_rng(1)
    scores = rng.random((50, 30))
    targets = [rng.choice(30, size=int(rng.integers(1, 15)), replace=False) for _ in range(50)]
    top = topk_indices(scores, 10)
    np.testing.assert_allclose(ndcg_at_k(top, targets, 10), per_user_metrics(top, targets, 10)["ndcg"])


class Fixed:
    """A stand-in 'model' whose scores are given, to check what the validator averages."""

    def __init__(self, scores):
        self.scores = scores

    def score(self, histories):
        return np.stack([self.scores[int(h.items[0])] for h in histories])


def test_validator_samples_users_when_there_are_many():
    rng = np.random.default_rng(2)
    scores = rng.random((500, 25)).astype(np.float32)
    targets = [np.array([int(t)]) for t in rng.integers(0, 25, size=500)]
    cases = EvalSet(np.arange(500), [History(np.array([u]), np.array([0.0])) for u in range(500)], targets)
    everyone = per_user_metrics(topk_indices(scores, 10), targets, 10)["ndcg"]
    assert validator(cases, max_users=None)(Fixed(scores)) == pytest.approx(everyone.mean())
    sampled = validator(cases, max_users=100)(Fixed(scores))
    assert sampled != pytest.approx(everyone.mean())
    chosen = np.sort(np.random.default_rng(0).choice(500, 100, replace=False))
    assert sampled == pytest.approx(everyone[chosen].mean())


def test_a_split_without_validation_targets_is_refused_in_one_line():
    import pandas as pd

    from penchant.data.dataset import Dataset
    from penchant.data.split import Protocol, split
    from penchant.errors import InputError
    from penchant.models import Popularity
    from penchant.runs.training import fit_split

    events = pd.DataFrame(
        {"user_id": ["a", "a", "b", "b"], "item_id": ["x", "y", "y", "z"], "timestamp": [1, 2, 1, 2]}
    )
    dataset = Dataset.from_frames(events, name="pairs")
    parts = split(dataset, Protocol())
    assert len(parts.validation) == 0
    with pytest.raises(InputError, match="pairs: the leave-one-out split left no validation targets"):
        fit_split(Popularity(), dataset, parts, progress=False)
