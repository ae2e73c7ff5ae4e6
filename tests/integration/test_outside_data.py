"""A newcomer's own data, shaped like MovieLens ml-latest-small, through the README's own-data commands:
ratings in half stars, '|'-separated genres, a separate tags file with same-second tags."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tests.clitools import assert_one_line_error, penchant

GENRES = ["Drama", "Horror", "Comedy", "Sci-Fi"]
SMALL = '{"dim": 32, "layers": 1, "max_epochs": 3, "threads": 1}'


@pytest.fixture(scope="module")
def latest(tmp_path_factory):
    """ratings.csv (userId, movieId, rating, timestamp), movies.csv (movieId, title, genres),
    tags.csv (userId, movieId, tag, timestamp). User 1 watches 12 dramas then 6 horrors; the others
    walk genres; user 99 has 2 ratings (below the 5-event core); movie 999 is rated once."""
    folder = tmp_path_factory.mktemp("latest")
    rng = np.random.default_rng(0)
    movies = pd.DataFrame(
        {
            "movieId": np.arange(1, 41),
            "title": [f"Film {i} ({1990 + i % 20})" for i in range(1, 41)],
            "genres": [GENRES[i % 4] + ("|Comedy" if i % 7 == 0 else "") for i in range(1, 41)],
        }
    )
    movies = pd.concat([movies, pd.DataFrame({"movieId": [999], "title": ["Rare"], "genres": ["Drama"]})])
    by_genre = {g: [m for m in range(1, 41) if GENRES[m % 4] == g] for g in GENRES}
    rows = [
        (1, m, 4.0, 1_000 + 60 * s) for s, m in enumerate(by_genre["Drama"][:10] + by_genre["Drama"][-2:])
    ]
    rows += [(1, m, 5.0, 2_000 + 60 * s) for s, m in enumerate(by_genre["Horror"][:6])]
    for u in range(2, 30):
        seen = rng.choice(np.arange(1, 41), size=int(rng.integers(8, 20)), replace=False)
        rows += [(u, int(m), float(rng.integers(1, 11)) / 2, 5_000 + 60 * s) for s, m in enumerate(seen)]
    rows += [(99, 1, 3.0, 9_000), (99, 2, 3.5, 9_060), (5, 999, 4.0, 9_100)]
    ratings = pd.DataFrame(rows, columns=["userId", "movieId", "rating", "timestamp"])
    tags = pd.DataFrame(
        [(1, by_genre["Horror"][0], "creepy", 2_000), (1, by_genre["Horror"][0], "gore", 2_000)]
        + [(2, 3, "slow", 7), (2, 3, "moody", 7)],  # same second, no rating there: two tag events
        columns=["userId", "movieId", "tag", "timestamp"],
    )
    for name, frame in (("ratings", ratings), ("movies", movies), ("tags", tags)):
        frame.to_csv(folder / f"{name}.csv", index=False)
    return folder


def train(folder, out, *extra):
    return penchant(
        "train", "--events", str(folder / "ratings.csv"), "--items", str(folder / "movies.csv"),
        "--user-col", "userId", "--item-col", "movieId", "--value-col", "rating",
        "--title-col", "title", "--categories-col", "genres",
        "--text-file", str(folder / "tags.csv"), "--text-file-col", "tag",
        "--min-user-events", "5", "--min-item-events", "2",
        "--config", SMALL, "--out", str(out), *extra,
    )  # fmt: skip


@pytest.fixture(scope="module")
def run(latest, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "run"
    result = train(latest, out)
    assert result.returncode == 0, result.stderr
    return out, result.stderr


def test_filters_and_tags_are_applied_and_reported(run):
    out, log = run
    assert "4 text rows; 2 joined onto the 1 events" in log and "2 added as events of type 'tag'" in log
    assert "k-core (users with >= 5 events, items with >= 2" in log
    events = pd.read_parquet(out / "data" / "events.parquet")
    assert "99" not in set(events["user_id"]) and "999" not in set(events["item_id"])
    joined = events[events["text"] == "creepy; gore"]
    assert len(joined) == 1 and joined["value"].iloc[0] == 5.0
    assert sorted(events.loc[events["event_type"] == "tag", "text"]) == ["moody", "slow"]
    meta = json.loads((out / "run.json").read_text())
    assert meta["seen_items"]["excluded_by_default"] is True  # nobody rates a movie twice


def test_recommend_shows_no_already_seen_movie_by_default(run):
    out, _ = run
    result = penchant("recommend", "--run", str(out), "--user", "1", "-k", "10", "--json")
    assert result.returncode == 0, result.stderr
    events = pd.read_parquet(out / "data" / "events.parquet")
    seen = set(events.loc[events["user_id"] == "1", "item_id"])
    assert not {r["item_id"] for r in json.loads(result.stdout)} & seen


def test_a_short_binge_is_not_reported_as_a_fading_interest(run):
    out, _ = run
    result = penchant("profile", "--run", str(out), "--user", "1", "--json")
    assert result.returncode == 0, result.stderr
    profile = json.loads(result.stdout)
    assert profile["fading"] == [] and profile["emerging"] == []
    assert "twice as long" in profile["shift_note"]


def test_a_semicolon_file_and_a_bad_rule_are_one_line_each(latest, tmp_path):
    semicolon = tmp_path / "ratings.csv"
    semicolon.write_text((latest / "ratings.csv").read_text().replace(",", ";"))
    result = penchant(
        "train", "--events", str(semicolon), "--user-col", "userId", "--out", str(tmp_path / "r")
    )
    assert_one_line_error(result, "ratings.csv", "looks ';'-separated", "--sep ';'")
    assert_one_line_error(
        train(latest, tmp_path / "r2", "--positive", "rating>=4"), "--positive", "rating>=4"
    )
