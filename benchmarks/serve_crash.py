"""Crash: kill -9 a real `penchant serve` while clients stream writes, restart it, and count the
events that were acknowledged (HTTP 200) but are missing from the store. Must be 0.

Each round starts the server on the same store, runs writers (single events and small batches, all
new) for a random 1-3 s, then kills the server with SIGKILL mid-stream. After the last round the
store is opened directly and every acknowledged event is looked up. SQLite, and PostgreSQL (fsync on)
when its server binaries are installed.

    .venv/bin/python benchmarks/serve_crash.py [--kills 6]
"""

from __future__ import annotations

import argparse
import http.client
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

import pandas as pd
from serve_common import HOST, Client, Server, conditions, conditions_md, create_key, ensure_ml100k_run, write

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for tests.servers
from penchant.serve.db import Database
from tests.servers import TemporaryPostgres, find_pg_bin, free_port  # noqa: E402


def writers(
    port: int, key: str, items: list[str], round_no: int, stop: threading.Event, acked: list, sent: list
):
    def worker(w: int) -> None:
        client, n = Client(HOST, port, key, timeout=10), 0
        while not stop.is_set():
            batch = 1 if n % 3 else 5
            events = [
                {
                    "user_id": f"crash-{round_no}-{w}",
                    "item_id": items[(n + j) % len(items)],
                    "timestamp": float(n * 10 + j),
                }
                for j in range(batch)
            ]
            n += 1
            sent.extend(events)
            try:
                status, _ = client.request("POST", "/events", events if batch > 1 else events[0])
            except (OSError, http.client.HTTPException):
                return  # the server died under us: this request was never (fully) acknowledged
            if status == 200:
                acked.extend(events)

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(3)]
    for t in threads:
        t.start()
    return threads


def crash_rounds(run_dir: Path, db_url: str, kills: int, items: list[str], rng: random.Random) -> dict:
    key = create_key(db_url, "write")
    acked: list[dict] = []
    sent: list[dict] = []
    for round_no in range(kills):
        port = free_port()
        server = Server(run_dir, db_url, port)
        stop = threading.Event()
        threads = writers(port, key, items, round_no, stop, acked, sent)
        time.sleep(rng.uniform(1.0, 3.0))
        server.kill()  # kill -9 mid-stream
        stop.set()
        for t in threads:
            t.join(timeout=30)
    db = Database(db_url)
    rows = db.fetchall("SELECT user_id, item_id, ts FROM events WHERE user_id LIKE ?", ("crash-%",))
    stored = {(u, i, t) for u, i, t in rows}
    db.close()
    keys = lambda events: {(e["user_id"], e["item_id"], e["timestamp"]) for e in events}  # noqa: E731
    acknowledged = keys(acked)
    return {
        "kills": kills,
        "events_sent": len(keys(sent)),
        "events_acknowledged": len(acknowledged),
        "acknowledged_missing": len(acknowledged - stored),
        "stored_not_acknowledged": len(stored - acknowledged),  # in flight at the kill: allowed either way
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=Path(tempfile.gettempdir()) / "penchant-ml100k-run")
    parser.add_argument("--kills", type=int, default=6)
    args = parser.parse_args()

    run_dir = ensure_ml100k_run(args.run)
    items = sorted(pd.read_parquet(run_dir / "data" / "items.parquet", columns=["item_id"])["item_id"])
    before = conditions()
    rows = []
    for store in ["sqlite"] + (["postgresql"] if find_pg_bin() else []):
        postgres = TemporaryPostgres(fsync=True).start() if store == "postgresql" else None
        try:
            db_url = (
                postgres.create_database("crash") if postgres else f"sqlite:///{tempfile.mkdtemp()}/e.sqlite3"
            )
            rows.append(
                {"store": store, **crash_rounds(run_dir, db_url, args.kills, items, random.Random(0))}
            )
        finally:
            if postgres:
                postgres.stop()

    result = {
        "benchmark": "serve_crash",
        "protocol": "3 writer connections (single events and batches of 5) over loopback; the server is "
        "killed with SIGKILL after a random 1-3 s each round and restarted on the same store; "
        "acknowledged = HTTP 200 "
        "received; the store is then read directly",
        "results": rows,
        "conditions": before,
    }
    lines = [
        "# Service crash benchmark (`benchmarks/serve_crash.py`)",
        "",
        result["protocol"] + ".",
        "",
        "| store | kills | events sent | acknowledged | acknowledged but missing "
        "| stored, not acknowledged |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['store']} | {r['kills']} | {r['events_sent']} | {r['events_acknowledged']} | "
            f"**{r['acknowledged_missing']}** | {r['stored_not_acknowledged']} |"
        )
    lines += [
        "",
        "Bar: 0 acknowledged events missing over at least 5 kills.",
        "",
        "Conditions:",
        "",
        conditions_md(before),
    ]
    write("serve_crash", result, "\n".join(lines))


if __name__ == "__main__":
    main()
