"""The cold-start protocol: a seeded share of items held out of training entirely, tested on each
user's first event on one of them."""

import numpy as np
import pandas as pd
import pytest

from penchant.data.dataset import Dataset
from penchant.data.split import Protocol, held_out_items, split
from penchant.errors import InputError
from penchant.evaluate.ranking import RandomScores, evaluate
from penchant.evaluate.report import evaluate_run
from penchant.models import InterestTransformer, ModelConfig, TransformerConfig
from penchant.runs import load_run, train_run


def random_dataset(n_users=80, n_items=60, length=15, seed=3) -> Dataset:
    rng = np.random.default_rng(seed)
    rows = [
        (f"u{u}", f"i{int(rng.integers(n_items))}", 1_600_000_000 + 3600 * u + 60 * s)
        for u in range(n_users)
        for s in range(length)
    ]
    items = pd.DataFrame(
        {
            "item_id": [f"i{i}" for i in range(n_items + 5)],  # 5 items nobody touches
            "title": [f"Item number {i}" for i in range(n_items + 5)],
        }
    )
    return Dataset.from_frames(pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]), items)


@pytest.fixture(scope="module")
def data():
    return random_dataset()


@pytest.fixture(scope="module")
def parts(data):
    return split(data, Protocol(name="cold-start"))


def test_held_out_items_are_a_seeded_share_of_the_items_with_events(data):
    protocol = Protocol(name="cold-start")
    held = held_out_items(data, protocol)
    active = np.unique(data.events["item"])
    assert len(held) == round(0.1 * len(active)) and set(held) <= set(active)
    np.testing.assert_array_equal(held, held_out_items(data, Protocol(name="cold-start")))
    assert set(held) != set(held_out_items(data, Protocol(name="cold-start", seed=1)))
    assert len(held_out_items(data, Protocol(name="cold-start", test_fraction=0.2))) == round(
        0.2 * len(active)
    )
    assert Protocol(**protocol.to_dict()) == protocol


def test_no_event_on_a_held_out_item_is_trained_or_validated_on(data, parts):
    held = set(held_out_items(data, parts.protocol))
    assert not held & set(parts.train["item"])
    for history, targets in zip(parts.validation.histories, parts.validation.targets, strict=True):
        assert not held & set(history.items) and not held & set(targets)
    # Validation targets are each user's last warm event, absent from training.
    train_keys = set(zip(parts.train["user"], parts.train["timestamp"], strict=True))
    histories = data.histories()
    for user, targets in zip(parts.validation.users, parts.validation.targets, strict=True):
        full = histories[int(user)]
        warm = [j for j, i in enumerate(full.items) if i not in held]
        assert targets[0] == full.items[warm[-1]]
        assert (int(user), full.times[warm[-1]]) not in train_keys


def test_test_targets_are_each_users_first_held_out_item(data, parts):
    held = set(held_out_items(data, parts.protocol))
    histories = data.histories()
    assert len(parts.test) > 0
    for user, history, targets in zip(
        parts.test.users, parts.test.histories, parts.test.targets, strict=True
    ):
        full = histories[int(user)]
        first = next(j for j, i in enumerate(full.items) if i in held)
        assert len(targets) == 1 and targets[0] == full.items[first] and targets[0] in held
        np.testing.assert_array_equal(history.items, full.items[:first])  # everything before it, all warm
        assert len(history) > 0 and not held & set(history.items)
    users_with_held = {u for u, h in histories.items() if held & set(h.items)}
    assert len(parts.test) + sum("no test case" in n for n in parts.notes) >= 1
    assert len(parts.test) <= len(users_with_held)


def test_protocol_is_described_and_checked():
    described = Protocol(name="cold-start", seed=4).describe(exclude_seen=False)
    assert (
        described["name"] == "cold-start" and described["seed"] == 4 and described["held_out_fraction"] == 0.1
    )
    assert "held out of training entirely" in described["description"]
    with pytest.raises(InputError, match="unknown protocol"):
        Protocol(name="cold")


def test_random_baseline_is_chance_level(data, parts):
    model = RandomScores(ModelConfig(seed=0)).fit(data, parts.train, progress=False)
    hr = np.mean(
        [
            evaluate(
                RandomScores(ModelConfig(seed=s)).fit(data, parts.train, progress=False),
                parts.test,
                parts.protocol,
                (10,),
            )["metrics"]["hr@10"]
            for s in range(30)
        ]
    )
    assert hr == pytest.approx(10 / data.n_items, abs=0.05)
    assert model.score([parts.test.histories[0]]).shape == (1, data.n_items)


def test_evaluating_a_cold_start_run_reports_a_random_baseline(data, tmp_path):
    config = TransformerConfig(dim=32, layers=1, max_len=20, max_epochs=2, threads=1)
    train_run(data, InterestTransformer(config), tmp_path, Protocol(name="cold-start"), progress=False)
    run = load_run(tmp_path)
    assert run.protocol.name == "cold-start"
    result = evaluate_run(run, ks=(10,))
    assert result["protocol"]["name"] == "cold-start" and "random" in result["protocol"]["baseline"]
    assert set(result["baseline"]) == set(result["metrics"])
    assert result["baseline"]["hr@10"] == pytest.approx(10 / data.n_items, abs=0.05)
