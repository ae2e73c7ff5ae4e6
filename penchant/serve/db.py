"""The database under the event store: SQLite by default, PostgreSQL by URL, with the same SQL.

Statements are written once with ``?`` placeholders; for PostgreSQL they become ``%s``. The few
places where the two dialects differ (an auto-increment key, taking the migration lock) are named
here and nowhere else. Connections come from a small pool, each used by one request thread at a time.
"""

from __future__ import annotations

import queue
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from penchant.errors import InputError

SCHEMA_VERSION = 4

# Each migration takes the schema from version i to i + 1; never edit one that has shipped, add another.
MIGRATIONS: list[list[str]] = [
    [
        """CREATE TABLE events (
            id {serial},
            user_id TEXT NOT NULL,
            item_id TEXT NOT NULL,
            ts DOUBLE PRECISION NOT NULL,
            event_type TEXT NOT NULL DEFAULT '',
            value DOUBLE PRECISION,
            text TEXT,
            received_at DOUBLE PRECISION NOT NULL
        )""",
        # The data contract's duplicate rule, enforced by the database: a retried write is stored once.
        "CREATE UNIQUE INDEX events_dedupe ON events (user_id, item_id, ts, event_type)",
        "CREATE INDEX events_user_time ON events (user_id, ts, id)",
        """CREATE TABLE items (
            item_id TEXT PRIMARY KEY,
            title TEXT,
            description TEXT,
            categories TEXT,
            attributes TEXT,
            updated_at DOUBLE PRECISION NOT NULL
        )""",
        "CREATE TABLE erasures (user_id TEXT PRIMARY KEY, erased_at DOUBLE PRECISION NOT NULL)",
        """CREATE TABLE api_keys (
            key_id TEXT PRIMARY KEY,
            salt TEXT NOT NULL,
            key_hash TEXT NOT NULL,
            scope TEXT NOT NULL,
            name TEXT,
            created_at DOUBLE PRECISION NOT NULL
        )""",
        """CREATE TABLE imported_runs (
            run_key TEXT PRIMARY KEY,
            run_dir TEXT NOT NULL,
            events INTEGER NOT NULL,
            items INTEGER NOT NULL,
            imported_at DOUBLE PRECISION NOT NULL
        )""",
    ],
    [
        # Keys that expire and keys that are revoked (kept, so that `keys list` still shows them).
        "ALTER TABLE api_keys ADD COLUMN expires_at DOUBLE PRECISION",
        "ALTER TABLE api_keys ADD COLUMN revoked_at DOUBLE PRECISION",
    ],
    [
        # When each key was last verified (to within the service's key cache, 30 s).
        "ALTER TABLE api_keys ADD COLUMN last_used_at DOUBLE PRECISION",
        # Random values made once per store: the key of the erasure records' HMAC.
        "CREATE TABLE store_secrets (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    ],
    [
        # The feedback loop: every item of every recommendation response, and whether it was rewarded.
        """CREATE TABLE impressions (
            request_id TEXT NOT NULL,
            position INTEGER NOT NULL,
            user_id TEXT NOT NULL,
            item_id TEXT NOT NULL,
            role TEXT,
            interest TEXT,
            policy TEXT NOT NULL DEFAULT '',
            explore DOUBLE PRECISION NOT NULL,
            exclude_seen INTEGER NOT NULL,
            propensity DOUBLE PRECISION NOT NULL,
            shown_at DOUBLE PRECISION NOT NULL,
            rewarded_at DOUBLE PRECISION,
            settled INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (request_id, position)
        )""",
        "CREATE INDEX impressions_user_item ON impressions (user_id, item_id, shown_at)",
        "CREATE INDEX impressions_shown ON impressions (shown_at)",
        # The bandit's Beta posterior of each user's click rate per interest, shared by replicas.
        """CREATE TABLE bandit_posteriors (
            user_id TEXT NOT NULL,
            interest TEXT NOT NULL,
            alpha DOUBLE PRECISION NOT NULL,
            beta DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (user_id, interest)
        )""",
    ],
]
assert len(MIGRATIONS) == SCHEMA_VERSION

_SERIAL = {
    "sqlite": "INTEGER PRIMARY KEY AUTOINCREMENT",
    "postgresql": "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
}


class Database:
    """A pool of connections to one SQLite file or PostgreSQL database."""

    def __init__(self, url: str, pool_size: int = 8, timeout: float = 10.0):
        self.url = url
        self.dialect, self._target = parse_url(url)
        self._timeout = timeout
        self._pool: queue.LifoQueue = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(pool_size)
        self._closed = False

    # ------------------------------------------------------------------ connections
    def _connect(self):
        if self.dialect == "sqlite":
            conn = sqlite3.connect(
                self._target, timeout=self._timeout, isolation_level=None, check_same_thread=False
            )
            # WAL lets readers run beside the writer; FULL syncs the WAL on every commit, so an
            # acknowledged write survives a power cut, not just a killed process.
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA secure_delete=ON")  # deleted rows are overwritten, not left in free pages
            conn.execute(f"PRAGMA busy_timeout={int(self._timeout * 1000)}")
            return conn
        import psycopg

        return psycopg.connect(self._target, autocommit=True, connect_timeout=int(self._timeout))

    @contextmanager
    def connection(self, wait: bool = True) -> Iterator[Any]:
        """A pooled connection; with ``wait`` False, :class:`PoolBusy` at once when none is free
        (for callers on the event loop, which must never block)."""
        if not wait:
            if not self._slots.acquire(blocking=False):
                raise PoolBusy("every database connection is in use")
        elif not self._slots.acquire(timeout=self._timeout):
            raise TimeoutError(f"no database connection free within {self._timeout:.0f}s")
        try:
            try:
                conn = self._pool.get_nowait()
            except queue.Empty:
                conn = self._connect()
            healthy = True
            try:
                yield conn
            except BaseException:
                healthy = self._usable(conn)
                raise
            finally:
                if healthy and not self._closed:
                    self._pool.put(conn)
                else:
                    conn.close()
        finally:
            self._slots.release()

    def _usable(self, conn) -> bool:
        if self.dialect == "sqlite":
            return True
        return not conn.closed and conn.info.transaction_status == 0  # idle, not broken or mid-transaction

    def close(self) -> None:
        self._closed = True
        while True:
            try:
                self._pool.get_nowait().close()
            except queue.Empty:
                return

    # ------------------------------------------------------------------ statements
    def sql(self, statement: str) -> str:
        """A statement written with ``?`` placeholders in this database's parameter style."""
        return statement if self.dialect == "sqlite" else statement.replace("?", "%s")

    def fetchall(self, statement: str, params: Sequence[Any] = ()) -> list[tuple]:
        with self.connection() as conn:
            return conn.execute(self.sql(statement), params).fetchall()

    def fetchone(self, statement: str, params: Sequence[Any] = (), wait: bool = True) -> tuple | None:
        with self.connection(wait) as conn:
            return conn.execute(self.sql(statement), params).fetchone()

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """A write transaction, committed (durably) when the block ends, rolled back on an exception."""
        with self.connection() as conn:
            if self.dialect == "sqlite":
                # IMMEDIATE takes the write lock up front, so two writers queue instead of deadlocking.
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield Transaction(self, conn)
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            else:
                with conn.transaction():
                    yield Transaction(self, conn)

    def scrub(self) -> None:
        """After an erasure: on SQLite, copy the write-ahead log into the database file and truncate
        it, so the deleted rows' old page images leave the log too (``secure_delete`` has zeroed them
        in the file). PostgreSQL keeps dead tuples until ``VACUUM``, which the operator runs."""
        if self.dialect == "sqlite":
            with self.connection() as conn:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    # ------------------------------------------------------------------ schema
    def migrate(self) -> int:
        """Create or upgrade the schema to :data:`SCHEMA_VERSION`; returns the version found before."""
        with self.transaction() as tx:
            if self.dialect == "postgresql":
                # Replicas starting together: one migrates, the others wait and then find it done.
                tx.execute("SELECT pg_advisory_xact_lock(7243101)")
            tx.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = tx.execute("SELECT version FROM schema_version").fetchone()
            found = row[0] if row else 0
            if found > SCHEMA_VERSION:
                raise InputError(
                    f"{redact(self.url)}: database schema version {found} is newer than this penchant "
                    f"understands ({SCHEMA_VERSION}); upgrade penchant"
                )
            for version in range(found, SCHEMA_VERSION):
                for statement in MIGRATIONS[version]:
                    tx.execute(statement.format(serial=_SERIAL[self.dialect]))
            if row is None:
                tx.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
            else:
                tx.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION,))
            return found

    def version(self) -> int:
        row = self.fetchone("SELECT version FROM schema_version")
        return row[0] if row else 0


