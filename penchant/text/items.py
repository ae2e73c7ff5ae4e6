"""Item text from catalogue columns, by a template such as ``"{title}, {year}. {categories}. {description}"``.

Missing parts are skipped cleanly: a field whose value is missing or empty disappears together with
the separator written before it, so ``"{title}, {year}. {categories}. {description}"`` gives
``"Heat, 1995. Crime"`` for an item without a description, never ``"Heat, 1995. Crime. "``, and
``"Heat. Crime"`` in a catalogue without years.
"""

from __future__ import annotations

import string

import numpy as np
import pandas as pd

from penchant.errors import InputError

# The year matters more than it looks: on ml-100k, whose titles carry no year, it is what lets text
# rank held-out movies (people watch the new releases together); a catalogue without it skips it.
DEFAULT_TEMPLATE = "{title}, {year}. {categories}. {description}"
ITEM_TEXT_FIELDS = ("title", "description", "categories")  # what counts as an item having text
OPTIONAL_FIELDS = (*ITEM_TEXT_FIELDS, "year")  # template fields a catalogue may lack


def item_texts(items: pd.DataFrame, template: str = DEFAULT_TEMPLATE) -> list[str]:
    """One text per catalogue row (in row order) from ``title``, ``description``, ``categories``
    (joined with ", ") or any other column the template names."""
    pieces = _parse(template)
    columns = set(items.columns) | {"item_id"}
    for _, field in pieces:
        if field is not None and field not in columns and field not in OPTIONAL_FIELDS:
            raise InputError(f"item text template names column '{field}', which the catalogue does not have")
    frame = items.reset_index() if "item_id" not in items.columns else items
    values = {
        field: frame[field].tolist() if field in frame.columns else [None] * len(frame)
        for _, field in pieces
        if field is not None
    }
    out = []
    for row in range(len(frame)):
        text, first = pieces[0][0] if pieces[0][1] is not None else "", True
        trailing = pieces[-1][0] if pieces[-1][1] is None else ""
        for literal, field in pieces:
            if field is None:
                continue
            value = _as_text(values[field][row])
            if not value:
                continue
            if not first:
                separator = literal
                if text[-1:] in ".!?" and separator[:1] == ".":
                    separator = separator[1:]  # "Heat!. Crime" -> "Heat! Crime"
                text += separator
            text += value
            first = False
        if not first and not (trailing[:1] == "." and text[-1:] in ".!?"):
            text += trailing
        out.append(text.strip())
    return out


def has_item_text(items: pd.DataFrame) -> bool:
    """Whether any catalogue row has a non-empty title, description or categories."""
    for field in ITEM_TEXT_FIELDS:
        if field in items.columns and any(_as_text(v) for v in items[field]):
            return True
    return False


def _parse(template: str) -> list[tuple[str, str | None]]:
    """(literal before, field) pairs; a final (literal, None) holds trailing text."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise InputError(f"item text template '{template}': {exc}") from None
    pieces = [(literal, field) for literal, field, _, _ in parsed]
    if not any(field for _, field in pieces):
        raise InputError(f"item text template '{template}' names no column, e.g. '{{title}}'")
    if pieces[-1][1] is not None:
        pieces.append(("", None))
    return pieces


def _as_text(value) -> str:
    if value is None or value is pd.NA:
        return ""
    if isinstance(value, float | np.floating):
        if np.isnan(value):
            return ""
        if float(value).is_integer():  # a year read as 1995.0 next to a missing value
            return str(int(value))
    if isinstance(value, list | tuple | np.ndarray):
        return ", ".join(str(v).strip() for v in value if v is not None and str(v).strip())
    return str(value).strip()
