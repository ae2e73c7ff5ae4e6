"""The database layer on real SQLite and PostgreSQL: migrations, durability settings, the store's rules."""

import pytest

from penchant.errors import InputError
from penchant.serve.db import SCHEMA_VERSION, Database, parse_url, redact
from penchant.serve.store import Event, EventStore, Item, UnknownItems, decode_cursor, encode_cursor


@pytest.fixture
def store(db_url):
    db = Database(db_url)
    db.migrate()
    yield EventStore(db)
    db.close()


def test_schema_is_created_once_and_versioned(db_url):
    db = Database(db_url)
    assert db.migrate() == 0 and db.version() == SCHEMA_VERSION
    assert db.migrate() == SCHEMA_VERSION  # a restart finds it current and changes nothing
    with db.transaction() as tx:
        tx.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
    with pytest.raises(InputError, match="newer than this penchant"):
        db.migrate()
    db.close()


def test_sqlite_is_durable_on_every_commit(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'e.db'}")
    with db.connection() as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    db.close()


def test_a_failed_batch_stores_nothing(store):
    store.put_item(Item("a", "A"))
    with pytest.raises(UnknownItems) as caught:
        store.add_events([Event("u", "a", 1.0), Event("u", "b", 2.0), Event("u", "c", 3.0)])
    assert caught.value.positions == (1, 2) and caught.value.item_ids == ("b", "c")
    assert store.history("u", 10) == ([], [])
    assert store.add_events([Event("u", "a", 1.0), Event("u", "a", 1.0, "view")]) == 2
    assert store.add_events([Event("u", "a", 1.0)]) == 0  # an exact repeat is stored once


def test_pages_are_ordered_by_time_then_arrival(store):
    store.put_item(Item("a"))
    # Out-of-order arrival and equal timestamps: pages follow time, then the order events arrived in.
    store.add_events([Event("u", "a", t, str(i)) for i, t in enumerate([5.0, 1.0, 3.0, 3.0, 3.0, 2.0, 9.0])])
    seen, cursor = [], None
    while True:
        page, cursor = store.user_events("u", 2, cursor)
        seen += [(e.timestamp, e.event_type) for e in page]
        if cursor is None:
            break
    assert seen == [(1.0, "1"), (2.0, "5"), (3.0, "2"), (3.0, "3"), (3.0, "4"), (5.0, "0"), (9.0, "6")]
    assert [e.timestamp for e in store.user_events("u", 3, latest=True)[0]] == [3.0, 5.0, 9.0]
    assert store.history("u", 3) == (["a", "a", "a"], [3.0, 5.0, 9.0])


def test_cursor_round_trip_and_rejection():
    assert decode_cursor(encode_cursor(1.5, 7)) == (1.5, 7)
    for bad in ("", "abc", encode_cursor(1.0, 2)[:-2] + "!!", "WyJhIiwgMV0"):
        with pytest.raises(InputError, match="after:"):
            decode_cursor(bad)


def test_urls():
    assert parse_url("postgresql://u:secret@h:5/db")[0] == "postgresql"
    assert redact("postgresql://u:secret@h:5/db") == "postgresql://u:***@h:5/db"
    assert redact("postgresql://me@db/p?password=hunter2&sslmode=require") == (
        "postgresql://me@db/p?password=***&sslmode=require"
    )
    assert "s3cr3t" not in redact("postgresql://me@db/p?sslpassword=s3cr3t")
    assert redact("sqlite:///tmp/x.db") == "sqlite:///tmp/x.db"
    with pytest.raises(InputError, match="expected sqlite"):
        parse_url("mysql://x")
    with pytest.raises(InputError, match="cannot create the folder"):
        Database("sqlite:////proc/nope/x.db")


def test_a_user_prefix_is_an_index_search_on_sqlite(tmp_path):
    from penchant.serve.store import USERS_WITH_PREFIX, EventStore

    db = Database(f"sqlite:///{tmp_path / 'e.db'}")
    db.migrate()
    store = EventStore(db)
    captured = []
    original = db.fetchall
    db.fetchall = lambda statement, params=(): (
        captured.append((statement, params)) or original(statement, params)
    )
    assert store.users("u0", 5) == []
    statement, params = captured[-1]
    plan = original("EXPLAIN QUERY PLAN " + statement, params)[0][3]
    assert plan.startswith("SEARCH") and "(user_id>? AND user_id<?)" in plan  # not "SCAN events"
    assert statement != USERS_WITH_PREFIX and params[:2] == ["u0", "u1"]


