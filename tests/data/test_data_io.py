"""Reading events, items and users from CSV, TSV, Parquet and JSONL, and the errors bad input gets."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from penchant.data import ColumnMap, load_dataset, read_events, read_items, read_users
from penchant.errors import InputError

# 2024-01-02T00:00:00Z
JAN2 = 1_704_153_600.0

# The same logical events and items, in a user's own column names.
EVENTS = [
    {"uid": "007", "movie": "01", "when": "2024-01-02", "rating": "4.5", "kind": "rating", "review": "great"},
    {"uid": "007", "movie": "2", "when": "1700000000", "rating": "3", "kind": "view", "review": None},
    {
        "uid": "8",
        "movie": "01",
        "when": "2024-01-02T01:00:00+01:00",
        "rating": None,
        "kind": "click",
        "review": "ok",
    },
]
ITEMS = [
    {"movie": "01", "name": "Alpha", "genres": ["a", "b"]},
    {"movie": "2", "name": "Beta", "genres": ["c"]},
    {"movie": "3", "name": "Gamma", "genres": []},
]
USERS = [{"uid": "007", "age": "30"}, {"uid": "8", "age": "41"}]
COLUMNS = ColumnMap(
    user_id="uid",
    item_id="movie",
    timestamp="when",
    value="rating",
    event_type="kind",
    text="review",
    title="name",
    categories="genres",
)


def _write(path: Path, rows: list[dict]) -> Path:
    """Write rows in the format the path's extension names; lists become 'a|b' in text formats."""
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(row) + "\n" for row in rows))
        return path
    frame = pd.DataFrame(rows)
    if path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
        return path
    frame = frame.map(lambda v: "|".join(v) if isinstance(v, list) else v)
    frame.to_csv(path, sep="\t" if path.suffix == ".tsv" else ",", index=False)
    return path


def _error(call, *args, **kwargs) -> str:
    """The message of the InputError a call raises; checks it is a single line."""
    with pytest.raises(InputError) as info:
        call(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message, message
    return message


# ---------------------------------------------------------------------------------------- reading


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".parquet", ".jsonl"])
def test_read_events_maps_columns_and_keeps_string_ids(tmp_path, suffix):
    events = read_events(_write(tmp_path / f"events{suffix}", EVENTS), COLUMNS)

    assert list(events.columns[:3]) == ["user_id", "item_id", "timestamp"]
    assert events["user_id"].tolist() == ["007", "007", "8"]
    assert events["item_id"].tolist() == ["01", "2", "01"]
    assert events["timestamp"].tolist() == [JAN2, 1_700_000_000.0, JAN2]
    assert events["event_type"].tolist() == ["rating", "view", "click"]
    np.testing.assert_array_equal(events["value"].to_numpy(), [4.5, 3.0, np.nan])
    assert events["text"].iloc[0] == "great"
    assert pd.isna(events["text"].iloc[1])


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".parquet", ".jsonl"])
def test_read_items_maps_title_and_parses_categories(tmp_path, suffix):
    items = read_items(_write(tmp_path / f"items{suffix}", ITEMS), COLUMNS)

    assert items["item_id"].tolist() == ["01", "2", "3"]
    assert items["title"].tolist() == ["Alpha", "Beta", "Gamma"]
    assert [list(c) for c in items["categories"]] == [["a", "b"], ["c"], []]


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".parquet", ".jsonl"])
def test_read_users_maps_id_column(tmp_path, suffix):
    users = read_users(_write(tmp_path / f"users{suffix}", USERS), COLUMNS)

    assert users["user_id"].tolist() == ["007", "8"]
    assert "age" in users.columns


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".parquet", ".jsonl"])
def test_load_dataset_from_each_format(tmp_path, suffix):
    dataset = load_dataset(
        _write(tmp_path / f"events{suffix}", EVENTS),
        _write(tmp_path / f"items{suffix}", ITEMS),
        _write(tmp_path / f"users{suffix}", USERS),
        columns=COLUMNS,
    )

    assert dataset.name == "events"
    assert dataset.item_map.ids == ["01", "2", "3"]  # catalogue order; '3' has no events
    assert dataset.user_map.ids == ["007", "8"]
    assert dataset.titles() == ["Alpha", "Beta", "Gamma"]
    assert list(dataset.items.loc["01", "categories"]) == ["a", "b"]
    assert list(dataset.users.index) == ["007", "8"]
    assert dataset.report.events_read == 3
    assert dataset.report.events_kept == 3
    assert dataset.report.items_read == 3
    assert dataset.report.users_read == 2


