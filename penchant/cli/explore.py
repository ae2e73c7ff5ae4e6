"""The command line's exploration edge: policy names to policy objects, and formatting slates."""

from __future__ import annotations

import argparse
import time
from collections import Counter
from collections.abc import Sequence

import numpy as np
from rich.console import Console
from rich.table import Table

from penchant.data.dataset import History
from penchant.errors import InputError
from penchant.explore import POLICY_NAMES, Explorer, Policy, make_policies
from penchant.explore.rerank import DEFAULT_CANDIDATES
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


HISTORY_LIMIT = 2000  # most recent stored events per user, as the service reads them (Settings.history_limit)
SCORE_BATCH = 64  # logged responses scored at once


def evaluate_impressions(args: argparse.Namespace, run: Run) -> dict:
    """``penchant evaluate --impressions``: what the run's model (or ``--policy`` on it at
    ``--explore``) would have earned on the responses a service logged in ``--db``, by item-position
    IPS and SNIPS over the logged propensities and rewards. Each response is replayed on the user's
    stored history as the store knew it when the response was shown."""
    from penchant.evaluate.offpolicy import LoggedSlate, estimate
    from penchant.explore import Candidates, UserContext
    from penchant.serve.db import Database, redact
    from penchant.serve.feedback import logged_responses
    from penchant.serve.settings import default_db_url
    from penchant.serve.store import EventStore

    if args.policy or args.explore:
        _check_args(args)
    url = args.db or default_db_url(args.run)
    db = Database(url)
    try:
        if db.version() < 4:
            raise InputError(
                f"--db {redact(url)}: no impressions there (an event store from before schema 4)"
            )
        since = 0.0 if args.hours is None else time.time() - args.hours * 3600
        responses = logged_responses(db, since)
        if not responses:
            raise InputError(f"--db {redact(url)}: no recommendation responses logged yet to estimate from")
        store = EventStore(db)
        model = run.model
        policy = build_policy(args.policy, run, list(model.histories.values())) if args.policy else None
        logged, targets = [], []
        for start in range(0, len(responses), SCORE_BATCH):
            batch = responses[start : start + SCORE_BATCH]
            histories = []
            for r in batch:
                ids, times = store.history(r.user_id, HISTORY_LIMIT, received_by=r.shown_at)
                idx = model.item_map.indices(ids)
                known = idx >= 0
                histories.append(History(idx[known], np.asarray(times, dtype=np.float64)[known], r.user_id))
            for r, history, scores in zip(batch, histories, model.scores_or_popular(histories), strict=True):
                k, seen = len(r.item_ids), history.items if r.exclude_seen else None  # as the list was made
                if policy is None or args.explore == 0.0:
                    items = Candidates.from_scores(scores, k, seen).items
                else:
                    pool = Candidates.from_scores(scores, max(DEFAULT_CANDIDATES, k), seen)
                    items = policy.rerank(UserContext(history, r.user_id), pool, k, args.explore).items
                targets.append([model.item_map.ids[i] for i in items])
                logged.append(
                    LoggedSlate(
                        np.array(r.item_ids, dtype=object), np.array(r.propensities), np.array(r.rewards)
                    )
                )
    finally:
        db.close()
    e = estimate(logged, targets)
    propensities = np.concatenate([s.propensities for s in logged])
    logging = Counter(f"{r.policy or 'model'} @ {r.explore:g}" if r.policy else "model" for r in responses)
    result = {
        "model": model.name,
        "candidate": {"policy": args.policy, "explore": args.explore if args.policy else 0.0},
        "estimate": e.to_dict(),
        "logged": {
            "responses": len(responses),
            "item_positions": int(len(propensities)),
            "randomised_share": float((propensities < 1.0).mean()),
            "clicks_per_response": float(np.mean([s.rewards.sum() for s in logged])),
            "policies": dict(logging),
        },
        "protocol": {
            "name": "off-policy (item-position IPS / SNIPS)",
            "description": "expected rewarded items per response of the candidate, from the responses the "
            "service logged: a logged item counts where the candidate shows the same item at the same "
            "position, divided by its logging propensity there; 95% percentile-bootstrap intervals over "
            "responses; each response replayed on the user's stored events received by then",
        },
    }
    if not args.json:
        table = Table(
            title=f"{result['model']} + {args.policy or 'no policy'} from {len(responses)} logged responses"
        )
        table.add_column("estimate")
        table.add_column("rewarded items per response", justify="right")
        table.add_column("95% interval", justify="right")
        table.add_row("IPS", f"{e.ips:.4f}", f"[{e.ips_low:.4f}, {e.ips_high:.4f}]")
        table.add_row("SNIPS", f"{e.snips:.4f}", f"[{e.snips_low:.4f}, {e.snips_high:.4f}]")
        table.add_row(
            "logged (the serving policies' own)", f"{result['logged']['clicks_per_response']:.4f}", ""
        )
        out.print(table)
        out.print(
            f"protocol: {result['protocol']['name']}: {result['protocol']['description']}. Matched "
            f"{e.matched:,} of {len(propensities):,} logged item-positions; served by "
            + ", ".join(f"{name} ({n})" for name, n in logging.items())
            + "."
        )
        if result["logged"]["randomised_share"] == 0.0:
            err.print(
                "[bold yellow]note:[/] every logged item had propensity 1 (no serving policy randomised), so "
                "the estimate counts only what the candidate shows where the service showed it, and is biased "
                "for any other policy; serve some traffic with the bandit to evaluate others"
            )
    return result
