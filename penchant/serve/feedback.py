"""The feedback loop: impressions, rewards and the bandit's posteriors, kept in the event store.

Every recommendation response is an **impression**: a ``request_id`` (returned in the response) and,
per item, its position, role (exploit, explore, or none without a policy), interest, the policy and
knob, and its propensity (the probability that the policy shows the item at that position: 1 for the
model's own ranking and the deterministic re-rankers, a Monte Carlo estimate for the bandit's Thompson
sampling).

An event becomes a **reward** when it names the ``request_id`` of an impression of its user and item,
or, without one, when it comes within ``window`` seconds of the latest unrewarded impression of that
user and item. Each impression is rewarded at most once.

Impressions of the bandit feed that user's **posterior**, stored per interest so that every replica
draws from the same one and it survives restarts: a reward adds the item's interest membership to
alpha; an impression whose window passed without a reward adds it to beta (settled the next time the
posterior is read). A reward that comes after its impression was settled as a miss moves the credit
from beta to alpha.

Impressions are written by a background thread in batches, so a response never waits for a disk
sync; they are flushed before this process looks up a reward, and within :data:`FLUSH_EVERY` seconds
otherwise (a click reaching another replica sooner than that may miss its impression). A crash loses
the impressions not yet flushed, never an event.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from penchant.serve.db import Database

if TYPE_CHECKING:
    from penchant.serve.store import EventStore

log = logging.getLogger("penchant.serve")

FLUSH_EVERY = 0.2  # seconds between the writer thread's batches
MAX_PENDING = 200_000  # impression rows held while the database is unreachable; older ones are dropped
BANDIT = "bandit"

Weights = Callable[[str], dict[str, float]]  # item ID -> its interests and membership in each

_INSERT = (
    "INSERT INTO impressions (request_id, position, user_id, item_id, role, interest, policy, explore, "
    "exclude_seen, propensity, shown_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
)
_COLUMNS = "request_id, position, policy, role, settled, rewarded_at"


@dataclass(frozen=True)
class Shown:
    """One item of a response."""

    item_id: str
    role: str | None = None  # exploit, explore; None without a policy
    interest: str | None = None
    propensity: float = 1.0


@dataclass(frozen=True)
class Reward:
    """An impression an event rewarded."""

    user_id: str
    item_id: str
    request_id: str
    policy: str  # '' for the model's own ranking
    role: str | None


@dataclass(frozen=True)
class Rate:
    """Items shown and rewarded, for one policy and role (and one time bucket in a timeline)."""

    policy: str
    role: str | None
    shown: int
    rewarded: int
    start: float | None = None  # the bucket's start (Unix seconds), in a timeline

    @property
    def ctr(self) -> float | None:
        return self.rewarded / self.shown if self.shown else None


@dataclass(frozen=True)
class LoggedResponse:
    """One logged recommendation response, its items in position order."""

    request_id: str
    user_id: str
    shown_at: float
    policy: str  # '' for the model's own ranking
    explore: float
    exclude_seen: bool  # whether the list left out items the user already had
    item_ids: list[str]
    propensities: list[float]
    rewards: list[float]  # 1 where a later event rewarded the item


def logged_responses(db: Database, since: float = 0.0) -> list[LoggedResponse]:
    """Every response logged since ``since`` (Unix seconds), oldest first."""
    rows = db.fetchall(
        "SELECT request_id, user_id, shown_at, policy, explore, exclude_seen, item_id, propensity, "
        "rewarded_at FROM impressions WHERE shown_at >= ? ORDER BY shown_at, request_id, position",
        (since,),
    )
    out: list[LoggedResponse] = []
    for request_id, user_id, shown_at, policy, explore, exclude, item_id, propensity, rewarded_at in rows:
        if not out or out[-1].request_id != request_id:
            out.append(
                LoggedResponse(request_id, user_id, shown_at, policy, explore, bool(exclude), [], [], [])
            )
        out[-1].item_ids.append(item_id)
        out[-1].propensities.append(propensity)
        out[-1].rewards.append(0.0 if rewarded_at is None else 1.0)
    return out


class Feedback:
    """Impressions, rewards and bandit posteriors of one service over its database."""

    def __init__(
        self,
        db: Database,
        window: float,
        flush_every: float = FLUSH_EVERY,
        erasures: EventStore | None = None,
    ):
        """``erasures``: the event store whose erasure records are checked before a batch is written,
        so that an impression queued before an erasure, in this replica or another, is never written
        after it."""
        self.db = db
        self.window = window
        self._erasures = erasures
        self._pending: list[tuple] = []
        self._lock = threading.Lock()  # guards _pending
        self._writing = threading.Lock()  # one flush at a time, so batches land in order
        self._stop = threading.Event()
        self._flush_every = flush_every
        self._thread = threading.Thread(target=self._run, name="penchant-impressions", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ impressions
    def log(
        self, user_id: str, shown: Sequence[Shown], policy: str | None, explore: float, exclude_seen: bool
    ) -> str:
        """Queue one response's impression; returns its request ID. Cheap: no database call."""
        request_id = uuid.uuid4().hex
        now = time.time()
        rows = [
            (request_id, p, user_id, s.item_id, s.role, s.interest, policy or "", explore, int(exclude_seen))
            + (s.propensity, now)
            for p, s in enumerate(shown)
        ]
        with self._lock:
            self._pending.extend(rows)
            if len(self._pending) > MAX_PENDING:
                dropped = len(self._pending) - MAX_PENDING
                del self._pending[:dropped]
                log.warning("impressions: the database is behind; dropped the %d oldest unwritten", dropped)
        return request_id

    def flush(self) -> None:
        """Write the queued impressions now (in one transaction)."""
        with self._writing:
            with self._lock:
                rows, self._pending = self._pending, []
            if rows and self._erasures is not None:
                rows = self._without_erased(rows)
            if not rows:
                return
            try:
                with self.db.transaction() as tx:
                    tx.executemany(_INSERT, rows)
            except BaseException:
                with self._lock:  # written next time, before anything queued since
                    self._pending[:0] = rows
                raise

    def _without_erased(self, rows: list[tuple]) -> list[tuple]:
        """The rows minus those of users erased after the row was shown: one query for the latest
        erasure, and per-user lookups only when some erasure is newer than the oldest row."""
        latest = self._erasures.last_erasure()
        if latest is None or latest < min(row[-1] for row in rows):
            return rows
        erased = {u: self._erasures.erased_at(u) for u in {row[2] for row in rows}}
        return [row for row in rows if erased[row[2]] is None or row[-1] > erased[row[2]]]

    def forget(self, user_id: str) -> None:
        """Drop an erased user's queued impressions (the stored ones go with the erasure)."""
        with self._lock:
            self._pending = [row for row in self._pending if row[2] != user_id]

    def _run(self) -> None:
        while not self._stop.wait(self._flush_every):
            try:
                self.flush()
            except Exception:  # the rows stay queued; the next batch tries again
                log.exception("could not write impressions")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        try:
            self.flush()
        except Exception:
            log.exception("could not write the last impressions")

    # ------------------------------------------------------------------ rewards
    def reward(self, events: Sequence[tuple[str, str, str | None]], weights: Weights) -> list[Reward]:
        """Credit the impressions these events reward; ``events``: (user ID, item ID, request ID or
        None). Rewards of bandit impressions move the user's posterior by the item's ``weights``."""
        self.flush()
        now = time.time()
        rewards: list[Reward] = []
        with self.db.transaction() as tx:
            for user_id, item_id, request_id in events:
                if request_id is not None:
                    row = tx.execute(
                        f"SELECT {_COLUMNS} FROM impressions WHERE request_id = ? AND user_id = ? "
                        "AND item_id = ? AND rewarded_at IS NULL ORDER BY position LIMIT 1",
                        (request_id, user_id, item_id),
                    ).fetchone()
                else:
                    row = tx.execute(
                        f"SELECT {_COLUMNS} FROM impressions WHERE user_id = ? AND item_id = ? "
                        "AND shown_at >= ? AND rewarded_at IS NULL ORDER BY shown_at DESC, position LIMIT 1",
                        (user_id, item_id, now - self.window),
                    ).fetchone()
                if row is None:
                    continue
                rid, position, policy, role, settled, _ = row
                claimed = tx.execute(
                    "UPDATE impressions SET rewarded_at = ?, settled = 1 "
                    "WHERE request_id = ? AND position = ? AND rewarded_at IS NULL",
                    (now, rid, position),
                ).rowcount
                if not claimed:  # another replica credited it first
                    continue
                rewards.append(Reward(user_id, item_id, rid, policy, role))
                if policy == BANDIT:
                    for interest, w in weights(item_id).items():
                        # Settled before as a miss: the credit moves from beta to alpha.
                        tx.execute(
                            "UPDATE bandit_posteriors SET alpha = alpha + ?, beta = beta - ? "
                            "WHERE user_id = ? AND interest = ?",
                            (w, w if settled else 0.0, user_id, interest),
                        )
        return rewards

    # ------------------------------------------------------------------ bandit posteriors
    def posterior(self, user_id: str, weights: Weights) -> dict[str, tuple[float, float]]:
        """The user's stored posterior per interest (empty before their first bandit slate), after
        crediting as misses their bandit impressions whose window has passed without a reward."""
        cutoff = time.time() - self.window
        with self.db.transaction() as tx:
            expired = tx.execute(
                "SELECT request_id, position, item_id FROM impressions WHERE user_id = ? AND policy = ? "
                "AND settled = 0 AND shown_at < ?",
                (user_id, BANDIT, cutoff),
            ).fetchall()
            missed: dict[str, float] = {}
            for request_id, position, item_id in expired:
                if tx.execute(
                    "UPDATE impressions SET settled = 1 WHERE request_id = ? AND position = ? AND settled = 0",
                    (request_id, position),
                ).rowcount:
                    for interest, w in weights(item_id).items():
                        missed[interest] = missed.get(interest, 0.0) + w
            for interest, w in missed.items():
                tx.execute(
                    "UPDATE bandit_posteriors SET beta = beta + ? WHERE user_id = ? AND interest = ?",
                    (w, user_id, interest),
                )
            rows = tx.execute(
                "SELECT interest, alpha, beta FROM bandit_posteriors WHERE user_id = ?", (user_id,)
            ).fetchall()
        return {interest: (float(a), float(b)) for interest, a, b in rows}

    def start_posterior(self, user_id: str, prior: dict[str, tuple[float, float]]) -> None:
        """Store the prior of the user's interests that have no posterior yet (another replica's
        stored first wins)."""
        if not prior:
            return
        with self.db.transaction() as tx:
            tx.executemany(
                "INSERT INTO bandit_posteriors (user_id, interest, alpha, beta) VALUES (?, ?, ?, ?) "
                "ON CONFLICT DO NOTHING",
                [(user_id, interest, a, b) for interest, (a, b) in prior.items()],
            )

    # ------------------------------------------------------------------ reports
    def rates(self, since: float, bucket: float | None = None) -> list[Rate]:
        """Items shown and rewarded since ``since`` per policy and role; with ``bucket`` (seconds),
        per time bucket too, oldest first."""
        self.flush()
        if bucket is None:
            rows = self.db.fetchall(
                "SELECT policy, role, COUNT(*), COUNT(rewarded_at) FROM impressions WHERE shown_at >= ? "
                "GROUP BY policy, role ORDER BY policy, role",
                (since,),
            )
            return [Rate(p, r, int(n), int(c)) for p, r, n, c in rows]
        # shown_at >= since, so truncating is flooring (SQLite has no FLOOR without its math extension;
        # PostgreSQL rounds a cast).
        index = (
            "FLOOR((shown_at - ?) / ?)"
            if self.db.dialect == "postgresql"
            else "CAST((shown_at - ?) / ? AS INTEGER)"
        )
        rows = self.db.fetchall(
            f"SELECT {index} AS b, policy, role, COUNT(*), COUNT(rewarded_at) "
            "FROM impressions WHERE shown_at >= ? GROUP BY b, policy, role ORDER BY b, policy, role",
            (float(since), float(bucket), float(since)),
        )
        return [Rate(p, r, int(n), int(c), start=since + int(b) * bucket) for b, p, r, n, c in rows]
