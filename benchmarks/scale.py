"""Benchmark: the interest transformer at the size users bring (issue "Real catalogues").

    .venv/bin/python benchmarks/scale.py --parts beauty ml100k torchrun synthetic precision ablation seeds

Every part writes its section of benchmarks/results/scale.json as soon as it finishes (a part run
again replaces its own section), and benchmarks/results/scale.md is rendered from all sections:

* ``beauty``: default ``penchant train --events amazon-beauty.csv.gz`` (no --config), leave-one-out,
  full-catalogue ranking, seen items excluded, beside the published table for exactly that data;
* ``ml100k``: default ``penchant train --data ml-100k`` (seen items not excluded);
* ``torchrun``: the same ml-100k run with ``torchrun --nproc-per-node 2``;
* ``synthetic``: power-law catalogues of 10^4, 10^5 and 10^6 items with 10^6 events: seconds per
  training epoch and peak memory for each objective (each in a process of its own);
* ``precision``: seconds per epoch on Beauty in fp32 and under bf16 autocast;
* ``refit``: how many epochs on training + validation events pay after early stopping, chosen with
  the whole protocol shifted one event back (its "test" targets are the real validation targets,
  so the real test targets play no part in the choice);
* ``ablation``: objective x window x long-term summary, one seed each, on Beauty and ml-100k;
* ``seeds``: the final default with three seeds on both.

Runs go through the ``penchant`` command in subprocesses, as a user would run them, and the report
records the machine, the torch threads and the load average around every run.
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

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results"
BEAUTY = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "amazon-beauty.csv.gz"

# Table 3 of the LRURec paper (Yue et al., WSDM 2024) on exactly this data: leave-one-out, full
# ranking, items already in the history excluded, maximum history length 50 (../shared/data/README.md).
PUBLISHED = [
    {"model": "GRU4Rec", "ndcg@10": 0.01997, "recall@10": 0.03379, "ndcg@20": 0.02343, "recall@20": 0.04751},
    {"model": "BERT4Rec", "ndcg@10": 0.02422, "recall@10": 0.04679, "ndcg@20": 0.02937, "recall@20": 0.06727},
    {"model": "SASRec", "ndcg@10": 0.02917, "recall@10": 0.05043, "ndcg@20": 0.03403, "recall@20": 0.06965},
    {
        "model": "LRURec (best on this data)",
        "ndcg@10": 0.03088,
        "recall@10": 0.05284,
        "ndcg@20": 0.03560,
        "recall@20": 0.07161,
    },
]
BAR = {
    "beauty": {"ndcg@10": 0.0325, "recall@10": 0.055, "train_seconds": 1800.0},
    "ml100k": {"ndcg@10": 0.100},
    "torchrun": {"ndcg@10": 0.095},
    "synthetic": {"epoch_ratio_1e6_vs_1e4": 3.0, "peak_rss_gb": 8.0},
}
SIZES = (10_000, 100_000, 1_000_000)
# Objective x window x long-term summary, one change from the default each (the default's own row
# is the beauty / ml100k part). Beauty's objective row keeps the sampled softmax but draws its
# negatives uniformly (full softmax over 57k items is hours per run on this CPU; the GPU settings
# search in results/tune/beauty_gpu_objective.md has it); ml-100k's default window is 50, so its
# window row is the shorter 20 that Beauty's data chooses.
ABLATION = {
    "beauty": [
        {"long_term": False},
        {"max_len": 50},
        {"popular_negatives": 0.0},
        {"precision": "bf16"},
    ],
    "ml100k": [
        {"long_term": False},
        {"max_len": 20},
        {"loss": "sampled"},
    ],
}
SEEDS = (42, 1, 2)


# ---------------------------------------------------------------------------------------- runs
def penchant(*args: str, torchrun: int = 0) -> subprocess.CompletedProcess:
    launcher = [sys.executable, "-m", "penchant"]
    if torchrun:
        launcher = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node",
            str(torchrun),
            "-m",
            "penchant",
        ]
    result = subprocess.run([*launcher, *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"penchant {' '.join(args)} failed:\n{result.stderr[-4000:]}")
    return result


def train_and_evaluate(source: list[str], config: dict | None, exclude_seen: bool, torchrun: int = 0) -> dict:
    """One ``penchant train`` + ``penchant evaluate`` with the load average around it."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "run"
        args = ["train", *source, "--out", str(out)]
        if config:
            args += ["--config", json.dumps(config)]
        load_before, started = os.getloadavg(), time.perf_counter()
        penchant(*args, torchrun=torchrun)
        wall = time.perf_counter() - started
        evaluate = ["evaluate", "--run", str(out), "--k", "10", "20", "--json"]
        report = json.loads(penchant(*evaluate, *(["--exclude-seen"] if exclude_seen else [])).stdout)
        fit = json.loads((out / "run.json").read_text())["fit"]
    return {
        "command": "penchant "
        + " ".join(args[:-2] if not config else args[:-4])
        + (f" --config '{json.dumps(config)}'" if config else "")
        + (f" (torchrun --nproc-per-node {torchrun})" if torchrun else ""),
        "config": config or {},
        "metrics": {k: v for k, v in report["metrics"].items() if k.startswith(("ndcg", "recall", "hr"))},
        "protocol": report["protocol"],
        "train_seconds": round(fit["seconds"], 1),
        "wall_seconds": round(wall, 1),
        "epochs": fit["epochs"],
        "best_epoch": fit["best_epoch"],
        "seconds_per_epoch": round(sum(fit["epoch_seconds"]) / len(fit["epoch_seconds"]), 2),
        "stopped_by": fit["stopped_by"],
        "still_improving": fit["still_improving"],
        "settings": fit["settings"],
        "load_average": {"before": round(load_before[0], 2), "after": round(os.getloadavg()[0], 2)},
    }


