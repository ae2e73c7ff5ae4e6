"""Leave-one-out and temporal splits on tiny hand-made datasets with known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from penchant.data import Dataset
from penchant.data.split import EvalSet, Protocol, one_event_back, split
from penchant.errors import InputError


def _dataset(rows: list[tuple[str, str, float]]) -> Dataset:
    return Dataset.from_frames(pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]))


def _cases(dataset: Dataset, evalset: EvalSet) -> dict[str, tuple[list[str], list[str]]]:
    """user -> (history items, target items), all as external IDs."""
    items = dataset.item_map.ids
    return {
        dataset.user_map.ids[user]: ([items[i] for i in history.items], [items[i] for i in targets])
        for user, history, targets in zip(evalset.users, evalset.histories, evalset.targets, strict=True)
    }


def _train(dataset: Dataset, train: pd.DataFrame) -> dict[str, list[str]]:
    return {user: group["item_id"].tolist() for user, group in train.groupby("user_id", sort=True)}


# ---------------------------------------------------------------------------------------- leave-one-out

LOO_ROWS = [
    # a: four events, given out of time order
    ("a", "i3", 3), ("a", "i1", 1), ("a", "i4", 4), ("a", "i2", 2),
    # b: two events -> test only
    ("b", "i2", 10), ("b", "i1", 20),
    # c: one event -> training only
    ("c", "i3", 5),
    # d: a tie at time 7; input order decides that i1 is last
    ("d", "i3", 1), ("d", "i2", 7), ("d", "i1", 7),
]  # fmt: skip


@pytest.fixture
def loo() -> tuple[Dataset, object]:
    dataset = _dataset(LOO_ROWS)
    return dataset, split(dataset, Protocol("leave-one-out"))


def test_leave_one_out_test_targets_and_histories(loo):
    dataset, result = loo

    assert _cases(dataset, result.test) == {
        "a": (["i1", "i2", "i3"], ["i4"]),
        "b": (["i2"], ["i1"]),
        "d": (["i3", "i2"], ["i1"]),
    }


def test_leave_one_out_validation_targets_and_histories(loo):
    dataset, result = loo

    assert _cases(dataset, result.validation) == {
        "a": (["i1", "i2"], ["i3"]),
        "d": (["i3"], ["i2"]),
    }


def test_leave_one_out_training_events(loo):
    dataset, result = loo

    assert _train(dataset, result.train) == {"a": ["i1", "i2"], "b": ["i2"], "c": ["i3"], "d": ["i3"]}
    assert set(result.train.columns) == set(dataset.events.columns)


def test_leave_one_out_history_times_match_items(loo):
    dataset, result = loo

    a = dataset.user_map.index("a")
    position = list(result.test.users).index(a)
    np.testing.assert_array_equal(result.test.histories[position].times, [1.0, 2.0, 3.0])


def test_leave_one_out_notes_short_users(loo):
    _, result = loo

    assert result.notes == ["2 users with fewer than 3 events have no validation (or test) target"]


def test_leave_one_out_evalset_types(loo):
    _, result = loo

    assert len(result.test) == 3
    assert result.test.users.dtype == np.int64
    assert all(t.dtype == np.int64 and len(t) == 1 for t in result.test.targets)


def test_leave_one_out_is_deterministic():
    first = split(_dataset(LOO_ROWS))
    second = split(_dataset(LOO_ROWS))

    np.testing.assert_array_equal(first.test.users, second.test.users)
    for a, b in zip(first.test.targets, second.test.targets, strict=True):
        np.testing.assert_array_equal(a, b)
    pd.testing.assert_frame_equal(first.train, second.train)


def test_a_sample_of_cases_keeps_each_users_history_and_target_together(loo):
    dataset, result = loo
    everyone = _cases(dataset, result.test)

    two = result.test.sample(2)

    assert len(two) == 2
    assert list(two.users) == sorted(two.users)  # in the cases' own order
    assert _cases(dataset, two) == {user: everyone[user] for user in _cases(dataset, two)}
    assert list(result.test.sample(2).users) == list(two.users)  # seeded
    assert result.test.sample(3) is result.test and result.test.sample(None) is result.test


def test_default_protocol_is_leave_one_out(loo):
    dataset, result = loo

    assert split(dataset).protocol == Protocol() == result.protocol
    assert Protocol().name == "leave-one-out"


def test_leave_one_out_before_test_adds_the_validation_events_and_no_test_event(loo):
    dataset, result = loo

    # a's i3 and d's i2 (validation targets) join the training events; no test target does.
    assert _train(dataset, result.before_test) == {
        "a": ["i1", "i2", "i3"],
        "b": ["i2"],
        "c": ["i3"],
        "d": ["i3", "i2"],
    }


def test_one_event_back_tests_on_the_real_validation_targets(loo):
    dataset, result = loo
    shifted = one_event_back(dataset)
    # Each user's last event is gone (c's only event too); nothing else is.
    assert len(shifted.events) == len(dataset.events) - 4
    back = split(shifted)
    # What the shifted protocol tests on is exactly what the real one validates on, same histories.
    assert _cases(shifted, back.test) == _cases(dataset, result.validation)
    assert set(shifted.item_map.ids) == set(dataset.item_map.ids)  # the catalogue is kept whole


# ---------------------------------------------------------------------------------------- temporal

# Times 1..12 with test_fraction 0.25: the test window starts at the 75% quantile, 1 + 0.75 * 11 = 9.25,
# the validation window at the 50% quantile, 1 + 0.5 * 11 = 6.5.
TEMPORAL_ROWS = [
    ("u1", "i1", 1), ("u1", "i2", 2), ("u1", "i3", 7), ("u1", "i2", 9), ("u1", "i4", 10), ("u1", "i4", 11),
    ("u2", "i4", 3), ("u2", "i5", 4), ("u2", "i1", 8),
    ("u3", "i3", 5), ("u3", "i1", 6),
    ("u4", "i5", 12),  # only in the test window: no history, so not evaluated
]  # fmt: skip


@pytest.fixture
def temporal() -> tuple[Dataset, object]:
    dataset = _dataset(TEMPORAL_ROWS)
    return dataset, split(dataset, Protocol("temporal", test_fraction=0.25))


def test_temporal_test_cases(temporal):
    dataset, result = temporal

    # Targets are distinct (i4 twice counts once); the history includes the validation window.
    assert _cases(dataset, result.test) == {"u1": (["i1", "i2", "i3", "i2"], ["i4"])}


def test_temporal_validation_cases(temporal):
    dataset, result = temporal

    # Targets keep the order of first appearance in the window.
    assert _cases(dataset, result.validation) == {
        "u1": (["i1", "i2"], ["i3", "i2"]),
        "u2": (["i4", "i5"], ["i1"]),
    }


def test_temporal_training_events_are_before_the_validation_window(temporal):
    dataset, result = temporal

    assert sorted(result.train["timestamp"]) == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    assert _train(dataset, result.train) == {"u1": ["i1", "i2"], "u2": ["i4", "i5"], "u3": ["i3", "i1"]}


def test_temporal_before_test_is_everything_before_the_test_window(temporal):
    dataset, result = temporal

    assert sorted(result.before_test["timestamp"]) == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]


def test_temporal_notes_state_the_windows(temporal):
    _, result = temporal

    assert result.notes[0].startswith("validation window starts at")
    assert any("not evaluated" in note for note in result.notes)


def test_temporal_skips_users_without_history():
    dataset = _dataset([("old", "a", t) for t in range(1, 9)] + [("new", "b", 9), ("new", "c", 10)])

    result = split(dataset, Protocol("temporal", test_fraction=0.2))

    assert "new" not in _cases(dataset, result.test)
    assert "old" not in _cases(dataset, result.test)  # no events after the cut


# ---------------------------------------------------------------------------------------- Protocol


def test_protocol_rejects_unknown_names():
    with pytest.raises(InputError) as info:
        Protocol("random")

    message = str(info.value)
    assert "'random'" in message
    assert "leave-one-out" in message
    assert "temporal" in message


@pytest.mark.parametrize("fraction", [0.0, 0.5, -0.1, 1.0])
def test_protocol_rejects_bad_test_fraction(fraction):
    with pytest.raises(InputError, match="test_fraction"):
        Protocol("temporal", test_fraction=fraction)


@pytest.mark.parametrize("exclude_seen", [True, False])
def test_describe_includes_exclude_seen(exclude_seen):
    loo = Protocol("leave-one-out").describe(exclude_seen=exclude_seen)
    temporal = Protocol("temporal", test_fraction=0.2).describe(exclude_seen=exclude_seen)

    assert loo["exclude_seen"] is exclude_seen
    assert loo["name"] == "leave-one-out"
    assert loo["ranking"] == "full catalogue"
    assert "last event" in loo["description"]
    assert "test_fraction" not in loo
    assert temporal["exclude_seen"] is exclude_seen
    assert temporal["test_fraction"] == 0.2
    assert "20%" in temporal["description"]


def test_protocol_to_dict_round_trips():
    protocol = Protocol("temporal", test_fraction=0.2)

    assert Protocol(**protocol.to_dict()) == protocol


def test_next_n_tests_each_users_last_block_and_validates_on_the_one_before():
    # u1: 7 events (test: the last 2, distinct; validation: the 2 before; train: the first 3),
    # u2: 4 events (test: 2, no validation: not more than 2 blocks), u3: 2 events (not tested).
    rows = [("u1", f"i{i}", float(t)) for t, i in enumerate([1, 2, 3, 4, 5, 6, 6])]
    rows += [("u2", f"i{i}", 10.0 + t) for t, i in enumerate([7, 8, 9, 1])]
    rows += [("u3", "i1", 20.0), ("u3", "i2", 21.0)]
    dataset = _dataset(rows)
    result = split(dataset, Protocol(name="next-n", next_n=2))
    assert _cases(dataset, result.test) == {
        "u1": (["i1", "i2", "i3", "i4", "i5"], ["i6"]),
        "u2": (["i7", "i8"], ["i9", "i1"]),
    }
    assert _cases(dataset, result.validation) == {"u1": (["i1", "i2", "i3"], ["i4", "i5"])}
    assert _train(dataset, result.train) == {"u1": ["i1", "i2", "i3"], "u2": ["i7", "i8"], "u3": ["i1", "i2"]}
    assert len(result.before_test) == len(rows) - 4  # everything but the test blocks
    assert result.notes == ["1 users with no more than 2 events have no test targets"]
    assert "last 2 events" in result.protocol.describe(exclude_seen=True)["description"]
    with pytest.raises(InputError, match="next_n must be at least 1"):
        Protocol(name="next-n", next_n=0)
