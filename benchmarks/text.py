"""Benchmark: item text in the interest transformer on ml-100k — ID-only, text-only and fused side by side.

    .venv/bin/python benchmarks/text.py                    # both protocols, one after the other
    .venv/bin/python benchmarks/text.py --part default     # or one part per process, then:
    .venv/bin/python benchmarks/text.py --part cold-start
    .venv/bin/python benchmarks/text.py --report           # merge the parts into text.md / text.json
    .venv/bin/python benchmarks/text.py --part default --reprs fused --seeds 42 1 2 --append   # more seeds
    .venv/bin/python benchmarks/text.py --part default --reprs fused --config '{"text_lr_scale": 1}' --append  # ablation
    .venv/bin/python benchmarks/text.py --part readme      # the README's cold-start commands, as written

* default protocol (leave-one-out by time, full-catalogue ranking; seen items not excluded, and
  excluded): the bar is fused NDCG@10 >= ID-only NDCG@10, compared as means over the training
  seeds both were run with (``--seeds``; seed-to-seed spread is reported beside them);
* cold-start protocol (10% of the items with events held out of training entirely, seed 0; the
  target is each user's first event on a held-out item; full-catalogue ranking): the bar is a
  text-based model's HR@10 >= 5x the random baseline (mean of 20 seeded random rankings), with the
  ID-only model beside it;
* readme: the README's two cold-start commands exactly as written there (``penchant train --data
  ml-100k --protocol cold-start --config '{"item_repr": "text"}'`` then ``penchant evaluate
  --protocol cold-start --json``), with penchant's defaults (template, window, refit, early
  stopping): the same bar, so that the README's figure comes from the path it tells users to run.

Item text is "{title}, {year}. {categories}." encoded by all-MiniLM-L6-v2 (cached on disk). Every
model gets the same settings and wall-clock budget (``--max-seconds``), so on a busy machine the
comparison stays even; the report states the load it ran under.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from penchant.data import load_ml100k
from penchant.data.split import Protocol, split
from penchant.evaluate.ranking import RandomScores, evaluate, validator
from penchant.models import InterestTransformer, ModelConfig, TransformerConfig
from penchant.runs import machine

RESULTS = Path(__file__).parent / "results"
TEMPLATE = "{title}, {year}. {categories}."
REPRS = ("id", "text", "fused")
KS = (5, 10, 20)
DEFAULTS = TransformerConfig()
RANDOM_DRAWS = 20


def run_part(
    part: str,
    max_seconds: float,
    threads: int,
    reprs: tuple[str, ...] = REPRS,
    seeds: tuple[int, ...] = (42,),
    overrides: dict | None = None,
) -> dict:
    dataset = load_ml100k()
    protocol = Protocol() if part == "default" else Protocol(name="cold-start")
    parts = split(dataset, protocol)
    load_before = os.getloadavg()
    rows = []
    overrides = overrides or {}
    label = "".join(
        f", {k} {v:g}" if isinstance(v, float | int) else f", {k} {v}" for k, v in overrides.items()
    )
    for item_repr, seed in ((r, s) for r in reprs for s in seeds):
        settings = dict(item_repr=item_repr, text_template=TEMPLATE, max_seconds=max_seconds, threads=threads)
        config = TransformerConfig(**{**settings, "seed": seed, **overrides})
        model = InterestTransformer(config)
        started = time.perf_counter()
        model.fit(dataset, parts.train, validate=validator(parts.validation), progress=False)
        seconds = time.perf_counter() - started
        rows.append(
            {
                "model": f"transformer ({item_repr}{label})",
                "item_repr": item_repr,
                "overrides": overrides,
                "seed": seed,
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


README_TRAIN = ["train", "--data", "ml-100k", "--protocol", "cold-start", "--config", '{"item_repr": "text"}']
README_EVALUATE = ["evaluate", "--protocol", "cold-start", "--json"]


def run_readme_part() -> dict:
    """The README's cold-start commands in subprocesses, as a user runs them (default threads)."""

    def penchant(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "penchant", *args], capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"penchant {' '.join(args)} failed:\n{done.stderr[-3000:]}")
        return done.stdout

    with tempfile.TemporaryDirectory() as folder:
        run = str(Path(folder) / "cold")
        load_before, started = os.getloadavg(), time.perf_counter()
        penchant(*README_TRAIN, "--out", run)
        wall = time.perf_counter() - started
        evaluated = json.loads(penchant(README_EVALUATE[0], "--run", run, *README_EVALUATE[1:]))
        fit = json.loads((Path(run) / "run.json").read_text())["fit"]
    return {
        "commands": [
            "penchant " + " ".join(README_TRAIN[:-1]) + f" '{README_TRAIN[-1]}' --out runs/cold",
            "penchant " + " ".join([README_EVALUATE[0], "--run", "runs/cold", *README_EVALUATE[1:]]),
        ],
        "protocol": evaluated["protocol"],
        "metrics": evaluated["metrics"],
        "baseline": evaluated["baseline"],
        "n_users": evaluated["n_users"],
        "wall_seconds": round(wall, 1),
        "fit": {
            k: fit[k]
            for k in ("epochs", "best_epoch", "seconds", "stopped_by", "still_improving", "settings")
        },
        "load_average": {"before": round(load_before[0], 2), "after": round(os.getloadavg()[0], 2)},
        "command": "python benchmarks/text.py --part readme",
    }


