"""The benchmarks' synthetic log generator, small: a Parquet directory penchant reads as one source,
with the shape the benchmark relies on."""

import importlib.util
import sys
from pathlib import Path

import numpy as np

from penchant.data import load_dataset

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "synthetic.py"


def synthetic():
    # Loaded from its file: an installed package called "benchmarks" may shadow the repository's folder.
    spec = importlib.util.spec_from_file_location("penchant_synthetic_log", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_a_synthetic_log_is_a_parquet_directory_of_users_with_sessions_in_their_interests(tmp_path):
    gen = synthetic()
    shape = gen.LogShape.scaled(5_000, seed=3)
    assert (shape.n_users, shape.n_items) == (100, 500)
    columns = gen.generate(shape)
    user, times, interest = columns["user_id"], columns["timestamp"], columns["interest"]
    assert len(user) == 5_000 and np.all(np.diff(user) >= 0)
    assert np.all(np.diff(times)[np.diff(user) == 0] >= 0)  # each user's events in time order
    # Events a minute apart stay in one interest; each user's events come from their few interests.
    close = (np.diff(user) == 0) & (np.diff(times) < 600)
    assert (np.diff(interest)[close] == 0).mean() > 0.9
    assert max(len(np.unique(interest[user == u])) for u in range(shape.n_users)) <= shape.interests_per_user
    counts = np.bincount(columns["item_id"], minlength=shape.n_items)
    assert counts.max() > 10 * max(1, np.median(counts))  # power-law popularity
    assert np.bincount(user).max() > 5 * np.median(np.bincount(user))  # a few very active users

    directory = gen.write(shape, tmp_path / "log", rows_per_file=2_000)
    assert sorted(p.name for p in directory.iterdir()) == [
        "_SUCCESS",
        "part-00000.parquet",
        "part-00001.parquet",
        "part-00002.parquet",
    ]
    dataset = load_dataset(directory)
    assert len(dataset.events) + dataset.report.duplicates_dropped == 5_000
    assert dataset.n_users == shape.n_users
