"""The real-time service: HTTP API, durable event store, online user state, retrieval, dashboard.

``from penchant.serve import Settings, create_app``; the app (and torch) load on first use, so the
``keys`` command and the database layer stay quick to import.
"""

from penchant.serve.settings import Settings

__all__ = ["Settings", "create_app"]


def __getattr__(name: str):
    if name == "create_app":
        from penchant.serve.app import create_app

        return create_app
    raise AttributeError(f"module 'penchant.serve' has no attribute '{name}'")
