"""Off-policy estimates: hand-computed answers, and the simulator's known truth recovered from a log."""

import numpy as np
import pytest

from penchant.errors import InputError
from penchant.evaluate.offpolicy import LoggedSlate, estimate
from penchant.explore import make_policy
from penchant.explore.interests import InterestTransitions
from penchant.explore.simulator import SimulatorConfig, log_for_offpolicy, make_world


def test_ips_weights_each_reproduced_item_position_by_its_propensity():
    logged = [
        LoggedSlate(np.array([1, 2]), np.array([0.5, 0.25]), np.array([1.0, 1.0])),
        LoggedSlate(np.array([3, 4]), np.array([0.5, 0.5]), np.array([0.0, 1.0])),
    ]
    # The candidate shows item 1 at 0 (clicked, 1/0.5), item 2 at 1 (clicked, 1/0.25) in the first
    # context; in the second it puts item 4 first, not where it was logged: no weight.
    targets = [[1, 2], [4, 3]]
    e = estimate(logged, targets, resamples=200)
    assert e.ips == pytest.approx((2.0 + 4.0 + 0.0) / 2)
    assert e.matched == 2 and e.slates == 2
    # SNIPS per position: position 0: 2 / 2, position 1: 4 / 4 -> 2 clicks per slate.
    assert e.snips == pytest.approx(2.0)
    assert e.ips_low <= e.ips <= e.ips_high


def test_bad_logs_are_refused_in_words():
    with pytest.raises(InputError, match="propensities must be in"):
        estimate([LoggedSlate(np.array([1]), np.array([0.0]), np.array([1.0]))], [[1]])
    with pytest.raises(InputError, match="1 logged slates but 2 candidate slates"):
        estimate([LoggedSlate(np.array([1]), np.array([1.0]), np.array([1.0]))], [[1], [2]])
    with pytest.raises(InputError, match="no logged slates"):
        estimate([], [])


def test_estimates_from_a_randomised_log_recover_each_policys_true_value():
    """The simulator knows every candidate's expected clicks in the logged contexts; the IPS and SNIPS
    intervals cover it for each of four candidates, and the same estimate with the propensities left
    out misses every one: the weighting is what makes the estimate right."""
    world = make_world(SimulatorConfig(n_users=80, rounds=12), seed=3)
    transitions = InterestTransitions.fit(world.histories, world.taxonomy.membership)
    candidates = {"exploit-only": (None, 0.0)}
    for name in ("calibrated", "diversity", "novel-interest"):
        candidates[name] = (make_policy(name, world.taxonomy, world.vectors, transitions), 0.5)
    log = log_for_offpolicy(world, candidates, seed=4)
    assert log.items.shape == (80 * 12, 10)
    logged = [LoggedSlate(i, p, r) for i, p, r in zip(log.items, log.propensities, log.rewards, strict=True)]
    unweighted = [LoggedSlate(s.items, np.ones_like(s.propensities), s.rewards) for s in logged]
    for name in candidates:
        truth = log.values[name]
        e = estimate(logged, log.targets[name], seed=0)
        assert e.ips_low <= truth <= e.ips_high and e.snips_low <= truth <= e.snips_high, (name, truth, e)
        wrong = estimate(unweighted, log.targets[name], seed=0)
        assert not wrong.ips_low <= truth <= wrong.ips_high