def _random(dataset, parts, exclude_seen: bool) -> dict:
    draws = []
    for seed in range(RANDOM_DRAWS):
        model = RandomScores(ModelConfig(seed=seed)).fit(dataset, parts.train, progress=False)
        draws.append(evaluate(model, parts.test, parts.protocol, KS, exclude_seen=exclude_seen)["metrics"])
    return {name: float(np.mean([d[name] for d in draws])) for name in draws[0]}


def seed_means(results: list[dict]) -> list[dict]:
    """One row per (model, budget): metric means and standard deviations over its training seeds."""
    groups: dict[tuple[str, float], list[dict]] = {}
    for r in results:
        groups.setdefault((r["model"], r["max_seconds"]), []).append(r)
    out = []
    for (model, budget), rows in groups.items():
        row = {"model": model, "item_repr": rows[0]["item_repr"], "overrides": rows[0].get("overrides", {})}
        row |= {"max_seconds": budget, "seeds": [r.get("seed", 42) for r in rows]}
        for setting in ("metrics", "metrics_exclude_seen"):
            for name in ("ndcg@10", "hr@10"):
                values = [r[setting][name] for r in rows]
                row[f"{setting}:{name}"] = (float(np.mean(values)), float(np.std(values)))
        out.append(row)
    return out


