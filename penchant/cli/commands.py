"""One function per command: parse inputs into library objects, call the library, format the result."""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from penchant.cli.main import print_json
from penchant.data import ColumnMap, Filters, load_builtin, load_dataset
from penchant.data.dataset import Dataset
from penchant.data.io import SqlSource
from penchant.data.split import Protocol
from penchant.errors import InputError
from penchant.evaluate.compare import compare
from penchant.evaluate.report import evaluate_run
from penchant.models import EASE, InterestTransformer, Popularity, Recommender, model_class
from penchant.models.base import FitStats
from penchant.models.devices import processes
from penchant.runs import load_run, save_run, train_run

err = Console(stderr=True, soft_wrap=True)
out = Console()


def _dataset(args: argparse.Namespace) -> tuple[Dataset, dict]:
    filters = Filters(
        min_user_events=getattr(args, "min_user_events", 0),
        min_item_events=getattr(args, "min_item_events", 0),
        positive=getattr(args, "positive", None),
    )
    if args.data:
        return load_builtin(args.data, filters), {"dataset": args.data, "filters": filters.to_dict()}
    columns = ColumnMap(
        user_id=args.user_col,
        item_id=args.item_col,
        timestamp=args.time_col,
        value=args.value_col,
        event_type=args.type_col,
        title=args.title_col,
        categories=args.categories_col,
        description=getattr(args, "description_col", None),
        text=getattr(args, "text_col", None),
        sep=getattr(args, "sep", None),
    )
    text_file = getattr(args, "text_file", None)
    events, items = args.events, args.items
    sql_events, sql_items = getattr(args, "events_sql", None), getattr(args, "items_sql", None)
    if (sql_events or sql_items) and not getattr(args, "source_db", None):
        raise InputError("--events-sql / --items-sql: give the database with --source-db URL")
    if getattr(args, "source_db", None) and not (sql_events or sql_items):
        raise InputError("--source-db: give a query with --events-sql (and --items-sql)")
    if sql_items and items:
        raise InputError("--items and --items-sql: give one catalogue source")
    if sql_events:
        events = SqlSource(sql_events, args.source_db, "--events-sql")
    if sql_items:
        items = SqlSource(sql_items, args.source_db, "--items-sql")
    dataset = load_dataset(
        events,
        items,
        args.users,
        columns,
        filters,
        text_file=text_file,
        text_col=getattr(args, "text_file_col", "text"),
        text_type=getattr(args, "text_file_type", "tag"),
    )
    source = {
        "filters": filters.to_dict(),
        "text_file": str(text_file) if text_file else None,
        "events": str(args.events) if args.events else None,
        "events_sql": sql_events,
        "items": str(args.items) if args.items else None,
        "items_sql": sql_items,
        "users": str(args.users) if args.users else None,
        "columns": columns.to_dict(),
    }
    return dataset, source


def _model(name: str, config_json: str | None, extra: dict | None = None) -> Recommender:
    """The model named, with the settings of ``--config`` and of flags that are settings too
    (``extra``: ``--dp-epsilon``, ``--dp-delta``)."""
    cls = model_class(name)
    extra = {k: v for k, v in (extra or {}).items() if v is not None}
    if extra and "dp_epsilon" not in {f.name for f in dataclasses.fields(cls.config_class)}:
        flag = "--" + next(iter(extra)).replace("_", "-")
        raise InputError(f"{flag}: only the transformer trains with differential privacy, not '{name}'")
    if "dp_delta" in extra and "dp_epsilon" not in extra:
        raise InputError("--dp-delta: give --dp-epsilon too (δ alone asks for no privacy)")
    if not config_json and not extra:
        return cls()
    try:
        values = json.loads(config_json) if config_json else {}
    except json.JSONDecodeError as exc:
        raise InputError(f"--config: not valid JSON ({exc.msg} at character {exc.pos})") from None
    if not isinstance(values, dict):
        raise InputError("--config: expected a JSON object of settings")
    values = {**values, **extra}
    try:
        return cls(cls.config_class.from_dict(values))
    except TypeError as exc:
        raise InputError(f"--config: {exc}") from None


