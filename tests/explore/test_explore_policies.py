"""Exploration policies on tiny hand-built catalogues with known answers, and against plain references."""

from __future__ import annotations

import json

import numpy as np
import pytest

from penchant.data.dataset import History
from penchant.errors import InputError
from penchant.explore import (
    Bandit,
    BanditState,
    Calibrated,
    Candidates,
    Diversity,
    InterestTransitions,
    ItemVectors,
    NovelInterest,
    NovelInterestConfig,
    UserContext,
    interest_distribution,
)
from penchant.interests.taxonomy import Taxonomy


def taxonomy_of(interest_of_item: list[int], n_interests: int) -> Taxonomy:
    membership = np.zeros((len(interest_of_item), n_interests), dtype=np.float32)
    membership[np.arange(len(interest_of_item)), interest_of_item] = 1.0
    return Taxonomy(names=[f"t{j}" for j in range(n_interests)], membership=membership)


def user(items: list[int], user_id: str = "u") -> UserContext:
    return UserContext(
        History(np.array(items, dtype=np.int64), np.arange(len(items), dtype=np.float64)), user_id
    )


def descending(items: list[int]) -> Candidates:
    return Candidates(np.array(items, dtype=np.int64), np.linspace(1.0, 0.0, len(items)))


# 12 items: 0-3 interest 0, 4-7 interest 1, 8-11 interest 2.
TAX = taxonomy_of([0] * 4 + [1] * 4 + [2] * 4, 3)
RNG = np.random.default_rng(7)
VECTORS = ItemVectors.from_array(RNG.normal(size=(12, 5)))


def all_policies():
    histories = [
        History(np.array([0, 1, 4, 5]), np.arange(4.0)),
        History(np.array([0, 8, 9]), np.arange(3.0)),
    ]
    transitions = InterestTransitions.fit(histories, TAX.membership)
    return [
        Diversity(TAX, VECTORS),
        Calibrated(TAX),
        NovelInterest(TAX, transitions, VECTORS),  # the by-score fill
        NovelInterest(TAX, transitions, VECTORS, NovelInterestConfig(fill="slots")),
        Bandit(TAX),
    ]


@pytest.mark.parametrize("policy", all_policies(), ids=lambda p: p.name)
def test_knob_zero_is_the_models_own_ranking(policy):
    candidates = descending([3, 9, 5, 0, 11, 6, 1, 8])
    slate = policy.rerank(user([0, 1, 2]), candidates, 5, 0.0)
    assert slate.items.tolist() == [3, 9, 5, 0, 11]
    assert slate.roles() == ["exploit"] * 5
    assert slate.interests.tolist() == [0, 2, 1, 0, 2]


@pytest.mark.parametrize("policy", all_policies(), ids=lambda p: p.name)
def test_every_knob_gives_k_distinct_candidates_with_roles(policy):
    candidates = descending([3, 9, 5, 0, 11, 6, 1, 8, 2, 4])
    for explore in (0.0, 0.3, 0.7, 1.0):
        slate = policy.rerank(user([0, 1, 2]), candidates, 6, explore)
        assert len(slate.items) == 6 and len(set(slate.items.tolist())) == 6
        assert set(slate.items.tolist()) <= set(candidates.items.tolist())
        model_top = set(candidates.items[:6].tolist())
        assert [i not in model_top for i in slate.items] == slate.explores.tolist()
        assert ((slate.interests >= 0) & (slate.interests < 3)).all()


@pytest.mark.parametrize("explore", [-0.1, 1.5])
def test_knob_outside_unit_interval_is_refused(explore):
    with pytest.raises(InputError, match="explore"):
        Calibrated(TAX).rerank(user([0]), descending([0, 1, 2]), 2, explore)


def mmr_reference(rel, sim, k, lam):
    chosen = []
    for _ in range(k):
        best, best_value = None, -np.inf
        for i in range(len(rel)):
            if i in chosen:
                continue
            penalty = max((sim[i][j] for j in chosen), default=0.0)
            value = lam * rel[i] - (1 - lam) * penalty
            if value > best_value:
                best, best_value = i, value
        chosen.append(best)
    return chosen


