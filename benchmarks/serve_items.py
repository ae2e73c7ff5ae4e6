"""POST /items at scale: how long a new item with text takes to become recommendable, on a real
`penchant serve` over a text transformer whose catalogue holds --items items (default 10^6).

The run: a synthetic catalogue (benchmarks/synthetic.py ``write_items``: each item titled and
categorised by its latent interest, 1,000 distinct titles) and a synthetic log of --events events over
it; ``penchant train --config '{"item_repr": "text", "max_epochs": 1}'`` (one epoch: this measures the
path from request to recommendable item, not the model's quality). The service runs with exact
retrieval (``--ann-threshold`` above the catalogue), or with ``--ann`` as it runs by default at that
size: through its HNSW index (built in the background at the first start and kept in the run), an
added item scored exactly beside the shared index's candidates (``AnnRetriever.extended``) until
``FOLD`` (2,048) have come, when a background thread inserts them into a copy of the index:
``--adds 2100`` includes one.

Each add: ``POST /items`` with a title, description and category, timed to its response (the service
swaps in the grown model before it answers; the first add also makes room for an eighth more items,
so it is reported apart), then ``GET /items/{id}`` must say recommendable and the model must score it
(its explanation for a user answers with a finite score).

    .venv/bin/python benchmarks/serve_items.py [--items 1000000] [--adds 50] [--work DIR] [--ann]
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from serve_common import HOST, Client, Server, conditions, conditions_before_after, create_key, write
from synthetic import TOPICS, LogShape, write_items
from synthetic import write as write_log

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for tests.servers
from tests.servers import free_port  # noqa: E402

BAR_S = 1.0


def build_run(n_items: int, n_events: int, work: Path) -> Path:
    """The text run over ``n_items`` items (kept in ``work``: a second call reuses it)."""
    run = work / f"text-run-{n_items}"
    if (run / "run.json").exists():
        return run
    shape = LogShape(n_events, max(10, n_events // 50), n_items)
    log, items = (
        write_log(shape, work / f"log-{n_items}"),
        write_items(shape, work / f"items-{n_items}.parquet"),
    )
    started = time.perf_counter()
    print(f"training a text transformer over {n_items:,} items into {run} ...", file=sys.stderr, flush=True)
    subprocess.run(  # not captured: the progress bars show
        [
            sys.executable,
            "-m",
            "penchant",
            "train",
            "--events",
            str(log),
            "--items",
            str(items),
            "--title-col",
            "title",
            "--description-col",
            "description",
            "--categories-col",
            "category",
            "--config",
            json.dumps({"item_repr": "text", "max_epochs": 1}),
            "--out",
            str(run),
        ],
        check=True,
    )
    print(f"trained in {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1_000_000, help="catalogue size")
    parser.add_argument("--events", type=int, default=100_000, help="events in the synthetic log")
    parser.add_argument("--adds", type=int, default=50, help="items added, one request each")
    parser.add_argument(
        "--work", type=Path, help="where the log and run go (kept; default a temporary folder)"
    )
    parser.add_argument(
        "--ann", action="store_true", help="serve through the HNSW index (waits for its build)"
    )
    parser.add_argument("--name", default="serve_items", help="results file name in benchmarks/results")
    args = parser.parse_args()

    work = args.work or Path(tempfile.mkdtemp(prefix="penchant-items-"))
    work.mkdir(parents=True, exist_ok=True)
    run = build_run(args.items, args.events, work)
    db_url = f"sqlite:///{work / f'items-{time.time_ns()}.sqlite3'}"
    key = create_key(db_url, "admin")
    port = free_port()
    before = conditions()
    started = time.perf_counter()
    exact = [] if args.ann else ["--ann-threshold", str(2 * args.items)]
    server = Server(run, db_url, port, *exact, start_timeout=1800)
    start_s = round(time.perf_counter() - started, 1)
    health = json.loads(Client(HOST, port, key).request("GET", "/health")[1])
    while args.ann and health["retrieval"] != "ann" and time.perf_counter() - started < 3600:
        time.sleep(5)  # a new connection each time: the server closes one idle for 5 s
        health = json.loads(Client(HOST, port, key).request("GET", "/health")[1])
    client = Client(HOST, port, key)
    user = json.loads(client.request("GET", "/users?limit=1")[1])["users"][0]["user_id"]
    latencies = []
    try:
        for n in range(args.adds):
            topic = TOPICS[n % len(TOPICS)]
            item = {
                "item_id": f"new-{n}",
                "title": f"A new book on {topic}, number {n}",
                "description": f"Fresh pages about {topic}.",
                "categories": [topic],
            }
            status, seconds = client.timed("POST", "/items", item)
            if status != 201:
                raise RuntimeError(f"POST /items answered {status}")
            stored = json.loads(client.request("GET", f"/items/new-{n}")[1])
            if not stored["recommendable"]:
                raise RuntimeError(f"new-{n} was stored but is not recommendable")
            latencies.append(seconds)
        status, body = client.request("GET", f"/users/{user}/recommendations/new-{args.adds - 1}/explanation")
        explained = json.loads(body)
        if status != 200 or not math.isfinite(explained["score"]):
            raise RuntimeError(f"the last added item is not scored: {status} {body[:200]!r}")
    finally:
        server.stop()
    after = conditions()

    ms = np.asarray(latencies) * 1000
    rest = ms[1:] if len(ms) > 1 else ms
    result = {
        "benchmark": "serve_items",
        "protocol": f"POST /items (title, description, category) to a served {health['model']} whose items are "
        f"scored by their text, {health['items']:,} items before the first add, {health['retrieval']} "
        "retrieval; each add timed to its response, then GET /items/{id} says recommendable; one request at "
        "a time over HTTP/1.1 keep-alive on loopback; SQLite event store",
        "run": f"synthetic catalogue and log (benchmarks/synthetic.py), {args.events:,} events, one training "
        "epoch",
        "start_seconds": start_s,
        "adds": len(latencies),
        "first_ms": round(float(ms[0]), 1),
        "rest_ms": {
            "p50": round(float(np.percentile(rest, 50)), 1),
            "p90": round(float(np.percentile(rest, 90)), 1),
            "p99": round(float(np.percentile(rest, 99)), 1),
            "max": round(float(rest.max()), 1),
        },
        "last_item_score": round(float(explained["score"]), 4),
        "bar_s": BAR_S,
        "bar_met": bool(ms.max() <= BAR_S * 1000),
        "conditions_before": before,
        "conditions_after": after,
    }
    lines = [
        "# New items at scale (`benchmarks/serve_items.py`)",
        "",
        result["protocol"] + ".",
        f"Run: {result['run']}. The service answered /health {start_s} s after launch.",
        "",
        "| items | retrieval | adds | first add ms | later adds p50 ms | p90 ms | p99 ms | max ms | bar (every add) |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---|",
        f"| {health['items']:,} | {health['retrieval']} | {len(latencies)} | {result['first_ms']} | "
        f"{result['rest_ms']['p50']} | {result['rest_ms']['p90']} | {result['rest_ms']['p99']} | "
        f"{result['rest_ms']['max']} | "
        f"≤ {BAR_S:.0f} s: {'met' if result['bar_met'] else 'NOT met'} |",
        "",
        "The first add makes room for an eighth more items after the item rows (a copy of them); the next "
        "adds write into that room. Under ANN retrieval an add also computes the new item's vector; once "
        "2,048 added items are scored beside the index, a background thread inserts them into a copy of it "
        "(no request waits for that).",
    ]
    lines += conditions_before_after(before, after)
    write(args.name, result, "\n".join(lines))


if __name__ == "__main__":
    main()
