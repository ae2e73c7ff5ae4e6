"""API keys: ``read`` lets a caller look, ``write`` also lets it record events, ``admin`` also
lets it erase users, add items and reload the model. A key may expire, and may be revoked.

A key is shown once, when created; the database keeps only a salted SHA-256 of it. Keys are 256
random bits, so a fast hash is enough (nobody can guess one to test against the hash), and checking a
key costs microseconds on every request instead of a deliberately slow KDF's tens of milliseconds.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from enum import StrEnum

from penchant.errors import InputError
from penchant.serve.db import Database

PREFIX = "pk"


class Scope(StrEnum):
    read = "read"
    write = "write"
    admin = "admin"

    def allows(self, needed: Scope) -> bool:
        return SCOPES.index(self) >= SCOPES.index(needed)


SCOPES = (Scope.read, Scope.write, Scope.admin)  # each includes the ones before it


def parse_scope(text: str) -> Scope:
    try:
        return Scope(text)
    except ValueError:
        raise InputError(f"--scope: expected read, write or admin, got '{text}'") from None


def create_key(
    db: Database, scope: Scope, name: str | None = None, expires_in_days: float | None = None
) -> str:
    """Store a new key's hash and return the key itself (the only time it exists in the clear)."""
    if expires_in_days is not None and not expires_in_days > 0:
        raise InputError(f"--expires-in-days must be > 0, got {expires_in_days}")
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    salt = secrets.token_hex(16)
    now = time.time()
    expires = now + 86_400 * expires_in_days if expires_in_days is not None else None
    with db.transaction() as tx:
        tx.execute(
            "INSERT INTO api_keys (key_id, salt, key_hash, scope, name, created_at, expires_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (key_id, salt, _hash(salt, secret), scope.value, name, now, expires),
        )
    return f"{PREFIX}_{key_id}_{secret}"


def check_key(db: Database, key: str) -> Scope | None:
    """The scope of a valid key (not revoked, not expired), None for anything else."""
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != PREFIX or len(parts[1]) != 12 or not parts[2]:
        return None
    if any(c not in "0123456789abcdef" for c in parts[1]):
        return None
    row = db.fetchone(
        "SELECT salt, key_hash, scope, expires_at, revoked_at FROM api_keys WHERE key_id = ?", (parts[1],)
    )
    if row is None:
        return None
    salt, stored, scope, expires, revoked = row
    if revoked is not None or (expires is not None and expires <= time.time()):
        return None
    if not hmac.compare_digest(_hash(salt, parts[2]), stored):
        return None
    with db.transaction() as tx:  # once per key per KeyCache.ttl in each process, not per request
        tx.execute("UPDATE api_keys SET last_used_at = ? WHERE key_id = ?", (time.time(), parts[1]))
    return Scope(scope)


def list_keys(db: Database) -> list[dict]:
    """Every key's ID, scope, name and dates, last use included (never its hash), oldest first."""
    rows = db.fetchall(
        "SELECT key_id, scope, name, created_at, expires_at, revoked_at, last_used_at FROM api_keys "
        "ORDER BY created_at"
    )
    now = time.time()
    return [
        {
            "key_id": key_id,
            "scope": scope,
            "name": name,
            "created_at": created,
            "expires_at": expires,
            "revoked_at": revoked,
            "last_used_at": used,
            "active": revoked is None and (expires is None or expires > now),
        }
        for key_id, scope, name, created, expires, revoked, used in rows
    ]


def revoke_key(db: Database, key_id: str) -> None:
    """Revoke a key by its ID (the part after ``pk_``); a running service stops accepting it within
    :attr:`KeyCache.ttl` seconds."""
    with db.transaction() as tx:
        changed = tx.execute(
            "UPDATE api_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL",
            (time.time(), key_id),
        ).rowcount
    if not changed:
        raise InputError(f"keys revoke: no active key with ID '{key_id}' (see penchant keys list)")


def count_keys(db: Database) -> int:
    return int(db.fetchone("SELECT COUNT(*) FROM api_keys")[0])


def _hash(salt: str, secret: str) -> str:
    return hashlib.sha256(f"{salt}:{secret}".encode()).hexdigest()


class KeyCache:
    """Recently verified keys, so a request does not need a database round trip to prove its key.

    Only valid keys are remembered, for ``ttl`` seconds: a key revoked (or deleted) in the database
    stops working within that time, and an expiring key at most that long after its expiry.
    """

    def __init__(self, ttl: float = 30.0, max_keys: int = 10_000):
        self.ttl = ttl
        self.max_keys = max_keys
        self._known: dict[str, tuple[Scope, float]] = {}

    def get(self, key: str) -> Scope | None:
        hit = self._known.get(key)
        if hit is None or hit[1] < time.monotonic():
            return None
        return hit[0]

    def put(self, key: str, scope: Scope) -> None:
        if len(self._known) >= self.max_keys:
            self._known.clear()  # simpler than LRU, and only ever costs one database lookup per key
        self._known[key] = (scope, time.monotonic() + self.ttl)
