"""Item-to-item transition counts: what they count, the distribution they give, erasure, saving,
and how the transformer weighs them in."""

from __future__ import annotations

import numpy as np
import pytest

from penchant.data.dataset import History
from penchant.models import InterestTransformer
from penchant.models.transformer import TransformerConfig
from penchant.models.transitions import FLOOR, ItemTransitions
from penchant.runs import load_run


def history(items, user=None) -> History:
    items = np.asarray(items, dtype=np.int64)
    return History(items, np.arange(len(items), dtype=np.float64), user)


def test_pairs_within_three_events_are_counted_by_distance():
    t = ItemTransitions.fit([history([0, 1, 2, 3], "a")], 5)
    c = t.counts.toarray()
    assert c[0, 1] == 1.0 and c[0, 2] == 0.5 and c[0, 3] == pytest.approx(1 / 3)
    assert c[1, 0] == 0.0 and c[3].sum() == 0.0  # order matters; nothing follows the last item
    assert t.counted == {"a": 4}


def test_the_distribution_follows_the_last_items_latest_first():
    t = ItemTransitions.fit([history([0, 1], "a"), history([0, 1], "b"), history([2, 3], "c")], 5)
    p = t.probabilities([history([2, 0]), history([])]).toarray()
    # From item 0 (latest, weight 2/3): item 1, 2 of 2 + 1 smoothing; from item 2 (1/3): item 3, 1/2.
    assert p[0, 1] == pytest.approx(2 / 3 * 2 / 3) and p[0, 3] == pytest.approx(1 / 3 * 1 / 2)
    assert p[0].sum() < 1.0 and p[1].sum() == 0.0  # smoothing keeps mass back; no history, no row
    extra, base = t.log_boost([history([2, 0])], 1.5)
    assert base == pytest.approx(1.5 * np.log(FLOOR))
    assert extra.toarray()[0, 1] == pytest.approx(1.5 * np.log(4 / 9 + FLOOR) - base)


def test_forgetting_a_user_leaves_the_counts_of_everyone_else_exactly():
    a, b = history([0, 1, 2, 4], "a"), history([1, 2, 3], "b")
    t = ItemTransitions.fit([a, b], 5)
    assert t.forget("a", history([0, 1, 2, 4, 3], "a"))  # events observed since come after the counted
    np.testing.assert_allclose(t.counts.toarray(), ItemTransitions.fit([b], 5).counts.toarray(), atol=1e-12)
    assert "a" not in t.counted and t.counts[0].nnz == 0 and t.counts[:, 4].nnz == 0
    assert not t.forget("a", a)


def test_saved_and_loaded_and_grown(tmp_path):
    t = ItemTransitions.fit([history([0, 1, 2], "a"), history([2, 1], "b")], 3)
    t.save(tmp_path / "t.npz")
    back = ItemTransitions.load(tmp_path / "t.npz")
    np.testing.assert_array_equal(back.counts.toarray(), t.counts.toarray())
    assert back.counted == t.counted
    back.probabilities([history([0])])  # caches the normalised rows, which grow with the counts
    grown = back.grown(5)
    assert grown.counts.shape == (5, 5) and grown.probabilities([history([4])]).nnz == 0
    np.testing.assert_array_equal(
        grown.probabilities([history([0, 2])]).toarray()[:, :3],
        back.probabilities([history([0, 2])]).toarray(),
    )
    assert back.counts.shape == (3, 3) and len(back.seen) == 3  # the counts grown from stay as they were


class _Fitted(InterestTransformer):
    """Only what choosing the weight needs: the transformer's chooser on a stated setting."""

    def __init__(self, transitions):
        super().__init__(TransformerConfig(transitions=transitions))


def test_auto_takes_the_weight_validation_scores_best_and_zero_when_none_helps():
    model = _Fitted("auto")
    chosen = model._choose_transition_weight(lambda m: -abs(m.transition_weight - 1.0))
    assert model.transition_weight == 1.0 and chosen["chosen_by"] == "validation"
    assert chosen["validation"][1.0] == 0.0 and chosen["validation"][0.0] == -1.0
    model._choose_transition_weight(lambda m: 0.5)  # a tie: the counts add nothing
    assert model.transition_weight == 0.0
    fixed = _Fitted(0.75)
    assert fixed._choose_transition_weight(lambda m: 1 / 0) == {"weight": 0.75, "chosen_by": "setting"}


@pytest.mark.parametrize("bad", [-1, "often"])
def test_a_bad_weight_is_refused(bad):
    from penchant.errors import InputError

    with pytest.raises(InputError, match="transitions"):
        TransformerConfig(transitions=bad)


