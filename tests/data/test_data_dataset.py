"""Cleaning, ID maps, histories and persistence of a Dataset."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from penchant.data import CleaningReport, Dataset, IdMap, load_dataset
from penchant.data.dataset import History, items_to_indices
from penchant.errors import InputError

# Each dirty row says which cleaning step removes it.
DIRTY_EVENTS = """user_id,item_id,timestamp,event_type
u1,i1,1,view
u1,i1,1,view
u1,i1,1,click
,i2,2,view
u2,,3,view
u2,i2,,view
u2,i9,4,view
u2,i2,5,view
"""
CATALOGUE = "item_id,title\ni1,One\ni2,Two\ni3,Three\n"


@pytest.fixture
def dirty(tmp_path) -> Dataset:
    events = tmp_path / "events.csv"
    events.write_text(DIRTY_EVENTS)
    items = tmp_path / "items.csv"
    items.write_text(CATALOGUE)
    return load_dataset(events, items)


def _frame(rows: list[tuple[str, str, float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])


def _external(dataset: Dataset, history: History) -> list[str]:
    return [dataset.item_map.ids[i] for i in history.items]


# ---------------------------------------------------------------------------------------- cleaning


def test_cleaning_counts_each_step(dirty):
    report = dirty.report

    assert report.events_read == 8
    assert report.events_kept == 3
    assert report.duplicates_dropped == 1
    assert report.missing_dropped == {"user_id": 1, "item_id": 1, "timestamp": 1}
    assert report.unknown_items_dropped == 1
    assert report.items_read == 3


def test_cleaning_keeps_the_right_events(dirty):
    kept = dirty.events[["user_id", "item_id", "timestamp", "event_type"]].to_dict("records")

    assert kept == [
        {"user_id": "u1", "item_id": "i1", "timestamp": 1.0, "event_type": "view"},
        {
            "user_id": "u1",
            "item_id": "i1",
            "timestamp": 1.0,
            "event_type": "click",
        },  # other type: not a duplicate
        {"user_id": "u2", "item_id": "i2", "timestamp": 5.0, "event_type": "view"},
    ]


def test_cleaning_drops_and_orders_as_pandas_would_on_many_ties():
    """Repeats found only among events of equal user and time, and the sort on integer codes, give
    what drop_duplicates then a stable sort by user ID and time give, ties and interleaving included."""
    rng = np.random.default_rng(3)
    n = 3_000
    frame = pd.DataFrame(
        {
            "user_id": rng.choice(["u10", "u2", "u1", "a", "ü"], n),
            "item_id": rng.choice(["i1", "i2", "i3"], n),
            "timestamp": rng.integers(0, 6, n).astype(float),
            "event_type": rng.choice(["view", "click", None], n),
            "text": rng.choice(["nice", "nicer", None], n),
        }
    )
    columns = ["user_id", "item_id", "timestamp", "event_type", "text"]
    expected = frame.drop_duplicates(subset=columns).sort_values(["user_id", "timestamp"], kind="mergesort")

    dataset = Dataset.from_frames(frame)

    assert dataset.report.duplicates_dropped == n - len(expected)
    got = dataset.events[columns].astype(object).where(dataset.events[columns].notna(), None)
    want = expected[columns].astype(object).where(expected[columns].notna(), None)
    assert got.values.tolist() == want.values.tolist()


def test_cleaning_report_lines_mention_every_step(dirty):
    text = "\n".join(dirty.report.lines())

    assert "events: 8 read, 3 kept" in text
    assert "dropped 1 duplicate events" in text
    assert "dropped 1 events with no user_id" in text
    assert "dropped 1 events with no item_id" in text
    assert "dropped 1 events with no timestamp" in text
    assert "dropped 1 events whose item is not in the item catalogue" in text
    assert "items: 3 read" in text


def test_clean_input_reports_nothing_dropped(tmp_path):
    path = tmp_path / "events.csv"
    path.write_text("user_id,item_id,timestamp\nu1,i1,1\nu1,i2,2\n")

    report = load_dataset(path).report

    assert report.lines() == ["events: 2 read, 2 kept"]


def test_items_without_events_stay_in_the_catalogue(dirty):
    assert dirty.item_map.ids == ["i1", "i2", "i3"]
    assert dirty.n_items == 3
    assert dirty.titles() == ["One", "Two", "Three"]


def test_repeated_catalogue_rows_keep_the_first_and_are_counted():
    items = pd.DataFrame({"item_id": ["i1", "i2", "i1"], "title": ["first", "two", "second"]})

    dataset = Dataset.from_frames(_frame([("u1", "i1", 1)]), items)

    assert dataset.item_map.ids == ["i1", "i2"]
    assert dataset.titles() == ["first", "two"]
    assert dataset.report.duplicate_items_dropped == 1
    assert any("repeated item rows" in line for line in dataset.report.lines())


def test_without_a_catalogue_items_come_from_events_in_natural_order():
    events = _frame([("u1", "10", 1), ("u1", "9", 2), ("u1", "b", 3), ("u1", "a", 4), ("u1", "007", 5)])

    dataset = Dataset.from_frames(events)

    assert dataset.item_map.ids == ["007", "9", "10", "a", "b"]
    assert dataset.report.unknown_items_dropped == 0


def test_blank_ids_count_as_missing():
    events = _frame([("u1", "i1", 1), ("  ", "i1", 2), ("u1", "", 3)])

    dataset = Dataset.from_frames(events)

    assert dataset.report.missing_dropped == {"user_id": 1, "item_id": 1}
    assert len(dataset.events) == 1


def test_nothing_left_after_cleaning_is_an_error():
    items = pd.DataFrame({"item_id": ["i1"]})

    with pytest.raises(InputError) as info:
        Dataset.from_frames(_frame([("u1", "zz", 1)]), items, name="mine")

    message = str(info.value)
    assert message.startswith("mine: no events left after cleaning")
    assert "not in the item catalogue" in message
    assert "\n" not in message


def test_equal_timestamps_keep_input_order():
    events = _frame(
        [("u2", "x", 9), ("u1", "b", 5), ("u1", "c", 1), ("u1", "a", 5), ("u2", "y", 9), ("u1", "d", 5)]
    )

    dataset = Dataset.from_frames(events)

    assert dataset.events["item_id"].tolist() == ["c", "b", "a", "d", "x", "y"]
    histories = dataset.histories()
    assert _external(dataset, histories[dataset.user_map.index("u1")]) == ["c", "b", "a", "d"]
    assert _external(dataset, histories[dataset.user_map.index("u2")]) == ["x", "y"]


def test_equal_timestamps_keep_input_order_from_a_file(tmp_path):
    path = tmp_path / "events.csv"
    path.write_text(
        "user_id,item_id,timestamp\nu1,z,2024-01-02\nu1,a,1704153600\nu1,m,2024-01-02T00:00:00Z\n"
    )

    dataset = load_dataset(path)

    assert _external(dataset, dataset.histories()[0]) == ["z", "a", "m"]


# ---------------------------------------------------------------------------------------- views


def test_histories_are_time_ordered_per_user():
    events = _frame([("u1", "i3", 30), ("u2", "i1", 5), ("u1", "i1", 10), ("u1", "i2", 20)])

    dataset = Dataset.from_frames(events)
    histories = dataset.histories()

    u1, u2 = dataset.user_map.index("u1"), dataset.user_map.index("u2")
    assert set(histories) == {u1, u2}
    assert _external(dataset, histories[u1]) == ["i1", "i2", "i3"]
    np.testing.assert_array_equal(histories[u1].times, [10.0, 20.0, 30.0])
    assert histories[u1].items.dtype == np.int64
    assert _external(dataset, histories[u2]) == ["i1"]
    assert len(histories[u2]) == 1


def test_histories_of_a_subset_of_events():
    dataset = Dataset.from_frames(_frame([("u1", "i1", 1), ("u1", "i2", 2), ("u2", "i3", 3)]))

    histories = dataset.histories(dataset.events[dataset.events["timestamp"] < 2])

    assert list(histories) == [dataset.user_map.index("u1")]
    assert _external(dataset, histories[dataset.user_map.index("u1")]) == ["i1"]


def test_internal_indices_match_the_id_maps():
    dataset = Dataset.from_frames(_frame([("b", "y", 1), ("a", "x", 2), ("b", "x", 3)]))

    for row in dataset.events.itertuples():
        assert dataset.user_map.ids[row.user] == row.user_id
        assert dataset.item_map.ids[row.item] == row.item_id


def test_history_append_and_empty():
    history = History.empty().append(3, 1.5).append(4, 2.5)

    np.testing.assert_array_equal(history.items, [3, 4])
    np.testing.assert_array_equal(history.times, [1.5, 2.5])
    assert len(History.empty()) == 0


def test_summary():
    dataset = Dataset.from_frames(_frame([("u1", "i1", 3), ("u2", "i2", 7)]), name="tiny")

    assert dataset.summary() == {
        "name": "tiny",
        "n_events": 2,
        "n_users": 2,
        "n_items": 2,
        "time_range": [3.0, 7.0],
    }


# ---------------------------------------------------------------------------------------- IdMap


def test_id_map_round_trips():
    ids = IdMap(["007", "7", "a"])

    assert len(ids) == 3
    for external in ["007", "7", "a"]:
        assert ids.ids[ids.index(external)] == external
    assert [ids.ids[i] for i in ids.indices(["a", "007"])] == ["a", "007"]
    assert "007" in ids
    assert "07" not in ids


def test_id_map_unknown_ids():
    ids = IdMap(["x", "y"])

    np.testing.assert_array_equal(ids.indices(["y", "nope", "x"]), [1, -1, 0])
    assert ids.get("nope") == -1
    assert ids.get("nope", default=99) == 99
    with pytest.raises(KeyError):
        ids.index("nope")


def test_id_map_looks_up_a_long_column_as_the_dict_does():
    """Past a request's handful the IDs are factorised and each distinct one looked up once."""
    ids = IdMap(["x", "y", "007"])
    column = pd.Series(["y", "nope", "x", "007", "7", None] * 20, dtype="str")

    got = ids.indices(column)

    assert got.tolist() == [ids.get(e) if isinstance(e, str) else -1 for e in column.tolist()]
    assert got.tolist()[:6] == [1, -1, 0, 2, -1, -1]


