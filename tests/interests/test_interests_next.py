"""Next-interest prediction and its evaluation, against hand-computed answers."""

import numpy as np
import pandas as pd
import pytest

from penchant.data.dataset import Dataset, History
from penchant.data.split import split
from penchant.errors import InputError
from penchant.evaluate.next_interest import (
    evaluate_next_interest,
    per_user_interest_metrics,
    target_interests,
)
from penchant.interests import Taxonomy, history_frequency, interest_probabilities, top_interests
from penchant.models.base import ModelConfig, Recommender


def reference_prf(predicted: list[int], relevant: set[int], k: int) -> tuple[float, float, float]:
    """Plain reference for precision, recall and F1 at k of one interest list."""
    hits = len(set(predicted[:k]) & relevant)
    p, r = hits / k, hits / len(relevant)
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def test_interest_probabilities_sum_item_probabilities_per_interest():
    membership = np.array([[1, 0], [0.5, 0.5], [0, 1]], dtype=np.float32)  # item 1 has both interests
    taxonomy = Taxonomy(names=["x", "y"], membership=membership)
    scores = np.log(np.array([[0.2, 0.3, 0.5]]))
    # P(x) = p0 + p1, P(y) = p1 + p2: membership shares do not matter, having the tag does.
    assert interest_probabilities(scores, taxonomy) == pytest.approx(np.array([[0.5, 0.8]]))


def test_history_frequency_counts_tags_and_breaks_ties_by_catalogue_share():
    membership = np.array([[1, 0, 0], [0, 1, 0], [0, 1, 0], [0, 0, 1]], dtype=np.float32)
    taxonomy = Taxonomy(names=["x", "y", "z"], membership=membership)
    scores = history_frequency([History(np.array([0, 3, 0]), np.zeros(3)), History.empty()], taxonomy)
    assert top_interests(scores, 3).tolist() == [[0, 2, 1], [1, 0, 2]]


def test_per_user_metrics_match_the_reference():
    rng = np.random.default_rng(0)
    top = np.array([rng.permutation(8) for _ in range(30)])
    targets = [rng.choice(8, size=rng.integers(1, 4), replace=False) for _ in range(30)]
    for k in (1, 3, 5):
        got = per_user_interest_metrics(top, targets, k)
        for u in range(30):
            expected = reference_prf(top[u].tolist(), set(targets[u].tolist()), k)
            assert (got["precision"][u], got["recall"][u], got["f1"][u]) == pytest.approx(expected)


# ------------------------------------------------------------------------------- end to end, known answer
N_ITEMS = 12


def genre(i: int) -> str:
    # The cycle visits 3 items of each of 4 genres in turn: g0 g0 g0 g1 g1 g1 ...
    return f"g{(i // 3) % 4}"


def cycle_with_genres() -> Dataset:
    rng = np.random.default_rng(0)
    rows = []
    for u in range(30):
        start, length = int(rng.integers(N_ITEMS)), int(rng.integers(8, 20))
        rows += [(f"u{u}", f"m{(start + s) % N_ITEMS}", 1_600_000_000 + 60 * s) for s in range(length)]
    items = pd.DataFrame(
        {"item_id": [f"m{i}" for i in range(N_ITEMS)], "categories": [[genre(i)] for i in range(N_ITEMS)]}
    )
    return Dataset.from_frames(pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]), items)


class NextInCycle(Recommender):
    """Knows the answer: scores the item after the last one high, everything else low."""

    name = "next-in-cycle"
    config_class = ModelConfig

    def _fit(self, dataset, train_events, validate, progress):
        self.after = self.item_map.indices([f"m{(int(i[1:]) + 1) % N_ITEMS}" for i in self.item_map.ids])

    def score(self, histories):
        out = np.zeros((len(histories), self.n_items), dtype=np.float32)
        for row, h in enumerate(histories):
            out[row, self.after[h.items[-1]]] = 20.0
        return out


def test_a_model_that_knows_the_next_item_beats_the_frequency_baseline():
    data = cycle_with_genres()
    parts = split(data)
    taxonomy = Taxonomy.from_categories(data)
    model = NextInCycle().fit(data, parts.train, progress=False)
    result = evaluate_next_interest(model, taxonomy, parts.test, parts.protocol, ks=(1, 3))
    assert result["task"] == "next-interest" and result["n_users"] == 30
    assert result["metrics"]["precision@1"] == pytest.approx(1.0)
    assert result["metrics"]["recall@3"] == pytest.approx(1.0)
    assert result["baseline"]["precision@1"] < 0.7
    assert result["metrics"]["f1@3"] > result["baseline"]["f1@3"]
    assert (
        set(result["baseline"])
        == set(result["metrics"])
        == {f"{m}@{k}" for m in ("precision", "recall", "f1") for k in (1, 3)}
    )
    assert result["protocol"]["name"] == "leave-one-out" and "baseline" in result["protocol"]

    # The targets are the test item's interests.
    targets = target_interests(parts.test, taxonomy)
    first = parts.test.targets[0][0]
    assert [taxonomy.names[j] for j in targets[0]] == [genre(int(data.item_map.ids[first][1:]))]

    with pytest.raises(InputError, match="interests"):
        evaluate_next_interest(model, taxonomy, parts.test, parts.protocol, ks=(5,))


def test_a_row_with_every_item_excluded_gets_the_catalogue_mix():
    taxonomy = Taxonomy(names=["x", "y"], membership=np.array([[1, 0], [1, 0], [0, 1]], dtype=np.float32))
    probabilities = interest_probabilities(np.full((1, 3), -np.inf), taxonomy)
    assert probabilities == pytest.approx(np.array([[2 / 3, 1 / 3]]))