@pytest.mark.parametrize("explore", [0.2, 0.5, 0.9])
def test_diversity_matches_a_plain_mmr(explore):
    rng = np.random.default_rng(3)
    vectors = ItemVectors.from_array(rng.normal(size=(12, 4)))
    scores = np.sort(rng.random(12))[::-1]
    candidates = Candidates(rng.permutation(12), scores)
    rel = (scores - scores.min()) / (scores.max() - scores.min())
    sim = vectors.similarity(candidates.items)
    expected = candidates.items[mmr_reference(rel, sim, 6, 1 - explore)]
    slate = Diversity(TAX, vectors).rerank(user([0]), candidates, 6, explore)
    assert slate.items.tolist() == expected.tolist()


def test_diversity_skips_a_duplicate_of_what_is_already_chosen():
    vectors = np.eye(12)
    vectors[1] = vectors[0]  # item 1 is item 0 again
    slate = Diversity(TAX, ItemVectors.from_array(vectors)).rerank(
        user([0]), descending([0, 1, 2, 3]), 2, 0.6
    )
    assert slate.items.tolist() == [0, 2]
    assert slate.roles() == ["exploit", "explore"]


def steck_reference(rel, membership, p, k, lam, alpha=0.01):
    chosen = []
    for _ in range(k):
        best, best_value = None, -np.inf
        for i in range(len(rel)):
            if i in chosen:
                continue
            mass = sum(membership[j] for j in chosen + [i])
            q = mass / mass.sum()
            q = (1 - alpha) * q + alpha * p
            kl = sum(p[g] * np.log(p[g] / q[g]) for g in range(len(p)) if p[g] > 0)
            value = (1 - lam) * sum(rel[j] for j in chosen + [i]) - lam * kl
            if value > best_value:
                best, best_value = i, value
        chosen.append(best)
    return chosen


@pytest.mark.parametrize("explore", [0.3, 0.8])
def test_calibrated_matches_steck_greedy_reference(explore):
    rng = np.random.default_rng(5)
    candidates = Candidates(rng.permutation(12), np.sort(rng.random(12))[::-1])
    history = [0, 1, 4, 8, 9, 10]
    p = TAX.rows(history).sum(axis=0) / len(history)
    rel = (candidates.scores - candidates.scores.min()) / np.ptp(candidates.scores)
    expected = candidates.items[steck_reference(rel, TAX.rows(candidates.items), p, 6, explore)]
    slate = Calibrated(TAX).rerank(user(history), candidates, 6, explore)
    assert slate.items.tolist() == expected.tolist()


def test_calibrated_at_full_strength_mirrors_a_half_and_half_user():
    candidates = descending([0, 1, 2, 3, 4, 5, 6, 7])  # all of interest 0 first
    slate = Calibrated(TAX).rerank(user([0, 1, 4, 5]), candidates, 4, 1.0)
    assert sorted(TAX.primary()[slate.items].tolist()) == [0, 0, 1, 1]


def test_novel_interest_fills_the_last_slots_from_the_predicted_new_interest():
    # Across users, interest 1 always comes new after interest 0; interest 2 never does.
    histories = [History(np.array([0, 1, 2, 4, 5]), np.arange(5.0)) for _ in range(5)]
    transitions = InterestTransitions.fit(histories, TAX.membership)
    # Interest 1 is also the semantic neighbour of interest 0; interest 2 is its opposite.
    vectors = ItemVectors.from_array(np.repeat([[1.0, 0.0], [0.9, 0.44], [-1.0, 0.0]], 4, axis=0))
    policy = NovelInterest(TAX, transitions, vectors, NovelInterestConfig(fill="slots"))
    candidates = descending([0, 1, 2, 3, 8, 9, 6, 10, 7, 4, 5, 11])
    slate = policy.rerank(user([0, 1]), candidates, 5, 0.4)  # 2 of 5 slots explore
    assert slate.items.tolist() == [0, 1, 2, 6, 7]  # model's best interest-1 items, in model order
    assert slate.roles() == ["exploit"] * 3 + ["explore"] * 2
    assert slate.interests.tolist() == [0, 0, 0, 1, 1]