def test_default_columns_need_no_column_map(tmp_path):
    path = tmp_path / "events.csv"
    path.write_text("user_id,item_id,timestamp,value\nu1,i1,10,1.5\n")

    events = read_events(path)

    assert events.to_dict("list") == {
        "user_id": ["u1"],
        "item_id": ["i1"],
        "timestamp": [10.0],
        "value": [1.5],
    }


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("2024-01-02", JAN2),
        ("2024-01-02T00:00:00Z", JAN2),
        ("2024-01-02 03:00:00+03:00", JAN2),
        ("1704153600", JAN2),
        ("1704153600.5", JAN2 + 0.5),
    ],
)
def test_timestamps_parse_from_iso_dates_and_unix_seconds(tmp_path, text, seconds):
    path = tmp_path / "events.csv"
    path.write_text(f"user_id,item_id,timestamp\nu1,i1,{text}\n")

    assert read_events(path)["timestamp"].tolist() == [seconds]


def test_iso_dates_and_unix_seconds_mix_in_one_column(tmp_path):
    path = tmp_path / "events.csv"
    path.write_text("user_id,item_id,timestamp\nu1,i1,2024-01-02\nu1,i2,1700000000\n")

    assert read_events(path)["timestamp"].tolist() == [JAN2, 1_700_000_000.0]


@pytest.mark.parametrize("tz", [None, "Europe/Paris"])
def test_parquet_timestamp_columns_become_unix_seconds(tmp_path, tz):
    when = pd.to_datetime(["2024-01-02 00:00:00", "2024-01-02 00:00:10"])
    if tz:
        when = when.tz_localize("UTC").tz_convert(tz)
    path = tmp_path / "events.parquet"
    pd.DataFrame({"user_id": ["u1", "u1"], "item_id": ["i1", "i2"], "timestamp": when}).to_parquet(path)

    assert read_events(path)["timestamp"].tolist() == [JAN2, JAN2 + 10]


def test_numeric_ids_from_json_and_parquet_lose_no_form_and_gain_no_decimal(tmp_path):
    jsonl = tmp_path / "events.jsonl"
    jsonl.write_text(
        '{"user_id": 7, "item_id": 1.0, "timestamp": 1}\n'
        '{"user_id": "007", "item_id": "01", "timestamp": 2}\n'
    )
    parquet = tmp_path / "events.parquet"
    pd.DataFrame({"user_id": [7, 8], "item_id": [1.0, np.nan], "timestamp": [1, 2]}).to_parquet(parquet)

    from_json = read_events(jsonl)
    from_parquet = read_events(parquet)

    assert from_json["user_id"].tolist() == ["7", "007"]
    assert from_json["item_id"].tolist() == ["1", "01"]
    assert from_parquet["user_id"].tolist() == ["7", "8"]
    assert from_parquet["item_id"].iloc[0] == "1"
    assert pd.isna(from_parquet["item_id"].iloc[1])


