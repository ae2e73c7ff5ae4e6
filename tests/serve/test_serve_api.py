"""The HTTP API against real databases (SQLite and PostgreSQL): events, users, items, errors, limits."""

import shutil
import sqlite3
import time
from pathlib import Path

import pandas as pd
import pytest

from penchant.serve.db import SCHEMA_VERSION
from tests.clitools import files_naming

NOW = 1_700_000_000.0


def event(user="new-user", item="m03", ts=NOW, **extra):
    return {"user_id": user, "item_id": item, "timestamp": ts, **extra}


def all_events(client, user, limit):
    """Every stored event of a user, page by page through the cursor."""
    pages, after = [], None
    while True:
        params = {"limit": limit} | ({"after": after} if after else {})
        page = client.get(f"/users/{user}/events", params=params)
        assert page.status_code == 200, page.text
        pages.append(page.json()["events"])
        after = page.json()["next"]
        if after is None:
            return pages


# ---------------------------------------------------------------------------------------- events
def test_run_events_are_imported_once(serve, ease_run, db_url):
    stored = pd.read_parquet(ease_run / "data" / "events.parquet")
    client = serve(ease_run)
    u000 = stored[stored["user_id"] == "u000"].sort_values("timestamp")
    pages = all_events(client, "u000", limit=7)
    assert [e["item_id"] for page in pages for e in page] == u000["item_id"].tolist()
    assert all(len(page) == 7 for page in pages[:-1]) and 0 < len(pages[-1]) <= 7
    assert pages[0][0]["title"] == "Title 0" or pages[0][0]["title"].startswith("Title ")

    # A second service on the same store (a restart, a replica) imports nothing twice.
    again = serve(ease_run)
    assert sum(len(p) for p in all_events(again, "u000", limit=100)) == len(u000)


def test_single_and_batch_events_are_stored_and_deduplicated(serve, ease_run):
    client = serve(ease_run)
    one = client.post("/events", json=event(event_type="click", value=2.5, text="liked it"))
    assert one.status_code == 200 and one.json() == {"received": 1, "stored": 1, "rewarded": 0}
    batch = [
        event(item="m04", ts=NOW + 1),
        event(item="m05", ts="2023-11-14T22:13:22Z"),
        event(event_type="click"),
    ]
    assert client.post("/events", json=batch).json() == {
        "received": 3,
        "stored": 2,
        "rewarded": 0,  # no recommendation was shown to the user
    }  # the last one is a repeat

    events = client.get("/users/new-user/events").json()
    assert events["next"] is None
    assert [e["item_id"] for e in events["events"]] == ["m03", "m04", "m05"]  # oldest first
    first = events["events"][0]
    assert (first["event_type"], first["value"], first["text"], first["timestamp"]) == (
        "click",
        2.5,
        "liked it",
        NOW,
    )
    assert events["events"][2]["timestamp"] == pd.Timestamp("2023-11-14T22:13:22Z").timestamp()
    latest = client.get("/users/new-user/events", params={"latest": True, "limit": 2}).json()["events"]
    assert [e["item_id"] for e in latest] == ["m04", "m05"]


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"item_id": "m01", "timestamp": NOW}, "user_id", "required"),
        (event(ts="yesterday"), "timestamp", "Unix seconds or an ISO 8601"),
        (event(ts=-5), "timestamp", "between 1970 and 9999"),
        (event(color="red"), "color", "unknown field"),
        (event(user="a\x00b"), "user_id", "NUL"),
        (event(user=" padded"), "user_id", "whitespace"),
        (event(value="NaN"), "value", ""),
        ([event(), event(item=7)], "events[1].item_id", "string"),
        ([event(), event(item="nope")], "events[1].item_id", "unknown item 'nope'"),
        ([], "events", "empty"),
        (42, "body", ""),
    ],
)
def test_bad_events_get_one_line_naming_the_field(serve, ease_run, body, field, words):
    client = serve(ease_run)
    response = client.post("/events", json=body)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert detail.startswith(f"{field}: ") and words in detail and "\n" not in detail
    assert client.get("/users/new-user/events").json()["events"] == []  # nothing of a bad batch is stored


def test_malformed_json_and_limits(serve, ease_run):
    client = serve(ease_run, max_batch=5, max_body_bytes=2000)
    bad = client.post("/events", content=b'{"user_id": ', headers={"content-type": "application/json"})
    assert bad.status_code == 422 and bad.json()["detail"].startswith("body: not valid JSON (")
    too_many = client.post("/events", json=[event(ts=NOW + i) for i in range(6)])
    assert too_many.status_code == 413 and "at most 5 events" in too_many.json()["detail"]
    too_big = client.post("/events", json=[event(text="x" * 3000)])
    assert too_big.status_code == 413 and "2000 bytes" in too_big.json()["detail"]

    def chunks():  # no Content-Length: the limit is counted as the body streams in
        for _ in range(10):
            yield b" " * 500

    streamed = client.post("/events", content=chunks(), headers={"content-type": "application/json"})
    assert streamed.status_code == 413
    assert client.get("/users/new-user/recommendations", params={"k": 101}).status_code == 422
    assert (
        client.get("/users/new-user/events", params={"after": "not-a-cursor"})
        .json()["detail"]
        .startswith("after:")
    )