def test_each_of_the_three_signals_can_choose_the_new_interest():
    """Transitions say interest 1, the interests' text says 2 (its description is close to the
    user's interest 0), the model puts its mass on 2 as well but ranks its items below interest 1's
    at the top. Each weight alone picks its own signal's interest."""
    histories = [History(np.array([0, 1, 2, 4, 5]), np.arange(5.0)) for _ in range(5)]
    transitions = InterestTransitions.fit(histories, TAX.membership)
    text = np.array([[1.0, 0.0], [-1.0, 0.0], [0.95, 0.3]])  # interest 2 reads like interest 0
    scores = np.array([1.0, 0.99, 0.98, 0.2, 0.9, 0.9, 0.9, 0.9, 0.1])
    candidates = Candidates(np.array([0, 1, 2, 4, 8, 9, 10, 11, 5]), scores)

    def explored(transition, semantic, model):
        config = NovelInterestConfig(transition, semantic, model, fill="slots")
        policy = NovelInterest(TAX, transitions, VECTORS, config, interest_vectors=text)
        return policy.rerank(user([0, 1]), candidates, 5, 0.4).interests[-2:].tolist()

    assert explored(1.0, 0.0, 0.0) == [1, 1]
    assert explored(0.0, 1.0, 0.0) == [2, 2]
    assert explored(0.0, 0.0, 1.0) == [2, 2]
    mass = NovelInterest(TAX, transitions, VECTORS, NovelInterestConfig(0, 0, 1)).interest_scores(
        interest_distribution(TAX.membership, np.array([0, 1])), candidates
    )
    assert mass[0] == 0 and mass[2] > mass[1] > 0  # the user's own interest is never "new"


def test_a_language_model_can_propose_the_new_interest_and_its_failure_falls_back(chat_url):
    """With an endpoint that answers ["t2"], the explore slots go to interest 2 although the
    transitions say 1; an answer naming no candidate (or an interest the user already has) falls
    back to the transitions and says why. Answers are cached per user and history."""
    from penchant.explore.policies import LLMInterestProposer
    from penchant.interests import LLMSettings
    from tests.llm import FakeChat

    histories = [History(np.array([0, 1, 2, 4, 5]), np.arange(5.0)) for _ in range(5)]
    transitions = InterestTransitions.fit(histories, TAX.membership)
    candidates = descending([0, 1, 2, 3, 8, 9, 6, 10, 7, 4, 5, 11])

    def slate_with(model: str):
        proposer = LLMInterestProposer(TAX, LLMSettings(url=chat_url, model=model, timeout_s=5))
        config = NovelInterestConfig(1.0, 0.0, fill="slots")
        policy = NovelInterest(TAX, transitions, VECTORS, config, proposer=proposer)
        return policy.rerank(user([0, 1], "a"), candidates, 5, 0.4), proposer, policy

    slate, proposer, policy = slate_with('say:["t2"]')
    assert slate.interests.tolist()[-2:] == [2, 2] and slate.items.tolist()[-2:] == [8, 9]
    sent = FakeChat.received[-1]["body"]["messages"][1]["content"]
    assert '"candidates": ["t1", "t2"]' in sent  # only interests new to the user are offered
    calls = len(FakeChat.received)
    policy.rerank(user([0, 1], "a"), candidates, 5, 0.4)
    assert len(FakeChat.received) == calls  # cached for the same user and history
    for answer in ('say:["t0"]', "say:no idea", "broken"):
        slate, proposer, _ = slate_with(answer)
        assert slate.interests.tolist()[-2:] == [1, 1] and proposer.last_error

    def by_score_with(model: str) -> set[int]:
        """The interests of the items the by-score fill brings in (the same bonus for every new one)."""
        proposer = LLMInterestProposer(TAX, LLMSettings(url=chat_url, model=model, timeout_s=5))
        policy = NovelInterest(
            TAX, transitions, VECTORS, NovelInterestConfig(signal_share=0.0), proposer=proposer
        )
        slate = policy.rerank(user([0, 1], "b"), candidates, 5, 0.5)
        return {int(j) for j, e in zip(slate.interests, slate.explores, strict=True) if e}

    assert by_score_with('say:["t2"]') == {2}  # only the proposed interest gets the bonus
    assert by_score_with("broken") == {1, 2}


