"""Ingest: events per second into a real `penchant serve`, one event per request and in batches, each
request acknowledged only after its events are durably committed. SQLite (WAL, synchronous=FULL) and,
when the server binaries are installed, PostgreSQL (fsync on, synchronous_commit on).

    .venv/bin/python benchmarks/serve_ingest.py [--events 2000] [--seconds 30]
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
import threading
import time
from pathlib import Path

import pandas as pd
from serve_common import HOST, Client, Server, conditions, conditions_md, create_key, ensure_ml100k_run, write

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for tests.servers
from tests.servers import TemporaryPostgres, find_pg_bin, free_port  # noqa: E402


def ingest(
    port: int, key: str, items: list[str], batch: int, concurrency: int, events: int, seconds: float, counter
) -> dict:
    """Post ``events`` new events in requests of ``batch``, from ``concurrency`` connections."""
    per_thread = events // concurrency
    sent = [0] * concurrency
    errors: list[int] = []
    deadline = time.monotonic() + seconds

    def worker(w: int) -> None:
        client = Client(HOST, port, key)
        while sent[w] < per_thread and time.monotonic() < deadline:
            body = [
                {
                    "user_id": f"ingest-{w}",
                    "item_id": items[n % len(items)],
                    "timestamp": 1.7e9 + next(counter) * 1e-3,
                }
                for n in range(batch)
            ]
            status, _ = client.request("POST", "/events", body if batch > 1 else body[0])
            if status != 200:
                errors.append(status)
                return
            sent[w] += batch

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(concurrency)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise RuntimeError(f"ingest failed with HTTP {errors[0]}")
    return {
        "events": sum(sent),
        "seconds": round(elapsed, 2),
        "events_per_second": round(sum(sent) / elapsed, 1),
        "requests_per_second": round(sum(sent) / batch / elapsed, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=Path(tempfile.gettempdir()) / "penchant-ml100k-run")
    parser.add_argument("--events", type=int, default=2000, help="events per single-event configuration")
    parser.add_argument("--batched-events", type=int, default=50_000, help="events per batched configuration")
    parser.add_argument("--seconds", type=float, default=30.0, help="time limit per configuration")
    args = parser.parse_args()

    run_dir = ensure_ml100k_run(args.run)
    items = sorted(pd.read_parquet(run_dir / "data" / "items.parquet", columns=["item_id"])["item_id"])
    before = conditions()
    configurations = [
        (1, 1, args.events),
        (1, 4, args.events),
        (100, 1, args.batched_events),
        (1000, 1, args.batched_events),
    ]
    counter = itertools.count()
    rows = []
    stores = ["sqlite"] + (["postgresql"] if find_pg_bin() else [])
    for store in stores:
        postgres = TemporaryPostgres(fsync=True).start() if store == "postgresql" else None
        try:
            db_url = (
                postgres.create_database("ingest")
                if postgres
                else f"sqlite:///{tempfile.mkdtemp()}/e.sqlite3"
            )
            key, port = create_key(db_url, "write"), free_port()
            server = Server(run_dir, db_url, port)
            try:
                ingest(port, key, items, 10, 1, 200, 30, counter)  # warm-up
                for batch, concurrency, events in configurations:
                    result = ingest(port, key, items, batch, concurrency, events, args.seconds, counter)
                    rows.append({"store": store, "batch": batch, "concurrency": concurrency, **result})
            finally:
                server.stop()
        finally:
            if postgres:
                postgres.stop()

    result = {
        "benchmark": "serve_ingest",
        "protocol": "POST /events over HTTP/1.1 keep-alive on loopback, write key checked; every request is "
        "answered after its transaction commits (SQLite: WAL + synchronous=FULL; PostgreSQL: fsync on, "
        "synchronous_commit on); every event is new (no duplicates)",
        "results": rows,
        "conditions": before,
    }
    lines = [
        "# Service ingest benchmark (`benchmarks/serve_ingest.py`)",
        "",
        result["protocol"] + ".",
        "",
        "| store | events per request | connections | events | seconds | events/s | requests/s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['store']} | {r['batch']} | {r['concurrency']} | {r['events']} | {r['seconds']} | "
            f"{r['events_per_second']} | {r['requests_per_second']} |"
        )
    lines += ["", "Conditions:", "", conditions_md(before)]
    write("serve_ingest", result, "\n".join(lines))


if __name__ == "__main__":
    main()