def test_a_run_imports_in_batches_whole_and_once(tmp_path, monkeypatch, cycle_dataset):
    import penchant.serve.store as store_module
    from penchant.serve.store import EventStore

    db = Database(f"sqlite:///{tmp_path / 'e.db'}")
    db.migrate()
    store = EventStore(db)
    monkeypatch.setattr(store_module, "IMPORT_BATCH", 7)  # many batches of a small log
    events = cycle_dataset.events[["user_id", "item_id", "timestamp"]].assign(
        event_type="", value=None, text=None
    )
    added = store.import_run("k1", "/runs/x", events, cycle_dataset.items.reset_index())
    assert added == (len(events), cycle_dataset.n_items)
    assert db.fetchone("SELECT COUNT(*) FROM events")[0] == len(events)
    assert store.import_run("k1", "/runs/x", events, cycle_dataset.items.reset_index()) is None


def test_an_imported_run_keeps_every_field_and_missing_stays_missing(tmp_path):
    import numpy as np
    import pandas as pd

    from penchant.serve.store import EventStore

    db = Database(f"sqlite:///{tmp_path / 'e.db'}")
    db.migrate()
    events = pd.DataFrame(
        {
            "user_id": pd.Series(["u1", "u1", "007"], dtype="str"),
            "item_id": pd.Series(["i1", "i2", "i1"], dtype="str"),
            "timestamp": [1.0, 2.5, 3.0],
            "event_type": pd.Series(["click", None, "view"], dtype="str"),
            "value": [np.nan, 4.5, 1.0],
            "text": [None, "nice", None],
        }
    )
    items = pd.DataFrame(
        {"title": ["One", np.nan], "categories": [["a", "b"], None]},
        index=pd.Index(["i1", "i2"], name="item_id"),
    )

    EventStore(db).import_run("k", "/runs/x", events, items)

    rows = db.fetchall("SELECT user_id, item_id, ts, event_type, value, text FROM events ORDER BY ts")
    assert [tuple(r) for r in rows] == [
        ("u1", "i1", 1.0, "click", None, None),
        ("u1", "i2", 2.5, "", 4.5, "nice"),
        ("007", "i1", 3.0, "view", 1.0, None),
    ]
    stored = db.fetchall("SELECT item_id, title, description, categories FROM items ORDER BY item_id")
    assert [tuple(r) for r in stored] == [("i1", "One", None, '["a", "b"]'), ("i2", None, None, None)]


def test_erasure_records_are_keyed_per_store_and_older_forms_still_count(tmp_path, cycle_dataset):
    import hashlib

    stores = []
    for name in ("a", "b"):
        db = Database(f"sqlite:///{tmp_path / name}.sqlite3")
        db.migrate()
        stores.append(EventStore(db))
    for store in stores:
        store.erase_user("u001")
    records = [store.db.fetchone("SELECT user_id FROM erasures")[0] for store in stores]
    plain_hash = hashlib.sha256(b"u001").hexdigest()
    assert all(r.startswith("hmac:") and plain_hash not in r and "u001" not in r for r in records)
    assert records[0] != records[1]  # another store's secret: the records cannot be linked
    assert stores[0].erased("u001") and not stores[0].erased("u002")
    # Records written before the keyed form (SHA-256, or the plain ID) still keep a run's events out.
    with stores[1].db.transaction() as tx:
        tx.execute(
            "INSERT INTO erasures (user_id, erased_at) VALUES (?, 0)",
            ("sha256:" + hashlib.sha256(b"u002").hexdigest(),),
        )
        tx.execute("INSERT INTO erasures (user_id, erased_at) VALUES (?, 0)", ("u003",))
    stores[1].import_run("r", str(tmp_path), cycle_dataset.events, cycle_dataset.items)
    stored = {row[0] for row in stores[1].db.fetchall("SELECT DISTINCT user_id FROM events")}
    assert {"u001", "u002", "u003"}.isdisjoint(stored) and "u004" in stored
    assert stores[1].erased("u002") and stores[1].erased("u003")
    for store in stores:
        store.db.close()


def test_a_sql_query_on_postgresql_is_an_events_source_read_only(postgres):
    import psycopg

    from penchant.data import SqlSource, load_dataset

    url = postgres.create_database("t_sql_source")
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE clicks (visitor TEXT, sku INTEGER, ts DOUBLE PRECISION)")
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO clicks VALUES (%s, %s, %s)",
                [(f"u{u}", i, 1_600_000_000 + 60 * (u * 10 + i)) for u in range(4) for i in range(5)],
            )
    query = "SELECT visitor AS user_id, sku AS item_id, ts AS timestamp FROM clicks"
    data = load_dataset(SqlSource(query, url))
    assert len(data.events) == 20 and data.n_users == 4 and data.n_items == 5
    with pytest.raises(InputError, match="query failed .*read-only"):
        load_dataset(SqlSource("DELETE FROM clicks RETURNING visitor", url))
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT COUNT(*) FROM clicks").fetchone()[0] == 20
