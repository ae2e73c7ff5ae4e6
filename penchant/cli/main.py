"""The ``penchant`` command: thin parsing and formatting over the library.

A user's mistake (missing file, wrong column, malformed row, unknown user) ends with one line on
stderr, ``error: ...``, and exit status 2; never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path

from penchant.errors import InputError


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got '{text}'") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="penchant", description="Learn what people are interested in and predict what they want next."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    # Each command names its handler as "module:function", imported only when that command runs.
    train = sub.add_parser("train", help="train a model on a built-in dataset or your own files")
    train.set_defaults(handler="penchant.cli.commands:train")
    source = train.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", help="built-in dataset name (ml-100k)")
    source.add_argument("--events", type=Path, help="events file (.csv, .tsv, .parquet or .jsonl)")
    train.add_argument("--items", type=Path, help="item catalogue file")
    train.add_argument("--users", type=Path, help="user attributes file")
    train.add_argument("--user-col", default="user_id", help="events column holding the user ID")
    train.add_argument("--item-col", default="item_id", help="events/items column holding the item ID")
    train.add_argument("--time-col", default="timestamp", help="events column holding the time")
    train.add_argument("--value-col", help="events column holding a rating, price or dwell time")
    train.add_argument("--type-col", help="events column holding the event type")
    train.add_argument("--title-col", help="items column holding the title")
    train.add_argument("--categories-col", help="items column holding categories ('a|b' or a list)")
    train.add_argument("--model", default="transformer", help="transformer (default), ease or popularity")
    train.add_argument("--protocol", default="leave-one-out", help="leave-one-out (default) or temporal")
    train.add_argument("--config", help="JSON object of model settings, e.g. '{\"max_epochs\": 20}'")
    train.add_argument("--out", type=Path, required=True, help="run directory to write")

    evaluate = sub.add_parser("evaluate", help="test-set metrics of a run under its protocol")
    evaluate.set_defaults(handler="penchant.cli.commands:evaluate")
    evaluate.add_argument("--run", type=Path, required=True)
    evaluate.add_argument("--k", type=_positive_int, nargs="+", default=[10], help="cutoffs (default 10)")
    evaluate.add_argument("--exclude-seen", action="store_true", help="never rank items the user already has")
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")

    recommend = sub.add_parser("recommend", help="top-k items for a user of a run")
    recommend.set_defaults(handler="penchant.cli.commands:recommend")
    recommend.add_argument("--run", type=Path, required=True)
    recommend.add_argument("--user", required=True)
    recommend.add_argument("-k", "--k", type=_positive_int, default=10)
    recommend.add_argument("--exclude-seen", action="store_true")
    recommend.add_argument("--json", action="store_true")

    demo = sub.add_parser("demo", help="the main job: train all models on ml-100k, compare, show a user")
    demo.set_defaults(handler="penchant.cli.commands:demo")
    demo.add_argument("--user", default=None, help="user to show (default: a fixed sample user)")
    demo.add_argument("--out", type=Path, default=Path("runs/demo"), help="where to save the transformer run")
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


def print_json(value) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    sys.exit(main())
