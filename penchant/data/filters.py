"""Which events count: a positive-interest rule and k-core filtering, applied at ingest and reported.

Events that fail the positive rule (a 1-star rating where ``value>=4`` is asked) are dropped, not
kept as negative signal: no model in penchant learns from dislikes yet, and a low rating counted as
interest is what the rule is there to prevent. Every step says in the cleaning report how many
events, users and items it removed.
"""

from __future__ import annotations

import operator
import re
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from penchant.data.schema import CleaningReport
from penchant.errors import InputError

_NUMERIC = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt, "=": operator.eq}
_NUMERIC["=="] = operator.eq
_NUMERIC["!="] = operator.ne
_RULE = re.compile(r"^\s*(value|event_type)\s*(>=|<=|==|!=|=|>|<)\s*(.+?)\s*$")


@dataclass(frozen=True)
class Filters:
    """``min_user_events`` / ``min_item_events``: keep only users and items with at least that many
    events, repeated until both hold (k-core); ``positive``: the events that count as interest,
    ``value>=4`` (any of >=, >, <=, <, =, !=) or ``event_type=purchase,cart`` (= or !=, a list)."""

    min_user_events: int = 0
    min_item_events: int = 0
    positive: str | None = None

    def __post_init__(self) -> None:
        for name in ("min_user_events", "min_item_events"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InputError(f"--{name.replace('_', '-')}: expected a whole number >= 0, got {value!r}")
        if self.positive is not None:
            _parse(self.positive)

    @property
    def active(self) -> bool:
        return bool(self.min_user_events or self.min_item_events or self.positive)

    def to_dict(self) -> dict:
        return asdict(self)


def _parse(rule: str) -> tuple[str, str, object]:
    match = _RULE.match(rule)
    if not match:
        raise InputError(
            f"--positive: cannot read '{rule}'; expected e.g. 'value>=4' or 'event_type=purchase,cart'"
        )
    column, op, operand = match.groups()
    if column == "value":
        try:
            return column, op, float(operand)
        except ValueError:
            raise InputError(
                f"--positive: '{rule}': expected a number after '{op}', got '{operand}'"
            ) from None
    if op not in ("=", "==", "!="):
        raise InputError(f"--positive: '{rule}': event_type takes = or != and a list of types")
    return column, op, {t.strip() for t in operand.split(",") if t.strip()}


def positive_mask(events: pd.DataFrame, rule: str) -> np.ndarray:
    """Which events the rule keeps; an event without the column's value does not count."""
    column, op, operand = _parse(rule)
    if column == "value":
        values = events["value"].to_numpy(dtype=float)
        if np.isnan(values).all():
            raise InputError(
                f"--positive '{rule}': the events have no values (say which column holds them with --value-col)"
            )
        with np.errstate(invalid="ignore"):
            return _NUMERIC[op](values, operand) & ~np.isnan(values)
    types = events["event_type"]
    if types.isna().all():
        raise InputError(
            f"--positive '{rule}': the events have no event types (say which column holds them with --type-col)"
        )
    inside = types.isin(operand).to_numpy()
    return ~inside & types.notna().to_numpy() if op == "!=" else inside


def apply_filters(events: pd.DataFrame, filters: Filters, report: CleaningReport) -> pd.DataFrame:
    """The events that pass ``filters`` (canonical columns), each step counted in ``report``."""
    if filters.positive:
        keep = positive_mask(events, filters.positive)
        report.notes.append(
            f"positive events ({filters.positive}): kept {int(keep.sum())}, dropped {int((~keep).sum())}"
        )
        events = events[keep]
    if filters.min_user_events or filters.min_item_events:
        before = (len(events), events["user_id"].nunique(), events["item_id"].nunique())
        rounds = 0
        while True:
            rounds += 1
            users = events.groupby("user_id")["user_id"].transform("size")
            items = events.groupby("item_id")["item_id"].transform("size")
            keep = (users >= filters.min_user_events) & (items >= filters.min_item_events)
            if keep.all():
                break
            events = events[keep.to_numpy()]
        after = (len(events), events["user_id"].nunique(), events["item_id"].nunique())
        report.notes.append(
            f"k-core (users with >= {filters.min_user_events} events, items with >= "
            f"{filters.min_item_events}; {rounds} rounds): dropped {before[0] - after[0]} events, "
            f"{before[1] - after[1]} users, {before[2] - after[2]} items"
        )
    if len(events) == 0:
        raise InputError(f"no events left after filtering ({'; '.join(report.notes)})")
    return events