def test_novel_interest_gives_slots_back_when_the_user_has_every_interest():
    transitions = InterestTransitions.fit([History(np.array([0, 4, 8]), np.arange(3.0))], TAX.membership)
    policy = NovelInterest(TAX, transitions, VECTORS)
    candidates = descending([0, 4, 8, 1, 5, 9])
    slate = policy.rerank(user([0, 4, 8]), candidates, 4, 1.0)
    assert slate.items.tolist() == [0, 4, 8, 1]


def by_score_knob(scores: np.ndarray, bonus: float) -> float:
    """The knob at which the by-score fill adds ``bonus`` to a new-interest item's score."""
    from penchant.explore.policies import BONUS_SPREAD

    return bonus / (BONUS_SPREAD * scores.std())


def test_the_by_score_fill_lets_in_new_interest_items_the_knob_lifts_past_the_cut():
    """The user knows interest 0. Item 4 (interests 0 and 1: a share of a new interest counts in
    full) sits 0.15 below the cut, item 8 (interest 2) 0.6 below, item 3 (the user's own interest 0)
    0.1 below. A bonus under 0.15 changes nothing; one over it lets item 4 in, at the end of the slate;
    one over 0.7 lets item 8 in too; item 3 never gets a bonus."""
    membership = TAX.membership.toarray()
    membership[4] = [0.5, 0.5, 0.0]
    tax = Taxonomy(names=TAX.names, membership=membership)
    transitions = InterestTransitions.fit([History(np.array([0, 4, 8]), np.arange(3.0))], membership)
    policy = NovelInterest(tax, transitions, VECTORS, NovelInterestConfig(fill="by-score", signal_share=0.0))
    scores = np.array([1.0, 0.9, 0.8, 0.7, 0.65, 0.2, 0.1])
    candidates = Candidates(np.array([0, 1, 2, 3, 4, 8, 5]), scores)

    def slate(bonus):
        return policy.rerank(user([0, 1]), candidates, 3, by_score_knob(scores, bonus))

    assert slate(0.1).items.tolist() == [0, 1, 2] and slate(0.1).roles() == ["exploit"] * 3
    lifted = slate(0.3)
    assert lifted.items.tolist() == [0, 1, 4]
    assert lifted.roles() == ["exploit", "exploit", "explore"] and lifted.interests.tolist() == [0, 0, 1]
    both = slate(0.75)
    assert both.items.tolist() == [0, 4, 8] and both.interests.tolist() == [0, 1, 2]


def test_the_by_score_fill_gives_the_bonus_by_the_signals_as_signal_share_says():
    """Transitions say interest 1 comes next, never interest 2. With the whole bonus following the
    signals, interest 2's item never gets in; with none of it, it does."""
    histories = [History(np.array([0, 1, 2, 4, 5]), np.arange(5.0)) for _ in range(5)]
    transitions = InterestTransitions.fit(histories, TAX.membership)
    scores = np.array([1.0, 0.9, 0.8, 0.75, 0.7])
    candidates = Candidates(np.array([0, 1, 2, 8, 4]), scores)

    def slate(share):
        config = NovelInterestConfig(1.0, 0.0, fill="by-score", signal_share=share)
        policy = NovelInterest(TAX, transitions, VECTORS, config)
        return policy.rerank(user([0, 1]), candidates, 3, by_score_knob(scores, 0.3)).items.tolist()

    assert slate(1.0) == [0, 1, 4]
    assert slate(0.0) == [0, 8, 4]