class Transaction:
    """Statements inside one write transaction."""

    def __init__(self, db: Database, conn):
        self._db = db
        self.conn = conn

    def execute(self, statement: str, params: Sequence[Any] = ()):
        return self.conn.execute(self._db.sql(statement), params)

    def executemany(self, statement: str, rows: Sequence[Sequence[Any]]) -> int:
        """Run a statement for each row; returns the number of rows changed."""
        if not rows:
            return 0
        if self._db.dialect == "sqlite":
            return self.conn.executemany(statement, rows).rowcount
        with self.conn.cursor() as cur:
            cur.executemany(self._db.sql(statement), rows)
            return cur.rowcount


def parse_url(url: str) -> tuple[str, str]:
    """``sqlite:///relative.db``, ``sqlite:////absolute.db`` or ``postgresql://...`` -> (dialect, target)."""
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///") :]
        if not path:
            raise InputError(f"--db {url}: no file name after sqlite:///")
        try:
            Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(
                f"--db {url}: cannot create the folder for the database file ({exc.strerror})"
            ) from None
        return "sqlite", str(Path(path).expanduser())
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql", url
    raise InputError(f"--db {redact(url)}: expected sqlite:///PATH or postgresql://USER@HOST:PORT/DATABASE")


SECRET_PARAMETERS = ("password", "passfile", "sslpassword", "secret", "token", "key")


def _is_secret(parameter: str) -> bool:
    return any(word in parameter.lower() for word in SECRET_PARAMETERS)


class PoolBusy(Exception):
    """No pooled connection was free and the caller would not wait."""


def redact(url: str) -> str:
    """The URL without its secrets, for messages and logs: the password in ``user:password@`` and
    the value of every query parameter that names one (``?password=``, ``sslpassword``, ...)."""
    try:
        parts = urlsplit(url)
        pairs = parse_qsl(parts.query, keep_blank_values=True)
    except ValueError:
        return "(a database URL that cannot be parsed)"
    out = url
    if "@" in parts.netloc:
        credentials, host = parts.netloc.rsplit("@", 1)
        if ":" in credentials:
            out = out.replace(parts.netloc, f"{credentials.split(':', 1)[0]}:***@{host}", 1)
    if any(_is_secret(name) for name, _ in pairs):
        query = "&".join(f"{name}=***" if _is_secret(name) else f"{name}={value}" for name, value in pairs)
        out = out.split("?", 1)[0] + "?" + query + (f"#{parts.fragment}" if parts.fragment else "")
    return out
