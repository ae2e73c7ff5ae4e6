"""Erasing a user from a run (the right to erasure): their events, review text, history, text vectors
and cached text vectors leave every file of the run directory and the embedding cache, while every
other user is served as before."""

import sqlite3

import numpy as np
import pandas as pd

from penchant.data.dataset import Dataset
from penchant.data.split import Protocol
from penchant.models import InterestTransformer
from penchant.models.transitions import ItemTransitions
from penchant.runs import erase_user, load_run, train_run
from penchant.text.cache import EmbeddingCache, text_key
from tests.text.test_text_model import config, query_dataset

ERASED = "erase-me-7"
SECRET = "zebra keeper's review 7731: the striped one was wonderful"


def reviews_dataset() -> Dataset:
    """The query dataset plus one user whose reviews no one else wrote."""
    data = query_dataset()
    mine = pd.DataFrame(
        {
            "user_id": [ERASED] * 4,
            "item_id": ["s1", "s2", "s3", "r1"],
            "timestamp": 1_700_000_000 + 60 * np.arange(4),
            "text": [SECRET, None, SECRET + " again", None],
        }
    )
    events = pd.concat([data.events[["user_id", "item_id", "timestamp", "text"]], mine])
    return Dataset.from_frames(events, data.items.reset_index(), name="queries")


def files_holding(directory, needle: str) -> list[str]:
    """Files whose bytes hold ``needle`` in UTF-8 or in UTF-32 (NumPy's string arrays in .npz)."""
    forms = (needle.encode(), needle.encode("utf-32-le"))
    return [str(p) for p in directory.rglob("*") if p.is_file() and any(f in p.read_bytes() for f in forms)]


def train_run_histories(run) -> dict:
    """Each user's events the transition counts were made from: all before their test target."""
    before_test = run.split().before_test
    return {run.dataset.user_map.ids[u]: h for u, h in run.dataset.histories(before_test).items()}


def cached(texts) -> int:
    with sqlite3.connect(EmbeddingCache().path) as db:
        keys = [text_key(t) for t in texts]
        return db.execute(
            f"SELECT COUNT(*) FROM embeddings WHERE sha IN ({','.join('?' * len(keys))})", keys
        ).fetchone()[0]


def test_an_erased_user_leaves_no_trace_in_the_run_or_the_embedding_cache(tmp_path):
    data = reviews_dataset()
    run = train_run(
        data, InterestTransformer(config(max_epochs=2)), tmp_path / "run", Protocol(), progress=False
    )
    texts = [SECRET, SECRET + " again"]
    # Before: the ID and the review are in the run's files (data, model histories, event text) and the cache.
    assert files_holding(tmp_path / "run", ERASED) and files_holding(tmp_path / "run", SECRET)
    holding = {p.rsplit("/", 1)[1] for p in files_holding(tmp_path / "run", ERASED)}
    assert {"histories.parquet", "event_text.npz", "transitions.npz"} <= holding
    assert cached(texts) == 2
    others = [run.model.history_of(u) for u in list(data.user_map.ids) if u != ERASED][:10]
    # The weights serve everyone else as before; the transition counts lose the user's pairs, so
    # they are compared with counts made without the user.
    run.model.transition_weight, weight = 0.0, run.model.transition_weight
    before = run.model.score(others)
    run.model.transition_weight = weight
    without = ItemTransitions.fit(
        [h for u, h in train_run_histories(run).items() if u != ERASED], run.model.n_items
    ).counts.toarray()

    assert erase_user(run, ERASED) == 4
    assert files_holding(tmp_path / "run", ERASED) == [] and files_holding(tmp_path / "run", SECRET) == []
    assert cached(texts) == 0
    assert text_key(SECRET).encode() not in EmbeddingCache().path.read_bytes()  # no free page keeps it
    # The loaded run and the directory agree: the user is a stranger; everyone else is served as before.
    for model in (run.model, load_run(tmp_path / "run").model):
        assert ERASED not in model.histories
        assert not any(key[0] == ERASED for key in model.event_index)
        assert ERASED not in model.transitions.counted
        np.testing.assert_allclose(model.transitions.counts.toarray(), without, atol=1e-9)
        model.transition_weight = 0.0
        np.testing.assert_allclose(model.score(others), before, rtol=1e-5, atol=1e-5)
    assert load_run(tmp_path / "run").model.transition_weight == weight
    assert ERASED not in set(load_run(tmp_path / "run").dataset.events["user_id"])
    assert erase_user(run, ERASED) == 0  # twice is harmless


def test_erasure_through_one_replica_leaves_no_trace_anywhere_after_reload_and_restart(tmp_path):
    """The user has a run history with review text and posts a new review; replica A erases them.
    Then no file of the run, no byte of the SQLite store (read raw), no cache entry and no state of
    either replica holds their ID or their review."""
    from fastapi.testclient import TestClient

    from penchant.serve.app import create_app
    from penchant.serve.settings import Settings
    from tests.clitools import files_naming

    data = reviews_dataset()
    run_dir = tmp_path / "run"
    train_run(data, InterestTransformer(config(max_epochs=2)), run_dir, Protocol(), progress=False)
    store = tmp_path / "store" / "events.sqlite3"
    settings = Settings(run_dir=run_dir, db_url=f"sqlite:///{store}", open_access=True)

    def replica() -> TestClient:
        client = TestClient(create_app(settings), base_url="http://127.0.0.1")
        client.__enter__()
        return client

    a, b = replica(), replica()
    posted = {"user_id": ERASED, "item_id": "r2", "timestamp": 1_700_001_000, "text": SECRET + " posted"}
    assert a.post("/events", json=posted).status_code == 200
    for client in (a, b):
        assert client.get(f"/users/{ERASED}/recommendations").json()["history_length"] == 5
    needles = [ERASED, SECRET]

    def raw_hits() -> list[str]:
        paths = [
            p for p in [*run_dir.rglob("*"), *store.parent.iterdir(), EmbeddingCache().path] if p.is_file()
        ]
        return [f"{p.name}: {n}" for p in paths for n in needles if n.encode() in p.read_bytes()]

    assert raw_hits()  # they were there
    assert a.delete(f"/users/{ERASED}").json()["events_deleted"] == 5
    # Replica B notices at its next version check of the user.
    assert b.get(f"/users/{ERASED}/recommendations").json()["history_length"] == 0
    assert a.post("/admin/reload").status_code == 200
    a.__exit__(None, None, None)
    a = replica()  # a restart
    assert a.get(f"/users/{ERASED}/recommendations").json()["history_length"] == 0
    for client in (a, b):
        model = client.app.state.services.models.current.run.model
        assert ERASED not in model.histories and not any(key[0] == ERASED for key in model.event_index)
    assert raw_hits() == [] and files_naming(run_dir, ERASED) == []
    assert cached([SECRET, SECRET + " again"]) == 0
    for client in (a, b):
        client.__exit__(None, None, None)