@pytest.mark.parametrize("setting", [{"fill": "random"}, {"fill": "by-score", "signal_share": 1.5}])
def test_novel_interest_settings_out_of_range_are_refused(setting):
    with pytest.raises(InputError, match="novel-interest"):
        NovelInterestConfig(**setting)


@pytest.mark.parametrize("fill", ["by-score", "slots"])
def test_novel_interest_explores_nothing_for_a_user_with_no_interests_yet(fill):
    """A user with no history has no interests, so none is new: the model's own top items, even where
    the best of them (item 0 here) belongs to no interest at all."""
    membership = TAX.membership.toarray()
    membership[0] = 0.0
    tax = Taxonomy(names=TAX.names, membership=membership)
    transitions = InterestTransitions.fit([History(np.array([1, 4, 8]), np.arange(3.0))], membership)
    policy = NovelInterest(tax, transitions, VECTORS, NovelInterestConfig(fill=fill, signal_share=0.0))
    slate = policy.rerank(user([]), descending([0, 1, 2, 3, 8, 4]), 3, 1.0)
    assert slate.items.tolist() == [0, 1, 2] and slate.roles() == ["exploit"] * 3


def test_bandit_state_round_trips_and_replays_the_same_slate(tmp_path):
    candidates = descending([0, 4, 8, 1, 5, 9, 2, 6])
    first = Bandit(TAX)
    first.rerank(user([0, 1], "a"), candidates, 4, 0.5)
    first.update("a", np.array([8, 9]), np.array([True, True]))
    first.state.save(tmp_path / "bandit.json")
    loaded = BanditState.load(tmp_path / "bandit.json")
    assert loaded == first.state
    assert json.loads((tmp_path / "bandit.json").read_text())["interests"] == ["t0", "t1", "t2"]
    a, b = Bandit(TAX, state=loaded), Bandit(TAX, state=BanditState.from_dict(first.state.to_dict()))
    assert (
        a.rerank(user([0, 1], "a"), candidates, 4, 0.7).items.tolist()
        == b.rerank(user([0, 1], "a"), candidates, 4, 0.7).items.tolist()
    )


def test_bandit_update_credits_clicks_and_misses_by_interest():
    policy = Bandit(TAX)
    policy.rerank(user([0], "a"), descending([0, 4, 8]), 3, 0.5)
    alpha, beta = np.array(policy.state.alpha["a"]), np.array(policy.state.beta["a"])
    policy.update("a", np.array([8, 9, 0]), np.array([True, True, False]))
    assert np.allclose(np.array(policy.state.alpha["a"]) - alpha, [0, 0, 2])
    assert np.allclose(np.array(policy.state.beta["a"]) - beta, [1, 0, 0])


def test_bandit_learns_an_interest_the_model_ranks_last():
    policy = Bandit(TAX)
    candidates = descending([0, 1, 2, 3, 4, 5, 8, 9])  # interest 2 at the bottom
    policy.rerank(user([0, 1], "a"), candidates, 3, 1.0)
    for _ in range(30):
        policy.update("a", np.array([8, 0, 4]), np.array([True, False, False]))
    slate = policy.rerank(user([0, 1], "a"), candidates, 3, 1.0)
    assert TAX.primary()[slate.items[:2]].tolist() == [2, 2]
    assert slate.roles()[:2] == ["explore", "explore"]
    assert slate.interests[:2].tolist() == [2, 2]


