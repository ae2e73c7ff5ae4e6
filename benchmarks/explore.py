"""Trade-off report: every exploration policy's knob swept on ml-100k, accuracy against exploration.

    .venv/bin/python benchmarks/explore.py                      # EASE, trained here (seconds)
    .venv/bin/python benchmarks/explore.py --models ease transformer

For each model (trained on the protocol's training split, ridge or early stopping picked on
validation), the test users' full-catalogue scores are computed once; each policy then re-ranks every
user's top-200 candidates at each knob setting. Protocol: next-n (default; each user's last 10 events
are the test targets, the 10 before them validation, so hundreds of users have a target in a genre new
to them) or leave-one-out (--protocol), ranking over the full catalogue, already-seen items excluded
(nobody re-rates a movie on ml-100k, so re-ranking seen items would only measure the model's repeat
handling). Lifts and NDCG changes carry paired bootstrap 95% intervals over users. Writes
benchmarks/results/explore.md, .json and .png.
"""

from __future__ import annotations

import os

# Many tiny per-user matrix products: BLAS threads only add waits. Set before numpy is imported.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import functools
import json
import time
from pathlib import Path

import numpy as np

from penchant.data import load_ml100k
from penchant.data.split import Protocol, split
from penchant.evaluate.beyond import aggregate_beyond, beyond_metrics, category_taxonomy, new_interest_targets
from penchant.evaluate.intervals import paired_change
from penchant.evaluate.metrics import catalogue_coverage, per_user_metrics
from penchant.evaluate.ranking import score_lists, validator
from penchant.explore import (
    POLICY_NAMES,
    InterestTransitions,
    NovelInterestConfig,
    interest_text_vectors,
    item_vectors_for,
    make_policy,
    rerank_scores,
)
from penchant.models import model_class
from penchant.runs import machine

RESULTS = Path(__file__).parent / "results"
KNOBS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0)
MAX_NDCG_LOSS = 0.05
BAR_NEW_INTEREST_LIFT = 0.5
BAR_TARGETS = 300  # new-interest targets the lift must rest on
K = 10
N_CANDIDATES = 200
METRICS = (
    "ndcg@10",
    "hr@10",
    "novelty",
    "diversity",
    "interest_coverage",
    "calibration_kl",
    "serendipity",
    "coverage",
    "new_interest_hr@10",
)


def sweep(policies: dict, dataset, cases, scores, taxonomy, counts, n_train_users) -> list[dict]:
    """Every policy at every knob on one set of evaluation cases, with the model's scores computed once."""
    users = [dataset.user_map.ids[u] for u in cases.users]
    targets = int(new_interest_targets(cases.targets, cases.histories, taxonomy.membership).sum())
    rows, per_user_of = [], {}
    for policy_name, make in policies.items():
        for knob in KNOBS:
            started = time.perf_counter()
            batch = rerank_scores(
                make(), scores, cases.histories, K, knob, users, N_CANDIDATES, exclude_seen=True
            )
            seconds = time.perf_counter() - started
            metrics = score_lists(batch.items, cases, (K,), dataset.n_items)
            per_user = beyond_metrics(batch.items, K, cases, taxonomy, counts, n_train_users)
            metrics["coverage"] = catalogue_coverage(batch.items, K, dataset.n_items)
            metrics.update(aggregate_beyond(per_user, K))
            eligible = ~np.isnan(per_user["new_interest_hr"])
            per_user_of[(policy_name, knob)] = (
                per_user_metrics(batch.items, cases.targets, K)["ndcg"],
                per_user["new_interest_hr"],
            )
            rows.append(
                {
                    "policy": policy_name,
                    "explore": knob,
                    **{key: metrics[key] for key in METRICS},
                    "new_interest_hits": int(np.nansum(per_user["new_interest_hr"])),
                    "new_interest_users": int(eligible.sum()),
                    "new_interest_targets": targets,
                    "explore_share": float(batch.explores[batch.items >= 0].mean()),
                    "rerank_ms_per_user": 1000.0 * seconds / len(cases),
                }
            )
    for policy_name in policies:
        base = next(r for r in rows if r["policy"] == policy_name and r["explore"] == 0.0)
        base_ndcg, base_new = per_user_of[(policy_name, 0.0)]
        for r in rows:
            if r["policy"] == policy_name:
                r["ndcg_change"] = r["ndcg@10"] / base["ndcg@10"] - 1.0
                hr = base["new_interest_hr@10"]
                r["new_interest_lift"] = r["new_interest_hr@10"] / hr - 1.0 if hr > 0 else None
                # Paired bootstrap over users (95%): the same users in both rankings.
                ndcg, new = per_user_of[(policy_name, r["explore"])]
                r["ndcg_change_ci"] = paired_change(base_ndcg, ndcg).to_dict()
                r["new_interest_lift_ci"] = paired_change(base_new, new).to_dict()
    return rows


