"""Settings search for the interest transformer: many configurations side by side, chosen on validation.

    .venv/bin/python benchmarks/tune.py --data beauty --grid beauty --workers 2
    .venv/bin/python benchmarks/tune.py --data beauty --configs '[{}, {"dropout": 0.5}]'

Each configuration is one change (or a few) from the defaults, trained as ``penchant train`` trains
(early stopping on validation NDCG@10, then ``refit_epochs``), in a worker process of its own.

With ``--protocol shifted`` (the default) every configuration runs that whole pipeline on the data
with each user's last event removed (``penchant.data.split.one_event_back``), and is scored on what
that protocol tests: the real **validation** targets. That is what settings are chosen by: the test
targets take no part. ``--protocol real`` scores on the real test targets instead, for reporting a
choice already made. The report is ``benchmarks/results/tune_<data>_<protocol>_<device>.md`` and
``.json``.

Runs on whatever device ``--device`` names; on a GPU several workers share the card. Times in the
report are under that sharing (the load is stated), so they compare configurations only roughly.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
BEAUTY = ROOT.parent / "shared" / "data" / "amazon-beauty.csv.gz"

GRIDS = {
    "beauty": [
        {},
        {"loss": "full"},
        {"negatives": 8192},
        {"dropout": 0.5},
        {"dim": 128},
        {"max_len": 50},
        {"popular_negatives": 0.0},
        {"batch_size": 256},
        {"lr": 2e-3},
        {"layers": 1},
        {"weight_decay": 0.1},
        {"dropout": 0.5, "loss": "full"},
    ],
}


def load(name: str, beauty: Path):
    from penchant.data import load_builtin, load_dataset

    if name == "beauty":
        return load_dataset(beauty)
    return load_builtin(name)


def run_one(name: str, beauty: str, config: dict, device: str, threads: int, protocol: str) -> dict:
    """Train one configuration and score it (in a worker process)."""
    import torch

    torch.set_num_threads(threads)
    from penchant.data.split import one_event_back, split
    from penchant.evaluate.ranking import evaluate
    from penchant.models import InterestTransformer, TransformerConfig
    from penchant.runs.training import fit_split

    try:
        data = load(name, Path(beauty))
        if protocol == "shifted":
            data = one_event_back(data)
        parts = split(data)
        model = InterestTransformer(TransformerConfig(**config)).to(device)
        started = time.perf_counter()
        fit_split(model, data, parts, progress=False)
        seconds = time.perf_counter() - started
        stats = model.fit_stats
        exclude = name == "beauty"
        test = evaluate(model, parts.test, parts.protocol, ks=(10, 20), exclude_seen=exclude)["metrics"]
        return {
            "config": config,
            "early_stopping_ndcg@10": stats.best_validation,
            "validation_curve": [round(v, 5) for v in stats.validation_curve or []],
            "best_epoch": stats.best_epoch,
            "epochs": stats.epochs,
            "refit_epochs": stats.refit_epochs,
            "stopped_by": stats.stopped_by,
            "still_improving": stats.still_improving,
            "seconds": round(seconds, 1),
            "seconds_per_epoch": round(sum(stats.epoch_seconds) / max(len(stats.epoch_seconds), 1), 2),
            "exclude_seen": exclude,
            "scores": {k: round(v, 5) for k, v in test.items() if k.startswith(("ndcg", "recall"))},
            "settings": stats.settings,
        }
    except Exception:  # a failed configuration is reported, the others go on
        return {"config": config, "error": traceback.format_exc()[-2000:]}


def render(report: dict) -> str:
    rows = sorted(report["rows"], key=lambda r: -r["scores"]["ndcg@10"] if "error" not in r else 1.0)
    seen = "excluded" if report["data"] == "beauty" else "not excluded"
    targets = (
        "the real validation targets (the whole pipeline run with each user's last event removed; "
        "no test target used)"
        if report["protocol"] == "shifted"
        else "the test targets"
    )
    lines = [
        f"# Settings search on {report['data']} ({report['device']}, {report['protocol']} protocol)",
        "",
        f"Measured {report['date']} with `{report['command']}`: {report['workers']} configurations at a "
        f"time on {report['machine']}, {report['threads']} torch threads each (load average "
        f"{report['load_average']['before']} before, {report['load_average']['after']} after). Scores are "
        f"on {targets}: leave-one-out, full catalogue, seen items {seen}. The early-stopping column is "
        "the best validation NDCG@10 during training (seen items not excluded, before refit).",
        "",
        "| settings (change from default) | NDCG@10 | Recall@10 | NDCG@20 | early stopping NDCG@10 | "
        "best epoch / epochs | ended by | s/epoch | seconds |",
        "|---|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for r in rows:
        label = json.dumps(r["config"]) if r["config"] else "default"
        if "error" in r:
            lines.append(f"| `{label}` | failed: {r['error'].strip().splitlines()[-1]} | | | | | | | |")
            continue
        m = r["scores"]
        ended = r.get("stopped_by", "early stopping")  # rows from before this column: early stopping
        if r.get("still_improving"):
            ended += ", still improving"
        lines.append(
            f"| `{label}` | {m['ndcg@10']:.4f} | {m['recall@10']:.4f} | {m['ndcg@20']:.4f} | "
            f"{r['early_stopping_ndcg@10']:.4f} | {r['best_epoch']} / {r['epochs']} (+{r['refit_epochs']} "
            f"refit) | {ended} | {r['seconds_per_epoch']:.1f} | {r['seconds']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="beauty", help="beauty or a built-in dataset (ml-100k)")
    parser.add_argument("--beauty", type=Path, default=BEAUTY)
    parser.add_argument("--grid", choices=sorted(GRIDS), help="a preset list of configurations")
    parser.add_argument("--configs", help="a JSON list of configurations (changes from the defaults)")
    parser.add_argument("--base", default="{}", help="JSON settings added to every configuration")
    parser.add_argument("--protocol", choices=("shifted", "real"), default="shifted")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per worker")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    configs = json.loads(args.configs) if args.configs else GRIDS[args.grid or "beauty"]
    base = json.loads(args.base)
    configs = [{**base, **c} for c in configs]
    from penchant.models.devices import resolve_device
    from penchant.runs import machine

    device = resolve_device(args.device)
    label = "cuda" if device.type == "cuda" else device.type
    if device.type == "cuda":
        import torch

        label_machine = torch.cuda.get_device_name(device)
    else:
        label_machine = f"{machine()['processor']}, {os.cpu_count()} cores"
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"tune_{args.data}_{args.protocol}_{label}"
    report = {
        "data": args.data,
        "device": str(device),
        "protocol": args.protocol,
        "machine": label_machine,
        "workers": args.workers,
        "threads": args.threads,
        "date": time.strftime("%Y-%m-%d"),
        "command": "python " + " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "load_average": {"before": round(os.getloadavg()[0], 2)},
        "rows": [],
    }
    # Spawned, not forked: a CUDA context does not survive a fork.
    with ProcessPoolExecutor(args.workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [
            pool.submit(run_one, args.data, str(args.beauty), c, str(device), args.threads, args.protocol)
            for c in configs
        ]
        for future in as_completed(futures):
            row = future.result()
            report["rows"].append(row)
            report["load_average"]["after"] = round(os.getloadavg()[0], 2)
            stem.with_suffix(".json").write_text(json.dumps(report, indent=2))
            stem.with_suffix(".md").write_text(render(report))
            brief = row.get("error", "").strip().splitlines()[-1:] or [
                f"ndcg@10 {row['scores']['ndcg@10']:.4f} recall@10 {row['scores']['recall@10']:.4f} "
                f"({row['seconds']:.0f} s)"
            ]
            print(f"{json.dumps(row['config'])}: {brief[0]}", flush=True)


if __name__ == "__main__":
    main()
