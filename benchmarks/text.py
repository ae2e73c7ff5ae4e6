"""Benchmark: item text in the interest transformer on ml-100k — ID-only, text-only and fused side by side.

    .venv/bin/python benchmarks/text.py                    # both protocols, one after the other
    .venv/bin/python benchmarks/text.py --part default     # or one part per process, then:
    .venv/bin/python benchmarks/text.py --part cold-start
    .venv/bin/python benchmarks/text.py --report           # merge the parts into text.md / text.json

* default protocol (leave-one-out by time, full-catalogue ranking; seen items not excluded, and
  excluded): the bar is fused NDCG@10 >= ID-only NDCG@10;
* cold-start protocol (10% of the items with events held out of training entirely, seed 0; the
  target is each user's first event on a held-out item; full-catalogue ranking): the bar is a
  text-based model's HR@10 >= 5x the random baseline (mean of 20 seeded random rankings), with the
  ID-only model beside it.

Item text is "{title}, {year}. {categories}." encoded by all-MiniLM-L6-v2 (cached on disk). Every
model gets the same settings and wall-clock budget (``--max-seconds``), so on a busy machine the
comparison stays even; the report states the load it ran under.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from penchant.data import load_ml100k
from penchant.data.split import Protocol, split
from penchant.evaluate.ranking import RandomScores, evaluate, validator
from penchant.evaluate.runs import machine
from penchant.models import InterestTransformer, ModelConfig, TransformerConfig

RESULTS = Path(__file__).parent / "results"
TEMPLATE = "{title}, {year}. {categories}."
REPRS = ("id", "text", "fused")
KS = (5, 10, 20)
RANDOM_DRAWS = 20


def run_part(
    part: str,
    max_seconds: float,
    threads: int,
    reprs: tuple[str, ...] = REPRS,
    id_dropout: float | None = None,
) -> dict:
    dataset = load_ml100k()
    protocol = Protocol() if part == "default" else Protocol(name="cold-start")
    parts = split(dataset, protocol)
    load_before = os.getloadavg()
    rows = []
    for item_repr in reprs:
        extra = {} if id_dropout is None else {"id_dropout": id_dropout}
        config = TransformerConfig(
            item_repr=item_repr, text_template=TEMPLATE, max_seconds=max_seconds, threads=threads, **extra
        )
        model = InterestTransformer(config)
        started = time.perf_counter()
        model.fit(dataset, parts.train, validate=validator(parts.validation), progress=False)
        seconds = time.perf_counter() - started
        rows.append(
            {
                "model": f"transformer ({item_repr}" + (f", id_dropout {id_dropout:g})" if extra else ")"),
                "item_repr": item_repr,
                "max_seconds": max_seconds,
                "train_seconds": round(seconds, 1),
                "epochs": model.fit_stats.epochs,
                "best_epoch": model.fit_stats.best_epoch,
                "best_validation_ndcg@10": model.fit_stats.best_validation,
                "metrics": evaluate(model, parts.test, parts.protocol, KS)["metrics"],
                "metrics_exclude_seen": evaluate(model, parts.test, parts.protocol, KS, exclude_seen=True)[
                    "metrics"
                ],
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    report = {
        "part": part,
        "protocol": parts.protocol.describe(exclude_seen=False),
        "split_notes": parts.notes,
        "n_test_users": len(parts.test),
        "config": {
            "text_template": TEMPLATE,
            "text_encoder": "minilm",
            "max_seconds": max_seconds,
            "threads": threads,
        },
        "results": rows,
        "load_average": {
            "before": [round(x, 2) for x in load_before],
            "after": [round(x, 2) for x in os.getloadavg()],
        },
    }
    report["results"] = [{**r, "load_average": report["load_average"]} for r in rows]
    if part == "cold-start":
        report["baseline"] = {
            "model": f"random (mean of {RANDOM_DRAWS} seeded draws)",
            "metrics": _random(dataset, parts, False),
            "metrics_exclude_seen": _random(dataset, parts, True),
        }
    return report


def _random(dataset, parts, exclude_seen: bool) -> dict:
    draws = []
    for seed in range(RANDOM_DRAWS):
        model = RandomScores(ModelConfig(seed=seed)).fit(dataset, parts.train, progress=False)
        draws.append(evaluate(model, parts.test, parts.protocol, KS, exclude_seen=exclude_seen)["metrics"])
    return {name: float(np.mean([d[name] for d in draws])) for name in draws[0]}


def bars(default: dict | None, cold: dict | None) -> dict:
    out = {}
    if default:
        # Compared at equal training budgets only.
        for budget in sorted({r["max_seconds"] for r in default["results"]}):
            by = {
                r["item_repr"]: r
                for r in default["results"]
                if r["max_seconds"] == budget and "id_dropout" not in r["model"]
            }
            if "fused" in by and "id" in by:
                name = (
                    "fused NDCG@10 >= ID-only NDCG@10 "
                    f"(default protocol, seen not excluded, {budget:g} s budget)"
                )
                out[name] = by["fused"]["metrics"]["ndcg@10"] >= by["id"]["metrics"]["ndcg@10"]
    if cold:
        for setting in ("metrics", "metrics_exclude_seen"):
            chance = cold["baseline"][setting]["hr@10"]
            best = max(r[setting]["hr@10"] for r in cold["results"] if r["item_repr"] != "id")
            seen = "seen not excluded" if setting == "metrics" else "seen excluded"
            out[f"text-based HR@10 >= 5x random (cold-start protocol, {seen})"] = best >= 5 * chance
    return out


def markdown(report: dict) -> str:
    m = report["machine"]
    lines = [
        "# Item text in the interest transformer (ml-100k)",
        "",
        f"Produced by `{report['command']}` on {report['date']}; "
        f"{m['cpu_count']} CPU cores ({m['processor']}), "
        f"torch {m['torch']} with {report['threads']} thread(s) per model, Python {m['python']}.",
        f"Machine load while it ran (1/5/15-minute load averages): {report['load']}. The machine was shared; "
        "models differ only in item_repr and their wall-clock budget (column 'budget s'), so rows of equal "
        "budget are comparable with each other; times are not comparable with other benchmarks.",
        "",
        f"Item text: `{TEMPLATE}` (title, year, genres) encoded by all-MiniLM-L6-v2. "
        "`id`: learned ID embeddings only; `text`: a linear projection of the frozen text embedding only; "
        "`fused`: their sum (ID part masked for items with no training events, ID dropout 0.1).",
        "",
    ]
    for key, title in (("default", "Default protocol"), ("cold-start", "Cold-start protocol")):
        part = report["parts"].get(key)
        if not part:
            continue
        lines += [
            f"## {title}",
            "",
            f"Protocol: {part['protocol']['name']} — {part['protocol']['description']}; "
            f"ranking over the {part['protocol']['ranking']}; {part['n_test_users']} test users.",
        ]
        lines += [f"- {note}" for note in part["split_notes"]]
        lines += [
            "",
            "| model | NDCG@10 | HR@10 | MRR@10 | NDCG@10 (seen excl.) | HR@10 (seen excl.) "
            "| budget s | train s | epochs (best) |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        rows = list(part["results"])
        if "baseline" in part:
            rows.append(
                {
                    "model": part["baseline"]["model"],
                    **part["baseline"],
                    "max_seconds": "",
                    "train_seconds": "",
                    "epochs": "",
                    "best_epoch": "",
                }
            )
        for r in rows:
            a, b = r["metrics"], r["metrics_exclude_seen"]
            epochs = f"{r['epochs']} ({r['best_epoch']})" if r["epochs"] != "" else ""
            lines.append(
                f"| {r['model']} | {a['ndcg@10']:.4f} | {a['hr@10']:.4f} | {a['mrr@10']:.4f} | "
                f"{b['ndcg@10']:.4f} | {b['hr@10']:.4f} | {r['max_seconds']} | {r['train_seconds']} "
                f"| {epochs} |"
            )
        if "baseline" in part:
            for setting, seen in (
                ("metrics", "seen not excluded"),
                ("metrics_exclude_seen", "seen excluded"),
            ):
                chance = part["baseline"][setting]["hr@10"]
                ratios = ", ".join(
                    f"{r['model']} ({r['max_seconds']:g} s) {r[setting]['hr@10'] / chance:.1f}x"
                    for r in part["results"]
                )
                lines += ["", f"HR@10 relative to random, {seen}: {ratios}."]
        lines.append("")
    lines += ["## Bar", ""] + [
        f"- {name}: {'met' if ok else 'NOT met'}" for name, ok in report["bar"].items()
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("default", "cold-start", "all"), default="all")
    parser.add_argument("--report", action="store_true", help="only merge saved parts into text.md/text.json")
    parser.add_argument(
        "--max-seconds", type=float, default=270.0, help="training budget per model (default 270)"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads per model (default 1)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--reprs", nargs="+", choices=REPRS, default=list(REPRS), help="item representations to train"
    )
    parser.add_argument("--append", action="store_true", help="add these rows to the part's saved results")
    parser.add_argument(
        "--id-dropout", type=float, help="override the fused model's id_dropout (default 0.1)"
    )
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.report:
        torch.set_num_threads(args.threads)
        for part in ("default", "cold-start") if args.part == "all" else (args.part,):
            result = run_part(part, args.max_seconds, args.threads, tuple(args.reprs), args.id_dropout)
            command = (
                f"python benchmarks/text.py --part {part} --max-seconds {args.max_seconds:g} "
                f"--threads {args.threads}"
            )
            if args.reprs != list(REPRS):
                command += " --reprs " + " ".join(args.reprs)
            if args.id_dropout is not None:
                command += f" --id-dropout {args.id_dropout:g}"
            path = args.out / f"text.{part}.json"
            # Parts appended by processes running side by side: lock the results folder meanwhile.
            folder = os.open(args.out, os.O_RDONLY)
            fcntl.flock(folder, fcntl.LOCK_EX)
            try:
                if args.append and path.exists():
                    saved = json.loads(path.read_text())
                    saved["results"] += result["results"]
                    saved["command"] += "; " + command + " --append"
                    result = saved
                else:
                    result["command"] = command
                path.write_text(json.dumps(result, indent=2))
            finally:
                os.close(folder)
    parts = {
        p: json.loads((args.out / f"text.{p}.json").read_text())
        for p in ("default", "cold-start")
        if (args.out / f"text.{p}.json").exists()
    }
    report = {
        "benchmark": "ml-100k: interest transformer with ID-only, text-only and fused item vectors",
        "command": "; ".join(p["command"] for p in parts.values()) + "; python benchmarks/text.py --report",
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        "threads": args.threads,
        "load": "; ".join(
            f"{k} {r['item_repr']} {r['max_seconds']:g} s: {r['load_average']['before']} -> "
            f"{r['load_average']['after']}"
            for k, p in parts.items()
            for r in p["results"]
        ),
        "parts": parts,
        "bar": bars(parts.get("default"), parts.get("cold-start")),
    }
    (args.out / "text.json").write_text(json.dumps(report, indent=2))
    (args.out / "text.md").write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