# The novel-interest settings searched on validation: the signals' weights (transitions, meaning, the
# model's own mass) on a simplex grid in steps of 0.25; for the "slots" fill one or two new interests
# per slate, for the "by-score" fill the share of the bonus that follows the signals (at 0 the weights
# do not matter, so it is searched once).
WEIGHTS = [(t / 4, s / 4, (4 - t - s) / 4) for t in range(5) for s in range(5 - t)]
MAX_INTERESTS = (1, 2)
SIGNAL_SHARES = (0.5, 1.0)


def novel_configs() -> list[NovelInterestConfig]:
    configs = [NovelInterestConfig(*w, max_interests=n, fill="slots") for w in WEIGHTS for n in MAX_INTERESTS]
    configs.append(NovelInterestConfig(fill="by-score", signal_share=0.0))
    configs += [
        NovelInterestConfig(*w, fill="by-score", signal_share=a) for w in WEIGHTS for a in SIGNAL_SHARES
    ]
    return configs


TUNED = "novel-interest (tuned)"
SEARCHED = ("transition_weight", "semantic_weight", "model_weight", "max_interests", "fill", "signal_share")


def passing_novel_settings(rows: list[dict], policy: str = "novel-interest") -> list[float]:
    """Novel-interest settings whose lift is >= 50%, with its 95% interval above 0, on >= 300 targets,
    for NDCG@10 down at most 5%."""
    return [
        r["explore"]
        for r in rows
        if r["policy"] == policy
        and r["ndcg_change"] >= -MAX_NDCG_LOSS
        and r["new_interest_lift"] is not None
        and r["new_interest_lift"] >= BAR_NEW_INTEREST_LIFT
        and r["new_interest_lift_ci"]["low"] > 0
        and r["new_interest_targets"] >= BAR_TARGETS
    ]


def best_within_loss(rows: list[dict]) -> dict | None:
    """The row with the largest new-interest lift among those with NDCG@10 down at most 5%."""
    within = [
        r for r in rows if r["explore"] > 0 and r["ndcg_change"] >= -MAX_NDCG_LOSS and r["new_interest_lift"]
    ]
    return max(within, key=lambda r: r["new_interest_lift"], default=None)


def tune_novel(make, dataset, validation, scores, taxonomy, counts, n_train) -> tuple[dict, list[dict]]:
    """Search the novel-interest settings on the validation targets; returns the chosen settings
    (weights, interests per slate, knob) and every setting's best row."""
    searched = []
    for config in novel_configs():
        rows = sweep(
            {"novel-interest": functools.partial(make, config)},
            dataset,
            validation,
            scores,
            taxonomy,
            counts,
            n_train,
        )
        best = best_within_loss(rows)
        searched.append(
            {
                **{key: getattr(config, key) for key in SEARCHED},
                "explore": best["explore"] if best else None,
                "lift": best["new_interest_lift"] if best else None,
                "ndcg_change": best["ndcg_change"] if best else None,
            }
        )
    chosen = max((s for s in searched if s["lift"] is not None), key=lambda s: s["lift"])
    return chosen, searched


def fitted(name: str, dataset, parts, protocol: str, keep: Path | None, progress: bool):
    """The model trained on the protocol's training split, and its training seconds. With ``keep``, a
    model this script saved there for the same protocol is loaded instead of trained again, and a new
    one is saved there (so the policy sweep can be re-run without the transformer's training)."""
    where = keep / f"{name}-{protocol}" if keep else None
    if where is not None and (where / "fit.json").exists():
        return model_class(name).load(where), json.loads((where / "fit.json").read_text())["train_seconds"]
    model = model_class(name)()
    started = time.perf_counter()
    model.fit(dataset, parts.train, validate=validator(parts.validation), progress=progress)
    train_seconds = time.perf_counter() - started
    if where is not None:
        model.save(where)
        (where / "fit.json").write_text(json.dumps({"train_seconds": train_seconds, "protocol": protocol}))
    return model, train_seconds