def bars(default: dict | None, cold: dict | None, readme: dict | None = None) -> dict:
    out = {}
    if readme:
        ratio = readme["metrics"]["hr@10"] / readme["baseline"]["hr@10"]
        out[f"README cold-start commands: HR@10 >= 5x the random baseline they print ({ratio:.1f}x)"] = (
            ratio >= 5
        )
    if default:
        # Compared at equal training budgets, as means over the seeds both models were trained with.
        plain = [r for r in default["results"] if not r.get("overrides")]
        for budget in sorted({r["max_seconds"] for r in plain}):
            by: dict[str, dict[int, float]] = {}
            for r in plain:
                if r["max_seconds"] == budget:
                    by.setdefault(r["item_repr"], {})[r.get("seed", 42)] = r["metrics"]["ndcg@10"]
            seeds = sorted(set(by.get("fused", {})) & set(by.get("id", {})))
            if seeds:
                name = (
                    "fused NDCG@10 >= ID-only NDCG@10 (default protocol, seen not excluded, "
                    f"{budget:g} s budget, mean over seeds {', '.join(map(str, seeds))})"
                )
                out[name] = bool(
                    np.mean([by["fused"][s] for s in seeds]) >= np.mean([by["id"][s] for s in seeds])
                )
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
        "`fused`: their sum (ID part masked for items with no training events, ID dropout "
        f"{DEFAULTS.id_dropout:g}, the text projection learning at {DEFAULTS.text_lr_scale:g} x the base "
        "rate unless the model name says otherwise).",
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
            "| model | seed | NDCG@10 | HR@10 | MRR@10 | NDCG@10 (seen excl.) | HR@10 (seen excl.) "
            "| budget s | train s | epochs (best) |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
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
                    "seed": "",
                }
            )
        for r in rows:
            a, b = r["metrics"], r["metrics_exclude_seen"]
            epochs = f"{r['epochs']} ({r['best_epoch']})" if r["epochs"] != "" else ""
            lines.append(
                f"| {r['model']} | {r.get('seed', 42)} | {a['ndcg@10']:.4f} | {a['hr@10']:.4f} | {a['mrr@10']:.4f} | "
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
        means = seed_means(part["results"])
        if any(len(m["seeds"]) > 1 for m in means):
            lines += [
                "",
                "Mean ± standard deviation over training seeds:",
                "",
                "| model | seeds | NDCG@10 | HR@10 | NDCG@10 (seen excl.) | HR@10 (seen excl.) | budget s |",
                "|---|---|---:|---:|---:|---:|---:|",
            ]
            for m in means:
                cells = " | ".join(
                    f"{m[key][0]:.4f} ± {m[key][1]:.4f}" if len(m["seeds"]) > 1 else f"{m[key][0]:.4f}"
                    for key in (
                        "metrics:ndcg@10",
                        "metrics:hr@10",
                        "metrics_exclude_seen:ndcg@10",
                        "metrics_exclude_seen:hr@10",
                    )
                )
                seeds = ", ".join(map(str, m["seeds"]))
                lines.append(f"| {m['model']} | {seeds} | {cells} | {m['max_seconds']:g} |")
        lines.append("")
    readme = report["parts"].get("readme")
    if readme:
        fit, m, b = readme["fit"], readme["metrics"], readme["baseline"]
        lines += [
            "## The README's cold-start commands",
            "",
            "Run exactly as the README gives them, with every default (no settings but `item_repr`):",
            "",
            *[f"    {c}" for c in readme["commands"]],
            "",
            f"Protocol: {readme['protocol']['description']}; {readme['protocol']['ranking']}; "
            f"{readme['n_users']} test users; seen items not excluded.",
            "",
            "| model | HR@10 | NDCG@10 | random HR@10 | x random | epochs (best) | stopped by | train s | load |",
            "|---|---:|---:|---:|---:|---:|---|---:|---|",
            f"| transformer (text), window {fit['settings'].get('window')} | {m['hr@10']:.4f} | "
            f"{m['ndcg@10']:.4f} | {b['hr@10']:.4f} | {m['hr@10'] / b['hr@10']:.1f}x | "
            f"{fit['epochs']} ({fit['best_epoch']}) | {fit['stopped_by']} | {fit['seconds']:.0f} | "
            f"{readme['load_average']['before']} -> {readme['load_average']['after']} |",
            "",
        ]
    lines += ["## Bar", ""] + [
        f"- {name}: {'met' if ok else 'NOT met'}" for name, ok in report["bar"].items()
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("default", "cold-start", "readme", "all"), default="all")
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
        "--seeds", nargs="+", type=int, default=[42], help="training seeds, one model per seed (default 42)"
    )
    parser.add_argument(
        "--config",
        type=json.loads,
        default={},
        help="transformer settings to override, as JSON, e.g. '{\"text_lr_scale\": 1.0}' (named in the rows)",
    )
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.part == "readme" and not args.report:
        (args.out / "text.readme.json").write_text(json.dumps(run_readme_part(), indent=2))
    elif not args.report:
        torch.set_num_threads(args.threads)
        for part in ("default", "cold-start") if args.part == "all" else (args.part,):
            result = run_part(
                part, args.max_seconds, args.threads, tuple(args.reprs), tuple(args.seeds), args.config
            )
            command = (
                f"python benchmarks/text.py --part {part} --max-seconds {args.max_seconds:g} "
                f"--threads {args.threads}"
            )
            if args.reprs != list(REPRS):
                command += " --reprs " + " ".join(args.reprs)
            if args.seeds != [42]:
                command += " --seeds " + " ".join(map(str, args.seeds))
            if args.config:
                command += f" --config '{json.dumps(args.config)}'"
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
        for p in ("default", "cold-start", "readme")
        if (args.out / f"text.{p}.json").exists()
    }
    report = {
        "benchmark": "ml-100k: interest transformer with ID-only, text-only and fused item vectors",
        "command": "; ".join(p["command"] for p in parts.values()) + "; python benchmarks/text.py --report",
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        "threads": args.threads,
        "load": "; ".join(
            f"{k} {r['model']} seed {r.get('seed', 42)} {r['max_seconds']:g} s: {r['load_average']['before']} -> "
            f"{r['load_average']['after']}"
            for k, p in parts.items()
            for r in p.get("results", [])
        ),
        "parts": parts,
        "bar": bars(parts.get("default"), parts.get("cold-start"), parts.get("readme")),
    }
    (args.out / "text.json").write_text(json.dumps(report, indent=2))
    (args.out / "text.md").write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
