"""Commands over interests: ``profile``, ``explain`` and ``evaluate --task next-interest``."""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.table import Table

from penchant.cli.main import print_json
from penchant.errors import InputError
from penchant.evaluate.next_interest import evaluate_next_interest
from penchant.explain import explain as explain_item
from penchant.interests import LLMSettings, ProfileConfig, build_profile, narrate
from penchant.interests.plot import plot_profile
from penchant.runs import load_run

err = Console(stderr=True, soft_wrap=True)
out = Console()


def profile(args: argparse.Namespace) -> int:
    config = ProfileConfig(
        half_life_days=args.half_life_days, short_events=args.short_events, short_days=args.short_days
    )
    run = load_run(args.run, args.device)
    history = run.model.history_of(args.user)  # an unknown user is an InputError before any real work
    result = narrate(
        build_profile(args.user, history, run.taxonomy(args.topics), config), LLMSettings.from_env()
    )
    if args.plot:
        plot_profile(result, args.plot)
        err.print(f"profile plot written to {args.plot}")
    if result.summary_note:
        err.print(f"[yellow]note:[/] {result.summary_note}")
    if args.json:
        print_json(result.to_dict())
        return 0
    table = Table(
        title=f"interests of user {args.user} ({result.n_events} events; short term: {result.window})"
    )
    for column in ("interest", "long term", "short term", ""):
        table.add_column(column, justify="left" if column in ("interest", "") else "right")
    short = {w.interest: w.weight for w in result.short_term}
    emerging = {s.interest for s in result.emerging}
    fading = {s.interest for s in result.fading}
    names = [w.interest for w in result.long_term] + [
        n for n in short if n not in {w.interest for w in result.long_term}
    ]
    long = {w.interest: w.weight for w in result.long_term}
    for name in names:
        mark = "emerging" if name in emerging else "fading" if name in fading else ""
        table.add_row(name, f"{long.get(name, 0):.1%}", f"{short.get(name, 0):.1%}", mark)
    out.print(table)
    out.print(result.summary)
    return 0


def explain(args: argparse.Namespace) -> int:
    run = load_run(args.run, args.device)
    run.model.history_of(args.user)  # unknown user: one-line error before building the taxonomy
    result = explain_item(run.model, run.taxonomy(args.topics), args.item, user_id=args.user, top=args.top)
    if args.json:
        print_json(result.to_dict())
        return 0
    out.print(
        f"[bold]{result.title or result.item_id}[/] for user {args.user}: score {result.score:.3f}, "
        f"rank {result.rank} of {run.model.n_items}"
    )
    table = Table(title=f"past items that drove it (of {result.n_history})")
    for column in ("item_id", "title", "weight", "interests"):
        table.add_column(column, justify="right" if column == "weight" else "left")
    for c in result.items:
        table.add_row(c.item_id, c.title or "", f"{c.weight:+.4f}", ", ".join(c.interests))
    out.print(table)
    interests = Table(title="interests that drove it")
    interests.add_column("interest")
    interests.add_column("weight", justify="right")
    for w in result.interests[: args.top]:
        interests.add_row(w.interest, f"{w.weight:+.4f}")
    out.print(interests)
    out.print(
        "[dim]weight: drop in the item's score when that past item is removed "
        "(occlusion, on the model itself)[/]"
    )
    return 0


def evaluate_next(args: argparse.Namespace) -> int:
    """``penchant evaluate --task next-interest``: interest-level metrics against the frequency baseline."""
    run = load_run(args.run, args.device)
    if getattr(args, "protocol", None) and args.protocol != run.protocol.name:
        raise InputError(
            f"{args.run}: the run was trained under the '{run.protocol.name}' protocol, not '{args.protocol}'"
        )
    if getattr(args, "policy", None) or getattr(args, "explore", 0.0):
        raise InputError(
            "--task next-interest scores the model's own next-item distribution; "
            "--policy and --explore do not apply to it"
        )
    taxonomy = run.taxonomy()
    ks = args.k or [1, 3, 5]
    result = evaluate_next_interest(
        run.model, taxonomy, run.split().test, run.protocol, ks, args.exclude_seen
    )
    result["model"] = run.model.name
    if args.json:
        print_json(result)
        return 0
    table = Table(
        title=f"next interest: {result['model']} on {run.dataset.name} ({result['n_users']} test users)"
    )
    for column in ("metric", "model", "history-frequency baseline"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for name, value in result["metrics"].items():
        table.add_row(name, f"{value:.4f}", f"{result['baseline'][name]:.4f}")
    out.print(table)
    out.print(
        f"protocol: {result['protocol']['task']}; baseline: {result['protocol']['baseline']}; "
        f"{result['protocol']['interests']}"
    )
    return 0
