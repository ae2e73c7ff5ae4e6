"""Occlusion explanations: exact on a linear model, sensible on a trained transformer, faithful."""

import numpy as np
import pandas as pd
import pytest

from penchant.data.dataset import Dataset, History
from penchant.data.split import split
from penchant.errors import InputError
from penchant.explain import explain, faithfulness, occlusion_weights
from penchant.interests import Taxonomy
from penchant.models import InterestTransformer, TransformerConfig
from penchant.models.base import ModelConfig, Recommender

N = 6


class Linear(Recommender):
    """score(h)[j] = sum over the events t of h of W[h_t, j]: every event's contribution is known."""

    name = "linear"
    config_class = ModelConfig
    score_calls = 0

    def _fit(self, dataset, train_events, validate, progress):
        self.w = np.random.default_rng(3).normal(size=(self.n_items, self.n_items)).astype(np.float32)

    def score(self, histories):
        Linear.score_calls += 1
        return np.stack(
            [self.w[h.items].sum(axis=0) if len(h) else np.zeros(self.n_items, np.float32) for h in histories]
        )


@pytest.fixture(scope="module")
def linear_setup():
    events = pd.DataFrame(
        {"user_id": ["u"] * N, "item_id": [f"i{i}" for i in range(N)], "timestamp": np.arange(N) * 60.0}
    )
    items = pd.DataFrame(
        {
            "item_id": [f"i{i}" for i in range(N)],
            "title": [f"T{i}" for i in range(N)],
            "categories": [["a"], ["b"], ["a", "b"], ["c"], ["a"], ["c"]],
        }
    )
    data = Dataset.from_frames(events, items)
    return Linear().fit(data, progress=False), Taxonomy.from_categories(data), data


def test_weights_are_each_events_exact_contribution(linear_setup):
    model, taxonomy, data = linear_setup
    history = model.history_of("u")
    calls = Linear.score_calls
    weights, scores = occlusion_weights(model, history, item=2)
    assert (
        Linear.score_calls == calls + 2
    )  # the history, then every occluded one in one batch (small catalogue)
    assert weights == pytest.approx(model.w[history.items, 2], abs=1e-5)
    assert scores[2] == pytest.approx(model.w[history.items, 2].sum(), abs=1e-5)


def test_explanation_ranks_items_and_sums_interests(linear_setup):
    model, taxonomy, data = linear_setup
    result = explain(model, taxonomy, "i4", user_id="u", top=3)
    contributions = model.w[model.history_of("u").items, data.item_map.index("i4")]
    assert [c.weight for c in result.items] == pytest.approx(
        sorted(contributions, reverse=True)[:3], abs=1e-5
    )
    assert result.items[0].item_id == f"i{int(np.argmax(contributions))}"
    # Interest a = items 0 and 4 fully, item 2 half.
    a = {w.interest: w.weight for w in result.interests}["a"]
    assert a == pytest.approx(contributions[0] + contributions[4] + 0.5 * contributions[2], abs=1e-5)
    assert sum(w.weight for w in result.interests) == pytest.approx(contributions.sum(), abs=1e-4)
    out = result.to_dict()
    assert {"user_id", "item_id", "score", "rank", "items", "interests", "method"} <= set(out)
    assert out["items"][0]["interests"] and "occlusion" in out["method"]


def test_unknown_item_or_user_is_an_input_error(linear_setup):
    model, taxonomy, _ = linear_setup
    with pytest.raises(InputError, match="unknown item 'zz'"):
        explain(model, taxonomy, "zz", user_id="u")
    with pytest.raises(InputError, match="unknown user 'nobody'"):
        explain(model, taxonomy, "i1", user_id="nobody")


def test_faithfulness_on_the_linear_model(linear_setup):
    model, _, _ = linear_setup
    history = model.history_of("u")
    case = faithfulness(model, history, item=1, n_remove=2, n_random=20)
    top_two = np.sort(model.w[history.items, 1])[-2:].sum()
    assert case.drop_top == pytest.approx(top_two, abs=1e-5)
    assert case.passed
    # Reusing the occlusion weights gives the same answer with one score call instead of two.
    occlusion = occlusion_weights(model, history, item=1)
    calls = Linear.score_calls
    again = faithfulness(model, history, item=1, n_remove=2, n_random=20, occlusion=occlusion)
    assert again == case and Linear.score_calls == calls + 1
    # Drawn from the last 3 events only, the random removals are a different, known set.
    recent = faithfulness(model, history, item=1, n_remove=2, n_random=20, random_from_last=3)
    assert recent.drop_top == case.drop_top and recent.drop_random != case.drop_random
    with pytest.raises(ValueError):
        faithfulness(model, History(history.items[:2], history.times[:2]), item=1, n_remove=2)


def test_on_a_trained_transformer_the_last_item_drives_the_next_one(cycle_dataset):
    # In the cycle, m{i+1} follows m{i}: the model's recommendation must rest on the last item.
    model = InterestTransformer(
        TransformerConfig(dim=32, max_len=20, batch_size=32, threads=1, lr=3e-3, max_epochs=20, seed=0)
    )
    model.fit(cycle_dataset, split(cycle_dataset).train, progress=False)
    groups = [int(i[1:]) // 5 for i in model.item_map.ids]  # 4 interests of 5 consecutive cycle items
    taxonomy = Taxonomy(names=["g0", "g1", "g2", "g3"], membership=np.eye(4, dtype=np.float32)[groups])
    passed = 0
    for start in range(0, 20, 2):
        ids = [f"m{(start + j) % 20:02d}" for j in range(6)]
        history = History(model.item_map.indices(ids), 60.0 * np.arange(6))
        target = model.recommend(history=ids, k=1)[0].item_id
        result = explain(model, taxonomy, target, history=history, user_id="anyone")
        assert result.items[0].item_id == ids[-1]
        assert result.interests[0].interest == f"g{int(ids[-1][1:]) // 5}"
        passed += faithfulness(model, history, model.item_map.index(target), n_remove=2).passed
    assert passed >= 8


def test_scoring_only_some_items_matches_the_full_rows_in_any_chunking(linear_setup):
    model, _, _ = linear_setup
    history = model.history_of("u")
    histories = [history.take(slice(0, n)) for n in range(1, len(history) + 1)]
    items = np.array([4, 0, 2])
    full = model.score(histories)[:, items]
    assert model.score_items(histories, items) == pytest.approx(full)
    assert model.score_items(histories, items, rows=2) == pytest.approx(full)