def test_id_map_add():
    ids = IdMap(["x"])

    assert ids.add("y") == 1
    assert ids.add("x") == 0
    assert ids.ids == ["x", "y"]
    assert ids.index("y") == 1


def test_id_map_rejects_repeated_ids():
    with pytest.raises(ValueError):
        IdMap(["x", "y", "x"])


def test_id_map_ids_are_strings():
    assert IdMap([1, 2]).ids == ["1", "2"]


def test_items_to_indices_names_the_unknown_item():
    ids = IdMap(["x", "y"])

    np.testing.assert_array_equal(items_to_indices(ids, ["y", "x"]), [1, 0])
    with pytest.raises(InputError, match="request: unknown item_id 'zz'"):
        items_to_indices(ids, ["x", "zz"], source="request")


# ---------------------------------------------------------------------------------------- persistence


def test_save_load_round_trip(tmp_path):
    events = pd.DataFrame(
        {
            "user_id": ["007", "007", "8"],
            "item_id": ["01", "2", "01"],
            "timestamp": [1.0, 2.0, 2.0],
            "event_type": ["rating", None, "click"],
            "value": [4.5, np.nan, 1.0],
            "text": ["nice", None, None],
        }
    )
    items = pd.DataFrame(
        {"item_id": ["01", "2", "3"], "title": ["A", "B", None], "categories": [["x", "y"], [], ["z"]]}
    )
    users = pd.DataFrame({"user_id": ["007", "8"], "age": [30, 41]})
    original = Dataset.from_frames(events, items, users, name="rt")

    original.save(tmp_path / "saved")
    loaded = Dataset.load(tmp_path / "saved", name="rt")

    assert loaded.item_map.ids == original.item_map.ids == ["01", "2", "3"]
    assert loaded.user_map.ids == original.user_map.ids == ["007", "8"]
    pd.testing.assert_frame_equal(loaded.events, original.events, check_dtype=False)
    assert loaded.titles() == original.titles() == ["A", "B", None]
    assert [list(c) for c in loaded.items["categories"]] == [["x", "y"], [], ["z"]]
    assert loaded.users["age"].tolist() == [30, 41]
    assert list(loaded.users.index) == ["007", "8"]
    for user, history in original.histories().items():
        np.testing.assert_array_equal(loaded.histories()[user].items, history.items)
        np.testing.assert_array_equal(loaded.histories()[user].times, history.times)
    assert loaded.report.events_kept == 3


def test_save_load_round_trip_without_items_or_users(tmp_path):
    original = Dataset.from_frames(_frame([("u1", "i2", 1), ("u1", "i1", 2)]))

    original.save(tmp_path)
    loaded = Dataset.load(tmp_path)

    assert loaded.item_map.ids == ["i1", "i2"]
    assert loaded.user_map.ids == ["u1"]
    assert len(loaded.users) == 0
    pd.testing.assert_frame_equal(loaded.events, original.events, check_dtype=False)


def test_report_to_dict():
    report = CleaningReport(events_read=3, events_kept=2, missing_dropped={"item_id": 1})

    assert report.to_dict()["missing_dropped"] == {"item_id": 1}
    assert report.lines() == ["events: 3 read, 2 kept", "dropped 1 events with no item_id"]
