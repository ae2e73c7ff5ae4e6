"""Benchmark: every model on ml-100k under the default protocol, in one process, side by side.

    .venv/bin/python benchmarks/run.py            # or: make benchmark

Writes benchmarks/results/ml100k.json and ml100k.md: metrics with seen items not excluded and
excluded, training wall time, peak memory (RSS), per-user recommendation latency, and the machine,
thread count and protocol they were measured under, plus the issue's bar for the interest
transformer.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

from penchant.data import load_ml100k
from penchant.evaluate.compare import compare
from penchant.models import EASE, InterestTransformer, Popularity
from penchant.runs import machine

RESULTS = Path(__file__).parent / "results"

# Reference: RecBole 1.2.1 on the same data and protocol (leave-one-out by time, full ranking,
# seen items not excluded, CE loss, max length 50), measured on this kind of 2-core machine.
PEERS = [
    {
        "model": "GRU4Rec (RecBole 1.2.1)",
        "ndcg@10": 0.0694,
        "hr@10": 0.141,
        "train_seconds": 1099,
        "note": "converged",
    },
    {
        "model": "BERT4Rec (RecBole 1.2.1)",
        "ndcg@10": 0.0670,
        "hr@10": 0.135,
        "train_seconds": 1500,
        "note": "stopped by a 25-minute cap",
    },
    {
        "model": "SASRec (RecBole 1.2.1)",
        "ndcg@10": 0.0564,
        "hr@10": 0.120,
        "train_seconds": 1500,
        "note": "stopped by a 25-minute cap",
    },
]
BAR = {"ndcg@10": 0.080, "hr@10": 0.160, "train_seconds": 300.0}
KS = (5, 10, 20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = all cores)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    dataset = load_ml100k()
    load_before = os.getloadavg()
    started = time.perf_counter()
    parts, results = compare(dataset, [InterestTransformer(), EASE(), Popularity()], ks=KS)
    transformer = results[0]
    bar = {
        "ndcg@10": transformer.metrics["ndcg@10"] >= BAR["ndcg@10"],
        "hr@10": transformer.metrics["hr@10"] >= BAR["hr@10"],
        "train_seconds": transformer.train_seconds <= BAR["train_seconds"],
    }
    report = {
        "benchmark": "ml-100k, every model, default protocol",
        "command": "python benchmarks/run.py" + (f" --threads {args.threads}" if args.threads else ""),
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        "threads": torch.get_num_threads(),
        "dataset": dataset.summary(),
        "protocol": parts.protocol.describe(exclude_seen=False),
        "n_test_users": len(parts.test),
        "results": [r.to_dict() for r in results],
        "peers": PEERS,
        "bar": {"target": BAR, "met": bar},
        "wall_seconds": round(time.perf_counter() - started, 1),
        "load_average": {
            "before": [round(x, 2) for x in load_before],
            "after": [round(x, 2) for x in os.getloadavg()],
        },
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ml100k.json").write_text(json.dumps(report, indent=2))
    (args.out / "ml100k.md").write_text(markdown(report))
    print(markdown(report))


def markdown(report: dict) -> str:
    m = report["machine"]
    lines = [
        "# ml-100k benchmark",
        "",
        f"Produced by `{report['command']}` on {report['date']}.",
        "",
        f"- machine: {m['platform']}, {m['processor']}, {m['cpu_count']} cores; torch {m['torch']} with "
        f"{report['threads']} threads; Python {m['python']}; 1/5/15-minute load averages "
        f"{report['load_average']['before']} before, {report['load_average']['after']} after (training runs to "
        "early stopping, so load changes the time taken, not the accuracy)",
        f"- data: MovieLens-100k, {report['dataset']['n_events']} events, {report['dataset']['n_users']} users, "
        f"{report['dataset']['n_items']} items; {report['n_test_users']} test users",
        f"- protocol: {report['protocol']['name']} ({report['protocol']['description']}); ranking over the "
        f"{report['protocol']['ranking']}; early stopping on validation NDCG@10",
        "",
        "## Accuracy (already-seen items NOT excluded)",
        "",
        "| model | NDCG@10 | HR@10 | MRR@10 | Recall@20 | NDCG@20 | coverage@10 | train s | epochs (best) | peak RSS MB | ms/user |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["results"]:
        x = r["metrics"]
        lines.append(
            f"| {r['model']} | {x['ndcg@10']:.4f} | {x['hr@10']:.4f} | {x['mrr@10']:.4f} | {x['recall@20']:.4f} | "
            f"{x['ndcg@20']:.4f} | {x['coverage@10']:.3f} | {r['train_seconds']:.1f} | {r['epochs']} ({r['best_epoch']}) | "
            f"{r['peak_rss_mb']:.0f} | {r['latency_ms_per_user']:.2f} |"
        )
    lines += [
        "",
        "## Accuracy (already-seen items excluded)",
        "",
        "| model | NDCG@10 | HR@10 | MRR@10 | Recall@20 |",
        "|---|---|---|---|---|",
    ]
    for r in report["results"]:
        x = r["metrics_exclude_seen"]
        lines.append(
            f"| {r['model']} | {x['ndcg@10']:.4f} | {x['hr@10']:.4f} | {x['mrr@10']:.4f} | {x['recall@20']:.4f} |"
        )
    lines += [
        "",
        "## Peers (same data and protocol, seen items not excluded; measured with RecBole 1.2.1, not re-run here)",
        "",
        "| model | NDCG@10 | HR@10 | train s | note |",
        "|---|---|---|---|---|",
    ]
    for p in report["peers"]:
        lines.append(
            f"| {p['model']} | {p['ndcg@10']:.4f} | {p['hr@10']:.3f} | {p['train_seconds']} | {p['note']} |"
        )
    target, met = report["bar"]["target"], report["bar"]["met"]
    lines += [
        "",
        "## Bar for the interest transformer",
        "",
        f"- NDCG@10 >= {target['ndcg@10']}: {'met' if met['ndcg@10'] else 'NOT met'}",
        f"- HR@10 >= {target['hr@10']}: {'met' if met['hr@10'] else 'NOT met'}",
        f"- training <= {target['train_seconds']:.0f} s: {'met' if met['train_seconds'] else 'NOT met'}",
        "",
        "Peak RSS is the whole process's resident memory while that model trained (the process also holds the data "
        "and the models trained before it). Latency is one user at a time, full-catalogue scoring, no batching.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
