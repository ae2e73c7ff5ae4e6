"""The data contract: which columns events, items and users have, and how a user's file maps onto them.

Inside penchant every table uses the canonical column names below; a :class:`ColumnMap` says which
column of the user's own file holds each of them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

# Canonical columns. External IDs are always strings.
EVENT_REQUIRED = ("user_id", "item_id", "timestamp")
EVENT_OPTIONAL = ("event_type", "value", "text")
ITEM_REQUIRED = ("item_id",)
ITEM_OPTIONAL = ("title", "description", "categories")
USER_REQUIRED = ("user_id",)


@dataclass(frozen=True)
class ColumnMap:
    """Which column of an input file holds each canonical field.

    ``None`` for an optional field means "use the column of the canonical name if present".
    """

    user_id: str = "user_id"
    item_id: str = "item_id"
    timestamp: str = "timestamp"
    event_type: str | None = None
    value: str | None = None
    text: str | None = None
    title: str | None = None
    description: str | None = None
    categories: str | None = None
    # The field delimiter of CSV/TSV files; None: from the extension (",", or a tab for .tsv/.txt).
    sep: str | None = None

    def source_for(self, canonical: str) -> str:
        """The file's column name for a canonical field."""
        mapped = getattr(self, canonical, None)
        return mapped if mapped is not None else canonical

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class CleaningReport:
    """What cleaning did to the input, so that nothing is dropped silently."""

    events_read: int = 0
    events_kept: int = 0
    duplicates_dropped: int = 0
    missing_dropped: dict[str, int] = field(default_factory=dict)
    unknown_items_dropped: int = 0
    items_read: int = 0
    duplicate_items_dropped: int = 0
    users_read: int = 0
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """Human-readable summary, one finding per line."""
        out = [f"events: {self.events_read} read, {self.events_kept} kept"]
        if self.duplicates_dropped:
            out.append(
                f"dropped {self.duplicates_dropped} duplicate events (same user, item, time, type and text)"
            )
        for column, n in self.missing_dropped.items():
            out.append(f"dropped {n} events with no {column}")
        if self.unknown_items_dropped:
            out.append(f"dropped {self.unknown_items_dropped} events whose item is not in the item catalogue")
        if self.items_read:
            out.append(f"items: {self.items_read} read")
        if self.duplicate_items_dropped:
            out.append(f"dropped {self.duplicate_items_dropped} repeated item rows (kept the first)")
        if self.users_read:
            out.append(f"users: {self.users_read} read")
        out.extend(self.notes)
        return out

    def to_dict(self) -> dict:
        return asdict(self)