def beauty_source(path: Path) -> list[str]:
    if not path.exists():
        raise SystemExit(f"{path}: not found (the Beauty parts need ../shared/data/amazon-beauty.csv.gz)")
    return ["--events", str(path)]


ML100K = ["--data", "ml-100k"]


def part_beauty(args) -> dict:
    row = train_and_evaluate(beauty_source(args.beauty), None, exclude_seen=True)
    bar = BAR["beauty"]
    row["bar"] = {
        "ndcg@10": row["metrics"]["ndcg@10"] >= bar["ndcg@10"],
        "recall@10": row["metrics"]["recall@10"] >= bar["recall@10"],
        "train_seconds": row["train_seconds"] <= bar["train_seconds"],
    }
    return {"run": row, "published": PUBLISHED, "target": bar}


def part_ml100k(args) -> dict:
    row = train_and_evaluate(ML100K, None, exclude_seen=False)
    row["bar"] = {"ndcg@10": row["metrics"]["ndcg@10"] >= BAR["ml100k"]["ndcg@10"]}
    return {"run": row, "target": BAR["ml100k"]}


def part_torchrun(args) -> dict:
    row = train_and_evaluate(ML100K, None, exclude_seen=False, torchrun=2)
    row["bar"] = {"ndcg@10": row["metrics"]["ndcg@10"] >= BAR["torchrun"]["ndcg@10"]}
    return {"run": row, "target": BAR["torchrun"]}


