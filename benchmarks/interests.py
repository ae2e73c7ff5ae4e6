"""Benchmark: next-interest prediction and explanation faithfulness on ml-100k runs.

    .venv/bin/python benchmarks/interests.py --run /tmp/ml            # a saved ml-100k run (any model)
    .venv/bin/python benchmarks/interests.py --run /tmp/ml /tmp/ease  # several runs side by side
    .venv/bin/python benchmarks/interests.py --train /tmp/ml          # train a transformer run first

Writes benchmarks/results/interests.json and interests.md:

- **next interest**: precision, recall and F1 at 1, 3 and 5 of the interests (ml-100k genres) ranked
  by the model's next-item distribution, against the interests of each user's held-out test item,
  next to the history-frequency baseline; with already-seen items left in the model's distribution
  (the default protocol) and excluded. Bar: F1@3 above the baseline.
- **faithfulness** of occlusion explanations: for sampled test users and their top recommendation,
  removing the 3 top-weighted history events must lower the item's score more than removing 3 random
  ones (mean over 10 random draws), on at least 80% of the pairs. Random events are drawn from the
  whole history (the bar) and, stricter, from the last 50 events only.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from penchant.data import load_ml100k
from penchant.evaluate.next_interest import evaluate_next_interest, interest_lists, per_user_interest_metrics
from penchant.explain import explain, faithfulness, occlusion_weights
from penchant.interests import Taxonomy
from penchant.models import InterestTransformer
from penchant.runs import Run, load_run, machine, train_run

RESULTS = Path(__file__).parent / "results"
KS = (1, 3, 5)
BAR = {"next_interest_f1@3_above_baseline": True, "faithfulness_rate": 0.80}


def next_interest(run: Run, taxonomy: Taxonomy, seed: int) -> dict:
    test = run.split().test
    out = {}
    for exclude_seen in (False, True):
        result = evaluate_next_interest(run.model, taxonomy, test, run.protocol, KS, exclude_seen)
        # Paired per-user F1@3 difference (model - baseline) with a bootstrap 95% interval.
        model_top, base_top, targets = interest_lists(run.model, taxonomy, test, 3, exclude_seen)
        diff = (
            per_user_interest_metrics(model_top, targets, 3)["f1"]
            - per_user_interest_metrics(base_top, targets, 3)["f1"]
        )
        rng = np.random.default_rng(seed)
        means = [diff[rng.integers(len(diff), size=len(diff))].mean() for _ in range(2000)]
        result["f1@3_difference"] = {
            "mean": float(diff.mean()),
            "bootstrap_95": [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))],
            "users_better": int((diff > 0).sum()),
            "users_worse": int((diff < 0).sum()),
        }
        out["seen_excluded" if exclude_seen else "seen_not_excluded"] = result
    return out


def faithfulness_check(run: Run, taxonomy: Taxonomy, n_pairs: int, n_remove: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    users = [u for u in run.model.histories if len(run.model.histories[u]) > 2 * n_remove]
    sample = sorted(rng.choice(users, size=min(n_pairs, len(users)), replace=False).tolist(), key=users.index)
    recs = run.model.recommend_batch(sample, k=1, exclude_seen=True)
    window = getattr(run.model.config, "max_len", 50)
    whole, recent, drops, seconds = [], [], [], []
    for n, user in enumerate(sample):
        history = run.model.history_of(user)
        item = run.model.item_map.index(recs[user][0].item_id)
        started = time.perf_counter()
        occlusion = occlusion_weights(run.model, history, item)  # the cost of one explanation's weights
        seconds.append(time.perf_counter() - started)
        case = faithfulness(run.model, history, item, n_remove, 10, seed + n, occlusion=occlusion)
        whole.append(case.passed)
        drops.append((case.drop_top, case.drop_random))
        if min(window, len(history)) > n_remove:
            strict = faithfulness(run.model, history, item, n_remove, 10, seed + n, window, occlusion)
            recent.append(strict.passed)
    explain(run.model, taxonomy, recs[sample[0]][0].item_id, user_id=sample[0])  # the whole path runs
    drops_arr = np.array(drops)
    return {
        "pairs": len(sample),
        "n_remove": n_remove,
        "random_draws": 10,
        "rate": float(np.mean(whole)),
        "rate_random_from_last_events": float(np.mean(recent)),
        "last_events_window": window,
        "mean_drop_top": float(drops_arr[:, 0].mean()),
        "mean_drop_random": float(drops_arr[:, 1].mean()),
        "occlusion_seconds_median": float(np.median(seconds)),
        "occlusion_seconds_p95": float(np.percentile(seconds, 95)),
        "history_length_median": float(np.median([len(run.model.history_of(u)) for u in sample])),
        "protocol": "users sampled uniformly (seeded) among those with more than "
        f"{2 * n_remove} events; item = the model's top-1 recommendation with seen items excluded, from "
        "the user's full history; weights by occlusion on that history",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, nargs="*", default=[], help="saved ml-100k run directories")
    parser.add_argument(
        "--train", type=Path, help="train a transformer run on ml-100k into this directory first"
    )
    parser.add_argument(
        "--pairs", type=int, default=200, help="(user, item) pairs for the faithfulness check"
    )
    parser.add_argument("--remove", type=int, default=3, help="history events removed per check")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = all cores)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--note", default="", help="how the runs were made, printed in the report")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    directories = list(args.run)
    if args.train:
        train_run(load_ml100k(), InterestTransformer(), args.train)
        directories.insert(0, args.train)
    if not directories:
        parser.error("give --run RUN_DIR (an ml-100k run) or --train DIR")

    load_before = os.getloadavg()
    started = time.perf_counter()
    runs = []
    for directory in directories:
        run = load_run(directory)
        if run.dataset.name != "ml-100k":
            parser.error(f"{directory}: a run on {run.dataset.name}, not ml-100k")
        taxonomy = Taxonomy.for_dataset(run.dataset)
        t0 = time.perf_counter()
        nxt = next_interest(run, taxonomy, args.seed)
        t1 = time.perf_counter()
        faith = faithfulness_check(run, taxonomy, args.pairs, args.remove, args.seed)
        t2 = time.perf_counter()
        default = nxt["seen_not_excluded"]
        runs.append(
            {
                "run": str(directory),
                "model": run.model.name,
                "config": run.model.config.to_dict(),
                "fit": {
                    "epochs": run.model.fit_stats.epochs,
                    "best_validation_ndcg@10": run.model.fit_stats.best_validation,
                    "seconds": run.model.fit_stats.seconds,
                },
                "next_interest": nxt,
                "faithfulness": faith,
                "seconds": {"next_interest": t1 - t0, "faithfulness": t2 - t1},
                "bar": {
                    "next_interest_f1@3_above_baseline": default["metrics"]["f1@3"]
                    > default["baseline"]["f1@3"],
                    "next_interest_f1@3_above_baseline_seen_excluded": nxt["seen_excluded"]["metrics"]["f1@3"]
                    > nxt["seen_excluded"]["baseline"]["f1@3"],
                    "faithfulness_rate_at_least_0.8": faith["rate"] >= BAR["faithfulness_rate"],
                },
            }
        )
    report = {
        "benchmark": "ml-100k: next-interest prediction and explanation faithfulness",
        "command": "python benchmarks/interests.py --run " + " ".join(str(d) for d in directories),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": machine(),
        "threads": torch.get_num_threads(),
        "load_average_1_5_15": {
            "before": [round(v, 2) for v in load_before],
            "after": [round(v, 2) for v in os.getloadavg()],
        },
        "seconds": time.perf_counter() - started,
        "bar": BAR,
        "note": args.note,
        "runs": runs,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "interests.json").write_text(json.dumps(report, indent=2))
    (args.out / "interests.md").write_text(markdown(report))
    print(markdown(report))


def markdown(report: dict) -> str:
    m, load = report["machine"], report["load_average_1_5_15"]
    lines = [
        "# Interests benchmark: next-interest prediction and explanation faithfulness (ml-100k)",
        "",
        f"`{report['command']}` — {report['date']}; {m['platform']}, {m['cpu_count']} CPUs, "
        f"torch {m['torch']} with {report['threads']} threads; load average (1/5/15 min) {load['before']} "
        f"before, {load['after']} after (the machine is shared; timings are indicative).",
        "",
        "## Next interest",
        "",
    ]
    first = report["runs"][0]["next_interest"]["seen_not_excluded"]["protocol"]
    metrics = ("f1@1", "f1@3", "f1@5", "precision@3", "recall@3")
    lines += [
        f"Protocol: {first['name']} ({first['description']}); {first['task']}. "
        f"Baseline: {first['baseline']}. {first['interests']} (ml-100k genres); "
        f"{first['users_without_target_interest']} test users whose item has no genre are left out.",
        "",
        _row(["run", "seen items", *metrics, *(f"baseline {name}" for name in metrics)]),
        _row(["---", "---"] + ["---:"] * 2 * len(metrics)),
    ]
    for r in report["runs"]:
        for key, label in (("seen_not_excluded", "not excluded"), ("seen_excluded", "excluded")):
            res = r["next_interest"][key]
            cells = [_bold_f1(name, res["metrics"][name]) for name in metrics]
            cells += [_bold_f1(name, res["baseline"][name]) for name in metrics]
            lines.append(_row([r["model"], label, *cells]))
    lines.append("")
    for r in report["runs"]:
        for key, label in (("seen_not_excluded", "not excluded"), ("seen_excluded", "excluded")):
            d = r["next_interest"][key]["f1@3_difference"]
            low, high = d["bootstrap_95"]
            lines.append(
                f"- {r['model']}, seen {label}: F1@3 model - baseline = {d['mean']:+.4f} "
                f"(paired bootstrap 95% interval {low:+.4f} to {high:+.4f}; model better for "
                f"{d['users_better']} users, worse for {d['users_worse']})"
            )
    lines += [
        "",
        "## Explanation faithfulness (occlusion)",
        "",
        f"{report['runs'][0]['faithfulness']['protocol']}.",
        "",
        _row(
            [
                "run",
                "pairs",
                "removed",
                "top beats random (whole history)",
                "top beats random (recent)",
                "mean drop, top",
                "mean drop, random",
                "occlusion median s",
                "occlusion p95 s",
                "median history",
            ]
        ),
        _row(["---"] + ["---:"] * 9),
    ]
    for r in report["runs"]:
        f = r["faithfulness"]
        lines.append(
            _row(
                [
                    r["model"],
                    str(f["pairs"]),
                    str(f["n_remove"]),
                    f"**{f['rate']:.1%}**",
                    f"{f['rate_random_from_last_events']:.1%} (last {f['last_events_window']})",
                    f"{f['mean_drop_top']:.4f}",
                    f"{f['mean_drop_random']:.4f}",
                    f"{f['occlusion_seconds_median']:.3f}",
                    f"{f['occlusion_seconds_p95']:.3f}",
                    f"{f['history_length_median']:.0f}",
                ]
            )
        )
    lines += ["", "## Runs", ""]
    if report.get("note"):
        lines += [report["note"], ""]
    for r in report["runs"]:
        fit = r["fit"]
        lines.append(
            f"- {r['model']} ({r['run']}): config `{json.dumps(r['config'])}`; {fit['epochs']} epochs in "
            f"{fit['seconds']:.0f}s, best validation NDCG@10 {fit['best_validation_ndcg@10'] or 0:.4f}"
        )
    lines += [
        "",
        "## Bar",
        "",
        "Set for the interest transformer; other runs are shown for context.",
        "",
    ]
    for r in report["runs"]:
        for name, ok in r["bar"].items():
            lines.append(f"- {r['model']} ({r['run']}): {name}: {'PASS' if ok else 'FAIL'}")
    lines.append("")
    return "\n".join(lines)


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _bold_f1(name: str, value: float) -> str:
    return f"**{value:.4f}**" if name == "f1@3" else f"{value:.4f}"


if __name__ == "__main__":
    main()
