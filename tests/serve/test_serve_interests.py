"""Profiles, explanations and the explore knob over HTTP, on SQLite and PostgreSQL: each answers from
the user's current stored history, and matches the library called directly on the same history."""

from pathlib import Path

import pytest

from penchant.data.dataset import Dataset, History
from penchant.data.split import Protocol
from penchant.explain import explain
from penchant.interests import Taxonomy, build_profile
from penchant.models import EASE
from penchant.runs import load_run, train_run
from penchant.serve.db import Database
from penchant.serve.keys import Scope, create_key

POLICIES = ("diversity", "calibrated", "novel-interest", "bandit")


@pytest.fixture(scope="module")
def library(transformer_run):
    """The run and its taxonomy, loaded as the CLI does: the oracle for the service's answers."""
    run = load_run(transformer_run)
    return run, Taxonomy.from_categories(run.dataset)


def close(got, expected, tol=1e-4) -> bool:
    """Equal JSON, numbers within ``tol`` (the service scores with its own torch thread settings)."""
    if isinstance(expected, dict):
        return (
            isinstance(got, dict)
            and got.keys() == expected.keys()
            and all(close(got[k], expected[k], tol) for k in expected)
        )
    if isinstance(expected, list):
        return (
            isinstance(got, list)
            and len(got) == len(expected)
            and all(close(g, e, tol) for g, e in zip(got, expected, strict=True))
        )
    if isinstance(expected, float) and not isinstance(got, str):
        return got == pytest.approx(expected, abs=tol)
    return got == expected


def comedy_burst(user: str, start: float, n: int = 20) -> list[dict]:
    """``n`` views of cycle items 5-8 (comedies only) from ``start`` on."""
    return [{"user_id": user, "item_id": f"m0{5 + i % 4}", "timestamp": start + 10 * i} for i in range(n)]


def test_profile_is_the_librarys_and_counts_an_event_just_posted(serve, transformer_run, library, genres):
    client = serve(transformer_run)
    run, taxonomy = library
    expected = build_profile("u005", run.model.history_of("u005"), taxonomy).to_dict()
    got = client.get("/users/u005/profile")
    assert got.status_code == 200
    assert close(got.json(), expected)
    assert set(got.json()) >= {"user_id", "long_term", "short_term", "emerging", "fading", "summary"}
    assert got.json()["emerging"] == []  # a walk round the cycle visits every genre evenly

    # Right after the user's own history (24 events), 20 comedies: Comedy emerges at once, the rest
    # fade (the history is now long enough, 44 events, to tell the two horizons apart).
    assert client.post("/events", json=comedy_burst("u005", 1_600_018_000 + 3000)).status_code == 200
    profile = client.get("/users/u005/profile").json()
    assert [s["interest"] for s in profile["emerging"]] == ["Comedy"]
    assert sorted(s["interest"] for s in profile["fading"]) == sorted(g for g in genres if g != "Comedy")
    assert profile["short_term"] == [{"interest": "Comedy", "weight": 1.0}]
    assert profile["n_events"] == len(run.model.history_of("u005")) + 20


def test_explanation_is_the_librarys_on_the_current_history(serve, transformer_run, library, genres):
    client = serve(transformer_run)
    run, taxonomy = library
    top_item = client.get("/users/u002/recommendations?k=1").json()["items"][0]["item_id"]
    got = client.get(f"/users/u002/recommendations/{top_item}/explanation?top=3")
    assert got.status_code == 200
    expected = explain(run.model, taxonomy, top_item, user_id="u002", top=3).to_dict()
    assert close(got.json(), expected)
    assert got.json()["rank"] == 1 and len(got.json()["items"]) == 3
    assert {w["interest"] for w in got.json()["interests"]} <= set(genres)

    # A new event is weighed too: it is the last position of the history explained.
    history = run.model.history_of("u002")
    last = run.model.item_map.ids[history.items[-1]]
    nxt = f"m{(int(last[1:]) + 1) % 20:02d}"
    client.post("/events", json={"user_id": "u002", "item_id": nxt, "timestamp": history.times[-1] + 60})
    after = client.get(f"/users/u002/recommendations/{top_item}/explanation?top=50").json()
    assert after["n_history"] == len(history) + 1
    assert len(history) in {c["position"] for c in after["items"]}


def test_explanation_weighs_only_the_most_recent_events(serve, transformer_run, library):
    client = serve(transformer_run, explain_events=5)
    run, taxonomy = library
    history = run.model.history_of("u003")
    recent = History(history.items[-5:], history.times[-5:])
    got = client.get("/users/u003/recommendations/m00/explanation?top=10").json()
    assert close(got, explain(run.model, taxonomy, "m00", user_id="u003", history=recent, top=10).to_dict())
    assert got["n_history"] == 5