def part_ablation(args) -> dict:
    """Rows of runs not made this time (another dataset, or an earlier call) are kept; each row is
    saved as soon as it finishes, with its own date and commit, so the part can be run in pieces."""
    path = args.out / "scale.json"
    earlier = json.loads(path.read_text())["parts"].get("ablation", {}) if path.exists() else {}
    rows = [r for r in earlier.get("rows", []) if r.get("config") in ABLATION.get(r["dataset"], [])]
    # A note written by hand on the section (how its rows were run) is kept; edit it by hand.
    kept = {"note": earlier["note"]} if "note" in earlier else {}
    for name, configs in ABLATION.items():
        if name not in args.datasets or (name == "beauty" and not args.beauty.exists()):
            continue
        source = beauty_source(args.beauty) if name == "beauty" else ML100K
        for config in configs:
            if args.only_missing and any((r["dataset"], r["config"]) == (name, config) for r in rows):
                continue
            row = train_and_evaluate(source, config, exclude_seen=name == "beauty")
            rows = [r for r in rows if (r["dataset"], r["config"]) != (name, config)]
            rows.append({"dataset": name, "date": time.strftime("%Y-%m-%d"), "commit": _commit(), **row})
            print(f"ablation {name} {config}: {row['metrics']}", file=sys.stderr, flush=True)
            save_section(args, "ablation", {"rows": rows, "date": time.strftime("%Y-%m-%d"), **kept})
    return {"rows": rows, **kept}


def part_seeds(args) -> dict:
    """Three seeds of the default; seed 42 is the default's own, so a run of the ``beauty`` or
    ``ml100k`` part made by the same code (same date, reported in scale.json) is that row. The rows
    of a dataset not run this time are kept."""
    path = args.out / "scale.json"
    earlier = json.loads(path.read_text())["parts"] if path.exists() else {}
    ran = [n for n in ("beauty", "ml100k") if n in args.datasets and (n != "beauty" or args.beauty.exists())]
    kept = earlier.get("seeds", {})
    rows = [
        {"date": kept.get("date"), "commit": kept.get("commit"), **r}
        for r in kept.get("rows", [])
        if r["dataset"] not in ran
    ]
    for name in ran:
        source = beauty_source(args.beauty) if name == "beauty" else ML100K
        for seed in SEEDS:
            same = earlier.get(name, {})
            if seed == 42 and same.get("date") == time.strftime("%Y-%m-%d") and getattr(args, "reuse", False):
                row = {**same["run"], "config": {"seed": 42}, "reused": f"the {name} part's run"}
                row.pop("bar", None)
                rows.append(
                    {"dataset": name, "seed": seed, "date": same["date"], "commit": same.get("commit"), **row}
                )
                continue
            row = train_and_evaluate(source, {"seed": seed}, exclude_seen=name == "beauty")
            rows.append(
                {"dataset": name, "seed": seed, "date": time.strftime("%Y-%m-%d"), "commit": _commit(), **row}
            )
            print(f"seeds {name} {seed}: {row['metrics']}", file=sys.stderr, flush=True)
    return {"rows": rows}