def sweep_model(
    name: str, dataset, parts, taxonomy, protocol: str, keep: Path | None, progress: bool
) -> dict:
    model, train_seconds = fitted(name, dataset, parts, protocol, keep, progress)
    train = list(dataset.histories(parts.train).values())
    counts = np.zeros(dataset.n_items)
    for history in train:
        counts[np.unique(history.items)] += 1.0
    vectors = item_vectors_for(model, train)
    transitions = InterestTransitions.fit(train, taxonomy.membership)
    # A fresh policy for every setting (offline the bandit gets no feedback: the prior's Thompson draws).
    policies = {
        name: functools.partial(make_policy, name, taxonomy, vectors, transitions) for name in POLICY_NAMES
    }

    def scores_of(cases):
        return np.vstack([model.score(cases.histories[s : s + 256]) for s in range(0, len(cases), 256)])

    # Novel-interest with its three signals (transitions, the text encoder's closeness of interest
    # descriptions, the model's own mass), their weights, interests per slate and knob chosen on the
    # validation targets only.
    from penchant.text import load_encoder

    titles = dataset.items["title"].tolist() if "title" in dataset.items else None
    interest_vectors = interest_text_vectors(taxonomy, titles, train, load_encoder("minilm"))

    def novel(config):
        return make_policy("novel-interest", taxonomy, vectors, transitions, config, interest_vectors)

    validation_scores = scores_of(parts.validation)
    chosen, searched = tune_novel(
        novel, dataset, parts.validation, validation_scores, taxonomy, counts, len(train)
    )
    tuned_config = NovelInterestConfig(**{key: chosen[key] for key in SEARCHED})
    policies[TUNED] = functools.partial(novel, tuned_config)
    rows = sweep(policies, dataset, parts.test, scores_of(parts.test), taxonomy, counts, len(train))
    # Every policy's curve on the validation targets too (the tuned one was chosen there).
    validation = sweep(policies, dataset, parts.validation, validation_scores, taxonomy, counts, len(train))
    best = {}
    for policy_name in policies:
        within = [r for r in rows if r["policy"] == policy_name and r["ndcg_change"] >= -MAX_NDCG_LOSS]
        best[policy_name] = max(within, key=lambda r: r["explore"])["explore"]
    return {
        "model": name,
        "train_seconds": round(train_seconds, 1),
        "item_vectors": vectors.source,
        "rows": rows,
        "validation_rows": validation,
        "novel_interest_search": searched,
        "novel_interest_chosen": chosen,
        "most_exploration_within_5pct_ndcg": best,
        "bar": {
            "rule": "novel-interest, tuned on validation, at the knob validation chose, raises new_interest_hr@10 "
            "by >= 50% (95% interval above 0, >= 300 new-interest targets) with NDCG@10 down <= 5%, on test",
            "met": chosen["explore"] in passing_novel_settings(rows, TUNED),
            "settings": passing_novel_settings(rows, TUNED),
            "settings_on_validation": passing_novel_settings(validation, TUNED),
            "default_settings": passing_novel_settings(rows),
        },
    }


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = report["models"]
    axes_of = (
        ("novelty", "novelty (mean self-information, bits)"),
        ("diversity", "intra-list diversity"),
        ("new_interest_hr@10", "new-interest HR@10"),
    )
    fig, axes = plt.subplots(len(models), 3, figsize=(15, 4.4 * len(models)), squeeze=False)
    for row, result in enumerate(models):
        for col, (key, label) in enumerate(axes_of):
            ax = axes[row][col]
            for policy in result["most_exploration_within_5pct_ndcg"]:
                pts = [r for r in result["rows"] if r["policy"] == policy]
                ax.plot([p[key] for p in pts], [p["ndcg@10"] for p in pts], marker="o", label=policy)
                for p in pts:
                    if p["explore"] in (0.3, 1.0):
                        ax.annotate(
                            f"{p['explore']:g}",
                            (p[key], p["ndcg@10"]),
                            fontsize=7,
                            textcoords="offset points",
                            xytext=(3, 3),
                        )
            base = next(r for r in result["rows"] if r["explore"] == 0.0)["ndcg@10"]
            ax.axhline(
                base * (1 - MAX_NDCG_LOSS), color="grey", linestyle="--", linewidth=0.8, label="-5% NDCG@10"
            )
            ax.set_xlabel(label)
            ax.set_ylabel("NDCG@10")
            ax.set_title(f"{result['model']}: NDCG@10 vs {key}")
            ax.grid(alpha=0.3)
            if col == 0:
                ax.legend(fontsize=8)
    fig.suptitle(
        "ml-100k, leave-one-out, full catalogue, seen items excluded; knob 0 -> 1 along each line "
        "(labels at 0.3 and 1)",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown(report: dict) -> str:
    lines = [
        "# Exploration trade-off on ml-100k",
        "",
        f"Command: `{report['command']}` ({report['date']}; {report['machine']['cpu_count']} cores, "
        f"load average {report['load_average']}). Protocol: {report['protocol']}.",
        "",
        "Each policy re-ranks the model's top-200 candidates per user at knob `explore` (0 = the model's "
        "own ranking). `new-int HR@10` is the hit rate over the test users with a target in an interest "
        "(genre) absent from their history (hits/users shown); the lift beside it and ΔNDCG carry paired "
        "bootstrap 95% intervals over users (2,000 resamples). Novelty in bits, diversity with genre vectors "
        "(independent of the model), calibration KL in nats (lower = closer).",
        "",
    ]
    for result in report["models"]:
        base = next(r for r in result["rows"] if r["explore"] == 0.0)
        lines += [
            f"## {result['model']} (trained in {result['train_seconds']} s; "
            f"item vectors for diversity and interest closeness: {result['item_vectors']})",
            "",
            f"New-interest targets: {base['new_interest_targets']} on test ({base['new_interest_users']} users), "
            f"{result['validation_rows'][0]['new_interest_targets']} on validation.",
            "",
            "| policy | explore | NDCG@10 | ΔNDCG [95%] | HR@10 | novelty | diversity | interest cov. | "
            "calib. KL | serendipity | coverage | new-int HR@10 (hits/users) | lift [95%] | explore share |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in result["rows"]:
            lines.append(
                f"| {r['policy']} | {r['explore']:g} | {r['ndcg@10']:.4f} | {_change(r['ndcg_change_ci'])} | "
                f"{r['hr@10']:.4f} | {r['novelty']:.3f} | {r['diversity']:.3f} | "
                f"{r['interest_coverage']:.3f} | "
                f"{r['calibration_kl']:.3f} | {r['serendipity']:.4f} | {r['coverage']:.3f} | "
                f"{r['new_interest_hr@10']:.3f} ({r['new_interest_hits']}/{r['new_interest_users']}) | "
                f"{_change(r['new_interest_lift_ci'])} | {r['explore_share']:.2f} |"
            )
        lines += [
            "",
            "Most exploration with NDCG@10 down at most 5% (largest knob setting within the loss):",
            "",
        ]
        for policy, knob in result["most_exploration_within_5pct_ndcg"].items():
            row = next(r for r in result["rows"] if r["policy"] == policy and r["explore"] == knob)
            lines.append(
                f"- **{policy}**: explore = {knob:g} (NDCG@10 {100 * row['ndcg_change']:+.1f}%, novelty "
                f"{row['novelty']:.3f} vs {base['novelty']:.3f}, diversity {row['diversity']:.3f} vs "
                f"{base['diversity']:.3f}, new-interest HR@10 {row['new_interest_hr@10']:.3f} vs "
                f"{base['new_interest_hr@10']:.3f})"
            )
        bar = result["bar"]
        lines += [
            "",
            "Every policy's sweep on the validation targets (same model, same training data; the tuned "
            "novel-interest settings and knob were chosen here, on validation only):",
            "",
            "| policy | explore | NDCG@10 | ΔNDCG [95%] | new-int HR@10 (hits/users) | lift [95%] |",
            "|---|---|---|---|---|---|",
        ]
        for r in result["validation_rows"]:
            lines.append(
                f"| {r['policy']} | {r['explore']:g} | {r['ndcg@10']:.4f} | {_change(r['ndcg_change_ci'])} | "
                f"{r['new_interest_hr@10']:.3f} ({r['new_interest_hits']}/{r['new_interest_users']}) | "
                f"{_change(r['new_interest_lift_ci'])} |"
            )
        settings = ", ".join(f"{x:g}" for x in bar["settings"]) or "none"
        on_validation = ", ".join(f"{x:g}" for x in bar["settings_on_validation"]) or "none"
        default = ", ".join(f"{x:g}" for x in bar["default_settings"]) or "none"
        chosen = result["novel_interest_chosen"]
        ranked = sorted(
            (s for s in result["novel_interest_search"] if s["lift"] is not None), key=lambda s: -s["lift"]
        )
        lines += [
            "",
            f"Novel-interest settings searched on validation ({len(result['novel_interest_search'])}: the three "
            "signals' weights on a 0.25 grid; the `slots` fill with 1 or 2 new interests per slate, the "
            "`by-score` fill with the signals' share of the bonus 0, 0.5 or 1; each at its best knob within "
            f"5% NDCG loss). Chosen: {_setting(chosen)}, explore {chosen['explore']:g} (validation lift "
            f"{100 * chosen['lift']:+.1f}%, NDCG {100 * chosen['ndcg_change']:+.1f}%). The five best:",
            "",
            "| fill | transitions | text | model | interests / signal share | explore | validation lift | ΔNDCG |",
            "|---|---|---|---|---|---|---|---|",
            *[
                f"| {s['fill']} | {s['transition_weight']:g} | {s['semantic_weight']:g} | {s['model_weight']:g} | "
                f"{s['max_interests'] if s['fill'] == 'slots' else s['signal_share']:g} | {s['explore']:g} | "
                f"{100 * s['lift']:+.1f}% | {100 * s['ndcg_change']:+.1f}% |"
                for s in ranked[:5]
            ],
            "",
            f"Bar ({bar['rule']}): **{'met' if bar['met'] else 'NOT met'}**. Tuned settings passing on test at "
            f"explore = {settings} (on validation: {on_validation}); the default settings at {default}.",
            "",
        ]
    lines += ["![trade-off](explore.png)", ""]
    return "\n".join(lines)


def _setting(s: dict) -> str:
    weights = (
        f"transitions {s['transition_weight']:g}, text closeness {s['semantic_weight']:g}, "
        f"model mass {s['model_weight']:g}"
    )
    if s["fill"] == "slots":
        return f"the slots fill, {weights}, {s['max_interests']} interest(s) per slate"
    if s["signal_share"] == 0:
        return "the by-score fill with the same bonus for every new interest"
    return f"the by-score fill, {weights}, signals' share of the bonus {s['signal_share']:g}"


def _change(change: dict) -> str:
    if change["value"] is None:
        return "n/a"
    return f"{100 * change['value']:+.1f}% [{100 * change['low']:+.1f}, {100 * change['high']:+.1f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--models", nargs="+", default=["ease"], help="models to train and sweep (default: ease)"
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--protocol",
        choices=("next-n", "leave-one-out"),
        default="next-n",
        help="next-n (default): each user's last 10 events are the test targets; leave-one-out: the last one",
    )
    parser.add_argument(
        "--keep-models",
        type=Path,
        help="save the trained models in this folder, and load them from it when a later run finds them",
    )
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()

    dataset = load_ml100k()
    protocol = Protocol(name=args.protocol)
    parts = split(dataset, protocol)
    taxonomy = category_taxonomy(dataset)
    started = time.perf_counter()
    report = {
        "benchmark": "exploration trade-off on ml-100k",
        "command": "python benchmarks/explore.py"
        + (f" --models {' '.join(args.models)}" if args.models != ["ease"] else "")
        + (f" --protocol {args.protocol}" if args.protocol != "next-n" else ""),
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "protocol": protocol.describe(exclude_seen=True)["description"]
        + "; ranking over the full catalogue, already-seen items excluded",
        "k": K,
        "n_candidates": N_CANDIDATES,
        "knobs": list(KNOBS),
        "models": [
            sweep_model(name, dataset, parts, taxonomy, args.protocol, args.keep_models, not args.quiet)
            for name in args.models
        ],
    }
    report["seconds"] = round(time.perf_counter() - started, 1)
    report["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "explore.json").write_text(json.dumps(report, indent=2))
    (args.out / "explore.md").write_text(markdown(report))
    plot(report, args.out / "explore.png")
    print(markdown(report))


if __name__ == "__main__":
    main()
