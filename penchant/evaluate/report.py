"""Test-set metrics of a saved run under its own protocol, with what training did beside them."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from penchant.evaluate.beyond import category_taxonomy, evaluate_with_policy
from penchant.evaluate.ranking import RandomScores, evaluate
from penchant.explore.policies import Policy
from penchant.models import ModelConfig, Recommender
from penchant.runs import Run

RANDOM_DRAWS = 20  # random-baseline draws averaged in cold-start reports


def evaluate_run(
    run: Run,
    ks: Sequence[int] = (10,),
    exclude_seen: bool = False,
    policy: Policy | None = None,
    explore: float = 0.0,
    users: int | None = None,
    progress: bool = False,
) -> dict:
    """Test-set metrics of a run under its own protocol, re-ranked by ``policy`` when one is given;
    beyond-accuracy metrics too when the catalogue has categories (or, with a policy, over the
    interests the policy works with, text topics included). ``users``: over a seeded sample of that
    many test users (the protocol says so), for a quick estimate on a large log."""
    parts = run.split()
    test = parts.test.sample(users)
    taxonomy = category_taxonomy(run.dataset) if policy is None else policy.taxonomy

    def score(model: Recommender, progress: bool = False) -> dict:
        if policy is None and taxonomy is None:
            return evaluate(model, test, run.protocol, ks, exclude_seen, progress=progress)
        train = list(run.dataset.histories(parts.train).values())
        return evaluate_with_policy(
            model,
            run.dataset,
            train,
            test,
            run.protocol,
            ks,
            exclude_seen,
            policy=policy,
            explore=explore,
            taxonomy=taxonomy,
        )

    result = score(run.model, progress)
    result["model"] = run.model.name
    result["n_test_users"] = len(parts.test)  # n_users were ranked: fewer with a sample
    if len(test) < len(parts.test):
        result["protocol"]["users"] = f"a seeded sample of {len(test)} of the {len(parts.test)} test users"
    if run.protocol.name == "cold-start":
        # Chance level on the same cases through the same code, averaged over draws (one draw of a
        # ~0.6% hit rate over a few hundred users is too noisy to compare with).
        draws = [
            score(RandomScores(ModelConfig(seed=seed)).fit(run.dataset, parts.train, progress=False))[
                "metrics"
            ]
            for seed in range(RANDOM_DRAWS)
        ]
        result["baseline"] = {name: float(np.mean([d[name] for d in draws])) for name in draws[0]}
        result["protocol"]["baseline"] = (
            f"uniformly random scores over the {run.protocol.ranking}, mean of {RANDOM_DRAWS} seeded draws"
        )
    result["training"] = training_summary(run.model)
    return result


def training_summary(model: Recommender) -> dict:
    """How the model was trained, reported beside its numbers: epochs, seconds per epoch, what ended
    training, and a note when a budget ended it while validation was still improving."""
    stats = model.fit_stats
    out = {
        "epochs": stats.epochs,
        "best_epoch": stats.best_epoch,
        "seconds": round(stats.seconds, 1),
        "seconds_per_epoch": None if stats.seconds_per_epoch is None else round(stats.seconds_per_epoch, 2),
        "stopped_by": stats.stopped_by,
        "still_improving": stats.still_improving,
        "refit_epochs": stats.refit_epochs,
    }
    if stats.settings:
        out["settings"] = stats.settings
        if stats.settings.get("privacy"):
            out["privacy"] = stats.settings["privacy"]
    note = stats.budget_note()
    if note:
        out["note"] = note
    return out