# ---------------------------------------------------------------------------------------- items and users
def test_items_are_created_updated_and_usable_by_events(serve, ease_run):
    client = serve(ease_run)
    assert client.get("/items/m01").json() == {
        "item_id": "m01",
        "title": "Title 1",
        "description": None,
        "categories": None,
        "recommendable": True,
    }
    assert client.get("/items/brand-new").status_code == 404
    created = client.post(
        "/items", json={"item_id": "brand-new", "title": "新しい", "categories": ["a", "b"]}
    )
    assert created.status_code == 201 and created.json()["recommendable"] is False
    updated = client.post("/items", json={"item_id": "brand-new", "title": "Renamed"})
    assert updated.status_code == 200 and client.get("/items/brand-new").json()["title"] == "Renamed"
    assert client.post("/events", json=event(item="brand-new")).json()["stored"] == 1
    # The model cannot score an item it was not trained on; the event is kept, the history skips it.
    recs = client.get("/users/new-user/recommendations").json()
    assert recs["history_length"] == 0 and "brand-new" not in [r["item_id"] for r in recs["items"]]


def test_users_are_listed_and_erased(serve, ease_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(ease_run, run_dir)  # erasure rewrites the run directory: not the shared one
    assert files_naming(run_dir, "u001") == ["data/events.parquet", "model/histories.parquet"]
    client = serve(run_dir)
    listed = client.get("/users", params={"prefix": "u00", "limit": 3}).json()["users"]
    assert [u["user_id"] for u in listed] == ["u000", "u001", "u002"] and all(
        u["events"] >= 10 for u in listed
    )
    for literal in ("U00", "u%", "u_0"):  # a prefix is matched literally and case-sensitively
        assert client.get("/users", params={"prefix": literal}).json()["users"] == []

    before = client.get("/users/u001/recommendations", params={"k": 5}).json()
    assert before["history_length"] > 0
    erased = client.delete("/users/u001").json()
    assert erased["events_deleted"] == before["history_length"]
    assert client.get("/users/u001/events").json()["events"] == []
    after = client.get("/users/u001/recommendations", params={"k": 5}).json()
    assert after["history_length"] == 0
    # The run directory no longer holds them either (its data and the model's histories); the trained
    # weights still reflect them, and /health counts them until the next training.
    assert files_naming(run_dir, "u001") == []
    assert client.get("/health").json()["erased_users_in_weights"] == 1
    # Reloading the run does not bring the erased events back (the newer-run case: the test below).
    assert client.post("/admin/reload").status_code == 200
    assert client.get("/users/u001/events").json()["events"] == []
    # Events after the erasure are the user's again.
    client.post("/events", json=event(user="u001", item="m02", ts=NOW + 10))
    assert [e["item_id"] for e in client.get("/users/u001/events").json()["events"]] == ["m02"]


def test_a_newer_run_never_brings_an_erased_users_events_back(serve, tmp_path):
    """A run trained later still holds the erased user's events, some dated after the erasure (a
    clock ahead, or times in milliseconds read as seconds): importing it must add none of them."""
    from penchant.data.dataset import Dataset
    from penchant.data.split import Protocol
    from penchant.models import EASE
    from penchant.runs import train_run
    from tests.conftest import build_cycle_dataset

    cycle = build_cycle_dataset()
    served = tmp_path / "served"
    train_run(cycle, EASE(), served, Protocol(), progress=False)
    client = serve(served)
    assert client.delete("/users/u001").json()["events_deleted"] > 0

    frame = cycle.events[["user_id", "item_id", "timestamp"]]
    later = pd.DataFrame(
        {
            "user_id": ["u001", "u001", "u002"],
            "item_id": ["m05", "m06", "m07"],
            "timestamp": [time.time() + 86_400 * 365, time.time() * 1000, 1_600_100_000],
        }
    )
    newer = Dataset.from_frames(pd.concat([frame, later]), cycle.items.reset_index(), name="cycle")
    train_run(newer, EASE(), tmp_path / "newer", Protocol(), progress=False)
    shutil.rmtree(served)
    shutil.copytree(tmp_path / "newer", served)
    assert client.post("/admin/reload").status_code == 200
    assert client.get("/users/u001/events").json()["events"] == []
    assert "m07" in [
        e["item_id"] for e in client.get("/users/u002/events", params={"limit": 100}).json()["events"]
    ]


# ---------------------------------------------------------------------------------------- service endpoints
def test_health_readiness_metrics_and_schema(serve, ease_run):
    client = serve(ease_run)
    health = client.get("/health").json()
    assert health == {
        "status": "ok",
        "model": "ease",
        "run": ease_run.name,  # no key needed, so no path on the server
        "items": 20,
        "retrieval": "exact",
        "auth": "open",
        "erased_users_in_weights": 0,
    }
    ready = client.get("/health/ready").json()
    assert ready["schema_version"] == SCHEMA_VERSION and ready["database"] in ("sqlite", "postgresql")
    client.get("/users/u000/recommendations")
    client.post("/events", json={})
    text = client.get("/metrics").text
    assert (
        'penchant_http_requests_total{method="GET",route="/users/{user_id}/recommendations",status="200"} 1.0'
        in text
    )
    assert 'penchant_http_requests_total{method="POST",route="/events",status="422"} 1.0' in text
    assert 'penchant_recommendations_total{retrieval="exact"} 1.0' in text
    assert "penchant_model_items 20.0" in text
    paths = client.get("/openapi.json").json()["paths"]
    for path in (
        "/events",
        "/users/{user_id}/events",
        "/users/{user_id}/recommendations",
        "/items",
        "/items/{item_id}",
        "/users/{user_id}",
        "/health",
        "/metrics",
        "/admin/reload",
    ):
        assert path in paths


def test_unknown_routes_and_methods_are_json(serve, ease_run):
    client = serve(ease_run)
    missing = client.get("/nothing/here")
    assert missing.status_code == 404 and missing.json()["detail"]
    assert client.put("/events").status_code == 405


def test_seen_items_follow_the_run_unless_the_request_says(serve, ease_run, db_url):
    from penchant.runs import load_run

    client = serve(ease_run)
    default = load_run(ease_run).model.excludes_seen
    seen = {e["item_id"] for e in all_events(client, "u003", limit=100)[0]}
    for asked in (None, True, False):
        params = {"k": 20} | ({} if asked is None else {"exclude_seen": asked})
        body = client.get("/users/u003/recommendations", params=params).json()
        used = default if asked is None else asked
        assert body["exclude_seen"] is used
        assert bool({i["item_id"] for i in body["items"]} & seen) is (not used)


def test_erasure_leaves_no_bytes_of_the_user_in_the_sqlite_file(serve, ease_run, db_url):
    if not db_url.startswith("sqlite"):
        pytest.skip("raw bytes of a SQLite file; PostgreSQL keeps dead tuples until the operator's VACUUM")
    client = serve(ease_run)
    secret = "erasable-visitor-4242"
    review = "a review only this visitor ever wrote, zqxj"
    assert client.post("/events", json=event(user=secret, item="m03", text=review)).status_code in (200, 201)
    path = Path(db_url.removeprefix("sqlite:///"))

    def raw() -> bytes:
        return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))

    with sqlite3.connect(path) as conn:  # into the database file itself, as a busy server's would be
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert secret.encode() in path.read_bytes() and review.encode() in path.read_bytes()
    assert client.delete(f"/users/{secret}").status_code == 200
    data = raw()
    assert secret.encode() not in data and review.encode() not in data