def train(args: argparse.Namespace) -> int:
    if getattr(args, "resume", None):
        return retrain(args)
    if not (args.data or args.events or getattr(args, "events_sql", None)):
        raise InputError(
            "one of --data, --events, --events-sql (the data to train on) or --resume RUN is required"
        )
    if args.out is None:
        raise InputError("--out: required (the run directory to write), or --resume RUN to train a run again")
    privacy = {"dp_epsilon": getattr(args, "dp_epsilon", None), "dp_delta": getattr(args, "dp_delta", None)}
    model = _model(args.model, args.config, privacy)  # settings are checked before any data is read
    if getattr(args, "text_encoder", None):
        from penchant.cli.text import with_text_encoder

        model = with_text_encoder(model, args.text_encoder)
    model = model.to(getattr(args, "device", "auto"))
    main = processes().main  # under torchrun only rank 0 reports (and saves)
    protocol = Protocol(name=args.protocol)
    dataset, source = _dataset(args)
    for line in dataset.report.lines() if main else []:
        err.print(f"[dim]data:[/] {line}")
    run = train_run(dataset, model, args.out, protocol, source=source, progress=main)
    if not main:
        return 0
    for line in training_lines(run.model.fit_stats):
        err.print(line)
    err.print(f"run saved to {args.out}")
    return 0


RESUME_EXCLUDES = (
    "data",
    "events",
    "items",
    "users",
    "events_sql",
    "items_sql",
    "text_file",
    "config",
    "dp_epsilon",
    "dp_delta",
    "text_encoder",
    "positive",
)


def retrain(args: argparse.Namespace) -> int:
    """``penchant train --resume RUN``: the run's model trained again from fresh weights on the run's
    data as it is now (erased users are gone from it), with the model, settings and protocol the run
    recorded; the new run replaces RUN only once it is complete (or is written to ``--out``)."""
    import shutil

    source_dir = Path(args.resume)
    given = [name for name in RESUME_EXCLUDES if getattr(args, name, None)]
    if given:
        raise InputError(
            f"--resume: trains the run with its own data and settings; leave out --{given[0].replace('_', '-')}"
        )
    meta_path = source_dir / "run.json"
    if not meta_path.exists():
        raise InputError(f"--resume {source_dir}: not a penchant run directory (run.json missing)")
    meta = json.loads(meta_path.read_text())
    cls = model_class(meta["model"])
    model = cls(cls.config_class.from_dict(meta["config"])).to(getattr(args, "device", "auto"))
    dataset = Dataset.load(source_dir / "data", name=meta["dataset"]["name"])
    protocol = Protocol(**meta["protocol"])
    source = {**meta.get("source", {}), "retrained_from": meta.get("created")}
    main = processes().main
    out = Path(args.out) if args.out else source_dir
    target = out if args.out else source_dir.with_name(source_dir.name + ".retraining")
    if target.exists() and not args.out:
        shutil.rmtree(target)  # what an interrupted retrain left
    run = train_run(dataset, model, target, protocol, source=source, progress=main)
    if not main:
        return 0
    if not args.out:  # swap in whole: a crash before this leaves the old run as it was
        old = source_dir.with_name(source_dir.name + ".replaced")
        if old.exists():
            shutil.rmtree(old)
        source_dir.rename(old)
        target.rename(source_dir)
        shutil.rmtree(old)
    for line in training_lines(run.model.fit_stats):
        err.print(line)
    err.print(
        f"run trained again from its own data ({dataset.n_users} users, {len(dataset.events)} events) "
        f"and saved to {out}"
    )
    return 0