# ---------------------------------------------------------------------------------------- synthetic
def synthetic_events(n_items: int, n_events: int = 1_000_000, n_users: int = 50_000, seed: int = 0):
    """A power-law catalogue (Zipf exponent 1.1 over item ranks) and users of 5-60 events, each
    user's next item drawn near the previous one's rank so that there is an order to learn."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, n_items + 1) ** 1.1
    lengths = rng.integers(5, 61, size=n_users)
    lengths = np.maximum(2, (lengths * n_events / lengths.sum()).astype(int))
    total = int(lengths.sum())
    items = rng.choice(n_items, size=total, p=weights / weights.sum())
    users = np.repeat(np.arange(n_users), lengths)
    steps = np.arange(total) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return pd.DataFrame(
        {"user_id": users.astype(str), "item_id": items.astype(str), "timestamp": 1.6e9 + 60.0 * steps}
    )


def synthetic_worker(n_items: int, loss: str, batches: int | None) -> dict:
    """One objective on one catalogue size, in this process: one training epoch (or the first
    ``batches`` of it, extrapolated), no validation; peak RSS over the whole process."""
    import numpy as np
    import pandas as pd
    import psutil
    import torch

    from penchant.data.dataset import Dataset
    from penchant.evaluate.compare import _PeakRss
    from penchant.models import InterestTransformer, TransformerConfig, sequential

    tracker = _PeakRss(psutil.Process())
    events = synthetic_events(n_items)
    items = pd.DataFrame({"item_id": np.arange(n_items).astype(str)})
    dataset = Dataset.from_frames(events, items, name=f"synthetic-{n_items}")
    model = InterestTransformer(TransformerConfig(max_epochs=1, loss=loss))
    extrapolated = None
    if batches is not None:
        # Time the first `batches` steps of the epoch and scale by the epoch's number of steps.
        original = sequential.training_batches
        timing = {}

        def limited(sequences, windows, groups, *rest):
            timing["steps"], started = len(groups), time.perf_counter()
            for i, batch in enumerate(original(sequences, windows, groups, *rest)):
                if i == batches:
                    break
                yield batch
            timing["seconds"] = time.perf_counter() - started

        sequential.training_batches = limited
    model.fit(dataset, progress=False)
    if batches is not None:
        extrapolated = timing["seconds"] / batches * timing["steps"]
    peak = tracker.stop()
    return {
        "items": n_items,
        "events": int(len(dataset.events)),
        "loss": loss,
        "seconds_per_epoch": round(extrapolated if extrapolated else model.fit_stats.epoch_seconds[0], 1),
        "extrapolated_from_batches": batches,
        "peak_rss_gb": round(peak / 1024, 2),
        "settings": model.fit_stats.settings,
        "threads": torch.get_num_threads(),
    }


def part_synthetic(args) -> dict:
    rows = []
    for n_items in SIZES:
        for loss in ("sampled", "full"):
            # Full softmax: an epoch at 10^5 items takes hours here, so its first 20 steps are
            # timed; at 10^6 items one batch's logits alone would need ~10 GB (not run).
            if loss == "full" and n_items >= 1_000_000:
                rows.append(
                    {
                        "items": n_items,
                        "loss": loss,
                        "not_run": "one batch's (positions x items) logits "
                        "and their gradient need about 20 GB",
                    }
                )
                continue
            batches = 20 if loss == "full" and n_items >= 100_000 else None
            load_before = os.getloadavg()
            command = [sys.executable, __file__, "--synthetic-worker", str(n_items), loss, str(batches or 0)]
            result = subprocess.run(command, capture_output=True, text=True)
            if result.returncode != 0:
                raise SystemExit(result.stderr[-3000:])
            row = json.loads(result.stdout.strip().splitlines()[-1])
            row["load_average"] = {"before": round(load_before[0], 2), "after": round(os.getloadavg()[0], 2)}
            rows.append(row)
            print(
                f"synthetic {n_items} {loss}: {row['seconds_per_epoch']} s/epoch, {row['peak_rss_gb']} GB",
                file=sys.stderr,
                flush=True,
            )
    sampled = {r["items"]: r for r in rows if r["loss"] == "sampled"}
    ratio = sampled[SIZES[-1]]["seconds_per_epoch"] / sampled[SIZES[0]]["seconds_per_epoch"]
    peak = max(r["peak_rss_gb"] for r in rows if "peak_rss_gb" in r)
    bar = BAR["synthetic"]
    return {
        "rows": rows,
        "epoch_ratio_1e6_vs_1e4": round(ratio, 2),
        "peak_rss_gb": peak,
        "bar": {
            "epoch_ratio": ratio <= bar["epoch_ratio_1e6_vs_1e4"],
            "peak_rss": peak <= bar["peak_rss_gb"],
        },
        "target": bar,
    }


def part_precision(args) -> dict:
    rows = []
    for precision in ("fp32", "bf16"):
        config = {"precision": precision, "max_epochs": 2}
        row = train_and_evaluate(beauty_source(args.beauty), config, exclude_seen=True)
        rows.append(
            {
                "precision": precision,
                "seconds_per_epoch": row["seconds_per_epoch"],
                "settings": row["settings"],
                "load_average": row["load_average"],
            }
        )
    return {"rows": rows, "note": "two epochs each on Beauty; accuracy after two epochs is not compared"}


def part_refit(args) -> dict:
    """Fit with early stopping, then refit one epoch at a time up to ``REFIT_MAX``, scoring each on
    the shifted protocol's test targets (= the real validation targets)."""
    from penchant.data import load_builtin, load_dataset
    from penchant.data.split import one_event_back, split
    from penchant.evaluate.ranking import evaluate
    from penchant.models import InterestTransformer
    from penchant.models.validation import validator

    rows = []
    for name in ("beauty", "ml100k"):
        if name == "beauty" and not args.beauty.exists():
            continue
        data = load_dataset(args.beauty) if name == "beauty" else load_builtin("ml-100k")
        shifted = one_event_back(data)
        parts = split(shifted)
        model = InterestTransformer()
        load_before, started = os.getloadavg(), time.perf_counter()
        model.fit(shifted, parts.train, validate=validator(parts.validation), progress=False)
        exclude = name == "beauty"
        curve = []
        for epochs in range(REFIT_MAX + 1):
            if epochs:
                model.refit(shifted, parts.before_test, progress=False, epochs=1)
            metrics = evaluate(model, parts.test, parts.protocol, (10,), exclude_seen=exclude)["metrics"]
            curve.append(
                {"refit_epochs": epochs, "ndcg@10": metrics["ndcg@10"], "recall@10": metrics["recall@10"]}
            )
            print(f"refit {name} {epochs}: {metrics['ndcg@10']:.4f}", file=sys.stderr, flush=True)
        rows.append(
            {
                "dataset": name,
                "exclude_seen": exclude,
                "early_stopping_epochs": model.fit_stats.epochs,
                "best_epoch": model.fit_stats.best_epoch,
                "curve": curve,
                "seconds": round(time.perf_counter() - started, 1),
                "load_average": {"before": round(load_before[0], 2), "after": round(os.getloadavg()[0], 2)},
            }
        )
    return {"rows": rows}


