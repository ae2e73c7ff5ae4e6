"""Memory a model will need, checked against what the machine has free before the model tries."""

from __future__ import annotations

import psutil

from penchant.errors import InputError

GIB = 2**30


def require_memory(needed_bytes: float, what: str, alternative: str) -> None:
    """One-line :class:`InputError` when ``needed_bytes`` exceed the memory free now, naming the
    estimate, what needs it and what to use instead; nothing otherwise."""
    free = psutil.virtual_memory().available
    if needed_bytes > free:
        raise InputError(
            f"{what} needs about {needed_bytes / GIB:.1f} GiB of memory and {free / GIB:.1f} GiB is free; "
            f"{alternative}"
        )
