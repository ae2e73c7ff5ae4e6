"""Interest transitions, closeness and novel-interest scores against plain references."""

from __future__ import annotations

import numpy as np
import pytest

from penchant.data.dataset import History
from penchant.explore import InterestTransitions, interest_closeness, interest_distribution
from penchant.explore.interests import novel_interest_scores


def transitions_reference(histories, membership, window, alpha):
    k = membership.shape[1]
    counts = np.zeros((k, k))
    for h in histories:
        items = list(h.items)
        for t in range(1, len(items)):
            had = membership[items[:t]].sum(axis=0) > 0
            recent = membership[items[max(0, t - window) : t]].sum(axis=0)
            if recent.sum() == 0:
                continue
            source = recent / recent.sum()
            for b in range(k):
                if membership[items[t], b] > 0 and not had[b]:
                    for a in range(k):
                        counts[a, b] += source[a] * membership[items[t], b]
    smoothed = counts + alpha
    np.fill_diagonal(smoothed, 0.0)
    return counts, smoothed / smoothed.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("window", [1, 3, 50])
def test_transitions_match_a_plain_loop(window):
    rng = np.random.default_rng(window)
    membership = rng.random((15, 4)) * (rng.random((15, 4)) < 0.5)
    membership[membership.sum(axis=1) == 0, 0] = 1.0
    membership /= membership.sum(axis=1, keepdims=True)
    histories = [History(rng.integers(0, 15, size=int(rng.integers(1, 12))), np.zeros(1)) for _ in range(20)]
    fitted = InterestTransitions.fit(histories, membership, window=window, alpha=0.3)
    counts, matrix = transitions_reference(histories, membership, window, 0.3)
    assert np.allclose(fitted.counts, counts)
    assert np.allclose(fitted.matrix, matrix)


def test_transitions_learn_which_interest_comes_next():
    membership = np.repeat(np.eye(3), 2, axis=0)  # items 0,1 -> 0; 2,3 -> 1; 4,5 -> 2
    histories = [History(np.array([0, 1, 2, 3]), np.zeros(4))] * 4 + [History(np.array([2, 4]), np.zeros(2))]
    fitted = InterestTransitions.fit(histories, membership, alpha=0.01)
    assert np.argmax(fitted.matrix[0]) == 1 and np.argmax(fitted.matrix[1]) == 2
    assert np.isclose(fitted.next_interests(np.array([1.0, 0.0, 0.0])).sum(), 1.0)


def test_closeness_puts_mass_on_the_nearest_interest_and_never_on_itself():
    centroids = np.array([[1.0, 0.0], [0.8, 0.6], [-1.0, 0.0]])
    close = interest_closeness(centroids)
    assert np.allclose(close.sum(axis=1), 1.0)
    assert np.allclose(np.diag(close), 0.0)
    assert close[0, 1] > 0.99  # cosine 0.8 against -1
    assert 0.85 < close[2, 1] < 0.9  # cosine -0.8 against -1: softmax(2, 0) at temperature 0.1


def test_novel_scores_are_zero_on_engaged_interests_and_favour_the_likely_next_one():
    membership = np.repeat(np.eye(3), 2, axis=0)
    transitions = InterestTransitions.fit(
        [History(np.array([0, 2]), np.zeros(2))] * 3, membership, alpha=0.01
    )
    closeness = interest_closeness(np.eye(3))
    profile = interest_distribution(membership, np.array([0, 1]))
    scores = novel_interest_scores(profile, transitions, closeness)
    assert scores[0] == 0.0 and scores[1] > scores[2] > 0.0
    assert novel_interest_scores(np.zeros(3), transitions, closeness).tolist() == [0.0, 0.0, 0.0]
