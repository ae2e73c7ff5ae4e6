"""Model-specific known answers on tiny synthetic data, where the right recommendation is obvious."""

import numpy as np
import pandas as pd
import pytest
import torch

from penchant.data.dataset import Dataset
from penchant.data.split import split
from penchant.evaluate.metrics import per_user_metrics
from penchant.evaluate.ranking import rank
from penchant.models import EASE, EASEConfig, InterestTransformer, Popularity, TransformerConfig
from penchant.models.training import LoopSettings, run_training


def small_transformer(**overrides) -> InterestTransformer:
    settings = dict(dim=32, max_len=20, batch_size=32, threads=1, lr=3e-3, max_epochs=20, seed=0)
    return InterestTransformer(TransformerConfig(**{**settings, **overrides}))


def hit_rate_at_1(model, cases) -> float:
    return float(per_user_metrics(rank(model, cases, 1), cases.targets, 1)["hr"].mean())


def frames_dataset(rows: list[tuple[str, str, float]], item_ids: list[str]) -> Dataset:
    events = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
    items = pd.DataFrame({"item_id": item_ids, "title": [f"Title {i}" for i in item_ids]})
    return Dataset.from_frames(events, items)


# ---------------------------------------------------------------------------------------- transformer
@pytest.fixture(scope="module")
def cycle_split(cycle_dataset):
    return split(cycle_dataset)


def test_transformer_learns_the_cycle(cycle_dataset, cycle_split):
    model = small_transformer().fit(cycle_dataset, cycle_split.train, progress=False)
    # Leave-one-out: the held-out last item of every user is the one after the user's last seen item.
    assert hit_rate_at_1(model, cycle_split.test) >= 0.8
    # The same through the public API, in external IDs, from histories no user had.
    for start in range(0, 20, 3):
        history = [f"m{(start + j) % 20:02d}" for j in range(3)]
        assert model.recommend(history=history, k=1)[0].item_id == f"m{(start + 3) % 20:02d}"


def test_popularity_cannot_solve_the_cycle(cycle_dataset, cycle_split):
    # Guards the fixture: the known answer needs the order of events, not just their counts.
    model = Popularity().fit(cycle_dataset, cycle_split.train, progress=False)
    assert hit_rate_at_1(model, cycle_split.test) < 0.3


# ---------------------------------------------------------------------------------------- popularity
def test_popularity_ranks_items_by_count_then_catalogue_order():
    counts = {"p1": 1, "p2": 5, "p3": 3, "p4": 4, "p5": 0, "p6": 3}
    rows = [(f"u{j}", item, float(j)) for item, n in counts.items() for j in range(n)]
    rows.append(("u0", "p1", 100.0))  # a repeat counts too: p1 has 2 events
    model = Popularity().fit(frames_dataset(rows, list(counts)), progress=False)

    recs = model.recommend(history=[], k=len(counts))
    assert [r.item_id for r in recs] == ["p2", "p4", "p3", "p6", "p1", "p5"]
    assert [r.score for r in recs] == pytest.approx([5, 4, 3, 3, 2, 0], abs=1e-6)
    assert recs[0].title == "Title p2"
    # Every user gets the same list, minus what they have seen when asked to exclude it (u3: p2, p4).
    assert [r.item_id for r in model.recommend("u3", k=3, exclude_seen=True)] == ["p3", "p6", "p1"]


def test_popularity_counts_only_training_events():
    rows = [("u0", "a", 0.0), ("u1", "a", 0.0), ("u0", "b", 1.0), ("u1", "b", 1.0), ("u2", "b", 1.0)]
    dataset = frames_dataset(rows, ["a", "b"])
    model = Popularity().fit(dataset, dataset.events[dataset.events["item_id"] == "a"], progress=False)
    assert [r.item_id for r in model.recommend(history=[], k=2)] == ["a", "b"]


# ---------------------------------------------------------------------------------------- EASE
@pytest.fixture(scope="module")
def block_dataset() -> Dataset:
    """Two disjoint item blocks; every user stays in one block, always has its first two items and
    one other item of the block at random."""
    rng = np.random.default_rng(0)
    rows = []
    for u in range(40):
        block = "ab"[u % 2]
        others = [f"{block}{i}" for i in rng.choice(np.arange(2, 6), size=1)]
        for t, item in enumerate([f"{block}0", f"{block}1", *others]):
            rows.append((f"u{u:02d}", item, float(t)))
    return frames_dataset(rows, [f"{block}{i}" for block in "ab" for i in range(6)])


@pytest.mark.parametrize("l2", [1.0, 300.0])
def test_ease_recommends_within_the_users_block(block_dataset, l2):
    model = EASE(EASEConfig(l2=l2)).fit(block_dataset, progress=False)
    for user in block_dataset.user_map.ids:
        history = model.history_of(user)
        block = model.item_map.ids[history.items[0]][0]
        recs = model.recommend(user, k=3, exclude_seen=True)  # 3 unseen items are left in the block
        assert {r.item_id[0] for r in recs} == {block}
        assert all(r.score > 0 for r in recs)
    # The item that always co-occurs comes first; the other block scores nothing.
    recs = model.recommend(history=["a0"], k=12, exclude_seen=False)  # a0 itself scores too
    assert recs[0].item_id == "a1"
    assert [r.item_id[0] for r in recs[:6]] == ["a"] * 6
    assert all(abs(r.score) < 1e-6 for r in recs[6:])