def test_bandit_propensities_are_how_often_its_draws_show_each_item():
    """The propensity of a shown item is the share of the posterior's slates that show it at that
    position: checked against 4,000 slates drawn by rerank itself. Without exploring it is 1."""
    policy = Bandit(TAX)
    candidates = descending([0, 4, 8, 1, 5, 9, 2, 6])
    context = user([0, 1], "a")
    policy.state.alpha["a"], policy.state.beta["a"] = [3.0, 2.0, 1.5], [1.0, 2.0, 2.5]
    counts = np.zeros((12, 3))
    for _ in range(4000):
        counts[policy.rerank(context, candidates, 3, 0.8).items, [0, 1, 2]] += 1
    slate = policy.rerank(context, candidates, 3, 0.8)
    got = policy.propensities(context, candidates, slate, 0.8, draws=4000)
    assert got == pytest.approx(counts[slate.items, [0, 1, 2]] / 4000, abs=0.03)
    assert got.min() < 0.9  # the draws vary the slate: not every shown item is certain
    plain = policy.rerank(context, candidates, 3, 0.0)
    assert policy.propensities(context, candidates, plain, 0.0).tolist() == [1.0, 1.0, 1.0]


def test_bandit_refuses_state_of_another_taxonomy():
    with pytest.raises(InputError, match="different set of interests"):
        Bandit(TAX, state=BanditState(interests=["x", "y", "z"]))


def test_policies_are_assembled_in_one_place(cycle_dataset, monkeypatch):
    from penchant.explore import POLICY_NAMES, make_policies, make_policy
    from penchant.models import Popularity

    model = Popularity().fit(cycle_dataset, cycle_dataset.events, progress=False)
    membership = np.eye(4, dtype=np.float32)[np.arange(cycle_dataset.n_items) % 4]
    taxonomy = Taxonomy(names=["a", "b", "c", "d"], membership=membership)
    histories = list(cycle_dataset.histories(cycle_dataset.events).values())
    monkeypatch.delenv("PENCHANT_LLM_URL", raising=False)
    built = make_policies(model, taxonomy, histories)
    assert list(built) == list(POLICY_NAMES)
    assert [type(p) for p in built.values()] == [Diversity, Calibrated, NovelInterest, Bandit]
    assert built["novel-interest"].proposer is None
    monkeypatch.setenv("PENCHANT_LLM_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("PENCHANT_LLM_MODEL", "m")
    assert make_policies(model, taxonomy, histories)["novel-interest"].proposer is not None
    assert list(make_policies(model, taxonomy, histories, ["calibrated"])) == ["calibrated"]
    with pytest.raises(InputError, match="unknown policy 'greedy'.*diversity, calibrated"):
        make_policies(model, taxonomy, histories, ["calibrated", "greedy"])
    with pytest.raises(ValueError, match="needs item vectors"):
        make_policy("novel-interest", taxonomy)


def test_novel_interest_grown_by_items_is_the_policy_built_on_the_grown_catalogue():
    """A served catalogue that gains an item updates the interests' centroids with its vector (no pass
    over every item); the closeness is then what a policy built on the grown catalogue has."""
    histories = [
        History(np.array([0, 1, 4, 5]), np.arange(4.0)),
        History(np.array([0, 8, 9]), np.arange(3.0)),
    ]
    transitions = InterestTransitions.fit(histories, TAX.membership)
    policy = NovelInterest(TAX, transitions, VECTORS)
    new = np.array([[0.0, 0.0, 1.0], [0.5, 0.5, 0.0]], dtype=np.float32)  # a t2 item, a t0+t1 item
    taxonomy = TAX.with_items(new)
    vectors = VECTORS.appended(RNG.normal(size=(2, 5)) * 10)

    grown = policy.with_items(taxonomy, vectors, 2)

    rebuilt = NovelInterest(taxonomy, transitions, vectors)
    np.testing.assert_allclose(grown.closeness, rebuilt.closeness, rtol=1e-5, atol=1e-6)
    assert not np.allclose(grown.closeness, policy.closeness)  # the new vectors moved the centroids
    assert grown.taxonomy is taxonomy and policy.taxonomy is TAX
