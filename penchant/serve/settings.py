"""The service's settings: one typed object, built by the CLI (or a test) and passed to the app factory."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from penchant.errors import InputError


@dataclass(frozen=True)
class Settings:
    """Everything the service needs to know; defaults are the recommended production settings."""

    run_dir: Path
    db_url: str
    host: str = "127.0.0.1"
    port: int = 8000
    open_access: bool = False  # no API keys; only allowed on a loopback address
    max_body_bytes: int = 1_000_000  # larger request bodies get 413
    max_batch: int = 1000  # events per POST /events
    max_k: int = 100  # largest k a recommendation request may ask for
    history_limit: int = 2000  # most recent stored events of a user that feed a recommendation
    ann_threshold: int = 50_000  # catalogues at least this large are served through the ANN index
    ann_ef_search: int = 128  # HNSW search breadth: higher is slower and closer to exact
    # An index this large that no earlier start kept is built in the background (minutes at 10^6
    # items) while exact retrieval serves; a smaller one is built before the service answers.
    ann_background_from: int = 200_000
    db_pool_size: int = 8  # database connections shared by request threads
    torch_threads: int = 1  # intra-op threads per request; requests run in parallel threads already
    explain_events: int = 200  # most recent events an explanation weighs (one model pass per event)
    device: str = "auto"  # where a neural model scores: auto (CUDA when torch sees it), cpu, cuda[:N], mps
    # A user with no usable stored events: "popular" (the most popular items, marked fallback) or
    # "404" (an error naming the user), as penchant recommend --unknown-user does.
    unknown_users: str = "popular"
    # Data minimisation: events whose time is older than this many days are deleted from the store,
    # at start and every hour (None: kept until erased).
    retain_days: float | None = None
    # An event of a user within this many seconds of an impression of its item rewards that impression
    # (an event naming the impression's request_id rewards it at any time).
    reward_window: float = 1800.0

    def __post_init__(self) -> None:
        if self.open_access and not is_loopback(self.host):
            raise InputError(
                f"--open serves without API keys, so it only binds a loopback address (127.0.0.1, ::1, "
                f"localhost); refusing --host {self.host}"
            )
        if self.retain_days is not None and not self.retain_days > 0:
            raise InputError(f"--retain-days must be > 0, got {self.retain_days}")
        if not 0 < self.reward_window < float("inf"):
            raise InputError(f"--reward-window must be a number of seconds > 0, got {self.reward_window}")
        if self.unknown_users not in ("popular", "404"):
            raise InputError(f"--unknown-users must be popular or 404, got '{self.unknown_users}'")
        for name in (
            "max_body_bytes",
            "max_batch",
            "max_k",
            "history_limit",
            "db_pool_size",
            "torch_threads",
            "explain_events",
        ):
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be at least 1, got {getattr(self, name)}")

    @property
    def auth_required(self) -> bool:
        return not self.open_access


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def default_db_url(run_dir: Path) -> str:
    """The SQLite file next to a run (``runs/ml`` -> ``runs/ml.events.sqlite3``), so that replacing the
    run directory with a newer one keeps the stored events."""
    run_dir = Path(run_dir).resolve()
    return f"sqlite:///{run_dir.parent / (run_dir.name + '.events.sqlite3')}"
