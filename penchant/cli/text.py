"""Commands for text and cold start: ``penchant items add`` and the ``--text-encoder`` switch of train."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from rich.console import Console

from penchant.cli.main import print_json
from penchant.data import ColumnMap, read_items
from penchant.errors import InputError
from penchant.models import Recommender
from penchant.runs import add_items_to_run, load_run
from penchant.text.encoders import ENCODERS

err = Console(stderr=True, soft_wrap=True)


def with_text_encoder(model: Recommender, name_or_path: str) -> Recommender:
    """The same model with its config's text encoder replaced (the transformer only)."""
    if "text_encoder" not in {f.name for f in dataclasses.fields(model.config)}:
        raise InputError(f"--text-encoder: the {model.name} model uses no text; use --model transformer")
    if name_or_path not in ENCODERS and not Path(name_or_path).expanduser().is_dir():
        raise InputError(
            f"--text-encoder: '{name_or_path}' is neither {' nor '.join(ENCODERS)} nor a model directory"
        )
    return type(model)(dataclasses.replace(model.config, text_encoder=name_or_path))


def items_add(args: argparse.Namespace) -> int:
    run = load_run(args.run, args.device)
    columns = ColumnMap(
        item_id=args.item_col,
        title=args.title_col,
        description=args.description_col,
        categories=args.categories_col,
    )
    items = read_items(args.items, columns)
    ids = add_items_to_run(run, items, source=str(args.items))
    err.print(
        f"added {len(ids)} items to {args.run} ({run.dataset.n_items} in the catalogue now); no retraining"
    )
    if args.json:
        print_json({"added": ids, "n_items": run.dataset.n_items})
    return 0