REFIT_MAX = 12

PARTS = {
    "beauty": part_beauty,
    "ml100k": part_ml100k,
    "torchrun": part_torchrun,
    "synthetic": part_synthetic,
    "precision": part_precision,
    "refit": part_refit,
    "ablation": part_ablation,
    "seeds": part_seeds,
}


# ---------------------------------------------------------------------------------------- report
def machine() -> dict:
    from penchant.runs import machine as describe

    return describe()


def fmt(value, digits=4) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def render(report: dict) -> str:
    lines = ["# Scale: the interest transformer on real and synthetic catalogues", ""]
    gpu = report["machine"].get("gpu")
    lines.append(
        f"Machine: {report['machine']['processor']}, {report['machine']['cpu_count']} cores"
        + (f", {gpu}" if gpu else "")
        + f", torch {report['machine']['torch']} with {report['machine']['torch_threads']} threads; "
        "load averages are given per run. Reproduce with `python benchmarks/scale.py --parts PART`."
    )
    lines.append("")
    if report.get("note"):
        lines += [report["note"], ""]
    parts = report["parts"]
    if "beauty" in parts:
        p = parts["beauty"]
        r = p["run"]
        lines += [
            "## Amazon Beauty, default `penchant train` (52,204 users, 57,289 items, 394,908 events)",
            "",
            f"Command: `{r['command']}`, {_when(p)}. Protocol: leave-one-out (last event test, "
            "second-last validation), ranking over the full catalogue, items already in the history excluded.",
            "",
            "| model | NDCG@10 | Recall@10 | NDCG@20 | Recall@20 | training |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for row in p["published"]:
            lines.append(
                f"| {row['model']} (published) | {row['ndcg@10']:.4f} | {row['recall@10']:.4f} | "
                f"{row['ndcg@20']:.4f} | {row['recall@20']:.4f} | GPU, not stated |"
            )
        m = r["metrics"]
        lines.append(
            f"| **penchant default** | **{m['ndcg@10']:.4f}** | **{m['recall@10']:.4f}** | "
            f"{m['ndcg@20']:.4f} | {m['recall@20']:.4f} | {r['train_seconds']:.0f} s on {_where(r)} |"
        )
        lines += ["", _run_line(r), "", _bar_line(r["bar"], p["target"]), ""]
    for name, title in (
        ("ml100k", "MovieLens-100k, default `penchant train`"),
        ("torchrun", "MovieLens-100k, `torchrun --nproc-per-node 2 -m penchant train`"),
    ):
        if name in parts:
            p = parts[name]
            r = p["run"]
            lines += [
                f"## {title}",
                "",
                f"Command: `{r['command']}`, {_when(p)}. Protocol: "
                "leave-one-out by time, full catalogue, seen items not excluded.",
                "",
                f"NDCG@10 {r['metrics']['ndcg@10']:.4f}, HR@10 {r['metrics']['hr@10']:.4f}. " + _run_line(r),
                "",
                _bar_line(r["bar"], p["target"]),
                "",
            ]
    if "synthetic" in parts:
        p = parts["synthetic"]
        lines += [
            "## Synthetic catalogues, 10^6 events (one epoch, no validation)",
            "",
            f"{_when(p).capitalize()}; `python benchmarks/scale.py --parts synthetic`. Power-law item "
            "popularity (Zipf 1.1), 50,000 users of 5-60 events; defaults otherwise.",
            "",
            "| items | objective | s/epoch | peak RSS | note |",
            "|---:|---|---:|---:|---|",
        ]
        for row in p["rows"]:
            if "not_run" in row:
                lines.append(f"| {row['items']:,} | {row['loss']} | | | not run: {row['not_run']} |")
                continue
            note = (
                f"first {row['extrapolated_from_batches']} steps timed, scaled to the epoch"
                if row["extrapolated_from_batches"]
                else ""
            )
            load = row["load_average"]
            lines.append(
                f"| {row['items']:,} | {row['loss']} | {row['seconds_per_epoch']:.1f} | "
                f"{row['peak_rss_gb']:.2f} GB | {note} (load {load['before']}-{load['after']}) |"
            )
        lines += [
            "",
            f"Sampled-softmax epoch at 10^6 items / at 10^4 items: {p['epoch_ratio_1e6_vs_1e4']:.2f}x "
            f"(target <= {p['target']['epoch_ratio_1e6_vs_1e4']}x); highest peak RSS {p['peak_rss_gb']:.2f} GB "
            f"(target <= {p['target']['peak_rss_gb']} GB).",
            "",
        ]
    if "precision" in parts:
        p = parts["precision"]
        lines += [
            "## Precision on this CPU (Beauty, default settings otherwise)",
            "",
            "| precision | s/epoch |",
            "|---|---:|",
        ]
        lines += [f"| {row['precision']} | {row['seconds_per_epoch']:.1f} |" for row in p["rows"]]
        lines += ["", p["note"] + ".", ""]
    if "refit" in parts:
        p = parts["refit"]
        lines += [
            "## Refit epochs, chosen one event back",
            "",
            f"{_when(p).capitalize()}; `python benchmarks/scale.py --parts refit`. Each user's last event is "
            "removed, then the default transformer is trained with early stopping as usual and refit one "
            "epoch at a time on training + validation events; the scores are on that protocol's test "
            "targets, which are the real validation targets (full catalogue; Beauty seen excluded, "
            "ml-100k not). The real test targets take no part.",
            "",
            "| data | " + " | ".join(str(c["refit_epochs"]) for c in p["rows"][0]["curve"]) + " |",
            "|---|" + "---:|" * len(p["rows"][0]["curve"]),
        ]
        for row in p["rows"]:
            lines.append(
                f"| {row['dataset']} NDCG@10 | "
                + " | ".join(f"{c['ndcg@10']:.4f}" for c in row["curve"])
                + " |"
            )
        lines.append("")
    lines += _settings_search()
    for name, title in (("ablation", "Ablation (one seed each)"), ("seeds", "Final default, three seeds")):
        if name in parts:
            p = parts[name]
            rows = p["rows"]
            if name == "ablation":
                # Each dataset's default row (its own part) first, then one change from it per row.
                defaults = [
                    {
                        "dataset": d,
                        "date": parts[d]["date"],
                        "commit": parts[d].get("commit"),
                        **parts[d]["run"],
                    }
                    for d in ("beauty", "ml100k")
                    if d in parts and any(r["dataset"] == d for r in rows)
                ]
                rows = sorted(defaults + rows, key=lambda r: r["dataset"])
            when = "Each row measured on the date and at the commit it names"
            lines += [
                f"## {title}",
                "",
                f"{when}. Beauty: seen items excluded; ml-100k: not excluded."
                + (f" {p['note']}" if p.get("note") else ""),
                "",
                "| data | settings | NDCG@10 | Recall@10 | objective | window | long-term | epochs | s/epoch "
                "| training | load | measured |",
                "|---|---|---:|---:|---|---:|---|---:|---:|---:|---|---|",
            ]
            for row in rows:
                s = row["settings"]
                label = json.dumps(row["config"]) if row["config"] else "default"
                load = row.get("load_average", {})
                measured = (
                    f"{row.get('date', p.get('date', ''))} {row.get('commit') or p.get('commit') or ''}"
                )
                lines.append(
                    f"| {row['dataset']} | `{label}` | {row['metrics']['ndcg@10']:.4f} | "
                    f"{row['metrics']['recall@10']:.4f} | {s['loss']} | {s['window']} | "
                    f"{'on' if s.get('long_term', True) else 'off'} | {row['epochs']} | "
                    f"{row['seconds_per_epoch']:.1f} | {row['train_seconds']:.0f} s | "
                    f"{load.get('before', '')}-{load.get('after', '')} | {measured.strip()} |"
                )
            if name == "seeds":
                lines += ["", *_seed_means(p["rows"])]
            lines.append("")
    return "\n".join(lines) + "\n"


def _when(section: dict) -> str:
    """When a section was measured, with which code, and what changed since if it is older."""
    text = f"measured {section['date']}"
    if section.get("commit"):
        text += f" at commit {section['commit']}"
    if section.get("note"):
        text += f" ({section['note']})"
    return text


def _commit() -> str | None:
    """The code measured: the commit, marked when the package has uncommitted changes."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "penchant"], cwd=ROOT, capture_output=True, text=True
        )
    except OSError:
        return None
    if head.returncode:
        return None
    return head.stdout.strip() + (" with uncommitted changes" if dirty.stdout.strip() else "")


def _settings_search() -> list[str]:
    """How the defaults were chosen: every settings search in results/tune/ (benchmarks/tune.py),
    scored one event back, so on validation targets only."""
    reports = sorted((RESULTS / "tune").glob("*.json"))
    if not reports:
        return []
    lines = [
        "## How the defaults were chosen (settings searches, validation targets only)",
        "",
        "Each row: one change from the defaults of its day, the whole pipeline run with each user's last "
        "event removed, scored on the real validation targets (`benchmarks/tune.py --protocol shifted`; "
        "Beauty seen items excluded, ml-100k not; one seed). Reports in `benchmarks/results/tune/`.",
        "",
        "| report | data | settings | NDCG@10 | Recall@10 | epochs | s/epoch |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for path in reports:
        report = json.loads(path.read_text())
        for row in sorted(report["rows"], key=lambda r: -r["scores"]["ndcg@10"]):
            label = json.dumps(row["config"]) if row["config"] else "default of the day"
            lines.append(
                f"| [{path.stem}](tune/{path.stem}.md) | {report['data']} | `{label}` | "
                f"{row['scores']['ndcg@10']:.4f} | {row['scores']['recall@10']:.4f} | {row['epochs']} | "
                f"{row['seconds_per_epoch']:.1f} |"
            )
    return [*lines, ""]


def _seed_means(rows: list[dict]) -> list[str]:
    import statistics

    out = []
    for name in sorted({r["dataset"] for r in rows}):
        values = [r["metrics"]["ndcg@10"] for r in rows if r["dataset"] == name]
        recall = [r["metrics"]["recall@10"] for r in rows if r["dataset"] == name]
        out.append(
            f"{name}: NDCG@10 {statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}, "
            f"Recall@10 {statistics.mean(recall):.4f} ± {statistics.stdev(recall):.4f} "
            f"(mean ± sd over seeds {', '.join(str(r['seed']) for r in rows if r['dataset'] == name)})."
        )
    return out


def _where(r: dict) -> str:
    s = r["settings"]
    if s["device"].startswith("cuda"):
        return "one GPU"
    return f"{s['processes'] * s['threads']} CPU threads"


def _run_line(r: dict) -> str:
    s = r["settings"]
    ended = r["stopped_by"] + (" while still improving" if r["still_improving"] else "")
    load = r["load_average"]
    return (
        f"Trained {r['epochs']} epochs (best {r['best_epoch']}) in {r['train_seconds']:.0f} s, "
        f"{r['seconds_per_epoch']:.1f} s per epoch, ended by {ended}; objective {s['loss']}"
        + (
            f" ({s['negatives']} negatives, {s['popular_negatives']:.0%} by popularity)"
            if s["loss"] == "sampled"
            else ""
        )
        + f", window {s['window']}, long-term summary {'on' if s['long_term'] else 'off'}, "
        + _transitions(s.get("transitions"))
        + f"{s['processes']} process(es) x {s['threads']} threads on {s['device']}; "
        f"load average {load['before']} before, {load['after']} after."
    )


def _transitions(chosen: dict | None) -> str:
    """The item-transition weight and how it was chosen (runs before the counts: nothing)."""
    if not chosen:
        return ""
    scores = chosen.get("validation")
    tried = (
        " (validation NDCG@10 " + ", ".join(f"{float(w):g}: {v:.4f}" for w, v in scores.items()) + ")"
        if scores
        else ""
    )
    return f"item-transition weight {chosen['weight']:g} chosen by {chosen['chosen_by']}{tried}, "


def _bar_line(bar: dict, target: dict) -> str:
    parts = [
        f"{name} {'met' if ok else 'NOT met'} (target {target.get(name, target.get(name + '_seconds'))})"
        for name, ok in bar.items()
    ]
    return "Bar: " + "; ".join(parts) + "."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", choices=sorted(PARTS), default=["beauty", "ml100k"])
    parser.add_argument("--beauty", type=Path, default=BEAUTY, help="amazon-beauty.csv.gz")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--datasets",
        nargs="+",
        choices=("beauty", "ml100k"),
        default=["beauty", "ml100k"],
        help="the data the ablation and seeds parts run on",
    )
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="seeds: take seed 42 (the default's) from today's beauty / ml100k part instead of training it again",
    )
    parser.add_argument(
        "--only-missing",
        action="store_true",
        help="ablation: run only the settings that have no row in scale.json yet",
    )
    parser.add_argument("--synthetic-worker", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--render", type=Path, help="only write the .md beside this scale .json")
    args = parser.parse_args()
    if args.render:
        args.render.with_suffix(".md").write_text(render(json.loads(args.render.read_text())))
        return
    if args.synthetic_worker:
        n_items, loss, batches = args.synthetic_worker
        print(json.dumps(synthetic_worker(int(n_items), loss, int(batches) or None)))
        return
    for name in args.parts:
        started = time.perf_counter()
        section = PARTS[name](args)
        section["date"] = time.strftime("%Y-%m-%d")
        section["commit"] = _commit()
        section["seconds"] = round(time.perf_counter() - started, 1)
        save_section(args, name, section)
        print(f"{name}: done in {section['seconds']:.0f} s", file=sys.stderr, flush=True)


def save_section(args, name: str, section: dict) -> None:
    """Write one part's section into scale.json and render scale.md from all of them."""
    path = args.out / "scale.json"
    # Read again just before writing: another scale.py may have finished a part meanwhile.
    report = json.loads(path.read_text()) if path.exists() else {"parts": {}}
    report["parts"][name] = section
    report["machine"] = machine()
    report["command"] = "python benchmarks/scale.py --parts " + " ".join(sorted(report["parts"]))
    args.out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2))
    (args.out / "scale.md").write_text(render(report))


if __name__ == "__main__":
    main()
