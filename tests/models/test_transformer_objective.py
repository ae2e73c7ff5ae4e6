"""The interest transformer's objectives held against plain references that materialise everything:
dense (positions x catalogue) logits, a dense seen mask, cold items scored and masked afterwards.

The fast paths must give the same loss without ever building those tensors."""

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from penchant.data.dataset import Dataset, History
from penchant.models import InterestTransformer, TransformerConfig
from penchant.models.sequences import Sequences, batch_order, training_windows
from penchant.models.sequential import patience_epochs
from penchant.models.transformer import PAD, InterestTransformerNet, window_for


def reference_loss(
    net: InterestTransformerNet, batch, negatives: torch.Tensor | None, log_q=None
) -> torch.Tensor:
    """Cross-entropy the slow, obvious way: score every token at every position, add the repeat bias
    through a dense (N, V) seen mask, then keep the trained items (full) or target + negatives."""
    hidden = net.encode(batch)  # (B, T, C)
    rows, cols = (batch.targets != PAD).nonzero(as_tuple=True)
    wanted = batch.targets[rows, cols]
    vectors, bias = net.item_vectors(torch.arange(net.n_tokens))
    logits = hidden[rows, cols] @ vectors.T + bias  # (N, V)
    seen = torch.zeros_like(logits, dtype=torch.bool)
    for n, (r, c) in enumerate(zip(rows.tolist(), cols.tolist(), strict=True)):
        for token in batch.items[r, : c + 1].tolist():
            if token != PAD:
                seen[n, token] = True
    logits = logits + net.repeat * seen
    if log_q is not None:
        logits = logits - log_q[None, :]
    if negatives is None:
        allowed = net.known.clone()
        allowed[PAD] = False
        return F.cross_entropy(logits.masked_fill(~allowed, float("-inf")), wanted)
    out = []
    for n in range(len(wanted)):
        others = negatives[negatives != wanted[n]]
        row = torch.cat([logits[n, wanted[n]].view(1), logits[n, others]])
        out.append(-torch.log_softmax(row, 0)[0])
    return torch.stack(out).mean()


