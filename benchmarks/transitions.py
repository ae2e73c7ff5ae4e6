"""The check that led to the transformer's item-transition counts: on a trained run's validation
targets, the transformer alone against its logits plus ``weight * log(P + floor)`` of counted
item-to-item transitions, for several weights and floors.

    penchant train --events amazon-beauty.csv.gz --config '{"refit_epochs": 0, "transitions": 0}' --out RUN
    .venv/bin/python benchmarks/transitions.py RUN [--users 12000]

Counts come from the run's training events only (never a validation or test target); a seeded sample
of validation users is ranked over the full catalogue with their seen items excluded; prints NDCG@10
and Recall@10 per (weight, floor). A scratch check, not a report: the defaults' figures on test
targets are in benchmarks/results/scale.md.
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np

from penchant.evaluate.metrics import per_user_metrics, topk_indices
from penchant.models.transitions import ItemTransitions
from penchant.runs import load_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("--users", type=int, default=12_000)
    parser.add_argument("--weights", type=float, nargs="+", default=[0.0, 1.0, 1.5, 2.0, 3.0])
    parser.add_argument("--floors", type=float, nargs="+", default=[1e-4, 1e-3])
    args = parser.parse_args()
    run = load_run(args.run, device="cpu")
    model = run.model
    model.transition_weight = 0.0
    parts = run.split()
    cases = parts.validation
    pick = np.random.default_rng(0).permutation(len(cases))[: args.users]
    cases = dataclasses.replace(
        cases,
        users=cases.users[pick],
        histories=[cases.histories[i] for i in pick],
        targets=[cases.targets[i] for i in pick],
    )
    counts = ItemTransitions.fit(run.dataset.histories(parts.train).values(), model.n_items)
    variants = [(w, f) for w in args.weights for f in args.floors if w > 0 or f == args.floors[0]]
    results: dict = {v: [] for v in variants}
    for start in range(0, len(cases), 512):
        histories = cases.histories[start : start + 512]
        logits = model.score(histories).astype(np.float64)
        p = counts.probabilities(histories).toarray()
        for weight, floor in variants:
            scores = logits + weight * np.log(p + floor) if weight else logits.copy()
            for row, history in enumerate(histories):
                scores[row, history.items] = -np.inf
            m = per_user_metrics(topk_indices(scores, 10), cases.targets[start : start + 512], 10)
            results[(weight, floor)].append(np.stack([m["ndcg"], m["recall"]]))
    print(f"{len(cases)} validation users of {args.run}, seen items excluded, full catalogue")
    for (weight, floor), parts_ in results.items():
        ndcg, recall = np.concatenate(parts_, axis=1).mean(axis=1)
        print(f"weight {weight:g} floor {floor:g}: NDCG@10 {ndcg:.4f} Recall@10 {recall:.4f}")


if __name__ == "__main__":
    main()