@pytest.mark.parametrize("policy", POLICIES)
def test_explore_knob_marks_roles_and_interests(serve, transformer_run, policy, genres):
    # u004 has walked the whole cycle; already-seen items are kept in (the cycle comes back to them).
    client = serve(transformer_run)
    plain = client.get("/users/u004/recommendations?k=5&exclude_seen=false").json()
    assert plain["policy"] is None and plain["explore"] == 0.0
    assert all(i["role"] is None and i["interest"] is None for i in plain["items"])

    # explore=0 is the model's own ranking exactly, every item exploited.
    zero = client.get(f"/users/u004/recommendations?k=5&policy={policy}&explore=0&exclude_seen=false").json()
    assert [i["item_id"] for i in zero["items"]] == [i["item_id"] for i in plain["items"]]
    assert {i["role"] for i in zero["items"]} == {"exploit"} and zero["policy"] == policy
    assert all(i["interest"] in genres for i in zero["items"])

    full = client.get(f"/users/u004/recommendations?k=5&policy={policy}&explore=1&exclude_seen=false").json()
    assert full["explore"] == 1.0 and len(full["items"]) == 5
    for item in full["items"]:
        assert item["role"] in ("exploit", "explore") and item["interest"] in genres
        # "exploit" means exactly: among the model's own top 5.
        assert (item["role"] == "exploit") == (item["item_id"] in {i["item_id"] for i in plain["items"]})


def test_calibrated_exploration_follows_a_just_posted_burst(serve, transformer_run):
    client = serve(transformer_run)
    before = client.get(
        "/users/u005/recommendations?k=10&policy=calibrated&explore=1&exclude_seen=false"
    ).json()
    client.post("/events", json=comedy_burst("u005", 1_600_018_000 + 3000, n=40))
    after = client.get(
        "/users/u005/recommendations?k=10&policy=calibrated&explore=1&exclude_seen=false"
    ).json()
    assert after["history_length"] == before["history_length"] + 40
    comedies = [i for i in after["items"] if i["interest"] == "Comedy"]
    assert len(comedies) > sum(i["interest"] == "Comedy" for i in before["items"])


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("explore=1.5&policy=diversity", "explore"),
        ("explore=-0.1&policy=diversity", "explore"),
        ("explore=nan&policy=diversity", "explore"),
        ("explore=lots&policy=diversity", "explore"),
        ("policy=random", "policy"),
        ("explore=0.5", "policy"),  # a knob without a policy to turn
    ],
)
def test_bad_explore_parameters_name_the_field(serve, transformer_run, query, field):
    client = serve(transformer_run)
    answer = client.get(f"/users/u000/recommendations?{query}")
    assert answer.status_code == 422
    assert answer.json()["detail"].startswith(f"{field}: ")
    assert "\n" not in answer.json()["detail"]


def test_unknown_users_and_items_are_404_in_words(serve, transformer_run):
    client = serve(transformer_run)
    for path in ("/users/nobody/profile", "/users/nobody/recommendations/m01/explanation"):
        answer = client.get(path)
        assert answer.status_code == 404 and answer.json()["detail"].startswith("user_id: "), path
    unknown_item = client.get("/users/u000/recommendations/nothing/explanation")
    assert unknown_item.status_code == 404 and unknown_item.json()["detail"].startswith("item_id: ")
    too_few = client.get("/users/u000/recommendations/m01/explanation?top=0")
    assert too_few.status_code == 422 and too_few.json()["detail"].startswith("top: ")
    # A user whose only events are of items the model cannot know has no profile yet either.
    client.post("/items", json={"item_id": "new-1", "title": "New"})
    client.post("/events", json={"user_id": "fresh", "item_id": "new-1", "timestamp": 1.7e9})
    assert client.get("/users/fresh/profile").status_code == 404
    # ... but recommendations (with a policy too) still work for a new user: the popular items,
    # marked as the fallback they are; a known user's list is not.
    fresh = client.get("/users/fresh/recommendations?k=3&policy=diversity&explore=0.5")
    assert fresh.status_code == 200 and len(fresh.json()["items"]) == 3
    assert fresh.json()["fallback"] == "popular"
    assert client.get("/users/u000/recommendations?k=3").json()["fallback"] is None


def test_a_service_can_answer_unknown_users_with_404(serve, transformer_run):
    client = serve(transformer_run, unknown_users="404")
    answer = client.get("/users/nobody/recommendations")
    assert answer.status_code == 404 and answer.json()["detail"].startswith("user_id: ")
    assert "'nobody'" in answer.json()["detail"]
    assert client.get("/users/u000/recommendations").status_code == 200


@pytest.fixture(scope="module")
def bare_run(tmp_path_factory, cycle_dataset) -> Path:
    """EASE on the cycle with a catalogue of bare IDs: no categories and no text."""
    directory = tmp_path_factory.mktemp("bare-run")
    bare = Dataset.from_frames(cycle_dataset.events[["user_id", "item_id", "timestamp"]].copy(), name="bare")
    train_run(bare, EASE(), directory, Protocol(), progress=False)
    return directory