def test_missing_ids_in_nullable_parquet_columns_are_missing_not_the_text_NA(tmp_path):
    path = tmp_path / "events.parquet"
    pd.DataFrame(
        {
            "user_id": pd.array(["u1", None, "u2"], dtype="string"),
            "item_id": pd.array([1, 2, None], dtype="Int64"),
            "timestamp": [1, 2, 3],
        }
    ).to_parquet(path)

    dataset = load_dataset(path)

    assert dataset.user_map.ids == ["u1"]
    assert dataset.report.missing_dropped == {"user_id": 1, "item_id": 1}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("a|b", ["a", "b"]),
        (" a | b |", ["a", "b"]),
        ("a;b", ["a", "b"]),
        ("a,b", ["a", "b"]),
        ("solo", ["solo"]),
        ("", []),
    ],
)
def test_categories_from_text(tmp_path, raw, expected):
    path = tmp_path / "items.tsv"
    path.write_text(f"item_id\tcategories\ni1\t{raw}\n")

    assert read_items(path)["categories"].tolist() == [expected]


def test_categories_from_jsonl_lists(tmp_path):
    path = tmp_path / "items.jsonl"
    path.write_text(
        '{"item_id": "i1", "categories": ["x", "y"]}\n'
        '{"item_id": "i2", "categories": []}\n'
        '{"item_id": "i3"}\n'
    )

    assert read_items(path)["categories"].tolist() == [["x", "y"], [], []]


def test_blank_lines_and_crlf_are_accepted(tmp_path):
    path = tmp_path / "events.csv"
    path.write_bytes(b"user_id,item_id,timestamp\r\nu1,i1,1\r\n\r\nu2,i2,2\r\n")

    assert read_events(path)["user_id"].tolist() == ["u1", "u2"]


def test_trailing_delimiters_do_not_shift_columns(tmp_path):
    path = tmp_path / "events.csv"
    path.write_text("user_id,item_id,timestamp\nu1,i1,1,\nu2,i2,2,\n")

    events = read_events(path)

    assert events["user_id"].tolist() == ["u1", "u2"]
    assert events["item_id"].tolist() == ["i1", "i2"]
    assert events["timestamp"].tolist() == [1.0, 2.0]


# ---------------------------------------------------------------------------------------- errors


def test_missing_file(tmp_path):
    path = tmp_path / "nope.csv"

    message = _error(read_events, path)

    assert str(path) in message
    assert "not found" in message


def test_directory_instead_of_file(tmp_path):
    message = _error(read_events, tmp_path)

    assert str(tmp_path) in message
    assert "directory" in message


def test_unsupported_extension(tmp_path):
    path = tmp_path / "events.xlsx"
    path.write_text("whatever")

    message = _error(read_events, path)

    assert str(path) in message
    assert "'.xlsx'" in message


def test_missing_column_lists_the_columns_present(tmp_path):
    path = tmp_path / "events.csv"
    path.write_text("uid,movie,date\nu1,i1,1\n")

    message = _error(read_events, path, ColumnMap(user_id="uid", item_id="movie", timestamp="when"))

    assert str(path) in message
    assert "'when'" in message
    assert "timestamp" in message
    assert "uid, movie, date" in message


def test_missing_default_column(tmp_path):
    path = tmp_path / "events.csv"
    path.write_text("user,item_id,timestamp\nu1,i1,1\n")

    message = _error(read_events, path)

    assert "'user_id'" in message
    assert "user, item_id, timestamp" in message


def test_explicitly_mapped_optional_column_must_exist(tmp_path):
    path = tmp_path / "events.csv"
    path.write_text("user_id,item_id,timestamp\nu1,i1,1\n")

    message = _error(read_events, path, ColumnMap(value="stars"))

    assert "'stars'" in message
    assert "value" in message


def test_items_file_missing_mapped_title_column(tmp_path):
    path = tmp_path / "items.csv"
    path.write_text("item_id,title\ni1,A\n")

    message = _error(read_items, path, ColumnMap(title="name"))

    assert str(path) in message
    assert "'name'" in message


