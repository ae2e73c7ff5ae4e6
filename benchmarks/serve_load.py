"""Load: latency and throughput of recommendations with events mixed in, against a trivial endpoint
(GET /health) in the same run, on a real `penchant serve` over the ml-100k transformer.

Each worker holds one keep-alive connection. In the mixed phase a worker records an event for a random
user and then asks for that user's recommendations, so every recommendation includes the online update
that came just before it. Bounded: at most --requests requests and --seconds seconds per phase.

    .venv/bin/python benchmarks/serve_load.py [--run /tmp/penchant-ml100k-run] [--concurrency 1 4]

A large run (benchmarks/scale_data.py keeps its 10^6-item run with --work) serves exactly until its
HNSW index is built in the background; --wait-for-ann measures after that, as the service runs then:

    .venv/bin/python benchmarks/serve_load.py --run WORK/run-10000000 --concurrency 1 \\
        --wait-for-ann 3600 --name serve_load_1m
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

import pandas as pd
from serve_common import (
    HOST,
    Client,
    Server,
    conditions,
    conditions_before_after,
    create_key,
    ensure_ml100k_run,
    summary,
    write,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for tests.servers
from tests.servers import free_port  # noqa: E402

RETRIEVAL = {
    "exact": "exact retrieval over the full catalogue",
    "ann": "HNSW retrieval (candidates re-scored exactly)",
}


def phase(
    port: int, key: str, concurrency: int, requests: int, seconds: float, step
) -> dict[str, list[float]]:
    """Run ``step(client, rng, record)`` in ``concurrency`` threads until ``requests`` are done in all."""
    latencies: dict[str, list[float]] = {}
    errors: list[str] = []
    lock = threading.Lock()
    done = [0]
    deadline = time.monotonic() + seconds

    def worker(seed: int) -> None:
        client, rng = Client(HOST, port, key), random.Random(seed)

        def record(kind: str, status: int, latency: float) -> None:
            with lock:
                if status >= 300:
                    errors.append(f"{kind}: HTTP {status}")
                latencies.setdefault(kind, []).append(latency)

        while time.monotonic() < deadline:
            with lock:
                if done[0] >= requests:
                    return
                done[0] += 1
            step(client, rng, record)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    latencies["_seconds"] = [time.perf_counter() - start]
    if errors:
        raise RuntimeError(f"{len(errors)} failed requests, first: {errors[0]}")
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=Path(tempfile.gettempdir()) / "penchant-ml100k-run")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4])
    parser.add_argument(
        "--requests", type=int, default=3000, help="requests per phase (a mixed pair counts once)"
    )
    parser.add_argument("--seconds", type=float, default=60.0, help="time limit per phase")
    parser.add_argument("--name", default="serve_load", help="results file name in benchmarks/results")
    parser.add_argument(
        "--wait-for-ann",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="before measuring, wait up to this long for the service to serve through its ANN index "
        "(built in the background at start for a large catalogue, or read from the run if kept)",
    )
    args = parser.parse_args()

    run_dir = ensure_ml100k_run(args.run)
    events = pd.read_parquet(run_dir / "data" / "events.parquet", columns=["user_id", "item_id"])
    users, items = sorted(events["user_id"].unique()), sorted(events["item_id"].unique())
    workdir = Path(tempfile.mkdtemp(prefix="penchant-load-"))
    db_url = f"sqlite:///{workdir / 'events.sqlite3'}"
    before = conditions()
    port = free_port()
    key = create_key(db_url, "write")
    started = time.perf_counter()
    server = Server(run_dir, db_url, port, start_timeout=1800)
    health = json.loads(Client(HOST, port, key).request("GET", "/health")[1])
    start_seconds = round(time.perf_counter() - started, 1)
    deadline = time.monotonic() + args.wait_for_ann
    while health["retrieval"] != "ann" and time.monotonic() < deadline:
        time.sleep(5)
        health = json.loads(Client(HOST, port, key).request("GET", "/health")[1])
    ready_seconds = round(time.perf_counter() - started, 1)
    clock = [time.time()]

    def mixed(client, rng, record):
        user = rng.choice(users)
        clock[0] += 0.001  # distinct timestamps: every event is new
        body = {"user_id": user, "item_id": rng.choice(items), "timestamp": clock[0], "event_type": "view"}
        record("event", *client.timed("POST", "/events", body))
        record("recommendation", *client.timed("GET", f"/users/{user}/recommendations?k=10"))

    def recommendations(client, rng, record):
        record("recommendation", *client.timed("GET", f"/users/{rng.choice(users)}/recommendations?k=10"))

    def trivial(client, rng, record):
        record("trivial", *client.timed("GET", "/health"))

    results = []
    try:
        phase(port, key, 2, 300, 30, mixed)  # warm-up: imports, allocator, caches
        for concurrency in args.concurrency:
            row = {"concurrency": concurrency}
            for name, step in (("mixed", mixed), ("recommendations", recommendations), ("trivial", trivial)):
                lat = phase(port, key, concurrency, args.requests, args.seconds, step)
                seconds = lat.pop("_seconds")[0]
                row[name] = {kind: summary(values, seconds) for kind, values in lat.items()}
                row[name]["seconds"] = round(seconds, 2)
            rec_rate = row["recommendations"]["recommendation"]["per_second"]
            row["throughput_ratio_recommendations_to_trivial"] = round(
                rec_rate / row["trivial"]["trivial"]["per_second"], 3
            )
            results.append(row)
    finally:
        server.stop()

    after = conditions()
    result = {
        "benchmark": "serve_load",
        "protocol": "HTTP/1.1 keep-alive over loopback, one connection per client thread; uvicorn (h11), one "
        "process; SQLite event store (WAL, synchronous=FULL); API key checked on every request; k=10, "
        f"already-seen items not excluded, {RETRIEVAL[health['retrieval']]}; per-user online state "
        "(what retrieval needs from the user's stored history) computed when an event is written and "
        "checked against the user's event count and newest event id on every read",
        "model": f"{health['model']} run {run_dir} ({health['items']} items, {len(users)} users)",
        "retrieval": health["retrieval"],
        "start_seconds": start_seconds,
        "measured_from_seconds": ready_seconds,
        "server_threads": "torch 1 intra-op thread per request; a recommendation for a user whose state is "
        "cached is answered on the event loop, anything else (writes, cache misses) in anyio worker threads",
        "conditions_before": before,
        "conditions_after": after,
        "results": results,
    }
    lines = [
        "# Service load benchmark (`benchmarks/serve_load.py`)",
        "",
        result["protocol"] + ".",
        f"Model: {result['model']}. Threads: {result['server_threads']}. "
        "The client runs on the same machine. "
        f"The service answered /health {start_seconds} s after it was launched (the first start on a fresh "
        f"store imports the run's events); measured from {ready_seconds} s, serving through "
        f"{health['retrieval']} retrieval.",
        "",
        "| concurrency | phase | request | requests | req/s | p50 ms | p90 ms | p99 ms | max ms |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in results:
        for name in ("mixed", "recommendations", "trivial"):
            for kind, s in row[name].items():
                if kind == "seconds":
                    continue
                lines.append(
                    f"| {row['concurrency']} | {name} | {kind} | {s['requests']} | {s['per_second']} | "
                    f"{s['p50_ms']} | "
                    f"{s['p90_ms']} | {s['p99_ms']} | {s['max_ms']} |"
                )
    lines += [
        "",
        "Throughput of recommendations relative to GET /health in the same run (bar: at least 0.5):",
        "",
    ]
    for row in results:
        lines.append(
            f"- concurrency {row['concurrency']}: {row['throughput_ratio_recommendations_to_trivial']}"
        )
    p99 = next((r["mixed"]["recommendation"]["p99_ms"] for r in results if r["concurrency"] == 1), None)
    if p99 is not None:
        lines.append(
            f"- recommendation p99 at concurrency 1, right after its user's new event: {p99} ms (bar: 10 ms "
            "on ml-100k, 20 ms at 10^6 items)"
        )
    lines += conditions_before_after(before, after)
    write(args.name, result, "\n".join(lines))


if __name__ == "__main__":
    main()
