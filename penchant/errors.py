"""Errors that are the user's to fix.

Anything raised as :class:`InputError` is shown to people as a single line (the CLI prints
``error: <message>`` and exits 2), so the message must say what is wrong and where: file, line or
row, column, request field.
"""


class InputError(ValueError):
    """Bad input from the user: a missing file, a wrong column, a malformed row, an unknown ID."""


def where(source: str, line: int | None = None, column: str | None = None) -> str:
    """Format a location such as ``events.csv, line 12, column 'timestamp'``."""
    parts = [source]
    if line is not None:
        parts.append(f"line {line}")
    if column is not None:
        parts.append(f"column '{column}'")
    return ", ".join(parts)