def test_users_file_missing_id_column(tmp_path):
    path = tmp_path / "users.csv"
    path.write_text("id,age\nu1,3\n")

    message = _error(read_users, path)

    assert str(path) in message
    assert "'user_id'" in message
    assert "id, age" in message


def test_bad_timestamp_names_line_and_column(tmp_path):
    path = tmp_path / "events.csv"
    path.write_text("u,i,t\nu1,i1,1\nu2,i2,2024-01-02\nu3,i3,yesterday\nu4,i4,also bad\n")

    message = _error(read_events, path, ColumnMap(user_id="u", item_id="i", timestamp="t"))

    # Line 1 is the header, so the third data row is line 4.
    assert message.startswith(f"{path}, line 4, column 't':")
    assert "'yesterday'" in message


def test_bad_timestamp_line_counts_blank_lines(tmp_path):
    path = tmp_path / "events.csv"
    path.write_text("user_id,item_id,timestamp\nu1,i1,1\n\nu2,i2,bad\n")

    message = _error(read_events, path)

    assert message.startswith(f"{path}, line 4, column 'timestamp':")


def test_bad_timestamp_line_counts_line_breaks_inside_quotes(tmp_path):
    path = tmp_path / "events.csv"
    path.write_text('user_id,item_id,timestamp,text\nu1,i1,1,"two\nlines"\nu2,i2,bad,x\n')

    message = _error(read_events, path)

    assert message.startswith(f"{path}, line 4, column 'timestamp':")


def test_bad_timestamp_in_tsv(tmp_path):
    path = tmp_path / "events.tsv"
    path.write_text("user_id\titem_id\ttimestamp\nu1\ti1\t13/45/2024\n")

    message = _error(read_events, path)

    assert message.startswith(f"{path}, line 2, column 'timestamp':")


