"""Fixtures of the model tests."""

import pytest


@pytest.fixture(scope="module")
def cycle_files(tmp_path_factory, make_cycle_dataset):
    """A folder holding events.csv: 80 users walking a 20-item cycle (see tests/conftest.py)."""
    folder = tmp_path_factory.mktemp("cycle")
    data = make_cycle_dataset(n_users=80, n_items=20)
    data.events[["user_id", "item_id", "timestamp"]].to_csv(folder / "events.csv", index=False)
    return folder
