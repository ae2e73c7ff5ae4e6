"""Online state: an event counts at once, without retraining; a newer run replaces the model without
failing a request."""

import shutil
import threading
import time

import numpy as np

from penchant.data.dataset import History
from penchant.data.split import Protocol
from penchant.models import Popularity
from penchant.runs import load_run, train_run
from penchant.serve.schemas import RecommendationsOut

NOW = 1_700_000_000.0


def top1(client, user):
    # The cycle comes back to items its walkers already had: keep them in.
    response = client.get(f"/users/{user}/recommendations", params={"k": 1, "exclude_seen": False})
    assert response.status_code == 200, response.text
    return response.json()["items"][0]["item_id"]


def test_a_new_event_changes_the_next_recommendation_at_once(serve, transformer_run):
    # The transformer learned the cycle m00 -> m01 -> ... -> m19 -> m00: the next item after a user's
    # last item is known, so each event posted must move the top recommendation one step along.
    client = serve(transformer_run)
    for step, item in enumerate(["m05", "m06", "m07"]):
        client.post("/events", json={"user_id": "walker", "item_id": item, "timestamp": NOW + 60 * step})
    assert top1(client, "walker") == "m08"
    client.post("/events", json={"user_id": "walker", "item_id": "m08", "timestamp": NOW + 180})
    assert top1(client, "walker") == "m09"
    # A known user's stored history continues the same way.
    last = client.get("/users/u000/events", params={"latest": True, "limit": 1}).json()["events"][0]
    following = f"m{(int(last['item_id'][1:]) + 1) % 20:02d}"
    assert top1(client, "u000") == following
    client.post(
        "/events", json={"user_id": "u000", "item_id": following, "timestamp": last["timestamp"] + 60}
    )
    assert top1(client, "u000") == f"m{(int(following[1:]) + 1) % 20:02d}"


def test_a_start_on_a_store_that_holds_the_run_reads_no_events_from_the_run(serve, transformer_run):
    # The first start imports the run's events into the store, so it reads them; a later start (or a
    # second replica on the same database) serves from the store and needs only the model and catalogue.
    first = serve(transformer_run)
    assert first.app.state.services.models.current.run._dataset is not None
    last = first.get("/users/u000/events", params={"latest": True, "limit": 1}).json()["events"][0]
    second = serve(transformer_run)
    run = second.app.state.services.models.current.run
    assert run._dataset is None
    # It still answers from the stored history, and still has the catalogue's interests.
    assert top1(second, "u000") == f"m{(int(last['item_id'][1:]) + 1) % 20:02d}"
    assert second.get("/users/u000/profile").status_code == 200
    assert run._dataset is None


def served(client, user, k, exclude_seen=False):
    response = client.get(f"/users/{user}/recommendations", params={"k": k, "exclude_seen": exclude_seen})
    assert response.status_code == 200, response.text
    return [(r["item_id"], r["score"]) for r in response.json()["items"]]


def reference(model, client, user, k, exclude_seen=False):
    """The oracle: the model itself on the user's whole stored history, read back through the API."""
    events = client.get(f"/users/{user}/events", params={"limit": 1000}).json()["events"]
    history = History(
        model.item_map.indices([e["item_id"] for e in events]),
        np.array([e["timestamp"] for e in events], dtype=np.float64),
    )
    return [(r.item_id, r.score) for r in model.recommend(history=history, k=k, exclude_seen=exclude_seen)]


def assert_same(got, want):
    # Same items in the same order; scores to float32 rounding (the service scores in a worker
    # thread, whose BLAS thread count, and so summation order, may differ from the test's). The
    # scores are sums of terms of order 1, so a score near 0 carries an absolute rounding error of
    # ~1e-7 too: -0.0139924 against -0.0139924 failed a relative tolerance alone.
    assert [item for item, _ in got] == [item for item, _ in want]
    np.testing.assert_allclose([s for _, s in got], [s for _, s in want], rtol=1e-6, atol=1e-6)


def test_the_cached_online_state_equals_the_model_on_the_stored_history(serve, transformer_run, db_url):
    # Two services on one database stand for two processes: each caches users' states, and each must
    # notice the events the other stored.
    model = load_run(transformer_run).model
    first, second = serve(transformer_run), serve(transformer_run, db_url=db_url)
    posts = [  # (service, item, minutes): one event out of time order, one batch, one duplicate
        (first, "m03", 0), (first, "m04", 1), (second, "m05", 2), (first, "m11", -5),
        (second, ["m06", "m07"], 3), (first, "m07", 4), (second, "m07", 4),
    ]  # fmt: skip
    for client, items, minutes in posts:
        batch = [
            {"user_id": "cached", "item_id": item, "timestamp": NOW + 60 * (minutes + j)}
            for j, item in enumerate([items] if isinstance(items, str) else items)
        ]
        assert client.post("/events", json=batch if len(batch) > 1 else batch[0]).status_code == 200
        for reader in (first, second):
            for exclude_seen in (False, True):
                assert_same(
                    served(reader, "cached", 5, exclude_seen),
                    reference(model, reader, "cached", 5, exclude_seen),
                )
    # The reads above were answered from the state the writes computed, and it is current.
    services = first.app.state.services
    version = services.store.history_version("cached")
    assert services.models.current.users.get("cached", version) is not None
    RecommendationsOut.model_validate(first.get("/users/cached/recommendations").json())
    assert first.delete("/users/cached").status_code == 200
    assert_same(served(second, "cached", 5), reference(model, second, "cached", 5))
    assert second.get("/users/cached/recommendations").json()["history_length"] == 0


