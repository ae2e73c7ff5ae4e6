"""Benchmark: what differential privacy costs the interest transformer on ml-100k.

    .venv/bin/python benchmarks/privacy.py                       # ε = 1, 4, 8; ε = ∞ from scale.json
    .venv/bin/python benchmarks/privacy.py --reference train     # also train the non-private default

For each ε: ``penchant train --data ml-100k --dp-epsilon E`` (DP-SGD, each user one privacy unit,
ε by Opacus's RDP accountant, δ the default) and ``penchant evaluate`` under the default protocol
(leave-one-out by time, full catalogue, seen items not excluded: the protocol of the ml-100k bar),
with the training time and the peak RSS of the training process. ε = ∞ is the ordinary default
model: trained here with ``--reference train``, otherwise the ml-100k row of
benchmarks/results/scale.json (same protocol; its commit and load are printed with it).

Writes benchmarks/results/privacy.md and .json, with the machine, threads and load of each run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from penchant.runs import machine

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
EPSILONS = (1.0, 4.0, 8.0)
TARGET = 0.5  # NDCG@10 at ε = 8 at least this share of the non-private model's


def penchant(*args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "penchant", *args], capture_output=True, text=True)
    if result.returncode:
        raise SystemExit(f"penchant {' '.join(args)} failed:\n{result.stderr[-4000:]}")
    return result


def train_and_evaluate(config: dict, epsilon: float | None, seed: int) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "run"
        settings = json.dumps({**config, "seed": seed})
        shown = ["train", "--data", "ml-100k", "--config", f"'{settings}'"]
        args = ["train", "--data", "ml-100k", "--config", settings, "--out", str(out)]
        if epsilon is not None:
            args += ["--dp-epsilon", str(epsilon)]
            shown += ["--dp-epsilon", str(epsilon)]
        load_before, started = os.getloadavg()[0], time.perf_counter()
        peak = _peak_rss_of([sys.executable, "-m", "penchant", *args])
        wall = time.perf_counter() - started
        report = json.loads(penchant("evaluate", "--run", str(out), "--k", "10", "20", "--json").stdout)
        fit = json.loads((out / "run.json").read_text())["fit"]
    return {
        "epsilon": epsilon,
        "command": "penchant " + " ".join(shown),
        "metrics": {k: v for k, v in report["metrics"].items() if k.startswith(("ndcg", "hr"))},
        "protocol": report["protocol"],
        "privacy": fit["settings"].get("privacy"),
        "train_seconds": round(fit["seconds"], 1),
        "wall_seconds": round(wall, 1),
        "epochs": fit["epochs"],
        "stopped_by": fit["stopped_by"],
        "peak_rss_gb": round(peak, 2),
        "load_average": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)},
    }


def _peak_rss_of(command: list[str]) -> float:
    """Run ``command`` to its end; its peak resident memory in GB (Linux ``ru_maxrss`` is in KiB)."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    stderr = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        raise SystemExit(f"{' '.join(command[2:])} failed:\n{stderr[-4000:]}")
    return usage.ru_maxrss / 1024 / 1024


def reference_from_scale() -> dict:
    path = RESULTS / "scale.json"
    section = json.loads(path.read_text())["parts"]["ml100k"]
    run = section["run"]
    return {
        "epsilon": None,
        "command": run["command"],
        "metrics": run["metrics"],
        "protocol": run["protocol"],
        "privacy": None,
        "train_seconds": run["train_seconds"],
        "epochs": run["epochs"],
        "stopped_by": run["stopped_by"],
        "peak_rss_gb": None,
        "load_average": run["load_average"],
        "source": f"benchmarks/results/scale.json, measured {section.get('date')}"
        + (f" at commit {section['commit']}" if section.get("commit") else ""),
    }


