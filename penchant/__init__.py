"""penchant: learn what people are interested in, predict what they want next, and serve it.

The package is laid out along the data flow (see DESIGN.md):
``data`` -> ``models`` -> ``evaluate``, with ``cli`` as a thin shell over all of them.
"""

from penchant.errors import InputError

__all__ = ["InputError"]
__version__ = "0.1.0"
