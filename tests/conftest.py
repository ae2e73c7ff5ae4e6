"""Shared fixtures. Keep this file small; add fixtures at the end."""

import numpy as np
import pandas as pd
import pytest

from penchant.data.dataset import Dataset


def cycle_item_id(position: int, n_items: int) -> str:
    """External ID of the item at ``position`` (taken modulo ``n_items``) of the cycle."""
    return f"m{position % n_items:02d}"


def build_cycle_dataset(
    n_users: int = 60, n_items: int = 20, min_len: int = 10, max_len: int = 25, seed: int = 0
) -> Dataset:
    """Synthetic dataset with a known answer: every user walks the same cycle, so item ``m{i}`` is
    always followed by ``m{(i+1) % n_items}``. Each user starts at a random item, with 60-second steps.

    The catalogue is given in shuffled order, so internal indices differ from cycle positions and a
    model that confuses the two cannot pass.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        start, length = int(rng.integers(n_items)), int(rng.integers(min_len, max_len + 1))
        t0 = 1_600_000_000 + 3600 * u
        rows += [(f"u{u:03d}", cycle_item_id(start + s, n_items), t0 + 60 * s) for s in range(length)]
    events = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
    order = rng.permutation(n_items)
    items = pd.DataFrame(
        {"item_id": [cycle_item_id(i, n_items) for i in order], "title": [f"Title {i}" for i in order]}
    )
    return Dataset.from_frames(events, items, name="cycle")


@pytest.fixture(scope="session")
def make_cycle_dataset():
    """The cycle-dataset builder, for tests that need other sizes."""
    return build_cycle_dataset


@pytest.fixture(scope="session")
def cycle_dataset() -> Dataset:
    """60 users walking a 20-item cycle (see :func:`build_cycle_dataset`). Do not modify."""
    return build_cycle_dataset()


@pytest.fixture(scope="session")
def chat_url():
    """A fake OpenAI-compatible chat endpoint on loopback (tests/llm.py)."""
    from tests.llm import serve_chat

    url, server = serve_chat()
    yield url
    server.shutdown()