def repeating_dataset(n_users=30, n_items=40, cold=15, seed=0) -> Dataset:
    """Users who come back to items (so the repeat bias matters) over a catalogue whose last ``cold``
    items have no events at all."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        items = rng.integers(0, n_items - cold, size=int(rng.integers(8, 30)))
        rows += [(f"u{u}", f"i{i}", 1_600_000_000 + 60 * s) for s, i in enumerate(items)]
    events = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
    return Dataset.from_frames(events, pd.DataFrame({"item_id": [f"i{i}" for i in range(n_items)]}))


@pytest.fixture(scope="module")
def trained():
    dataset = repeating_dataset()
    config = TransformerConfig(dim=16, layers=1, max_len=8, max_epochs=2, threads=1, dropout=0.1)
    model = InterestTransformer(config).fit(dataset, progress=False)
    with torch.no_grad():
        model.net.repeat.fill_(0.7)  # far from zero, so a wrong seen mask shows
    return dataset, model


def some_batch(dataset, model, long_term_events=0):
    histories = list(dataset.histories().values())
    sequences = Sequences.from_histories(histories)
    windows = training_windows(sequences.lengths, model.window, np.random.default_rng(1))
    group = batch_order(windows, 16, np.random.default_rng(2))[0]
    return sequences.batch(windows.take(group), True, long_term_events)


@pytest.mark.parametrize("long_term", [0, 1000])
def test_full_softmax_matches_the_dense_reference(trained, long_term):
    dataset, model = trained
    batch = some_batch(dataset, model, long_term)
    model.net.eval()  # no dropout, so both see the same network
    with torch.no_grad():
        assert model.net(batch).item() == pytest.approx(
            reference_loss(model.net, batch, None).item(), rel=1e-5
        )


def test_sampled_softmax_matches_the_dense_reference(trained):
    dataset, model = trained
    batch = some_batch(dataset, model)
    known = model.net.known_tokens()
    negatives = torch.unique(
        known[torch.randint(len(known), (12,), generator=torch.Generator().manual_seed(0))]
    )
    # Some negatives are some rows' targets: those are accidental hits and must be masked per row.
    assert np.isin(negatives.numpy(), batch.targets.numpy()).any()
    model.net.eval()
    log_q = torch.log(torch.rand(model.net.n_tokens, generator=torch.Generator().manual_seed(1)))
    with torch.no_grad():
        fast = model.net(batch, negatives).item()
        assert fast == pytest.approx(reference_loss(model.net, batch, negatives).item(), rel=1e-5)
        corrected = model.net(batch, negatives, log_q).item()
        assert corrected != pytest.approx(fast, rel=1e-3)
        assert corrected == pytest.approx(reference_loss(model.net, batch, negatives, log_q).item(), rel=1e-5)


def test_cold_items_are_never_candidates_in_training(trained):
    dataset, model = trained
    batch = some_batch(dataset, model)
    model.net.eval()
    cold = ~model.net.known
    cold[PAD] = False
    assert cold.sum() == 15
    # Giving cold items huge output scores changes nothing: they are not in the softmax at all.
    with torch.no_grad():
        before = model.net(batch).item()
        model.net.item_bias.weight[cold] += 100.0
        after = model.net(batch).item()
        model.net.item_bias.weight[cold] -= 100.0
    assert after == pytest.approx(before, rel=1e-6)


def test_auto_objective_follows_the_number_of_trained_items():
    dataset = repeating_dataset()
    base = dict(dim=16, layers=1, max_len=8, max_epochs=1, threads=1)
    full = InterestTransformer(TransformerConfig(**base)).fit(dataset, progress=False)
    assert full.fit_stats.settings["loss"] == "full" and full.fit_stats.settings["trained_items"] == 25
    sampled = InterestTransformer(TransformerConfig(**base, full_softmax_items=20, negatives=8))
    sampled.fit(dataset, progress=False)
    assert sampled.fit_stats.settings["loss"] == "sampled" and sampled.fit_stats.settings["negatives"] == 8


@pytest.mark.parametrize("block", ["pre-ln", "gated"])
def test_each_block_kind_learns_the_cycle_and_reloads_as_itself(make_cycle_dataset, block, tmp_path):
    from penchant.data.split import split
    from penchant.evaluate.ranking import rank

    dataset = make_cycle_dataset(n_items=30, n_users=60)
    parts = split(dataset)
    config = TransformerConfig(
        dim=32, max_len=20, batch_size=32, threads=1, lr=3e-3, max_epochs=20, block=block
    )
    model = InterestTransformer(config).fit(dataset, parts.train, progress=False)
    top = rank(model, parts.test, 1)[:, 0]
    assert np.mean([t in wanted for t, wanted in zip(top, parts.test.targets, strict=True)]) >= 0.8
    model.save(tmp_path)
    loaded = InterestTransformer.load(tmp_path)
    assert type(loaded.net.blocks[0]) is type(model.net.blocks[0])
    np.testing.assert_allclose(
        loaded.score(parts.test.histories), model.score(parts.test.histories), atol=1e-5
    )


def test_sampled_softmax_learns_the_cycle(make_cycle_dataset):
    from penchant.data.split import split
    from penchant.evaluate.ranking import rank

    dataset = make_cycle_dataset(n_items=60, n_users=120)
    parts = split(dataset)
    config = TransformerConfig(
        dim=32,
        max_len=20,
        batch_size=32,
        threads=1,
        lr=3e-3,
        max_epochs=30,
        seed=0,
        dropout=0.3,  # a small model on a known answer: the default 0.5 is for real, sparse data
        loss="sampled",
        negatives=16,
    )
    model = InterestTransformer(config).fit(dataset, parts.train, progress=False)
    top = rank(model, parts.test, 1)[:, 0]
    assert np.mean([t in wanted for t, wanted in zip(top, parts.test.targets, strict=True)]) >= 0.8


# ---------------------------------------------------------------------------------------- windows
def reference_windows(lengths, window):
    """Every (user, start, end) the trainer may draw: the last window, then back from any offset."""
    return {(u, max(0, n - 1 - window), n - 1) for u, n in enumerate(lengths) if n >= 2}


def test_windows_cover_every_target_and_respect_the_window():
    lengths = np.array([0, 1, 2, 5, 9, 30, 31, 64])
    for seed in range(5):
        windows = training_windows(lengths, 8, np.random.default_rng(seed))
        covered = {}
        for u, s, e in zip(windows.users, windows.starts, windows.ends, strict=True):
            assert 0 <= s < e <= lengths[u] - 1 and e - s <= 8
            covered.setdefault(u, set()).update(range(s + 1, e + 1))
        for u, n in enumerate(lengths):
            assert covered.get(u, set()) == set(range(1, n)) if n >= 2 else u not in covered
        assert reference_windows(lengths, 8) <= set(
            zip(windows.users.tolist(), windows.starts.tolist(), windows.ends.tolist(), strict=True)
        )


def test_batch_gathers_inputs_targets_gaps_and_the_long_term_events():
    times = np.array([0.0, 10.0, 1000.0, 1001.0, 5000.0, 5001.0])
    histories = [History(np.array([3, 1, 4, 1, 5, 9]), times, "a"), History(np.array([2, 7]), times[:2], "b")]
    sequences = Sequences.from_histories(histories)
    windows = training_windows(sequences.lengths, 3, np.random.default_rng(0))
    batch = sequences.batch(windows, targets=True, long_term_events=2)
    for row, (u, s, e) in enumerate(zip(windows.users, windows.starts, windows.ends, strict=True)):
        items = histories[u].items
        n = e - s
        assert batch.items[row, :n].tolist() == (items[s:e] + 1).tolist()
        assert batch.targets[row, :n].tolist() == (items[s + 1 : e + 1] + 1).tolist()
        assert (batch.items[row, n:] == PAD).all() and (batch.targets[row, n:] == PAD).all()
        # The first event's gap is "no previous event" (1); later ones are relative to the previous.
        assert batch.gaps[row, 0].item() == (1 if s == 0 else 2 + int(np.log2(times[s] - times[s - 1] + 1)))
        before = batch.long_tokens[batch.long_rows == row].tolist()
        assert before == (items[max(0, s - 2) : s] + 1).tolist()


def test_window_comes_from_the_data_unless_given():
    config = TransformerConfig()
    assert window_for(np.full(100, 7), config) == 20  # short histories: the floor
    assert window_for(np.arange(0, 41), config) == 40  # the 90th percentile (36), rounded up to tens
    assert window_for(np.arange(0, 31), config) == 30
    assert window_for(np.full(100, 5000), config) == 50  # the cap
    assert window_for(np.full(100, 5000), TransformerConfig(max_len=37)) == 37


def test_patience_holds_enough_steps_on_small_data():
    config = TransformerConfig(batch_size=50, patience=10, patience_steps=500)
    # 1,000 histories of 10 events, window 20: one window each, 20 steps an epoch, so 25 epochs
    assert patience_epochs(np.full(1000, 10), 20, config) == 25
    # 100 histories: 2 steps an epoch, and the wait is capped at five times ``patience``
    assert patience_epochs(np.full(100, 10), 20, config) == 50
    # 100,000 histories: 2,000 steps an epoch, and ten epochs already hold 10,000 steps
    assert patience_epochs(np.full(100_000, 10), 20, config) == 10
    assert patience_epochs(np.full(1000, 10), 20, TransformerConfig(batch_size=50, patience_steps=0)) == 10


def test_training_waits_the_step_patience_before_stopping(make_cycle_dataset):
    from penchant.data.split import split

    dataset = make_cycle_dataset(n_items=30, n_users=40)
    parts = split(dataset)
    # 40 histories, batches of 20: a few steps an epoch, so 24 steps of patience are several epochs
    config = TransformerConfig(dim=16, max_len=20, batch_size=20, threads=1, patience=2, patience_steps=24)
    scores = iter(range(100, 0, -1))  # validation only ever gets worse after the first epoch
    model = InterestTransformer(config).fit(dataset, parts.train, lambda m: next(scores), progress=False)
    stats = model.fit_stats
    assert stats.settings["patience_epochs"] == -(-24 // stats.settings["steps_per_epoch"]) > 2
    assert stats.epochs == 1 + stats.settings["patience_epochs"]
    assert stats.best_epoch == 1


def test_long_term_summary_lets_events_outside_the_window_count():
    dataset = repeating_dataset()
    base = dict(dim=16, layers=1, max_len=4, max_epochs=2, threads=1)
    history = History(np.array([0, 1, 2, 3, 4, 5, 6, 7]), np.arange(8.0) * 60)
    other_past = History(np.array([9, 9, 9, 9, 4, 5, 6, 7]), np.arange(8.0) * 60)
    with_summary = InterestTransformer(TransformerConfig(**base)).fit(dataset, progress=False)
    assert not np.allclose(with_summary.score([history]), with_summary.score([other_past]))
    without = InterestTransformer(TransformerConfig(**base, long_term=False)).fit(dataset, progress=False)
    np.testing.assert_array_equal(without.score([history]), without.score([other_past]))


def test_histories_of_thousands_of_events_train_in_windows_with_a_bounded_summary():
    rng = np.random.default_rng(3)
    rows = [
        (f"u{u}", f"i{int(i)}", 1.6e9 + 60.0 * s)
        for u in range(4)
        for s, i in enumerate(rng.integers(0, 50, 3000))
    ]
    dataset = Dataset.from_frames(pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]))
    config = TransformerConfig(dim=16, layers=1, max_epochs=1, threads=1, long_term_events=100)
    model = InterestTransformer(config).fit(dataset, progress=False)
    assert model.window == 50  # the cap, though every history is 3,000 events long
    sequences = Sequences.from_histories(list(dataset.histories().values()))
    windows = training_windows(sequences.lengths, model.window, np.random.default_rng(0))
    assert len(windows) >= 4 * 3000 // 50 and (windows.ends - windows.starts).max() == 50
    batch = sequences.batch(windows, True, long_term_events=100)
    assert np.bincount(batch.long_rows.numpy()).max() == 100


def test_refit_learns_the_validation_events_and_never_a_test_target(make_cycle_dataset):
    from penchant.data.split import split
    from penchant.runs import fit_split

    dataset = make_cycle_dataset(n_users=40, n_items=20)
    # One more user whose second-to-last event (a validation target) is an item nobody else has.
    extra = pd.DataFrame(
        {"user_id": ["z"] * 4, "item_id": ["m00", "m01", "new", "m02"], "timestamp": [1.0, 2, 3, 4]}
    )
    events = pd.concat([dataset.events[["user_id", "item_id", "timestamp"]], extra], ignore_index=True)
    dataset = Dataset.from_frames(events)
    parts = split(dataset)
    new = dataset.item_map.index("new")
    pairs = set(zip(parts.before_test["user"], parts.before_test["item"], strict=True))
    assert (
        len(parts.before_test) == len(parts.train) + len(parts.validation)
        and (dataset.user_map.index("z"), new) in pairs
    )

    config = dict(dim=16, layers=1, max_len=8, max_epochs=3, threads=1)
    kept = InterestTransformer(TransformerConfig(**config, refit_epochs=0))
    fit_split(kept, dataset, parts, progress=False)
    assert not bool(kept.net.known[new + 1]) and kept.fit_stats.refit_epochs == 0
    refit = InterestTransformer(TransformerConfig(**config, refit_epochs=2))
    fit_split(refit, dataset, parts, progress=False)
    assert bool(refit.net.known[new + 1]) and refit.fit_stats.refit_epochs == 2
    assert refit.popularity[new] == 1 and refit.fit_stats.epochs == 3  # early-stopping epochs unchanged
    # Test targets stay unseen: the last event of every user is never in what the refit learnt from.
    last = dataset.events.groupby("user").tail(1)
    assert not set(zip(last["user"], last["timestamp"], strict=True)) & set(
        zip(parts.before_test["user"], parts.before_test["timestamp"], strict=True)
    )
