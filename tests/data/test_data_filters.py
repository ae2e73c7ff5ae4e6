"""Which events count: the positive rule and k-core filtering, with known answers, and what the
cleaning report says about them."""

import pandas as pd
import pytest

from penchant.data import Dataset, Filters
from penchant.errors import InputError


def frame(rows):
    return pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "value", "event_type"])


# u1 and u2 share items a, b; u3 alone holds c; u4 has one event on a.
ROWS = [
    ("u1", "a", 1, 5.0, "view"), ("u1", "b", 2, 4.0, "purchase"), ("u1", "c", 3, 1.0, "view"),
    ("u2", "a", 1, 4.5, "view"), ("u2", "b", 2, 2.0, "purchase"),
    ("u3", "c", 1, 5.0, "view"), ("u3", "d", 2, 5.0, "view"),
    ("u4", "a", 1, 3.0, "view"),
]  # fmt: skip


def test_k_core_repeats_until_users_and_items_both_hold():
    # Round 1 drops u4 (1 event) and item d (1 event); then u3 has one event left and goes, which
    # leaves c with one event, which goes, ... until u1 and u2 over a and b remain.
    data = Dataset.from_frames(frame(ROWS), filters=Filters(min_user_events=2, min_item_events=2))
    kept = sorted(zip(data.events["user_id"], data.events["item_id"], strict=True))
    assert kept == [("u1", "a"), ("u1", "b"), ("u2", "a"), ("u2", "b")]
    assert set(data.item_map.ids) == {"a", "b"}  # no catalogue given: the items of the events kept
    assert any(
        line.startswith("k-core") and "dropped 4 events, 2 users, 2 items" in line
        for line in data.report.lines()
    )


@pytest.mark.parametrize(
    ("rule", "kept"),
    [
        ("value>=4", 5),
        ("value>4", 4),
        ("value<3", 2),
        ("event_type=purchase", 2),
        ("event_type!=purchase", 6),
    ],
)
def test_positive_rules_keep_what_they_say(rule, kept):
    data = Dataset.from_frames(frame(ROWS), filters=Filters(positive=rule))
    assert len(data.events) == kept
    assert f"positive events ({rule}): kept {kept}, dropped {len(ROWS) - kept}" in data.report.lines()


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        (dict(positive="rating>=4"), "cannot read 'rating>=4'"),
        (dict(positive="value>=high"), "expected a number"),
        (dict(positive="event_type>=view"), "event_type takes = or !="),
        (dict(min_user_events=-1), "--min-user-events"),
        (dict(min_item_events="5"), "--min-item-events"),
    ],
)
def test_bad_filters_are_refused_in_words(filters, message):
    with pytest.raises(InputError, match=message):
        Filters(**filters)


def test_a_rule_on_a_column_the_events_lack_says_which_option_gives_it():
    events = frame(ROWS).drop(columns=["value"])
    with pytest.raises(InputError, match="--value-col"):
        Dataset.from_frames(events, filters=Filters(positive="value>=4"))


def test_catalogue_items_dropped_by_k_core_stay_for_cold_start_and_a_mostly_idle_catalogue_warns():
    items = pd.DataFrame({"item_id": list("abcdefgh")})
    data = Dataset.from_frames(frame(ROWS), items, filters=Filters(min_user_events=2, min_item_events=2))
    assert data.n_items == 8 and set(data.events["item_id"]) == {"a", "b"}
    assert any(
        line.startswith("warning: 6 of 8 catalogue items (75%) have no events")
        for line in data.report.lines()
    )


def test_same_second_events_with_different_text_are_two_events():
    rows = pd.DataFrame(
        {
            "user_id": ["u1"] * 3,
            "item_id": ["a"] * 3,
            "timestamp": [10.0] * 3,
            "text": ["funny", "dark", "funny"],
        }
    )
    data = Dataset.from_frames(rows)
    assert sorted(data.events["text"]) == ["dark", "funny"]
    assert data.report.duplicates_dropped == 1
