"""penchant: learn what people are interested in, predict what they want next, and serve it.

The package is laid out along the data flow (see DESIGN.md):
``data`` -> ``models`` -> ``evaluate``, with ``cli`` as a thin shell over all of them.
"""

import os

# Torch's CPU tensors of 2 MB and more in transparent huge pages, as numpy's already are (read by torch
# once, at its first allocation, so only when penchant is imported before torch, as the CLI is). At a
# million items each (users x items) block of scores is hundreds of MB, and faulting it in 4 KB pages
# cost more than computing it: ranking 256 users over 10^6 items took 15-17 s instead of 22-25 s.
os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")

from penchant.errors import InputError  # noqa: E402 (after the allocator setting)

__all__ = ["InputError"]
__version__ = "0.1.0"