def test_bad_timestamp_in_jsonl_names_the_line(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text(
        '{"user_id": "u1", "item_id": "i1", "timestamp": 1}\n'
        "\n"
        '{"user_id": "u1", "item_id": "i2", "timestamp": "soon"}\n'
    )

    message = _error(read_events, path)

    assert message.startswith(f"{path}, line 3, column 'timestamp':")
    assert "'soon'" in message


def test_bad_timestamp_in_parquet_names_the_row(tmp_path):
    path = tmp_path / "events.parquet"
    pd.DataFrame(
        {"user_id": ["u1", "u2"], "item_id": ["i1", "i2"], "when": ["2024-01-02", "nope"]}
    ).to_parquet(path)

    message = _error(read_events, path, ColumnMap(timestamp="when"))

    assert message.startswith(f"{path}, row 2, column 'when':")
    assert "'nope'" in message


def test_bad_numeric_value(tmp_path):
    path = tmp_path / "events.csv"
    path.write_text("user_id,item_id,timestamp,stars\nu1,i1,1,5\nu1,i2,2,five\n")

    message = _error(read_events, path, ColumnMap(value="stars"))

    assert message.startswith(f"{path}, line 3, column 'stars':")
    assert "expected a number" in message
    assert "'five'" in message


def test_ragged_csv_row(tmp_path):
    path = tmp_path / "events.csv"
    path.write_text("user_id,item_id,timestamp\nu1,i1,1\nu2,i2,2\nu3,i3,3,extra\n")

    message = _error(read_events, path)

    assert message == f"{path}, line 4: expected 3 fields, found 4"


def test_ragged_first_row_is_an_error_not_a_shifted_index(tmp_path):
    path = tmp_path / "events.csv"
    path.write_text("user_id,item_id,timestamp\nu1,i1,1,2\nu2,i2,2\n")

    message = _error(read_events, path)

    assert message == f"{path}, line 2: expected 3 fields, found 4"


def test_ragged_row_after_quoted_line_break(tmp_path):
    path = tmp_path / "events.csv"
    path.write_text('user_id,item_id,timestamp,text\nu1,i1,1,"two\nlines"\n\nu2,i2,2,x,y\n')

    message = _error(read_events, path)

    assert message == f"{path}, line 5: expected 4 fields, found 5"


def test_malformed_jsonl_line(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text('{"user_id": "u1", "item_id": "i1", "timestamp": 1}\n{"user_id": "u2",\n')

    message = _error(read_events, path)

    assert message.startswith(f"{path}, line 2: not valid JSON")


def test_jsonl_line_that_is_not_an_object(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text('{"user_id": "u1", "item_id": "i1", "timestamp": 1}\n["u2", "i2", 2]\n')

    message = _error(read_events, path)

    assert message == f"{path}, line 2: expected a JSON object, found list"


@pytest.mark.parametrize(
    ("name", "content"),
    [("events.csv", ""), ("events.tsv", ""), ("events.jsonl", ""), ("events.jsonl", "\n\n")],
)
def test_empty_file(tmp_path, name, content):
    path = tmp_path / name
    path.write_text(content)

    message = _error(read_events, path)

    assert str(path) in message
    assert "empty" in message or "no records" in message


def test_header_only_file_has_no_events(tmp_path):
    path = tmp_path / "events.csv"
    path.write_text("user_id,item_id,timestamp\n")

    message = _error(read_events, path)

    assert message == f"{path}: no events in the file"


def test_corrupt_parquet(tmp_path):
    path = tmp_path / "events.parquet"
    path.write_bytes(b"not parquet at all")

    message = _error(read_events, path)

    assert str(path) in message
    assert "Parquet" in message


def test_not_utf8(tmp_path):
    path = tmp_path / "events.csv"
    path.write_bytes("user_id,item_id,timestamp\ncafé,i1,1\n".encode("latin-1"))

    message = _error(read_events, path)

    assert str(path) in message
    assert "UTF-8" in message


def test_item_with_empty_id_names_the_line(tmp_path):
    path = tmp_path / "items.csv"
    path.write_text("item_id,title\ni1,A\n,B\n")

    message = _error(read_items, path)

    assert message.startswith(f"{path}, line 3, column 'item_id':")


def test_load_dataset_errors_name_the_items_file(tmp_path):
    events = tmp_path / "events.csv"
    events.write_text("user_id,item_id,timestamp\nu1,i1,1\n")
    items = tmp_path / "items.csv"
    items.write_text("id,title\ni1,A\n")

    message = _error(load_dataset, events, items)

    assert str(items) in message
    assert "'item_id'" in message


# ---------------------------------------------------------------------------------------- compressed
def _compress(path: Path, kind: str) -> Path:
    import bz2
    import gzip
    import lzma

    import zstandard

    openers = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}
    target = path.with_name(path.name + kind)
    data = path.read_bytes()
    if kind == ".zst":
        target.write_bytes(zstandard.ZstdCompressor().compress(data))
    else:
        with openers[kind](target, "wb") as handle:
            handle.write(data)
    path.unlink()
    return target


@pytest.mark.parametrize("kind", [".gz", ".zst", ".bz2", ".xz"])
@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl"])
def test_compressed_text_formats_read_like_their_plain_forms(tmp_path, suffix, kind):
    plain = read_events(_write(tmp_path / f"plain{suffix}", EVENTS), COLUMNS)
    events = _compress(_write(tmp_path / f"events{suffix}", EVENTS), kind)
    pd.testing.assert_frame_equal(read_events(events, COLUMNS), plain)
    items = _compress(_write(tmp_path / f"items{suffix}", ITEMS), kind)
    dataset = load_dataset(events, items, columns=COLUMNS)
    assert dataset.name == "events"  # neither the format nor the compression is part of the name
    assert dataset.titles() == ["Alpha", "Beta", "Gamma"]


def test_bad_row_in_a_compressed_file_names_its_line(tmp_path):
    path = tmp_path / "events.csv"
    path.write_text("u,i,t\nu1,i1,1\n\nu3,i3,yesterday\n")
    message = _error(read_events, _compress(path, ".gz"), ColumnMap(user_id="u", item_id="i", timestamp="t"))
    assert message.startswith(f"{path}.gz, line 4, column 't':")


@pytest.mark.parametrize("name", ["events.csv.gz", "events.jsonl.zst"])
def test_corrupt_compressed_file_is_one_line(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"this is not compressed data at all")
    message = _error(read_events, path)
    assert str(path) in message and "decompress" in message


def test_compressed_file_of_an_unsupported_format(tmp_path):
    path = tmp_path / "events.xlsx.gz"
    path.write_bytes(b"")
    assert "'.xlsx.gz'" in _error(read_events, path)


def test_a_tags_file_joins_onto_matching_events_and_adds_the_rest_as_tag_events(tmp_path):
    ratings = tmp_path / "ratings.csv"
    ratings.write_text("userId,movieId,rating,timestamp\n1,10,4.5,100\n1,11,0.5,200\n2,10,3.0,300\n")
    tags = tmp_path / "tags.csv"
    # 1/10/100 matches a rating (two tags: both join it); 1/12/150 matches none: two same-second tags,
    # two events; a row without text is skipped.
    tags.write_text(
        "userId,movieId,tag,timestamp\n1,10,funny,100\n1,10,pixar,100\n1,12,dark,150\n1,12,slow,150\n2,10,,300\n"
    )
    columns = ColumnMap(user_id="userId", item_id="movieId", value="rating")
    data = load_dataset(ratings, columns=columns, text_file=tags, text_col="tag")
    events = data.events
    rated = events[(events["user_id"] == "1") & (events["item_id"] == "10")]
    assert rated["text"].tolist() == ["funny; pixar"] and rated["value"].tolist() == [4.5]
    tagged = events[events["event_type"] == "tag"].sort_values("text")
    assert tagged["text"].tolist() == ["dark", "slow"] and set(tagged["item_id"]) == {"12"}
    assert len(events) == 5 and data.report.duplicates_dropped == 0
    assert any(
        "4 text rows; 2 joined onto the 1 events" in line and "2 added as events of type 'tag'" in line
        for line in data.report.lines()
    )


def test_a_tags_file_without_its_text_column_is_named(tmp_path):
    ratings = tmp_path / "ratings.csv"
    ratings.write_text("user_id,item_id,timestamp\n1,10,100\n")
    tags = tmp_path / "tags.csv"
    tags.write_text("user_id,item_id,timestamp,label\n1,10,100,x\n")
    with pytest.raises(InputError, match="tags.csv: missing column 'tag'"):
        load_dataset(ratings, text_file=tags, text_col="tag")


def test_a_directory_of_parquet_files_is_one_events_source(tmp_path):
    """As Spark writes it: part files in Hive-style partition folders, a _SUCCESS marker, .crc files."""
    logs = tmp_path / "logs"
    frames = {
        "day=2024-01-01/part-00000.parquet": pd.DataFrame(
            {"user_id": ["u1", "u2"], "item_id": ["i1", "i2"], "timestamp": [100, 200]}
        ),
        "day=2024-01-01/part-00001.parquet": pd.DataFrame(
            {"user_id": ["u1"], "item_id": ["i3"], "timestamp": [300]}
        ),
        "day=2024-01-02/part-00000.parquet": pd.DataFrame(
            {"user_id": ["u2", "u3"], "item_id": ["i1", "i2"], "timestamp": [400, 500]}
        ),
    }
    for name, frame in frames.items():
        (logs / name).parent.mkdir(parents=True, exist_ok=True)
        frame.to_parquet(logs / name)
    (logs / "_SUCCESS").write_text("")
    (logs / "day=2024-01-01" / ".part-00000.parquet.crc").write_bytes(b"\x00crc")
    (logs / "_temporary").mkdir()
    pd.DataFrame({"user_id": ["ghost"], "item_id": ["i9"], "timestamp": [1]}).to_parquet(
        logs / "_temporary" / "p.parquet"
    )

    events = read_events(logs)
    assert sorted(zip(events["user_id"], events["item_id"], strict=True)) == [
        ("u1", "i1"),
        ("u1", "i3"),
        ("u2", "i1"),
        ("u2", "i2"),
        ("u3", "i2"),
    ]
    assert list(events["timestamp"]) == [100.0, 200.0, 300.0, 400.0, 500.0]
    assert load_dataset(logs).n_users == 3


def test_a_bad_row_in_a_parquet_directory_names_its_file_and_row(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    pd.DataFrame(
        {"user_id": ["u1", "u2"], "item_id": ["i1", "i2"], "when": ["2024-01-02", "2024-01-03"]}
    ).to_parquet(logs / "part-0.parquet")
    pd.DataFrame(
        {"user_id": ["u3", "u4"], "item_id": ["i1", "i2"], "when": ["2024-01-04", "nope"]}
    ).to_parquet(logs / "part-1.parquet")

    message = _error(read_events, logs, ColumnMap(timestamp="when"))

    assert message.startswith(f"{logs / 'part-1.parquet'}, row 2, column 'when':")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no .parquet files" in _error(read_events, empty)


def _events_db(path):
    import sqlite3

    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE clicks (visitor TEXT, sku INTEGER, ts REAL, stars INTEGER)")
        rows = [
            (f"u{u}", i, 1_600_000_000 + 60 * (u * 10 + i), 1 + (u + i) % 5)
            for u in range(5)
            for i in range(6)
        ]
        db.executemany("INSERT INTO clicks VALUES (?, ?, ?, ?)", rows)
        db.execute("CREATE TABLE catalogue (sku INTEGER, name TEXT)")
        db.executemany("INSERT INTO catalogue VALUES (?, ?)", [(i, f"thing {i}") for i in range(8)])
    return f"sqlite:///{path}"


def test_a_sql_query_is_an_events_and_items_source(tmp_path):
    from penchant.data import SqlSource

    url = _events_db(tmp_path / "shop.sqlite3")
    events = SqlSource(
        "SELECT visitor AS user_id, sku AS item_id, ts AS timestamp, stars FROM clicks WHERE stars >= 2", url
    )
    items = SqlSource("SELECT sku AS item_id, name AS title FROM catalogue", url, "--items-sql")
    data = load_dataset(events, items, columns=ColumnMap(value="stars"))
    assert len(data.events) == 24 and data.n_items == 8 and data.n_users == 5
    assert set(data.events["item_id"]) <= {str(i) for i in range(6)}  # integer IDs become plain strings
    assert data.items.loc["3", "title"] == "thing 3"


def test_a_sql_source_is_read_only_and_its_errors_are_one_line(tmp_path):
    import sqlite3

    from penchant.data import SqlSource

    url = _events_db(tmp_path / "shop.sqlite3")
    assert "query failed" in _error(read_events, SqlSource("SELECT * FROM nowhere", url))
    assert "query failed" in _error(read_events, SqlSource("DELETE FROM clicks", url))  # read-only
    with sqlite3.connect(tmp_path / "shop.sqlite3") as db:
        assert db.execute("SELECT COUNT(*) FROM clicks").fetchone()[0] == 30
    bad = SqlSource(
        "SELECT visitor AS user_id, sku AS item_id, CASE WHEN sku = 4 THEN 'nope' ELSE ts END AS timestamp FROM clicks ORDER BY visitor, sku",
        url,
    )
    assert _error(read_events, bad).startswith("--events-sql, row 5, column 'timestamp':")
    assert "no such SQLite file" in _error(
        read_events, SqlSource("SELECT 1", f"sqlite:///{tmp_path}/none.db")
    )
    assert "expected sqlite" in _error(read_events, SqlSource("SELECT 1", "mysql://db/x"))
