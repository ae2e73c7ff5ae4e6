"""Paired bootstrap intervals: known centres, the pairing, and the cases with nothing to compare."""

import numpy as np
import pytest

from penchant.evaluate.intervals import paired_change


def test_a_constant_lift_has_a_point_interval_and_noise_widens_it():
    rng = np.random.default_rng(0)
    base = rng.uniform(0.5, 1.5, size=400)
    same = paired_change(base, base * 1.2)
    assert (
        same.value == pytest.approx(0.2)
        and same.low == pytest.approx(0.2)
        and same.high == pytest.approx(0.2)
    )
    noisy = paired_change(base, base * 1.2 + rng.normal(0, 0.3, size=400))
    assert noisy.low < noisy.value < noisy.high and noisy.high - noisy.low > 0.02
    assert noisy.excludes_zero() and noisy.users == 400


def test_pairing_is_what_narrows_the_interval():
    """Per-user values that vary a lot between users but move together: the paired interval is narrow;
    breaking the pairing (shuffling one side) widens it."""
    rng = np.random.default_rng(1)
    base = rng.exponential(1.0, size=300)
    other = base * 1.05
    paired = paired_change(base, other)
    unpaired = paired_change(base, rng.permutation(other))
    assert paired.high - paired.low < 0.01 < unpaired.high - unpaired.low


def test_users_without_a_value_are_left_out_and_a_zero_base_has_no_change():
    base = np.array([1.0, np.nan, 0.0, 1.0])
    other = np.array([1.0, 1.0, 1.0, np.nan])
    change = paired_change(base, other)
    assert change.users == 2 and change.value == pytest.approx(1.0)  # users 0 and 2: means 0.5 -> 1
    assert paired_change(np.zeros(3), np.ones(3)).value is None
    assert not paired_change(np.zeros(3), np.ones(3)).excludes_zero()
