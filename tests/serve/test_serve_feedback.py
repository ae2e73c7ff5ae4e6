"""The feedback loop over HTTP, on SQLite and PostgreSQL: every response is an impression with a
request ID, a later event rewards it, the bandit's posterior lives in the store (shared by replicas,
erased with the user) and /metrics and /feedback count click-through by role."""

import json
import shutil
import time

import pytest

from penchant.serve.db import Database
from tests.clitools import assert_one_line_error, penchant

NARROW = [{"user_id": "narrow", "item_id": f"m0{i}", "timestamp": 1_600_500_000 + 60 * i} for i in range(4)]
BANDIT = "/users/narrow/recommendations?k=5&exclude_seen=false&policy=bandit&explore=1"


def posterior(db_url: str, user: str) -> dict[str, tuple[float, float]]:
    db = Database(db_url)
    try:
        rows = db.fetchall("SELECT interest, alpha, beta FROM bandit_posteriors WHERE user_id = ?", (user,))
    finally:
        db.close()
    return {interest: (alpha, beta) for interest, alpha, beta in rows}


def count(db_url: str, table: str, user: str) -> int:
    db = Database(db_url)
    try:
        return db.fetchone(f"SELECT COUNT(*) FROM {table} WHERE user_id = ?", (user,))[0]
    finally:
        db.close()