def test_exclude_seen_and_new_users(serve, transformer_run):
    client = serve(transformer_run)
    seen = {e["item_id"] for e in client.get("/users/u000/events", params={"limit": 1000}).json()["events"]}
    recs = client.get("/users/u000/recommendations", params={"k": 20, "exclude_seen": True}).json()
    assert recs["exclude_seen"] and not seen & {r["item_id"] for r in recs["items"]}
    assert len(recs["items"]) == 20 - len(seen)
    cold = client.get("/users/nobody-yet/recommendations", params={"k": 3}).json()
    assert cold["history_length"] == 0 and len(cold["items"]) == 3


def wait_until(condition, seconds=30):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_reload_swaps_the_model_while_requests_keep_succeeding(
    serve, transformer_run, make_cycle_dataset, tmp_path
):
    run_dir = tmp_path / "run"
    shutil.copytree(transformer_run, run_dir)
    client = serve(run_dir)
    assert client.get("/health").json()["model"] == "transformer"

    failures, answered, started_after, stop = [], [], [], threading.Event()
    reloaded_at = [float("inf")]

    def hammer():
        while not stop.is_set():
            started = time.monotonic()
            response = client.get("/users/u001/recommendations", params={"k": 3})
            (answered if response.status_code == 200 else failures).append(response.json().get("model"))
            if started > reloaded_at[0]:
                started_after.append(response.json().get("model"))

    threads = [threading.Thread(target=hammer) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        wait_until(lambda: len(answered) >= 3)
        before = list(answered)
        # A newer run is written into the served directory, then loaded.
        shutil.rmtree(run_dir)
        train_run(make_cycle_dataset(), Popularity(), run_dir, Protocol(), progress=False)
        reloaded = client.post("/admin/reload")
        reloaded_at[0] = time.monotonic()
        wait_until(lambda: len(started_after) >= 5)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert reloaded.status_code == 200 and reloaded.json()["model"] == "popularity"
    assert failures == []
    # A request that took the old model before the swap may finish after newer ones; every request
    # begun after the reload answered is the new model's.
    assert set(before) == {"transformer"} and set(started_after) == {"popularity"}
    assert client.get("/users/u001/recommendations").json()["model"] == "popularity"
    assert 'penchant_model_reloads_total{outcome="ok"} 1.0' in client.get("/metrics").text


def test_a_failed_reload_keeps_serving_the_old_model(serve, ease_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(ease_run, run_dir)
    client = serve(run_dir)
    (run_dir / "run.json").unlink()
    failed = client.post("/admin/reload")
    assert failed.status_code == 422 and "run.json missing" in failed.json()["detail"]
    assert client.get("/users/u001/recommendations").json()["model"] == "ease"
    assert 'penchant_model_reloads_total{outcome="failed"} 1.0' in client.get("/metrics").text


def test_a_cached_read_never_blocks_the_event_loop_on_a_busy_pool(serve, ease_run, db_url):
    """recommend_async answers a cached SQLite read on the event loop; with every pooled connection
    taken it must hand the request to a worker thread, not wait on the loop for a free one."""
    import asyncio
    import contextlib

    import pytest

    from penchant.serve.db import PoolBusy

    if not db_url.startswith("sqlite"):
        pytest.skip("only SQLite reads are answered on the event loop")
    client = serve(ease_run)
    services = client.app.state.services
    assert client.get("/users/u000/recommendations").status_code == 200  # now cached

    async def scenario():
        with contextlib.ExitStack() as held:
            for _ in range(services.settings.db_pool_size):
                held.enter_context(services.db.connection())
            with pytest.raises(PoolBusy):
                services.store.history_version("u000", wait=False)
            task = asyncio.create_task(services.answers.recommend_async("u000", 5, False))
            await asyncio.sleep(0.3)  # the loop runs on: the request waits in a worker thread
            assert not task.done()
        return await task  # connections free again: the worker answers

    answer = asyncio.run(scenario())
    assert len(answer.items) == 5


def test_the_state_cache_is_bounded_by_the_bytes_its_states_hold():
    """Exact retrieval holds a score row per user (4 bytes per item), ANN a query vector: under the
    same byte budget a 10,000-item exact row lets 3 users stay, 64-float query vectors all 50."""
    from penchant.serve.state import UserState, UserStates

    history = History(np.arange(5), np.arange(5.0))
    per_history = history.items.nbytes + history.times.nbytes
    budget = 3 * (40_000 + per_history) + 100
    exact = UserStates(max_bytes=budget)
    for n in range(5):
        exact.put(f"u{n}", UserState((1, n), history, np.zeros((1, 10_000), dtype=np.float32)))
    assert len(exact) == 3 and exact.get("u0", (1, 0)) is None and exact.get("u4", (1, 4)) is not None
    assert exact.bytes == 3 * (40_000 + per_history)
    exact.discard("u4")
    assert len(exact) == 2 and exact.bytes == 2 * (40_000 + per_history)
    ann = UserStates(max_bytes=budget)
    for n in range(50):
        ann.put(f"u{n}", UserState((1, n), history, np.zeros((1, 64), dtype=np.float32)))
    assert len(ann) == 50
    ann.put("u0", UserState((2, 9), history, np.zeros((1, 64), dtype=np.float32)))  # replaced, not added
    assert len(ann) == 50 and ann.bytes == 50 * (256 + per_history)