def training_lines(stats: FitStats) -> list[str]:
    """The training log's summary: epochs, time per epoch, what ended training and what "auto"
    settings became; a warning line when a budget cut training short."""
    best = (
        f", best validation NDCG@10 {stats.best_validation:.4f} at epoch {stats.best_epoch}"
        if stats.best_validation
        else ""
    )
    per_epoch = f", {stats.seconds_per_epoch:.1f}s per epoch" if stats.seconds_per_epoch else ""
    ended = f"; ended by {stats.stopped_by}" if stats.stopped_by else ""
    lines = [f"trained in {stats.seconds:.1f}s ({stats.epochs} epochs{per_epoch}{best}){ended}"]
    if stats.refit_epochs:
        lines.append(
            f"then {stats.refit_epochs} epochs ({stats.refit_seconds:.1f}s) on the training and validation "
            "events together"
        )
    if stats.settings:
        shown = {k: v for k, v in stats.settings.items() if v is not None and k != "privacy"}
        lines.append("settings: " + ", ".join(f"{k} {v}" for k, v in shown.items()))
        if stats.settings.get("privacy"):
            lines.append(privacy_line(stats.settings["privacy"]))
    note = stats.budget_note()
    if note:
        lines.append(f"[bold yellow]warning:[/] {note}")
    return lines


