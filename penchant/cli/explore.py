"""The command line's exploration edge: policy names to policy objects, and formatting slates."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import numpy as np
from rich.console import Console
from rich.table import Table

from penchant.data.dataset import History
from penchant.errors import InputError
from penchant.explore import POLICY_NAMES, Explorer, Policy, make_policies
from penchant.runs import Run

out = Console()
err = Console(stderr=True, soft_wrap=True)


def build_policy(name: str, run: Run, train_histories: Sequence[History]) -> Policy:
    """The named policy over a run's model, with the run's interests (categories, else text topics).

    ``train_histories`` are what the policy may learn from (interest transitions, co-occurrence
    vectors): the training split when evaluating, every known history when recommending.
    """
    return make_policies(run.model, run.taxonomy(), train_histories, [name])[name]


def _check_args(args: argparse.Namespace) -> None:
    if not args.policy:
        raise InputError(f"--explore needs --policy ({', '.join(POLICY_NAMES)})")
    if not 0.0 <= args.explore <= 1.0:
        raise InputError(f"--explore must be between 0 and 1, got {args.explore}")


def evaluation_policy(args: argparse.Namespace, run: Run) -> Policy:
    """The policy ``penchant evaluate`` asked for, learning only from the run's training split."""
    _check_args(args)
    train = list(run.dataset.histories(run.split().train).values())
    return build_policy(args.policy, run, train)


def recommend(args: argparse.Namespace, run: Run) -> list[dict]:
    """Top-k of a run's model re-ranked by ``args.policy`` at ``args.explore``, with roles and interests."""
    _check_args(args)
    policy = build_policy(args.policy, run, list(run.model.histories.values()))
    history = None
    if not run.model.knows(args.user):
        if getattr(args, "unknown_user", "popular") == "error":
            run.model.history_of(args.user)  # the one-line error naming the user
        history = History(np.zeros(0, dtype=np.int64), np.zeros(0), args.user)
        err.print(f"note: user '{args.user}' has no events in the run: the most popular items, re-ranked")
    recs = Explorer(run.model, policy).recommend(
        args.user, k=args.k, explore=args.explore, exclude_seen=args.exclude_seen, history=history
    )
    rows = [r.to_dict() for r in recs]
    if not args.json:
        title = f"top {args.k} for user {args.user} ({run.model.name}, {args.policy}, explore {args.explore})"
        table = Table(title=title)
        for column in ("rank", "item_id", "title", "score", "role", "interest"):
            table.add_column(column)
        for rank, r in enumerate(rows, 1):
            table.add_row(
                str(rank), r["item_id"], r["title"] or "", f"{r['score']:.3f}", r["role"], r["interest"] or ""
            )
        out.print(table)
    return rows
