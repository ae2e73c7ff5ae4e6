"""The suite every model must pass, run over each class in ``penchant.models.MODELS``.

A new model registered there is covered automatically; its config is shrunk by :func:`small_config`
so that the suite stays fast (every setting named in ``FAST`` that the config has is overridden).
"""

import json
from dataclasses import fields

import numpy as np
import pytest

from penchant.data.dataset import History
from penchant.errors import InputError
from penchant.models import MODELS, load_model

# Small, fast settings for whichever of these fields a model's config has.
FAST = {
    "dim": 32,
    "layers": 1,
    "heads": 2,
    "max_len": 20,
    "batch_size": 32,
    "max_epochs": 4,
    "patience": 2,
    "max_seconds": 30.0,
    "threads": 1,
}


def small_config(model_class, **overrides):
    names = {f.name for f in fields(model_class.config_class)}
    values = {k: v for k, v in {**FAST, **overrides}.items() if k in names}
    return model_class.config_class(**values)


def fit(model_class, dataset, **overrides):
    return model_class(small_config(model_class, **overrides)).fit(dataset, progress=False)


@pytest.fixture(scope="module", params=list(MODELS.values()), ids=list(MODELS))
def model_class(request):
    return request.param


@pytest.fixture(scope="module")
def fitted(model_class, cycle_dataset):
    return fit(model_class, cycle_dataset)


def all_users(dataset) -> list[str]:
    return list(dataset.user_map.ids)


def assert_same_ranking(a, b, tol=1e-5):
    """Equal lists up to float noise: batched and single scoring may round differently, which can swap
    items whose scores tie (e.g. items symmetric in a user's history) but nothing else."""
    np.testing.assert_allclose([r.score for r in a], [r.score for r in b], rtol=tol, atol=tol)
    score_a, score_b = {r.item_id: r.score for r in a}, {r.item_id: r.score for r in b}
    for item in score_a.keys() ^ score_b.keys():  # only a tie at the cutoff may differ
        assert abs(score_a.get(item, score_b.get(item)) - a[-1].score) <= tol
    for item in score_a.keys() & score_b.keys():
        assert score_a[item] == pytest.approx(score_b[item], rel=tol, abs=tol)


def item_ids_of(model, history: History) -> set[str]:
    return {model.item_map.ids[i] for i in history.items}


# ---------------------------------------------------------------------------------------- config
def test_config_round_trips_through_json(model_class):
    for config in (model_class.config_class(), small_config(model_class)):
        restored = model_class.config_class.from_dict(json.loads(json.dumps(config.to_dict())))
        assert restored == config


def test_config_rejects_unknown_setting(model_class):
    values = {**model_class.config_class().to_dict(), "no_such_setting": 1}
    with pytest.raises(InputError, match="no_such_setting"):
        model_class.config_class.from_dict(values)


# ---------------------------------------------------------------------------------------- persistence
def test_save_load_gives_identical_recommendations(fitted, cycle_dataset, tmp_path):
    fitted.save(tmp_path)
    for loaded in (type(fitted).load(tmp_path), load_model(tmp_path)):
        assert type(loaded) is type(fitted)
        assert loaded.config == fitted.config
        users = all_users(cycle_dataset)
        assert loaded.recommend_batch(users, k=10) == fitted.recommend_batch(users, k=10)
        assert loaded.recommend(users[0], k=5, exclude_seen=True) == fitted.recommend(
            users[0], k=5, exclude_seen=True
        )
        histories = [fitted.history_of(u) for u in users[:5]] + [History.empty()]
        np.testing.assert_array_equal(loaded.score(histories), fitted.score(histories))
        explicit = ["m03", "m04", "m05"]
        assert loaded.recommend(history=explicit, k=5) == fitted.recommend(history=explicit, k=5)


# ---------------------------------------------------------------------------------------- inputs
def test_an_unknown_user_gets_the_popular_items_or_an_error_naming_them(fitted):
    assert not fitted.knows("nobody-here") and fitted.knows("u000")
    popular = [fitted.item_map.ids[i] for i in np.argsort(-fitted.popularity, kind="stable")[:5]]
    assert [r.item_id for r in fitted.recommend("nobody-here", k=5)] == popular
    assert [r.item_id for r in fitted.recommend_batch(["u000", "nobody-here"], k=5)["nobody-here"]] == popular
    with pytest.raises(InputError, match="nobody-here"):
        fitted.recommend("nobody-here", unknown_user="error")
    with pytest.raises(InputError, match="nobody-here"):
        fitted.recommend_batch(["u000", "nobody-here"], unknown_user="error")
    with pytest.raises(InputError, match="unknown_user"):
        fitted.recommend("u000", unknown_user="maybe")


def test_unknown_item_in_history_raises_input_error_naming_it(fitted):
    with pytest.raises(InputError, match="no-such-item"):
        fitted.recommend(history=["m01", "no-such-item"])


def test_k_below_one_raises_input_error(fitted):
    with pytest.raises(InputError):
        fitted.recommend("u000", k=0)


def test_empty_history_gives_k_catalogue_items(fitted, cycle_dataset):
    recs = fitted.recommend(history=History.empty(), k=5)
    ids = [r.item_id for r in recs]
    assert len(ids) == 5 and len(set(ids)) == 5
    assert set(ids) <= set(cycle_dataset.item_map.ids)