def evaluate(args: argparse.Namespace) -> int:
    if getattr(args, "task", "ranking") == "next-interest":
        from penchant.cli.interests import evaluate_next

        return evaluate_next(args)
    run = load_run(args.run, args.device)
    if getattr(args, "impressions", False):
        from penchant.cli.explore import evaluate_impressions

        result = evaluate_impressions(args, run)
        if args.json:
            print_json(result)
        return 0
    if getattr(args, "protocol", None) and args.protocol != run.protocol.name:
        raise InputError(
            f"{args.run}: the run was trained under the '{run.protocol.name}' protocol, "
            f"not '{args.protocol}'; "
            f"train it with --protocol {args.protocol}"
        )
    policy = None
    if getattr(args, "policy", None) or getattr(args, "explore", 0.0):
        from penchant.cli.explore import evaluation_policy

        policy = evaluation_policy(args, run)
    result = evaluate_run(
        run,
        ks=args.k or [10],
        exclude_seen=args.exclude_seen,
        policy=policy,
        explore=getattr(args, "explore", 0.0),
        users=getattr(args, "users", None),
        progress=True,
    )
    if args.json:
        print_json(result)
        return 0
    table = Table(title=f"{result['model']} on {run.dataset.name} ({result['n_users']} test users)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in result["metrics"].items():
        table.add_row(name, f"{value:.4f}")
    out.print(table)
    out.print(_protocol_line(result["protocol"]))
    privacy = result.get("training", {}).get("privacy")
    if privacy:
        out.print(privacy_line(privacy))
    note = result.get("training", {}).get("note")
    if note:
        out.print(f"[bold yellow]note:[/] {note}")
    return 0


def privacy_line(privacy: dict) -> str:
    """What a differentially private run spent, beside its numbers."""
    return (
        f"privacy: DP-SGD, ε = {privacy['epsilon']:.2f}, δ = {privacy['delta']:.1e} per {privacy['unit']} "
        f"({privacy['accountant']}; noise multiplier {privacy['noise_multiplier']}, clip {privacy['clip']}, "
        f"{privacy['steps']} steps at sample rate {privacy['sample_rate']}); ε covers the trained weights"
    )


def recommend(args: argparse.Namespace) -> int:
    run = load_run(args.run, args.device)
    if getattr(args, "policy", None) or getattr(args, "explore", 0.0):
        from penchant.cli.explore import recommend as explore_recommend

        rows = explore_recommend(args, run)
        if args.json:
            print_json(rows)
        return 0
    unknown = getattr(args, "unknown_user", "popular")
    recs = run.model.recommend(args.user, k=args.k, exclude_seen=args.exclude_seen, unknown_user=unknown)
    if not run.model.knows(args.user):
        err.print(f"note: user '{args.user}' has no events in the run: the most popular items")
    if args.json:
        print_json([r.to_dict() for r in recs])
        return 0
    table = Table(title=f"top {args.k} for user {args.user} ({run.model.name})")
    for column in ("rank", "item_id", "title", "score"):
        table.add_column(column)
    for rank, r in enumerate(recs, 1):
        table.add_row(str(rank), r.item_id, r.title or "", f"{r.score:.3f}")
    out.print(table)
    return 0


def demo(args: argparse.Namespace) -> int:
    """The main job: every model on ml-100k under the default protocol, then one user up close."""
    dataset = load_builtin("ml-100k")
    out.print(
        f"[bold]penchant demo[/]: {len(dataset.events)} events, "
        f"{dataset.n_users} users, {dataset.n_items} items (MovieLens-100k)"
    )
    models = [InterestTransformer().to(args.device), EASE(), Popularity()]
    started = time.perf_counter()
    parts, results = compare(dataset, models)
    protocol = parts.protocol.describe(exclude_seen=False)

    table = Table(title=f"ml-100k, {len(parts.test)} test users")
    for column in (
        "model",
        "NDCG@10",
        "HR@10",
        "MRR@10",
        "NDCG@10 (seen excl.)",
        "HR@10 (seen excl.)",
        "train s",
        "epochs",
        "s/epoch",
        "ended by",
    ):
        table.add_column(column, justify="left" if column == "model" else "right", no_wrap=column == "model")
    for r in results:
        table.add_row(
            r.model.name,
            f"{r.metrics['ndcg@10']:.4f}",
            f"{r.metrics['hr@10']:.4f}",
            f"{r.metrics['mrr@10']:.4f}",
            f"{r.metrics_exclude_seen['ndcg@10']:.4f}",
            f"{r.metrics_exclude_seen['hr@10']:.4f}",
            f"{r.train_seconds:.1f}",
            str(r.model.fit_stats.epochs),
            f"{r.model.fit_stats.seconds_per_epoch:.1f}" if r.model.fit_stats.seconds_per_epoch else "",
            _ended_by(r.model.fit_stats),
        )
    out.print(table)
    out.print(_protocol_line(protocol) + "; the '(seen excl.)' columns never rank items the user already has")
    for r in results:
        note = r.model.fit_stats.budget_note()
        if note:
            out.print(f"[bold yellow]note:[/] {r.model.name}: {note}")

    transformer = results[0].model
    user = args.user or dataset.user_map.ids[0]
    history = transformer.history_of(user)
    titles = transformer.titles
    recent = Table(title=f"user {user}: last 5 of {len(history)} items")
    recent.add_column("item_id")
    recent.add_column("title")
    for i in history.items[-5:]:
        recent.add_row(transformer.item_map.ids[i], titles[i] or "")
    recs = Table(title=f"user {user}: top 10 from the interest transformer")
    for column in ("rank", "item_id", "title", "score"):
        recs.add_column(column)
    for rank, r in enumerate(transformer.recommend(user, k=10), 1):
        recs.add_row(str(rank), r.item_id, r.title or "", f"{r.score:.2f}")
    out.print(recent)
    out.print(recs)

    save_run(args.out, dataset, transformer, parts, extra={"comparison": [r.to_dict() for r in results]})
    out.print(
        f"done in {time.perf_counter() - started:.0f}s; transformer run saved to {args.out} "
        f"(try: penchant recommend --run {args.out} --user {user})"
    )
    return 0


def _ended_by(stats: FitStats) -> str:
    if stats.stopped_by is None:
        return "not iterative" if stats.converged is None else ""
    return stats.stopped_by + (" (still improving)" if stats.still_improving else "")


def _protocol_line(protocol: dict) -> str:
    seen = "already-seen items excluded" if protocol["exclude_seen"] else "already-seen items NOT excluded"
    users = f"; on {protocol['users']}" if "users" in protocol else ""
    return (
        f"protocol: {protocol['name']} ({protocol['description']}); ranking over the {protocol['ranking']}; "
        f"{seen}{users}"
    )
