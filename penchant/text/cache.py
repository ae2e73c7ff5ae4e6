"""On-disk embedding cache keyed by encoder name and the SHA-256 of the text.

One SQLite file (``embeddings.sqlite``) in the cache directory: ``$PENCHANT_CACHE`` when set, else
``~/.cache/penchant``. SQLite because several processes (training, a service, tests) may read and
write the same cache at once, and it handles that with no server.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import numpy as np


def cache_dir() -> Path:
    """Where penchant keeps caches: ``$PENCHANT_CACHE`` or ``~/.cache/penchant``."""
    return Path(os.environ.get("PENCHANT_CACHE") or Path.home() / ".cache" / "penchant")


def text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class EmbeddingCache:
    """Vectors by (encoder, sha256(text)); float32, stored as raw bytes."""

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path is not None else cache_dir() / "embeddings.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=60.0, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS embeddings ("
            " encoder TEXT NOT NULL, sha TEXT NOT NULL, dim INTEGER NOT NULL, vector BLOB NOT NULL,"
            " PRIMARY KEY (encoder, sha))"
        )
        self._db.commit()

    def get(self, encoder: str, keys: Sequence[str], dim: int) -> dict[str, np.ndarray]:
        """The cached vectors among ``keys`` (missing keys are absent from the result)."""
        found: dict[str, np.ndarray] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), 500):  # stay under SQLite's bound-parameter limit
            chunk = unique[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                f"SELECT sha, vector FROM embeddings WHERE encoder = ? AND dim = ? AND sha IN ({marks})",
                [encoder, dim, *chunk],
            )
            for sha, blob in rows:
                found[sha] = np.frombuffer(blob, dtype=np.float32)
        return found

    def put(self, encoder: str, keys: Sequence[str], vectors: np.ndarray) -> None:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self._db.executemany(
            "INSERT OR REPLACE INTO embeddings (encoder, sha, dim, vector) VALUES (?, ?, ?, ?)",
            [(encoder, key, vectors.shape[1], vectors[i].tobytes()) for i, key in enumerate(keys)],
        )
        self._db.commit()

    def delete(self, texts: Sequence[str]) -> int:
        """Forget the vectors of ``texts`` under every encoder (an erased user's reviews), overwriting
        the freed pages and emptying the write-ahead log; returns how many vectors were deleted."""
        keys = list(dict.fromkeys(text_key(t) for t in texts))
        deleted = 0
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            deleted += self._db.execute(f"DELETE FROM embeddings WHERE sha IN ({marks})", chunk).rowcount
        self._db.commit()
        if deleted:
            self._db.execute("PRAGMA secure_delete = ON")
            self._db.execute("VACUUM")
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return deleted

    def count(self, encoder: str | None = None) -> int:
        if encoder is None:
            return int(self._db.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0])
        return int(
            self._db.execute("SELECT COUNT(*) FROM embeddings WHERE encoder = ?", [encoder]).fetchone()[0]
        )

    def close(self) -> None:
        self._db.close()
