"""Ten million events: time and peak memory of each path from a Parquet log to served recommendations.

    .venv/bin/python benchmarks/scale_data.py                         # 10^5, 10^6 and 10^7 events
    .venv/bin/python benchmarks/scale_data.py --sizes 100000 1000000  # what this run measures

For each size a synthetic log (benchmarks/synthetic.py: 50 events per user, 10 per item on average,
so 10^7 events are 200,000 users and 10^6 items) is written as a directory of Parquet files, then each
step runs as the user would run it, in its own process, its peak RSS (the process and its children)
sampled every 0.1 s:

* ingest: reading, validating and cleaning the directory into penchant's dataset (``load_dataset``);
* train: ``penchant train --events DIR --config '{"max_epochs": 1, "refit_epochs": 1}'`` (one epoch,
  then what training does after it: validation, the transition-weight choice, and one epoch of the
  refit on the training and validation events: its memory is measured, and its default of 4 epochs
  would add an hour at 10^7 events to a measurement of memory and time per epoch);
* evaluate: ``penchant evaluate --run RUN`` (leave-one-out, full catalogue);
* serve start: ``penchant serve --run RUN --open`` until ``/health`` answers, on a fresh SQLite store
  (the first start imports the run's events).

Writes benchmarks/results/scale_data.md and .json, with the exponent of time against events fitted
over the sizes measured.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synthetic import LogShape, write  # noqa: E402 (beside this script)

RESULTS = Path(__file__).parent / "results"
SIZES = (100_000, 1_000_000, 10_000_000)
STEPS = ("ingest", "train", "evaluate", "serve_start")
BAR = {"peak_rss_gb": 12.0, "ingest_events_per_s": 500_000, "exponent": 1.0, "serve_start_s": 120.0}


def monitored(command: list[str], log: Path, until=None, timeout: float = 4 * 3600) -> dict:
    """Run ``command``; its seconds and peak RSS (GB) over it and its children, and its stdout. Its
    stderr (the progress bars) goes to ``log``, to follow while it runs. ``until``: a check that
    ends the run (the process is then terminated) once it returns True."""
    started = time.perf_counter()
    with open(log, "w") as err_file, tempfile.TemporaryFile("w+") as out_file:
        proc = psutil.Popen(command, stdout=out_file, stderr=err_file, text=True)
        peak = 0
        stopped = False
        while proc.poll() is None:
            try:
                peak = max(peak, sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)]))
            except psutil.Error:
                pass
            if until is not None and until():
                stopped = True
                proc.terminate()
                break
            if time.perf_counter() - started > timeout:
                proc.kill()
                raise SystemExit(f"{' '.join(command[:4])}: over {timeout:.0f} s")
            time.sleep(0.1)
        seconds = time.perf_counter() - started
        proc.wait(timeout=60)
        out_file.seek(0)
        out = out_file.read()
    if proc.returncode != 0 and not stopped:
        raise SystemExit(f"{' '.join(command[:4])} failed:\n{log.read_text()[-3000:]}")
    return {"seconds": round(seconds, 1), "peak_rss_gb": round(peak / 2**30, 2), "stdout": out}


def penchant(*args: str) -> list[str]:
    return [sys.executable, "-m", "penchant", *args]


def ingest_worker(directory: str) -> None:
    from penchant.data import load_dataset

    started = time.perf_counter()
    dataset = load_dataset(Path(directory))
    print(json.dumps({"events": len(dataset.events), "ingest_seconds": time.perf_counter() - started}))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def answers(url: str):
    def check() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                return response.status == 200
        except OSError:
            return False

    return check


def measure(
    n_events: int, work: Path, steps: tuple[str, ...] = STEPS, evaluate_users: int | None = None
) -> dict:
    """One size: the steps asked for, in order (each later step needs the run ``train`` writes).
    ``evaluate_users``: rank a seeded sample of that many test users (``penchant evaluate --users``)."""
    shape = LogShape.scaled(n_events)
    log_dir, run_dir = work / f"log-{n_events}", work / f"run-{n_events}"
    logs = work / f"logs-{n_events}"
    logs.mkdir(parents=True, exist_ok=True)
    row: dict = {"events": n_events, "users": shape.n_users, "items": shape.n_items}
    if not (log_dir / "_SUCCESS").exists():  # the generator is seeded: a log written before is the same
        started = time.perf_counter()
        write(shape, log_dir)
        row["generate_seconds"] = round(time.perf_counter() - started, 1)

    loads = {}
    if "ingest" in steps:
        loads["ingest"] = round(os.getloadavg()[0], 2)
        step = monitored([sys.executable, __file__, "--ingest-worker", str(log_dir)], logs / "ingest.log")
        inner = json.loads(step.pop("stdout").strip().splitlines()[-1])
        row["ingest"] = {**step, "events_per_s": round(inner["events"] / inner["ingest_seconds"])}
        print(f"{n_events}: ingest {row['ingest']}", file=sys.stderr, flush=True)

    if "train" in steps:
        loads["train"] = round(os.getloadavg()[0], 2)
        config = json.dumps({"max_epochs": 1, "refit_epochs": 1})
        step = monitored(
            penchant("train", "--events", str(log_dir), "--config", config, "--out", str(run_dir)),
            logs / "train.log",
        )
        step.pop("stdout")
        fit = json.loads((run_dir / "run.json").read_text())["fit"]
        row["train"] = {
            **step,
            "epoch_seconds": round(fit["epoch_seconds"][0], 1),
            "settings": fit["settings"],
        }
        print(f"{n_events}: train {row['train']['seconds']} s", file=sys.stderr, flush=True)

    if "evaluate" in steps:
        loads["evaluate"] = round(os.getloadavg()[0], 2)
        sample = ["--users", str(evaluate_users)] if evaluate_users else []
        step = monitored(
            penchant("evaluate", "--run", str(run_dir), "--json", *sample), logs / "evaluate.log"
        )
        report = json.loads(step.pop("stdout"))
        row["evaluate"] = {
            **step,
            "ndcg@10": round(report["metrics"]["ndcg@10"], 4),
            "users_ranked": report["n_users"],
            "test_users": report["n_test_users"],
            "protocol": report["protocol"],
        }
        print(f"{n_events}: evaluate {row['evaluate']}", file=sys.stderr, flush=True)

    if "serve_start" in steps:
        loads["serve_start"] = round(os.getloadavg()[0], 2)
        port = free_port()
        db = f"sqlite:///{work / f'store-{n_events}.sqlite3'}"
        serve = penchant("serve", "--run", str(run_dir), "--open", "--port", str(port), "--db", db)
        step = monitored(serve, logs / "serve.log", until=answers(f"http://127.0.0.1:{port}/health"))
        step.pop("stdout")
        row["serve_start"] = step
        print(f"{n_events}: serve start {row['serve_start']}", file=sys.stderr, flush=True)
    for step in steps:  # the load average before the step
        row[step] = {**row[step], "load": loads[step]}
    return row


def merged(earlier: dict, measured: list[dict], commit: str) -> list[dict]:
    """The rows after this call, from the report before it (``earlier``): a size measured before
    keeps the steps this call did not run (so a long size can be measured a few steps at a time, with
    ``--work``); each step carries its date, commit and load."""
    today = time.strftime("%Y-%m-%d")
    rows = {r["events"]: r for r in earlier.get("rows", [])}
    for row in measured:
        for step in STEPS:
            if step in row:
                row[step] = {**row[step], "date": today, "commit": commit}
        before = rows.get(row["events"], {})
        rows[row["events"]] = {
            **before,
            **row,
            "steps": [s for s in STEPS if s in before or s in row],
        }
    for row in rows.values():  # rows written before steps carried their own date, commit and load
        stamp = {k: row.pop(k, earlier.get(k)) for k in ("date", "commit")}
        load = row.pop("load_average", None)
        for step in STEPS:
            if step in row:
                row[step] = {**stamp, **({"load": load["before"]} if load else {}), **row[step]}
    return [rows[n] for n in sorted(rows)]


def full_seconds(row: dict, step: str) -> float:
    """The step's seconds; for an evaluation of a sample of the test users, scaled to all of them
    (ranking costs the same per user)."""
    seconds = row[step]["seconds"]
    if step == "evaluate" and "users_ranked" in row[step]:
        seconds *= row[step]["test_users"] / row[step]["users_ranked"]
    return seconds


def exponent(rows: list[dict], key: str) -> float | None:
    """Slope of log(seconds) against log(events) over the sizes that ran this step: 1 is linear."""
    rows = [r for r in rows if key in r]
    if len(rows) < 2:
        return None
    x = np.log([r["events"] for r in rows])
    y = np.log([max(full_seconds(r, key), 0.1) for r in rows])
    return round(float(np.polyfit(x, y, 1)[0]), 2)


# The table's cells after users and items: (step, how its cell reads).
COLUMNS = (
    ("ingest", lambda s: f"{s['seconds']} ({s['events_per_s']:,})"),
    ("ingest", lambda s: f"{s['peak_rss_gb']}"),
    ("train", lambda s: f"{s['seconds']} ({s['epoch_seconds']} s epoch)"),
    ("train", lambda s: f"{s['peak_rss_gb']}"),
    ("evaluate", lambda s: f"{s['seconds']}" + _sampled(s)),
    ("evaluate", lambda s: f"{s['peak_rss_gb']}"),
    ("evaluate", lambda s: f"{s['ndcg@10']}"),
    ("serve_start", lambda s: f"{s['seconds']}"),
    ("serve_start", lambda s: f"{s['peak_rss_gb']}"),
)


def _sampled(step: dict) -> str:
    ranked, everyone = step.get("users_ranked"), step.get("test_users")
    if ranked is None or ranked == everyone:
        return ""
    return f" ({ranked:,} of {everyone:,} test users; all: ~{step['seconds'] * everyone / ranked:,.0f})"


def _cell(row: dict, step: str, text) -> str:
    return text(row[step]) if step in row else "not run"


def render(report: dict) -> str:
    rows = report["rows"]
    lines = [
        "# Scale of the data path: from a Parquet log to served recommendations",
        "",
        f"Command: `{report['command']}` (each row: the dates and commits its steps were measured at). Machine: "
        f"{report['machine']['cpu_count']} cores, {report['machine']['memory_gb']} GB; torch threads: the "
        "default (all cores); the load column: the load average before each step run. Synthetic logs (benchmarks/synthetic.py): 50 "
        "events per user and 10 per item on average, power-law popularity, users with 3 latent interests "
        "and sessions in time order, as a directory of 1M-row Parquet files. Each step in its own process; "
        "peak RSS over the process and its children, sampled every 0.1 s.",
        "",
        'Train: `penchant train --events DIR --config \'{"max_epochs": 1, "refit_epochs": 1}\'` (one '
        "epoch, validation, the transition-weight choice, one refit epoch); evaluate: `penchant evaluate "
        "--run RUN` (leave-one-out, full catalogue, seen items not excluded).",
        "",
        "| events | users | items | ingest s (events/s) | ingest GB | train s (epoch s) | train GB | "
        "evaluate s | evaluate GB | NDCG@10 | serve start s | serve GB | load | measured |",
        "|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for r in rows:
        cells = [_cell(r, step, text) for step, text in COLUMNS]
        lines.append(
            f"| {r['events']:,} | {r['users']:,} | {r['items']:,} | "
            + " | ".join(cells)
            + f" | {', '.join(str(r[s]['load']) for s in STEPS if s in r)} | "
            + "; ".join(sorted({f"{r[s]['date']} {r[s]['commit']}" for s in STEPS if s in r}))
            + " |"
        )
    ex = report["exponents"]
    lines += [
        "",
        "Exponent of time against events over the sizes measured (1 = linear): "
        + ", ".join(f"{k} {v}" for k, v in ex.items())
        + ". Where a sample of the test users was evaluated, the fit uses its time scaled to all of them. "
        "Evaluation ranks every test user against the whole catalogue, so at a fixed number of events per "
        "user and per item its work grows as users x items, the square of the events.",
        "",
        "NDCG@10 after one epoch is not a quality figure (the model is far from trained); it shows the "
        "evaluation ran over the full catalogue.",
        "",
    ]
    largest = rows[-1]
    if largest["events"] >= 10_000_000 and all(step in largest for step in STEPS):
        bar = report["bar"]
        lines.append(
            "Bar at 10^7 events: "
            + "; ".join(f"{k} {'met' if v else 'NOT met'}" for k, v in bar.items() if k != "target")
            + "."
        )
    else:
        done = [r for r in rows if all(step in r for step in STEPS)]
        lines.append(
            "Bar (at 10^7 events): not measured; the largest size run with every step is "
            f"{max(r['events'] for r in done):,} events."
            if done
            else "Bar (at 10^7 events): not measured."
        )
    lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--work",
        type=Path,
        help="where logs, runs and each step's stderr go, kept after the run so that later steps can "
        "reuse them (default: a temporary folder, removed)",
    )
    parser.add_argument(
        "--steps",
        nargs="+",
        choices=STEPS,
        default=list(STEPS),
        help="the steps to run at every size (train before evaluate and serve_start)",
    )
    parser.add_argument(
        "--evaluate-users",
        type=int,
        metavar="N",
        help="evaluate on a seeded sample of N test users where there are more (penchant evaluate --users; "
        "the table says so, and the exponent uses the time scaled to all of them)",
    )
    parser.add_argument("--ingest-worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.ingest_worker:
        ingest_worker(args.ingest_worker)
        return
    from penchant.runs import machine

    # The code measured is the checkout's when the run starts (a dirty tree is marked).
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "penchant"], capture_output=True, text=True
    ).stdout
    commit += " (with uncommitted changes)" if dirty.strip() else ""
    steps = tuple(step for step in STEPS if step in args.steps)
    if args.work:
        measured = [measure(n, args.work, steps, args.evaluate_users) for n in sorted(args.sizes)]
    else:
        with tempfile.TemporaryDirectory() as folder:
            measured = [measure(n, Path(folder), steps, args.evaluate_users) for n in sorted(args.sizes)]
    path = args.out / "scale_data.json"
    rows = merged(json.loads(path.read_text()) if path.exists() else {}, measured, commit)
    exponents = {step: exponent(rows, step) for step in STEPS}
    largest = rows[-1]
    report = {
        "benchmark": "scale of the data path",
        "command": "python benchmarks/scale_data.py --sizes SIZES [--steps STEPS] [--evaluate-users N] [--work DIR]",
        "date": time.strftime("%Y-%m-%d"),
        "commit": commit,
        "machine": {**machine(), "memory_gb": round(psutil.virtual_memory().total / 2**30, 1)},
        "rows": rows,
        "exponents": exponents,
        "bar": {"target": BAR}
        if not all(step in largest for step in STEPS)
        else {
            "target": BAR,
            "train_peak_rss": largest["train"]["peak_rss_gb"] <= BAR["peak_rss_gb"],
            "evaluate_peak_rss": largest["evaluate"]["peak_rss_gb"] <= BAR["peak_rss_gb"],
            "ingest_rate": largest["ingest"]["events_per_s"] >= BAR["ingest_events_per_s"],
            "linear_time": all(v is not None and v <= BAR["exponent"] + 0.05 for v in exponents.values()),
            "serve_start": largest["serve_start"]["seconds"] <= BAR["serve_start_s"],
        },
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "scale_data.json").write_text(json.dumps(report, indent=2))
    (args.out / "scale_data.md").write_text(render(report))
    print(render(report))


if __name__ == "__main__":
    main()
