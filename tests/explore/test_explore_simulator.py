"""The user simulator: seeded worlds, hidden interests that really are hidden, and reproducible runs."""

from __future__ import annotations

import numpy as np

from penchant.explore import InterestTransitions, NovelInterest, NovelInterestConfig
from penchant.explore.simulator import SimulatorConfig, make_world, simulate

SMALL = SimulatorConfig(
    n_users=30, n_interests=8, items_per_interest=15, history_length=8, rounds=6, n_candidates=60
)


def test_worlds_are_seeded_and_hidden_interests_are_absent_from_starting_histories():
    a, b, c = make_world(SMALL, 1), make_world(SMALL, 1), make_world(SMALL, 2)
    assert np.array_equal(a.affinity, b.affinity) and not np.array_equal(a.affinity, c.affinity)
    for u, history in enumerate(a.histories):
        started = set(a.item_interest[history.items].tolist())
        assert not started & set(np.flatnonzero(a.hidden[u]).tolist())
        assert (a.affinity[u, a.hidden[u]] >= SMALL.like_low).all()
        assert a.hidden[u].sum() == SMALL.hidden_interests


def test_runs_are_reproducible_and_the_novel_interest_policy_discovers_hidden_interests():
    world = make_world(SMALL, 3)
    exploit = simulate(world, None, 0.0, seed=9)
    assert np.array_equal(exploit.clicks_per_round, simulate(world, None, 0.0, seed=9).clicks_per_round)
    assert exploit.explore_share == 0.0

    def novel(fill="slots"):
        transitions = InterestTransitions.fit(world.histories, world.taxonomy.membership)
        return NovelInterest(world.taxonomy, transitions, world.vectors, NovelInterestConfig(fill=fill))

    explored = simulate(world, novel(), 0.3, seed=9)
    assert explored.discovered > exploit.discovered + 0.5
    assert 0.0 < explored.explore_share <= 0.3
    # The by-score fill only lets in new-interest items the model nearly ranks: fewer, but some.
    by_score = simulate(world, novel("by-score"), 0.3, seed=9)
    assert exploit.discovered < by_score.discovered < explored.discovered
    assert explored.cumulative_clicks == simulate(world, novel(), 0.3, seed=9).cumulative_clicks