# ---------------------------------------------------------------------------------------- output
def test_recommendations_are_external_ids_with_titles(fitted, cycle_dataset):
    titles = dict(zip(cycle_dataset.item_map.ids, cycle_dataset.titles(), strict=True))
    recs = fitted.recommend("u000", k=10)
    assert len(recs) == 10
    for rec in recs:
        assert isinstance(rec.item_id, str) and rec.item_id in titles
        assert rec.title == titles[rec.item_id] and rec.title is not None
        assert isinstance(rec.score, float) and np.isfinite(rec.score)
    scores = [r.score for r in recs]
    assert scores == sorted(scores, reverse=True)


def test_k_larger_than_catalogue_returns_at_most_the_catalogue(fitted, cycle_dataset):
    recs = fitted.recommend("u000", k=10 * cycle_dataset.n_items)
    ids = [r.item_id for r in recs]
    assert len(ids) == len(set(ids)) == cycle_dataset.n_items


def test_batch_equals_single_recommendations(fitted, cycle_dataset):
    users = all_users(cycle_dataset)
    batch = fitted.recommend_batch(users, k=5)
    assert list(batch) == users
    for user in users:
        assert_same_ranking(batch[user], fitted.recommend(user, k=5))


def test_exclude_seen_never_returns_history_items(fitted, cycle_dataset):
    n_items = cycle_dataset.n_items
    batch = fitted.recommend_batch(all_users(cycle_dataset), k=n_items, exclude_seen=True)
    for user, recs in batch.items():
        seen = item_ids_of(fitted, fitted.history_of(user))
        ids = {r.item_id for r in recs}
        assert not ids & seen
        # Everything not seen is still recommended (users who saw the whole catalogue get nothing).
        assert len(recs) == n_items - len(seen)


# ---------------------------------------------------------------------------------------- training
def test_same_seed_gives_identical_recommendations(model_class, cycle_dataset):
    users = all_users(cycle_dataset)
    first = fit(model_class, cycle_dataset, max_epochs=2).recommend_batch(users, k=10)
    second = fit(model_class, cycle_dataset, max_epochs=2).recommend_batch(users, k=10)
    assert first == second


def test_loss_goes_down(fitted):
    losses = fitted.fit_stats.losses
    if not losses:
        # Only closed-form models (no torch network) may train without a loss curve.
        assert not hasattr(fitted, "net"), f"{fitted.name} trains a network but recorded no losses"
        return
    assert len(losses) == fitted.fit_stats.epochs >= 2
    assert all(np.isfinite(losses))
    assert losses[-1] < losses[0]


def test_ease_refuses_a_catalogue_whose_matrices_do_not_fit_before_trying(cycle_dataset, monkeypatch):
    from collections import namedtuple

    import penchant.models.memory as memory
    from penchant.errors import InputError
    from penchant.models import EASE
    from penchant.models.ease import ease_bytes

    assert ease_bytes(57_289) / 2**30 > 100  # Amazon Beauty's catalogue: far beyond this machine
    free = namedtuple("Memory", "available")(ease_bytes(cycle_dataset.n_items) - 1)
    monkeypatch.setattr(memory.psutil, "virtual_memory", lambda: free)
    with pytest.raises(InputError, match=r"ease on 20 items .* GiB of memory .* use --model transformer"):
        EASE().fit(cycle_dataset, progress=False)
    monkeypatch.undo()
    assert EASE().fit(cycle_dataset, progress=False).weights.shape == (20, 20)


def test_model_save_writes_a_run_every_command_opens_but_evaluate_refuses(cycle_dataset, tmp_path):
    from penchant.models import Popularity, load_model
    from penchant.runs import load_run
    from tests.clitools import assert_one_line_error, penchant

    model = Popularity().fit(cycle_dataset, progress=False)
    model.save(tmp_path / "m")
    user = next(iter(cycle_dataset.user_map.ids))
    run = load_run(tmp_path / "m")
    assert run.model.recommend(user, k=5) == model.recommend(user, k=5)
    assert len(run.dataset.events) == len(cycle_dataset.events)
    assert load_model(tmp_path / "m").recommend(user, k=5) == model.recommend(user, k=5)
    shown = penchant("recommend", "--run", str(tmp_path / "m"), "--user", user, "--k", "5", "--json")
    assert shown.returncode == 0, shown.stderr
    assert [r["item_id"] for r in json.loads(shown.stdout)] == [r.item_id for r in model.recommend(user, k=5)]
    # No held-out split is recorded, so there is nothing honest to evaluate.
    assert_one_line_error(
        penchant("evaluate", "--run", str(tmp_path / "m")), "saved by model.save", "train_run"
    )


def test_a_model_loaded_from_disk_saves_alone_and_the_cli_says_why(cycle_dataset, tmp_path):
    from penchant.errors import InputError
    from penchant.models import Popularity, load_model
    from penchant.runs import load_run

    Popularity().fit(cycle_dataset, progress=False).save(tmp_path / "run")
    load_model(tmp_path / "run").save(tmp_path / "bare")  # its data is not at hand
    assert (tmp_path / "bare" / "model.json").exists() and not (tmp_path / "bare" / "run.json").exists()
    with pytest.raises(InputError, match=r"saved without its data .*train_run"):
        load_run(tmp_path / "bare")
