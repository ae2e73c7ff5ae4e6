"""The event store: events, the item catalogue and erasures, durable in the database.

Stored events are the truth about what users did; the model only scores. A user's history for a
recommendation is read from here, so an event is reflected as soon as its write commits, in every
process that shares the database.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import math
import secrets
import time
from collections.abc import Container, Sequence
from dataclasses import dataclass

import pandas as pd

from penchant.errors import InputError
from penchant.serve.db import Database

_EVENT_INSERT = (
    "INSERT INTO events (user_id, item_id, ts, event_type, value, text, received_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
)


@dataclass(frozen=True)
class Event:
    user_id: str
    item_id: str
    timestamp: float
    event_type: str | None = None
    value: float | None = None
    text: str | None = None


@dataclass(frozen=True)
class StoredEvent(Event):
    id: int = 0
    title: str | None = None


@dataclass(frozen=True)
class Item:
    item_id: str
    title: str | None = None
    description: str | None = None
    categories: list[str] | None = None
    attributes: dict | None = None


class UnknownItems(InputError):
    """Events name items the catalogue does not have: their positions in the request and their IDs."""

    def __init__(self, positions: tuple[int, ...], item_ids: tuple[str, ...]):
        super().__init__(f"unknown item '{item_ids[0]}'; add it with POST /items first")
        self.positions = positions
        self.item_ids = item_ids


class EventStore:
    def __init__(self, db: Database):
        self.db = db
        self._secret: bytes | None = None

    def erasure_key(self, user_id: str) -> str:
        """What the erasures table keeps of an erased user: an HMAC-SHA-256 of the ID keyed by a
        random secret of this store, enough to recognise the user's events in a run file. Without
        that store's secret a list of candidate IDs cannot be matched against the records, and the
        records of two stores cannot be linked."""
        if self._secret is None:
            with self.db.transaction() as tx:
                tx.execute(
                    "INSERT INTO store_secrets (name, value) VALUES ('erasure', ?) ON CONFLICT (name) DO NOTHING",
                    (secrets.token_hex(32),),
                )
                value = tx.execute("SELECT value FROM store_secrets WHERE name = 'erasure'").fetchone()[0]
            self._secret = bytes.fromhex(value)
        return "hmac:" + hmac.new(self._secret, str(user_id).encode(), hashlib.sha256).hexdigest()

    def _erasure_forms(self, user_id: str) -> tuple[str, str, str]:
        """Every form an erasure record of the user may have: keyed (now), SHA-256 and the plain ID
        (stores from before schema 3 and before hashing)."""
        return self.erasure_key(user_id), legacy_erasure_key(user_id), str(user_id)

    # ------------------------------------------------------------------ events
    def add_events(self, events: Sequence[Event]) -> int:
        """Store events durably (committed before returning); returns how many were new.

        Exact duplicates (same user, item, time and type) are stored once. Every event's item must be
        in the catalogue, or nothing is stored.
        """
        now = time.time()
        item_ids = sorted({e.item_id for e in events})
        with self.db.transaction() as tx:
            known: set[str] = set()
            for start in range(0, len(item_ids), 500):
                chunk = item_ids[start : start + 500]
                marks = ",".join("?" * len(chunk))
                known.update(
                    r[0] for r in tx.execute(f"SELECT item_id FROM items WHERE item_id IN ({marks})", chunk)
                )
            missing = [(i, e.item_id) for i, e in enumerate(events) if e.item_id not in known]
            if missing:
                raise UnknownItems(tuple(i for i, _ in missing), tuple(item for _, item in missing))
            rows = [
                (e.user_id, e.item_id, e.timestamp, e.event_type or "", e.value, e.text, now) for e in events
            ]
            return tx.executemany(_EVENT_INSERT, rows)

    def user_events(
        self, user_id: str, limit: int, after: str | None = None, latest: bool = False
    ) -> tuple[list[StoredEvent], str | None]:
        """A page of a user's events, oldest first, and the cursor of the next page (None at the end).

        ``latest`` gives the user's most recent ``limit`` events (still oldest first) instead of the first.
        """
        columns = (
            "SELECT e.id, e.user_id, e.item_id, e.ts, e.event_type, e.value, e.text, i.title "
            "FROM events e LEFT JOIN items i ON i.item_id = e.item_id WHERE e.user_id = ?"
        )
        if latest:
            rows = self.db.fetchall(columns + " ORDER BY e.ts DESC, e.id DESC LIMIT ?", (user_id, limit))[
                ::-1
            ]
            return [_stored(r) for r in rows], None
        params: list = [user_id]
        if after is not None:
            ts, last_id = decode_cursor(after)
            columns += " AND (e.ts > ? OR (e.ts = ? AND e.id > ?))"
            params += [ts, ts, last_id]
        rows = self.db.fetchall(columns + " ORDER BY e.ts, e.id LIMIT ?", (*params, limit + 1))
        page = [_stored(r) for r in rows[:limit]]
        following = encode_cursor(page[-1].timestamp, page[-1].id) if len(rows) > limit else None
        return page, following

    def history(
        self, user_id: str, limit: int, received_by: float | None = None
    ) -> tuple[list[str], list[float]]:
        """The user's most recent ``limit`` events as item IDs and times, oldest first; with
        ``received_by``, as the store knew them then (events received by that time, Unix seconds)."""
        if received_by is None:
            statement, params = "", (user_id, limit)
        else:
            statement, params = " AND received_at <= ?", (user_id, received_by, limit)
        rows = self.db.fetchall(
            f"SELECT item_id, ts FROM events WHERE user_id = ?{statement} ORDER BY ts DESC, id DESC LIMIT ?",
            params,
        )
        rows.reverse()
        return [r[0] for r in rows], [r[1] for r in rows]

    def users(self, prefix: str, limit: int) -> list[tuple[str, int]]:
        """Users whose ID starts with ``prefix`` and their event counts, in ID order."""
        # substr, not LIKE: a user ID may hold LIKE's wildcards, and SQLite's LIKE ignores ASCII case.
        statement, params = USERS_WITH_PREFIX, [len(prefix), prefix, limit]
        if self.db.dialect == "sqlite" and prefix and prefix[-1] != chr(0x10FFFF):
            # SQLite compares text byte by byte, so the IDs with this prefix are one range of the
            # (user_id, ts, id) index: a search, not a scan of every user.
            statement = USERS_WITH_PREFIX.replace("WHERE ", "WHERE user_id >= ? AND user_id < ? AND ")
            params = [prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1), *params]
        rows = self.db.fetchall(statement, params)
        return [(r[0], int(r[1])) for r in rows]

    def history_version(self, user_id: str, wait: bool = True) -> tuple[int, int]:
        """(count, newest id) of the user's stored events: changes whenever an event is added or the
        user erased (ids are never reused), so a cached per-user state can be checked against it.
        One index-only lookup on ``events_user_time``; ``wait`` False: :class:`PoolBusy` rather than
        waiting for a connection."""
        count, newest = self.db.fetchone(
            "SELECT COUNT(*), MAX(id) FROM events WHERE user_id = ?", (user_id,), wait=wait
        )
        return int(count), int(newest or 0)

    def erase_user(self, user_id: str) -> int:
        """Delete the user's events, impressions and bandit posteriors, and remember the erasure (by a
        hash of the ID, not the ID), so that importing a run's data never brings them back; returns
        how many events were deleted."""
        key = self.erasure_key(user_id)  # before the transaction: the first call writes the secret
        with self.db.transaction() as tx:
            deleted = tx.execute("DELETE FROM events WHERE user_id = ?", (user_id,)).rowcount
            tx.execute("DELETE FROM impressions WHERE user_id = ?", (user_id,))
            tx.execute("DELETE FROM bandit_posteriors WHERE user_id = ?", (user_id,))
            tx.execute(
                "INSERT INTO erasures (user_id, erased_at) VALUES (?, ?) "
                "ON CONFLICT (user_id) DO UPDATE SET erased_at = excluded.erased_at",
                (key, time.time()),
            )
        self.db.scrub()
        return deleted

    def delete_older_than(self, cutoff: float) -> int:
        """Delete the events whose time is before ``cutoff`` (Unix seconds), and the impressions shown
        before it, overwriting them on SQLite as an erasure does; returns how many events were deleted."""
        with self.db.transaction() as tx:
            deleted = tx.execute("DELETE FROM events WHERE ts < ?", (cutoff,)).rowcount
            deleted_impressions = tx.execute("DELETE FROM impressions WHERE shown_at < ?", (cutoff,)).rowcount
        if deleted or deleted_impressions:
            self.db.scrub()
        return deleted

    def erased(self, user_id: str) -> bool:
        """Whether the user was ever erased (events posted after an erasure are kept)."""
        return self.erased_at(user_id) is not None

    def last_erasure(self) -> float | None:
        """When the most recent erasure of any user happened (Unix seconds), None if never."""
        row = self.db.fetchone("SELECT MAX(erased_at) FROM erasures")
        return None if row is None or row[0] is None else float(row[0])

    def erased_at(self, user_id: str) -> float | None:
        """When the user was last erased (Unix seconds), None if never."""
        forms = self._erasure_forms(user_id)
        row = self.db.fetchone("SELECT MAX(erased_at) FROM erasures WHERE user_id IN (?, ?, ?)", forms)
        return None if row is None or row[0] is None else float(row[0])

    # ------------------------------------------------------------------ items
    def put_item(self, item: Item) -> bool:
        """Create or update an item; returns True when it was new."""
        with self.db.transaction() as tx:
            existed = (
                tx.execute("SELECT 1 FROM items WHERE item_id = ?", (item.item_id,)).fetchone() is not None
            )
            tx.execute(
                "INSERT INTO items (item_id, title, description, categories, attributes, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (item_id) DO UPDATE SET title = excluded.title, "
                "description = excluded.description, categories = excluded.categories, "
                "attributes = excluded.attributes, updated_at = excluded.updated_at",
                _item_row(item, time.time()),
            )
            return not existed

    def get_item(self, item_id: str) -> Item | None:
        row = self.db.fetchone(
            "SELECT item_id, title, description, categories, attributes FROM items WHERE item_id = ?",
            (item_id,),
        )
        if row is None:
            return None
        return Item(row[0], row[1], row[2], _loads(row[3]), _loads(row[4]))

    def items(self, not_in: Container[str] = ()) -> list[Item]:
        """The stored catalogue, in insertion order, but for the items whose IDs are in ``not_in``
        (a served model's items: at a million of them, their IDs alone are read)."""
        ids = [r[0] for r in self.db.fetchall("SELECT item_id FROM items ORDER BY updated_at, item_id")]
        wanted = [i for i in ids if i not in not_in]
        out: list[Item] = []
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            marks = ", ".join("?" * len(chunk))
            rows = self.db.fetchall(
                "SELECT item_id, title, description, categories, attributes FROM items "
                f"WHERE item_id IN ({marks}) ORDER BY updated_at, item_id",
                tuple(chunk),
            )
            out += [Item(r[0], r[1], r[2], _loads(r[3]), _loads(r[4])) for r in rows]
        return out

    def count_items(self) -> int:
        return int(self.db.fetchone("SELECT COUNT(*) FROM items")[0])

    # ------------------------------------------------------------------ runs
    def imported(self, run_key: str) -> bool:
        """Whether the run keyed ``run_key`` was imported (by this process or another sharing the store)."""
        return self.db.fetchone("SELECT 1 FROM imported_runs WHERE run_key = ?", (run_key,)) is not None

    def import_run(
        self, run_key: str, run_dir: str, events: pd.DataFrame, items: pd.DataFrame
    ) -> tuple[int, int] | None:
        """Copy a run's catalogue and events into the store once per run (keyed by ``run_key``).

        Items already stored keep their stored version; events already stored are not duplicated; no
        event of an erased user is imported. Returns (events, items) added, or
        None when this run was imported before.
        """
        if self.imported(run_key):
            return None
        now = time.time()
        item_rows = [_item_row(item, now) for item in _catalogue(items)]
        # An erased user's events never come back from a run file, whatever their timestamps say (a
        # clock ahead, milliseconds read as seconds): what they do after the erasure reaches the store
        # through POST /events, which a run file never replaces.
        erased = {row[0] for row in self.db.fetchall("SELECT user_id FROM erasures")}
        frame = events
        if erased:
            users = pd.Series(pd.unique(events["user_id"]))
            # Records from before the keyed hash (SHA-256) and before hashing (the ID) are honoured.
            gone = users[users.map(lambda u: not erased.isdisjoint(self._erasure_forms(u)))]
            frame = events[~events["user_id"].isin(gone)]

        def event_rows(start: int) -> list[tuple]:
            # Column by column into Python values (a C loop each), then zipped: no Python call per cell.
            part = frame.iloc[start : start + IMPORT_BATCH]
            types = [t if t is not None else "" for t in _values(part["event_type"])]
            return list(
                zip(
                    _values(part["user_id"]),
                    _values(part["item_id"]),
                    part["timestamp"].astype(float).tolist(),
                    types,
                    _values(part["value"]),
                    _values(part["text"]),
                    itertools.repeat(now, len(part)),
                    strict=False,  # the repeat is as long as the part
                )
            )

        with self.db.transaction() as tx:
            # Two processes importing at once: the second finds the run recorded and adds nothing.
            claimed = tx.execute(
                "INSERT INTO imported_runs (run_key, run_dir, events, items, imported_at) "
                "VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT DO NOTHING",
                (run_key, run_dir, len(frame), len(item_rows), now),
            ).rowcount
            if not claimed:
                return None
            n_items = tx.executemany(
                "INSERT INTO items (item_id, title, description, categories, attributes, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                item_rows,
            )
            # In batches, so that memory holds one batch of rows, never the whole log; one
            # transaction still, so that a run is imported whole or not at all.
            n_events = sum(
                tx.executemany(_EVENT_INSERT, event_rows(start))
                for start in range(0, len(frame), IMPORT_BATCH)
            )
        return n_events, n_items


IMPORT_BATCH = 50_000  # event rows per executemany when a run is imported

USERS_WITH_PREFIX = (
    "SELECT user_id, COUNT(*) FROM events WHERE substr(user_id, 1, ?) = ? "
    "GROUP BY user_id ORDER BY user_id LIMIT ?"
)


# ---------------------------------------------------------------------------------------- helpers
def legacy_erasure_key(user_id: str) -> str:
    """The erasure records of stores before schema 3: an unkeyed SHA-256 of the ID."""
    return "sha256:" + hashlib.sha256(str(user_id).encode()).hexdigest()


def encode_cursor(ts: float, event_id: int) -> str:
    return base64.urlsafe_b64encode(json.dumps([ts, event_id]).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, int]:
    try:
        ts, event_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if isinstance(ts, bool) or isinstance(event_id, bool):
            raise TypeError
        ts, event_id = float(ts), int(event_id)
        if not math.isfinite(ts) or abs(event_id) > 2**62:
            raise ValueError
        return ts, event_id
    except (ValueError, TypeError, UnicodeDecodeError):
        raise InputError(
            "after: not a cursor returned by this endpoint (use the 'next' value of a page)"
        ) from None


def _stored(row: tuple) -> StoredEvent:
    event_id, user_id, item_id, ts, event_type, value, text, title = row
    return StoredEvent(user_id, item_id, ts, event_type or None, value, text, id=event_id, title=title)


def _item_row(item: Item, now: float) -> tuple:
    return (
        item.item_id,
        item.title,
        item.description,
        json.dumps(item.categories) if item.categories is not None else None,
        json.dumps(item.attributes) if item.attributes is not None else None,
        now,
    )


def _catalogue(items: pd.DataFrame) -> list[Item]:
    n = len(items)
    titles = _values(items["title"]) if "title" in items else [None] * n
    descriptions = _values(items["description"]) if "description" in items else [None] * n
    categories = items["categories"].tolist() if "categories" in items else [None] * n
    return [
        Item(
            str(item_id),
            title=title,
            description=description,
            categories=[str(c) for c in cats] if cats is not None and not _is_missing(cats) else None,
        )
        for item_id, title, description, cats in zip(
            items.index, titles, descriptions, categories, strict=True
        )
    ]


def _values(column: pd.Series) -> list:
    """A column as Python values (numbers and strings, not NumPy scalars), None where missing."""
    return column.astype(object).where(column.notna(), None).tolist()


def _is_missing(value) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # arrays and lists are not missing
        return False


def _none_if_missing(value):
    if value is None or _is_missing(value):
        return None
    return value.item() if hasattr(value, "item") else value


def _loads(text: str | None):
    return json.loads(text) if text is not None else None