def metric(client, name: str, **labels) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(f"{name}{{{wanted}}} "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def totals(client) -> dict[tuple, tuple[int, int]]:
    body = client.get("/feedback").json()
    return {(r["policy"], r["role"]): (r["shown"], r["rewarded"]) for r in body["totals"]}


@pytest.fixture
def run_dir(transformer_run, tmp_path):
    directory = tmp_path / "run"
    shutil.copytree(transformer_run, directory)  # erasure rewrites the run directory
    return directory


def test_a_click_naming_the_request_rewards_the_explore_item_in_every_replica_until_erased(
    serve, run_dir, db_url
):
    first, second = serve(run_dir), serve(run_dir)  # two replicas over one database
    assert first.post("/events", json=NARROW).status_code in (200, 201)
    answer = first.get(BANDIT).json()
    explored = [i for i in answer["items"] if i["role"] == "explore"]
    assert answer["request_id"] and explored
    assert all(0 < i["propensity"] <= 1 for i in answer["items"])
    before = posterior(db_url, "narrow")
    assert set(before) == {"Action", "Comedy", "Drama", "Sci-Fi"}  # the prior, stored at the first slate

    clicked = explored[0]
    event = {
        "user_id": "narrow",
        "item_id": clicked["item_id"],
        "timestamp": 1_600_600_000,
        "event_type": "click",
        "request_id": answer["request_id"],
    }
    assert first.post("/events", json=event).json()["rewarded"] == 1
    assert metric(first, "penchant_rewards_total", policy="bandit", role="explore") == 1.0
    assert metric(first, "penchant_impressions_total", policy="bandit", role="explore") == len(explored)

    after = posterior(db_url, "narrow")
    moved = {name for name in after if after[name][0] > before[name][0]}
    assert clicked["interest"] in moved  # alpha grew for the clicked item's interests
    assert all(after[name][1] == before[name][1] for name in after)  # no miss counted yet

    # The other replica reports the reward and draws from the stored posterior, not a new prior.
    assert totals(second)[("bandit", "explore")] == (len(explored), 1)
    assert second.get(BANDIT).status_code == 200
    assert posterior(db_url, "narrow") == after
    # The same click again rewards nothing more.
    assert second.post("/events", json={**event, "timestamp": 1_600_600_001}).json()["rewarded"] == 0

    assert second.delete("/users/narrow").status_code == 200
    assert posterior(db_url, "narrow") == {}
    assert count(db_url, "impressions", "narrow") == 0
    assert ("bandit", "explore") not in totals(first)


def test_every_response_is_an_impression_and_an_event_soon_after_rewards_it(serve, run_dir, db_url):
    client = serve(run_dir)
    answer = client.get("/users/u003/recommendations?k=4&exclude_seen=false").json()
    assert len(answer["request_id"]) == 32 and [i["propensity"] for i in answer["items"]] == [1.0] * 4
    assert totals(client) == {(None, None): (4, 0)}
    assert count(db_url, "impressions", "u003") == 4
    # No request ID: an event of a shown item within the window rewards the latest impression of it.
    item = answer["items"][2]["item_id"]
    stored = client.post("/events", json={"user_id": "u003", "item_id": item, "timestamp": 1_700_000_000})
    assert stored.json() == {"received": 1, "stored": 1, "rewarded": 1}
    # An item that was not shown rewards nothing.
    unshown = next(
        f"m{i:02d}" for i in range(20) if f"m{i:02d}" not in {x["item_id"] for x in answer["items"]}
    )
    assert (
        client.post(
            "/events", json={"user_id": "u003", "item_id": unshown, "timestamp": 1_700_000_001}
        ).json()["rewarded"]
        == 0
    )
    assert totals(client) == {(None, None): (4, 1)}
    assert metric(client, "penchant_rewards_total", policy="none", role="none") == 1.0
    timeline = client.get("/feedback?hours=1&bucket=60").json()["timeline"]
    assert [(r["shown"], r["rewarded"], r["ctr"]) for r in timeline] == [(4, 1, 0.25)]


def test_outside_the_window_only_the_request_id_rewards(serve, run_dir):
    client = serve(run_dir, reward_window=0.05)
    answer = client.get("/users/u003/recommendations?k=3&exclude_seen=false").json()
    first, second = answer["items"][0]["item_id"], answer["items"][1]["item_id"]
    time.sleep(0.2)
    late = client.post("/events", json={"user_id": "u003", "item_id": first, "timestamp": 1_700_000_000})
    assert late.json()["rewarded"] == 0
    named = {
        "user_id": "u003",
        "item_id": second,
        "timestamp": 1_700_000_001,
        "request_id": answer["request_id"],
    }
    assert client.post("/events", json=named).json()["rewarded"] == 1
    # A request ID of another user's response rewards nothing.
    other = client.get("/users/u004/recommendations?k=3&exclude_seen=false").json()
    stolen = {**named, "item_id": other["items"][0]["item_id"], "request_id": other["request_id"]}
    assert client.post("/events", json={**stolen, "timestamp": 1_700_000_002}).json()["rewarded"] == 0


def test_a_bandit_slate_left_unclicked_counts_as_a_miss_and_a_late_click_moves_it_back(
    serve, run_dir, db_url
):
    client = serve(run_dir, reward_window=0.05)
    assert client.post("/events", json=NARROW).status_code in (200, 201)
    answer = client.get(BANDIT).json()
    prior = posterior(db_url, "narrow")
    time.sleep(0.2)
    assert client.get(BANDIT).status_code == 200  # reading the posterior settles the expired slate
    missed = posterior(db_url, "narrow")
    shown = {i["interest"] for i in answer["items"]}
    assert all(missed[n][1] > prior[n][1] for n in shown)  # beta grew for every interest shown
    assert all(missed[n][0] == prior[n][0] for n in missed)

    late = answer["items"][0]
    event = {"user_id": "narrow", "item_id": late["item_id"], "timestamp": 1_600_700_000}
    assert client.post("/events", json={**event, "request_id": answer["request_id"]}).json()["rewarded"] == 1
    moved = posterior(db_url, "narrow")
    assert moved[late["interest"]][0] > missed[late["interest"]][0]
    assert moved[late["interest"]][1] < missed[late["interest"]][1]


def test_bad_feedback_parameters_name_the_field(serve, run_dir):
    client = serve(run_dir)
    bad = client.post(
        "/events", json={"user_id": "u003", "item_id": "m01", "timestamp": 1_700_000_000, "request_id": ""}
    )
    assert bad.status_code == 422 and "request_id" in bad.text
    assert client.get("/feedback?hours=0").status_code == 422
    assert client.get("/feedback?bucket=0.5").status_code == 422


def test_evaluate_impressions_replays_each_response_on_the_history_of_its_time(serve, run_dir, tmp_path):
    """The service logs plain model rankings and two of them get a click. Replayed on each user's
    events as they were when the list was shown, the model's own ranking is the logged one, so its
    estimate is exactly the logged clicks per response (every item-position matched); replayed on
    the later history (the clicks included) it would not match. A policy that randomises nothing
    gets the note that the estimate is biased for other policies."""
    url = f"sqlite:///{tmp_path / 'events.sqlite3'}"
    client = serve(run_dir, db_url=url)
    for n, user in enumerate(("u003", "u004", "u005", "u006")):
        answer = client.get(f"/users/{user}/recommendations?k=5&exclude_seen=false").json()
        if n < 2:
            event = {
                "user_id": user,
                "item_id": answer["items"][0]["item_id"],
                "timestamp": 1_700_000_000 + n,
            }
            assert (
                client.post("/events", json={**event, "request_id": answer["request_id"]}).json()["rewarded"]
                == 1
            )
    client.app.state.services.feedback.flush()

    result = penchant("evaluate", "--run", str(run_dir), "--impressions", "--db", url, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["logged"]["responses"] == 4 and report["logged"]["item_positions"] == 20
    assert report["estimate"]["matched"] == 20
    assert report["estimate"]["ips"] == pytest.approx(0.5) and report["estimate"]["snips"] == pytest.approx(
        0.5
    )
    assert report["logged"]["randomised_share"] == 0.0 and report["logged"]["policies"] == {"model": 4}
    assert "off-policy" in report["protocol"]["name"]

    table = penchant(
        "evaluate",
        "--run",
        str(run_dir),
        "--impressions",
        "--db",
        url,
        "--policy",
        "diversity",
        "--explore",
        "1",
    )
    assert table.returncode == 0, table.stderr
    assert "IPS" in table.stdout and "SNIPS" in table.stdout and "protocol: off-policy" in table.stdout
    assert "propensity 1" in table.stderr


def test_evaluate_impressions_needs_a_store_with_impressions(run_dir, tmp_path):
    url = f"sqlite:///{tmp_path / 'empty.sqlite3'}"
    Database(url).migrate()
    assert_one_line_error(
        penchant("evaluate", "--run", str(run_dir), "--impressions", "--db", url),
        "no recommendation responses",
    )


def test_an_impression_queued_before_an_erasure_is_never_written(tmp_path):
    """A replica queued an impression of the user; another erased the user before the writer ran:
    the batch is written without it (others' rows kept)."""
    from penchant.serve.feedback import Feedback, Shown
    from penchant.serve.store import EventStore

    db = Database(f"sqlite:///{tmp_path / 'events.sqlite3'}")
    db.migrate()
    store = EventStore(db)
    feedback = Feedback(db, 1800.0, flush_every=3600.0, erasures=store)  # no background write here
    try:
        feedback.log("gone", [Shown("m01"), Shown("m02")], None, 0.0, True)
        feedback.log("kept", [Shown("m03")], None, 0.0, True)
        store.erase_user("gone")
        feedback.flush()
        assert count(f"sqlite:///{tmp_path / 'events.sqlite3'}", "impressions", "gone") == 0
        assert count(f"sqlite:///{tmp_path / 'events.sqlite3'}", "impressions", "kept") == 1
    finally:
        feedback.close()
        db.close()