def test_ease_with_validation_keeps_the_best_ridge_strength(block_dataset):
    config = EASEConfig(l2_grid=(1.0, 10.0, 100.0))
    values = iter([0.2, 0.9, 0.5])
    model = EASE(config).fit(block_dataset, validate=lambda m: next(values), progress=False)
    assert model.l2 == 10.0
    assert model.fit_stats.best_epoch == 2 and model.fit_stats.validation_curve == [0.2, 0.9, 0.5]
    reference = EASE(EASEConfig(l2=10.0)).fit(block_dataset, progress=False)
    np.testing.assert_array_equal(model.weights, reference.weights)


# ---------------------------------------------------------------------------------------- early stopping
class Counter(torch.nn.Module):
    """A toy module whose single parameter records the epoch that last wrote it."""

    def __init__(self):
        super().__init__()
        self.epoch = torch.nn.Parameter(torch.zeros(()))


def toy_training(scores: list[float], patience: int, max_epochs: int = 20):
    module = Counter()
    curve = iter(scores)

    def run_epoch(epoch: int) -> float:
        with torch.no_grad():
            module.epoch.fill_(epoch)
        return 1.0 / epoch

    stats = run_training(
        module, run_epoch, lambda: next(curve), LoopSettings(max_epochs, patience, 60.0, progress=False)
    )
    return module, stats


def test_early_stopping_stops_after_patience_and_restores_the_best_epoch():
    module, stats = toy_training([0.1, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0], patience=3)
    assert stats.epochs == 5  # best at 2, then 3 epochs without improvement
    assert stats.best_epoch == 2 and stats.best_validation == 0.5
    assert stats.validation_curve == [0.1, 0.5, 0.4, 0.3, 0.2]
    assert stats.losses == pytest.approx([1, 1 / 2, 1 / 3, 1 / 4, 1 / 5])
    assert module.epoch.item() == 2  # parameters are the best epoch's, not the last


def test_early_stopping_patience_resets_on_improvement():
    module, stats = toy_training([0.1, 0.0, 0.2, 0.1, 0.3, 0.2, 0.1, 0.0], patience=2)
    assert stats.epochs == 7 and stats.best_epoch == 5 and module.epoch.item() == 5


def test_training_without_validation_runs_every_epoch_and_keeps_the_last():
    module = Counter()

    def run_epoch(epoch: int) -> float:
        with torch.no_grad():
            module.epoch.fill_(epoch)
        return 1.0

    stats = run_training(module, run_epoch, None, LoopSettings(4, 1, 60.0, progress=False))
    assert stats.epochs == stats.best_epoch == 4 and stats.validation_curve is None
    assert module.epoch.item() == 4


def test_transformer_early_stopping_restores_the_first_epoch(cycle_dataset):
    # Validation only gets worse, so the model must end with its epoch-1 parameters, which are those
    # of a one-epoch fit with the same seed (validation draws no random numbers).
    values = iter(np.linspace(1.0, 0.0, 50))
    stopped = small_transformer(max_epochs=50, patience=2, patience_steps=0).fit(
        cycle_dataset, validate=lambda m: next(values), progress=False
    )
    assert stopped.fit_stats.epochs == 3 and stopped.fit_stats.best_epoch == 1
    one_epoch = small_transformer(max_epochs=1).fit(cycle_dataset, progress=False)
    users = list(cycle_dataset.user_map.ids)
    histories = [stopped.history_of(u) for u in users]
    np.testing.assert_array_equal(stopped.score(histories), one_epoch.score(histories))


# ---------------------------------------------------------------------------------------- budgets
def test_by_default_training_runs_until_early_stopping():
    scores = [0.01 * e for e in range(1, 301)] + [0.0] * 10  # improves for 300 epochs, then never
    module, stats = toy_training(scores, patience=10, max_epochs=None)
    assert stats.epochs == 310 and stats.best_epoch == 300 and module.epoch.item() == 300
    assert stats.stopped_by == "early stopping" and stats.converged and not stats.still_improving
    assert stats.budget_note() is None
    assert len(stats.epoch_seconds) == 310 and stats.seconds_per_epoch > 0


def test_a_budget_that_ends_training_early_says_so():
    module, stats = toy_training([0.1, 0.2, 0.3, 0.4], patience=3, max_epochs=3)
    assert stats.stopped_by == "epoch budget" and not stats.converged and stats.still_improving
    note = stats.budget_note()
    assert "epoch budget after 3 epochs" in note and "undertrained" in note
    module = Counter()
    stats = run_training(
        module, lambda epoch: 1.0, lambda: 0.5, LoopSettings(None, 5, max_seconds=1e-9, progress=False)
    )
    assert stats.epochs == 1 and stats.stopped_by == "time budget" and stats.still_improving


def test_training_without_validation_needs_an_epoch_budget():
    from penchant.errors import InputError

    with pytest.raises(InputError, match="max_epochs"):
        run_training(Counter(), lambda epoch: 1.0, None, LoopSettings(None, 5, progress=False))


def test_config_values_of_the_wrong_type_or_range_are_refused_by_name():
    from penchant.errors import InputError

    for bad, name in (
        ({"max_epochs": "20"}, "max_epochs"),
        ({"heads": 3}, "heads"),
        ({"batch_size": 0}, "batch_size"),
        ({"dropout": 2}, "dropout"),
        ({"long_term": "yes"}, "long_term"),
        ({"loss": "bpr"}, "loss"),
        ({"negatives": 2.5}, "negatives"),
    ):
        with pytest.raises(InputError, match=name):
            TransformerConfig.from_dict(bad)
    assert TransformerConfig.from_dict({"max_epochs": None, "lr": 1}).lr == 1