def test_a_trained_run_records_the_choice_and_erasure_takes_the_user_out(tmp_path, make_cycle_dataset):
    from penchant.data.split import Protocol
    from penchant.runs import erase_user, train_run

    config = TransformerConfig(dim=16, layers=1, max_len=10, max_epochs=3, threads=1, item_repr="id")
    run = train_run(
        make_cycle_dataset(n_users=30), InterestTransformer(config), tmp_path / "run", Protocol(), False
    )
    chosen = run.model.fit_stats.settings["transitions"]
    assert chosen["chosen_by"] == "validation" and set(chosen["validation"]) >= {0.0, 1.0}
    assert (tmp_path / "run" / "model" / "transitions.npz").exists()
    assert "u003" in run.model.transitions.counted
    erase_user(run, "u003")
    again = load_run(tmp_path / "run")
    assert "u003" not in again.model.transitions.counted
    assert b"u003" not in (tmp_path / "run" / "model" / "transitions.npz").read_bytes()


def test_items_the_counts_never_saw_take_the_models_own_probability():
    t = ItemTransitions.fit([history([0, 1, 2], "a")], 4)  # item 3 never seen: new or held out
    assert t.seen.tolist() == [True, True, True, False]
    logits = np.array([[1.0, 2.0, 0.5, 3.0]])
    p = np.exp(logits) / np.exp(logits).sum()
    np.testing.assert_allclose(t.unseen_boost(logits, 2.0), 2.0 * np.log(p[:, [3]] + FLOOR))
    assert t.grown(6).seen.tolist() == [True, True, True, False, False, False]


def test_a_text_scored_item_the_counts_never_saw_is_not_buried(tmp_path, make_cycle_dataset):
    # An item the counts never saw gets the model's own probability in place of the counts', not the
    # floor that buries it under every counted pair.
    from penchant.data.split import Protocol
    from penchant.runs import train_run

    config = TransformerConfig(
        dim=16, layers=1, max_len=10, max_epochs=2, threads=1, item_repr="id", transitions=5.0
    )
    run = train_run(
        make_cycle_dataset(n_users=30), InterestTransformer(config), tmp_path / "run", Protocol(), False
    )
    model = run.model
    h = next(iter(model.histories.values()))
    listed = model.transition_boost(h)[0]
    raw = model.score([h])[0]
    raw[listed] = -np.inf
    favourite = int(np.argmax(raw))  # the model's best among items without counted pairs
    model.transitions.seen[favourite] = False  # as if the counts had never seen it (new, held out)
    model.transition_weight = 5.0
    deferred = model.score([h])[0]
    weight = model.transition_weight
    model.transition_weight = 0.0
    logits = model.score([h])[0].astype(np.float64)
    model.transition_weight = weight
    p = np.exp(logits - logits.max())
    p /= p.sum()
    assert deferred[favourite] > deferred[np.setdiff1d(np.arange(len(deferred)), [favourite, *listed])].max()
    assert deferred[favourite] == pytest.approx(
        logits[favourite] + 5.0 * np.log(p[favourite] + FLOOR), rel=1e-4
    )
    # Each row of a batch is normalised by its own scores, as when scored alone.
    histories = list(model.histories.values())[:5]
    together = model.score(histories)
    for row, history in enumerate(histories):
        np.testing.assert_allclose(together[row], model.score([history])[0], rtol=1e-5, atol=1e-5)


def test_every_weight_is_validated_from_one_pass_as_each_would_be_alone(tmp_path, make_cycle_dataset):
    """score_each gives score's numbers under each weight, and validate.each validate's, so the
    weight chosen from one pass of the network is the one a pass per weight would choose."""
    from penchant.data.split import Protocol, split
    from penchant.models.validation import validator
    from penchant.runs import train_run

    config = TransformerConfig(dim=16, layers=1, max_len=10, max_epochs=2, threads=1, item_repr="id")
    dataset = make_cycle_dataset(n_users=30)
    run = train_run(dataset, InterestTransformer(config), tmp_path / "run", Protocol(), False)
    model = run.model
    model.transitions.seen[[1, 4]] = False  # items the counts never saw take the model's probability
    histories = [*list(model.histories.values())[:7], History.empty()]
    weights = (0.0, 0.5, 2.0)
    each = {}
    for _rows, weight, scores in model.score_each(histories, weights):
        each.setdefault(weight, []).append(scores)
    for weight in weights:
        model.transition_weight = weight
        np.testing.assert_allclose(np.vstack(each[weight]), model.score(histories), rtol=1e-5, atol=1e-5)
    validate = validator(split(dataset, Protocol()).validation)
    alone = {}
    for weight in weights:
        model.transition_weight = weight
        alone[weight] = validate(model)
    assert validate.each(model, weights) == pytest.approx(alone, abs=1e-6)
    assert len(set(alone.values())) > 1  # the weights do rank differently here