def test_a_run_without_categories_or_text_says_so(serve, bare_run):
    client = serve(bare_run)
    for path in (
        "/users/u000/profile",
        "/users/u000/recommendations/m01/explanation",
        "/users/u000/recommendations?policy=calibrated",
    ):
        answer = client.get(path)
        assert answer.status_code == 409, path
        assert "neither item categories nor item text" in answer.json()["detail"], path
    assert client.get("/users/u000/recommendations").status_code == 200


def test_a_run_without_categories_serves_text_topics(serve, topics_run):
    # The same topics as `penchant profile` finds: the profile matches the library's on the same run.
    client = serve(topics_run)
    run = load_run(topics_run)
    taxonomy = run.taxonomy()
    assert taxonomy.n_interests >= 2
    tops = {}
    for user in ("u00", "u01"):  # a sci-fi fan and a romantic
        answer = client.get(f"/users/{user}/profile")
        assert answer.status_code == 200, answer.text
        expected = build_profile(user, run.model.history_of(user), taxonomy)
        assert [w["interest"] for w in answer.json()["long_term"]] == [w.interest for w in expected.long_term]
        tops[user] = answer.json()["long_term"][0]["interest"]
    assert tops["u00"] != tops["u01"]
    explored = client.get("/users/u00/recommendations?k=4&policy=calibrated&explore=0.5")
    assert explored.status_code == 200 and all(i["interest"] for i in explored.json()["items"])


def test_reads_need_a_read_key(serve, transformer_run, db_url):
    client = serve(transformer_run, open_access=False)
    db = Database(db_url)
    read = create_key(db, Scope.read)
    db.close()
    for path in (
        "/users/u000/profile",
        "/users/u000/recommendations/m01/explanation",
        "/users/u000/recommendations?policy=bandit&explore=0.5",
    ):
        assert client.get(path).status_code == 401, path
        assert client.get(path, headers={"X-API-Key": read}).status_code == 200, path


def test_new_endpoints_are_in_the_openapi_schema(serve, transformer_run):
    schema = serve(transformer_run).get("/openapi.json").json()
    assert "/users/{user_id}/profile" in schema["paths"]
    assert "/users/{user_id}/recommendations/{item_id}/explanation" in schema["paths"]
    params = {p["name"] for p in schema["paths"]["/users/{user_id}/recommendations"]["get"]["parameters"]}
    assert {"explore", "policy"} <= params


@pytest.mark.parametrize("policy", POLICIES)
def test_turning_the_knob_changes_the_slate(serve, transformer_run, policy):
    """A user of one interest (Action): at explore=1 every policy puts at least one item outside
    the model's own top 5 (role explore); at 0 none. Would fail if the knob did nothing."""
    client = serve(transformer_run)
    events = [
        {"user_id": "narrow", "item_id": f"m0{i}", "timestamp": 1_600_500_000 + 60 * i} for i in range(4)
    ]
    assert client.post("/events", json=events).status_code in (200, 201)
    query = f"/users/narrow/recommendations?k=5&exclude_seen=false&policy={policy}"
    plain = [
        i["item_id"]
        for i in client.get("/users/narrow/recommendations?k=5&exclude_seen=false").json()["items"]
    ]
    zero = client.get(query + "&explore=0").json()["items"]
    assert [i["item_id"] for i in zero] == plain and {i["role"] for i in zero} == {"exploit"}
    full = client.get(query + "&explore=1").json()["items"]
    explored = [i["item_id"] for i in full if i["role"] == "explore"]
    assert explored and not set(explored) & set(plain)


def test_erasing_a_user_drops_their_bandit_posteriors_and_their_run_history(
    serve, transformer_run, tmp_path, db_url
):
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(transformer_run, run_dir)  # erasure rewrites the run directory
    client = serve(run_dir)
    assert (
        client.get("/users/u003/recommendations?policy=bandit&explore=0.5&exclude_seen=false").status_code
        == 200
    )
    assert (
        client.get("/users/u004/recommendations?policy=bandit&explore=0.5&exclude_seen=false").status_code
        == 200
    )
    loaded = client.app.state.services.models.current
    db = Database(db_url)
    stored = "SELECT DISTINCT user_id FROM bandit_posteriors ORDER BY user_id"
    assert db.fetchall(stored) == [("u003",), ("u004",)]
    assert client.delete("/users/u003").status_code == 200
    assert db.fetchall(stored) == [("u004",)]  # only the erased user's
    db.close()
    assert "u003" not in loaded.run.model.histories and "u003" in load_run(transformer_run).model.histories
    assert "u003" not in load_run(run_dir).model.histories