def test_user_ids_with_a_slash_are_refused_on_write_and_erasable_when_imported(serve, tmp_path):
    from penchant.data.dataset import Dataset
    from penchant.data.split import Protocol
    from penchant.models import EASE
    from penchant.runs import train_run
    from tests.conftest import build_cycle_dataset

    cycle = build_cycle_dataset()
    frame = cycle.events[["user_id", "item_id", "timestamp"]].copy()
    frame.loc[frame["user_id"] == "u001", "user_id"] = "team/u001"  # as a run file may hold
    run = tmp_path / "run"
    train_run(
        Dataset.from_frames(frame, cycle.items.reset_index(), name="c"),
        EASE(),
        run,
        Protocol(),
        progress=False,
    )
    client = serve(run)
    refused = client.post("/events", json=event(user="a/b"))
    assert refused.status_code == 422 and "must not contain '/'" in refused.text
    deleted = []
    for path in ("/users/team%2Fu001", "/users/team/u001"):
        erased = client.delete(path)
        assert erased.status_code == 200 and erased.json()["user_id"] == "team/u001", erased.text
        deleted.append(erased.json()["events_deleted"])
    assert deleted[0] > 0 and deleted[1] == 0  # gone after the first


def test_events_older_than_the_retention_are_deleted_at_start_and_by_each_sweep(serve, ease_run):
    client = serve(ease_run, retain_days=30)
    assert client.get("/users/u001/events").json()["events"] == []  # the run's 2020 events, at start
    now = time.time()
    old, recent = (
        event(user="r1", item="m01", ts=now - 40 * 86_400),
        event(user="r1", item="m02", ts=now - 86_400),
    )
    assert client.post("/events", json=[old, recent]).json()["stored"] == 2
    assert client.app.state.services.retention.sweep() == 1
    assert [e["item_id"] for e in client.get("/users/r1/events").json()["events"]] == ["m02"]
