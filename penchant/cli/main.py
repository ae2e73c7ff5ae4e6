"""The ``penchant`` command: thin parsing and formatting over the library.

A user's mistake (missing file, wrong column, malformed row, unknown user) ends with one line on
stderr, ``error: ...``, and exit status 2; never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import sys
from pathlib import Path
from typing import NoReturn

from penchant.errors import InputError


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got '{text}'") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got '{text}'") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number above 0, got {text}")
    return value


def _delimiter(text: str) -> str:
    value = "\t" if text in ("\\t", "tab") else text
    if len(value) != 1:
        raise argparse.ArgumentTypeError(f"expected one character (or '\\t' for a tab), got '{text}'")
    return value


def _add_device(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device",
        default="auto",
        help="where the transformer runs: auto (CUDA when torch sees it, else the CPU), cpu, cuda, cuda:N or mps",
    )


# Names only; penchant.cli.explore builds the policies (and refuses unknown names in one line).
EXPLORE_POLICIES = "diversity, calibrated, novel-interest or bandit"


class _Parser(argparse.ArgumentParser):
    """A usage mistake is one line naming the command and the argument, like every other error
    (argparse's own form is the usage text and then the error)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="penchant", description="Learn what people are interested in and predict what they want next."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    # Each command names its handler as "module:function", imported only when that command runs.
    train = sub.add_parser("train", help="train a model on a built-in dataset or your own files")
    train.set_defaults(handler="penchant.cli.commands:train")
    source = train.add_mutually_exclusive_group()
    source.add_argument("--data", help="built-in dataset name (ml-100k)")
    source.add_argument(
        "--events",
        type=Path,
        help="events file (.csv, .tsv, .parquet or .jsonl; text formats may end in .gz, .zst, .bz2 or .xz) "
        "or a directory of Parquet files",
    )
    source.add_argument(
        "--events-sql",
        metavar="QUERY",
        help="a SELECT whose rows are the events, run read-only on --source-db (columns named as for a file)",
    )
    train.add_argument("--items", type=Path, help="item catalogue file")
    train.add_argument(
        "--items-sql", metavar="QUERY", help="a SELECT whose rows are the catalogue, on --source-db"
    )
    train.add_argument(
        "--source-db",
        metavar="URL",
        help="the database the --events-sql / --items-sql queries run on: sqlite:///PATH or "
        "postgresql://USER@HOST:PORT/DATABASE",
    )
    train.add_argument("--users", type=Path, help="user attributes file")
    train.add_argument(
        "--sep",
        type=_delimiter,
        help="field delimiter of CSV/TSV files, e.g. ';' or '\\t' (default: by extension)",
    )
    train.add_argument("--user-col", default="user_id", help="events column holding the user ID")
    train.add_argument("--item-col", default="item_id", help="events/items column holding the item ID")
    train.add_argument("--time-col", default="timestamp", help="events column holding the time")
    train.add_argument("--value-col", help="events column holding a rating, price or dwell time")
    train.add_argument("--type-col", help="events column holding the event type")
    train.add_argument("--title-col", help="items column holding the title")
    train.add_argument("--categories-col", help="items column holding categories ('a|b' or a list)")
    train.add_argument("--description-col", help="items column holding a description")
    train.add_argument("--text-col", help="events column holding text (a review, a query)")
    train.add_argument(
        "--text-file",
        type=Path,
        help="a tags or reviews file with the events' user, item and time columns: a row matching an "
        "event (same user, item, time) gives it its text, any other row becomes an event of its own",
    )
    train.add_argument(
        "--text-file-col", default="text", help="the --text-file column holding the text (default text)"
    )
    train.add_argument(
        "--text-file-type",
        default="tag",
        help="event type of --text-file rows that match no event (default tag)",
    )
    train.add_argument(
        "--text-encoder",
        help="minilm (English, default), multilingual (e5: Chinese and ~100 "
        "more) or a sentence-transformers model directory; item text is fused with IDs "
        "when items have it",
    )
    train.add_argument(
        "--positive",
        help="which events count as interest, e.g. 'value>=4' (ratings) or 'event_type=purchase,cart'; "
        "the others are dropped and counted",
    )
    train.add_argument(
        "--min-user-events",
        type=int,
        default=0,
        help="keep users with at least N events (k-core, with items)",
    )
    train.add_argument(
        "--min-item-events",
        type=int,
        default=0,
        help="keep items with at least N events (k-core, with users)",
    )
    train.add_argument("--model", default="transformer", help="transformer (default), ease or popularity")
    train.add_argument(
        "--protocol",
        default="leave-one-out",
        help="leave-one-out (default), temporal, cold-start or next-n (each user's last 10 events are test)",
    )
    train.add_argument("--config", help="JSON object of model settings, e.g. '{\"max_epochs\": 20}'")
    train.add_argument(
        "--dp-epsilon",
        type=_positive_float,
        help="train with differential privacy (DP-SGD, each user one unit) spending this ε in all "
        "(transformer only; the dp_* settings in --config tune it)",
    )
    train.add_argument(
        "--dp-delta",
        type=_positive_float,
        help="δ of --dp-epsilon (default: a tenth of 1/users, at most 1e-5)",
    )
    train.add_argument("--out", type=Path, help="run directory to write")
    source.add_argument(
        "--resume",
        type=Path,
        metavar="RUN",
        help="train RUN again, from fresh weights, on its own data as it is now (after erasures) with the "
        "settings it recorded, and replace it (or write --out): the new weights owe nothing to erased users",
    )
    _add_device(train)

    evaluate = sub.add_parser("evaluate", help="test-set metrics of a run under its protocol")
    evaluate.set_defaults(handler="penchant.cli.commands:evaluate")
    evaluate.add_argument("--run", type=Path, required=True)
    evaluate.add_argument(
        "--k",
        type=_positive_int,
        nargs="+",
        default=None,
        help="cutoffs (default 10; 1 3 5 for --task next-interest)",
    )
    evaluate.add_argument(
        "--task",
        choices=("ranking", "next-interest"),
        default="ranking",
        help="ranking: next-item metrics (default); next-interest: predicted interests vs the test item's",
    )
    evaluate.add_argument("--exclude-seen", action="store_true", help="never rank items the user already has")
    evaluate.add_argument("--policy", help=f"re-rank with an exploration policy: {EXPLORE_POLICIES}")
    evaluate.add_argument("--explore", type=float, default=0.0, help="exploration knob in [0, 1] (default 0)")
    evaluate.add_argument(
        "--users",
        type=_positive_int,
        metavar="N",
        help="evaluate on a seeded sample of N test users (the protocol line says so): an estimate for a "
        "log too large to rank every user against the whole catalogue in the time you have",
    )
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")
    evaluate.add_argument(
        "--protocol", help="check that the run was trained under this protocol (e.g. cold-start)"
    )
    evaluate.add_argument(
        "--impressions",
        action="store_true",
        help="off-policy: estimate what the model (or --policy at --explore) would have earned on the "
        "recommendations a service logged in --db (IPS and SNIPS with intervals)",
    )
    evaluate.add_argument(
        "--db", help="with --impressions: the service's event store (default: beside the run)"
    )
    evaluate.add_argument(
        "--hours", type=_positive_float, help="with --impressions: only responses of the last this many hours"
    )
    _add_device(evaluate)

    recommend = sub.add_parser("recommend", help="top-k items for a user of a run")
    recommend.set_defaults(handler="penchant.cli.commands:recommend")
    recommend.add_argument("--run", type=Path, required=True)
    recommend.add_argument("--user", required=True)
    recommend.add_argument("-k", "--k", type=_positive_int, default=10)
    seen = recommend.add_mutually_exclusive_group()
    seen.add_argument(
        "--exclude-seen",
        action="store_true",
        default=None,
        help="never recommend items the user already has (the default where the training data shows "
        "people rarely come back to an item; run.json's seen_items says what was decided)",
    )
    seen.add_argument(
        "--include-seen", dest="exclude_seen", action="store_false", help="keep already-seen items in"
    )
    recommend.add_argument(
        "--unknown-user",
        choices=("popular", "error"),
        default="popular",
        help="a user with no events in the run: the most popular items (default, as the API answers; "
        "a note on stderr says so) or an error",
    )
    recommend.add_argument("--policy", help=f"re-rank with an exploration policy: {EXPLORE_POLICIES}")
    recommend.add_argument(
        "--explore", type=float, default=0.0, help="exploration knob in [0, 1] (default 0)"
    )
    recommend.add_argument("--json", action="store_true")
    _add_device(recommend)

    profile = sub.add_parser("profile", help="a user's interests: long term, short term, emerging, fading")
    profile.set_defaults(handler="penchant.cli.interests:profile")
    profile.add_argument("--run", type=Path, required=True)
    profile.add_argument("--user", required=True)
    profile.add_argument(
        "--half-life-days", type=float, default=180.0, help="long-term time decay (default 180)"
    )
    profile.add_argument(
        "--short-events", type=_positive_int, default=20, help="short term: the last N events (default 20)"
    )
    profile.add_argument(
        "--short-days", type=float, help="short term: the last D days instead of the last N events"
    )
    profile.add_argument(
        "--topics", type=_positive_int, help="number of text topics when items have no categories"
    )
    profile.add_argument("--plot", type=Path, help="write a PNG of the profile here")
    profile.add_argument("--json", action="store_true")
    _add_device(profile)

    explain = sub.add_parser(
        "explain", help="which past items and interests drove an item's score for a user"
    )
    explain.set_defaults(handler="penchant.cli.interests:explain")
    explain.add_argument("--run", type=Path, required=True)
    explain.add_argument("--user", required=True)
    explain.add_argument("--item", required=True)
    explain.add_argument("--top", type=_positive_int, default=10, help="past items to list (default 10)")
    explain.add_argument(
        "--topics", type=_positive_int, help="number of text topics when items have no categories"
    )
    explain.add_argument("--json", action="store_true")
    _add_device(explain)

    items = sub.add_parser("items", help="change a trained run's item catalogue")
    items_sub = items.add_subparsers(dest="items_command", required=True, metavar="ACTION")
    items_add = items_sub.add_parser(
        "add", help="add new items to a run without retraining (scored by their text)"
    )
    items_add.set_defaults(handler="penchant.cli.text:items_add")
    items_add.add_argument("--run", type=Path, required=True)
    items_add.add_argument(
        "--items",
        type=Path,
        required=True,
        help="new items (.csv, .tsv, .parquet or .jsonl, optionally compressed)",
    )
    items_add.add_argument("--item-col", default="item_id", help="column holding the item ID")
    items_add.add_argument("--title-col", help="column holding the title")
    items_add.add_argument("--description-col", help="column holding a description")
    items_add.add_argument("--categories-col", help="column holding categories ('a|b' or a list)")
    items_add.add_argument("--json", action="store_true")
    _add_device(items_add)

    demo = sub.add_parser("demo", help="the main job: train all models on ml-100k, compare, show a user")
    demo.set_defaults(handler="penchant.cli.commands:demo")
    demo.add_argument("--user", default=None, help="user to show (default: a fixed sample user)")
    demo.add_argument("--out", type=Path, default=Path("runs/demo"), help="where to save the transformer run")
    _add_device(demo)

    serve = sub.add_parser("serve", help="the HTTP API and dashboard over a run, with a durable event store")
    serve.set_defaults(handler="penchant.cli.serve:serve")
    serve.add_argument("--run", type=Path, required=True, help="run directory to serve (reloaded on SIGHUP)")
    serve.add_argument(
        "--db",
        help="event store URL: sqlite:///PATH (default: RUN.events.sqlite3 next to the run) "
        "or postgresql://USER@HOST:PORT/DATABASE",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=_positive_int, default=8000)
    serve.add_argument("--open", action="store_true", help="no API keys (loopback addresses only)")
    serve.add_argument(
        "--ann-threshold",
        type=_positive_int,
        default=50_000,
        help="serve catalogues of at least this many items through an ANN index (default 50000)",
    )
    serve.add_argument("--access-log", action="store_true", help="log every request")
    serve.add_argument(
        "--retain-days",
        type=float,
        help="delete stored events older than this many days, at start and hourly (default: keep)",
    )
    serve.add_argument(
        "--reward-window",
        type=float,
        default=1800.0,
        help="an event of a user this many seconds after a recommendation showed its item rewards "
        "that impression (default 1800; an event naming the response's request_id rewards it any time)",
    )
    serve.add_argument(
        "--unknown-users",
        choices=("popular", "404"),
        default="popular",
        help="a user with no usable stored events: the most popular items marked fallback (default) or 404",
    )
    _add_device(serve)

    forget = sub.add_parser(
        "forget",
        help="erase a user from a run directory and its event store (the right to erasure)",
        description="Erase one user: their events (and review text) from the run's data, their history "
        "and text vectors from its model, those texts from the embedding cache, and their stored events "
        "from the event store, which then refuses to import them again. The trained weights keep what "
        "the user taught them until the next penchant train.",
    )
    forget.set_defaults(handler="penchant.cli.serve:forget")
    forget.add_argument("--run", type=Path, required=True, help="the run directory")
    forget.add_argument("--user", required=True, help="the user's ID")
    forget.add_argument(
        "--db", help="event store URL, as given to penchant serve (default: the run's SQLite file, if any)"
    )

    keys = sub.add_parser("keys", help="API keys of a service's event store")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    keys_create = keys_sub.add_parser(
        "create", help="create a key and print it (once; only its hash is stored)"
    )
    keys_create.set_defaults(handler="penchant.cli.serve:keys_create")
    keys_create.add_argument("--db", help="event store URL, as given to penchant serve")
    keys_create.add_argument(
        "--run", type=Path, help="instead of --db: the run whose default SQLite store to use"
    )
    keys_create.add_argument(
        "--scope",
        required=True,
        choices=("read", "write", "admin"),
        help="read; write (also POST /events); admin (also erase users, add items, reload)",
    )
    keys_create.add_argument("--name", help="a note saying who the key is for")
    keys_create.add_argument(
        "--expires-in-days", type=float, help="the key stops working this many days from now (default: never)"
    )
    keys_list = keys_sub.add_parser(
        "list", help="every key's ID, scope, name, dates and state (never the key)"
    )
    keys_list.set_defaults(handler="penchant.cli.serve:keys_list")
    keys_revoke = keys_sub.add_parser("revoke", help="revoke a key by its ID (as keys list shows it)")
    keys_revoke.set_defaults(handler="penchant.cli.serve:keys_revoke")
    keys_revoke.add_argument("key_id", help="the key's ID: the 12 hex digits after pk_")
    for command in (keys_list, keys_revoke):
        command.add_argument("--db", help="event store URL, as given to penchant serve")
        command.add_argument(
            "--run", type=Path, help="instead of --db: the run whose default SQLite store to use"
        )
    keys_list.add_argument("--json", action="store_true", help="print JSON")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    module_name, function_name = args.handler.split(":")
    try:
        # Heavy imports (torch) happen only after the arguments parsed.
        handler = getattr(importlib.import_module(module_name), function_name)
        return handler(args)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug, not the user's mistake: still one line, and how to see more
        if os.environ.get("PENCHANT_DEBUG"):
            raise
        text = (str(exc).strip().splitlines() or [""])[0]
        print(
            f"error: internal error in 'penchant {args.command}' ({type(exc).__name__}: {text}); this is a "
            "bug: please report it with the command you ran (PENCHANT_DEBUG=1 shows the traceback)",
            file=sys.stderr,
        )
        return 1


def print_json(value) -> None:
    """Strict JSON on stdout: an undefined metric (NaN, e.g. no user qualifies) becomes null."""
    print(json.dumps(_finite(value), indent=2, ensure_ascii=False, allow_nan=False))


def _finite(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


if __name__ == "__main__":
    sys.exit(main())