def render(report: dict) -> str:
    rows = report["rows"]
    reference = next(r for r in rows if r["epsilon"] is None)
    base = reference["metrics"]["ndcg@10"]
    m = report["machine"]
    lines = [
        "# Privacy: what differential privacy costs the interest transformer (ml-100k)",
        "",
        f"Machine: {m['processor']}, {m['cpu_count']} cores, torch {m['torch']} with "
        f"{report['threads']} thread(s) per run; load average per run below. Reproduce with "
        "`python benchmarks/privacy.py`.",
        "",
        f"Protocol: {rows[0]['protocol']['description']}; ranking over the {rows[0]['protocol']['ranking']}; "
        "already-seen items not excluded. Privacy: DP-SGD with each user as the unit (every step samples "
        "users, one window each, each user's gradient clipped), ε from Opacus's RDP accountant, δ = a tenth "
        "of 1/users. ε covers the trained weights; training runs a fixed number of epochs, without validation.",
        "",
        "| ε | δ | NDCG@10 | HR@10 | share of ε = ∞ | train s | epochs | noise multiplier | peak RSS | load |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in sorted(rows, key=lambda r: float("inf") if r["epsilon"] is None else r["epsilon"]):
        p = r["privacy"] or {}
        eps = "∞ (not private)" if r["epsilon"] is None else f"{p.get('epsilon', r['epsilon']):.2f}"
        lines.append(
            f"| {eps} | {p.get('delta', '') and format(p['delta'], '.1e')} | {r['metrics']['ndcg@10']:.4f} | "
            f"{r['metrics']['hr@10']:.4f} | {r['metrics']['ndcg@10'] / base:.2f} | {r['train_seconds']:.0f} | "
            f"{r['epochs']} | {p.get('noise_multiplier', '')} | "
            f"{'' if r['peak_rss_gb'] is None else str(r['peak_rss_gb']) + ' GB'} | "
            f"{r['load_average']['before']}-{r['load_average']['after']} |"
        )
    lines += ["", "Commands:", ""]
    lines += [f"- `{r['command']}`" + (f" ({r['source']})" if r.get("source") else "") for r in rows]
    at8 = next((r for r in rows if r["epsilon"] == 8.0), None)
    if at8:
        share = at8["metrics"]["ndcg@10"] / base
        lines += [
            "",
            f"Bar: NDCG@10 at ε = 8 ≥ {TARGET}× the non-private model's: {share:.2f}× — "
            + ("met." if share >= TARGET else "NOT met."),
        ]
    lines += [
        "",
        f"Settings of the private runs: `{json.dumps(report['config'])}` (plus the seed); "
        f"measured {report['date']} at commit {report['commit']}.",
    ]
    return "\n".join(lines) + "\n"


def _commit() -> str:
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "penchant"], cwd=ROOT, capture_output=True, text=True
    )
    return head.stdout.strip() + (" with uncommitted changes" if dirty.stdout.strip() else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epsilons", type=float, nargs="+", default=list(EPSILONS))
    parser.add_argument("--reference", choices=("scale", "train"), default="scale")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, default=0, help="torch threads per run (0: all cores)")
    parser.add_argument("--config", default="{}", help="extra settings for the private runs (JSON)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    config = json.loads(args.config)
    if args.threads:
        config["threads"] = args.threads
    rows = []
    for epsilon in args.epsilons:
        rows.append(train_and_evaluate(config, epsilon, args.seed))
        print(f"ε = {epsilon}: NDCG@10 {rows[-1]['metrics']['ndcg@10']:.4f}", file=sys.stderr)
    if args.reference == "train":
        rows.append(train_and_evaluate({"threads": args.threads} if args.threads else {}, None, args.seed))
    else:
        rows.append(reference_from_scale())
    report = {
        "date": time.strftime("%Y-%m-%d"),
        "commit": _commit(),
        "machine": machine(),
        "threads": args.threads or os.cpu_count(),
        "config": config,
        "seed": args.seed,
        "rows": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "privacy.json").write_text(json.dumps(report, indent=2))
    (args.out / "privacy.md").write_text(render(report))
    print(render(report))


if __name__ == "__main__":
    main()
