"""Already-seen items: left out of recommendations by default unless the training data shows people
coming back to items; the decision is the run's, recorded, and a caller can override it."""

import numpy as np
import pandas as pd
import pytest

from penchant.data.dataset import Dataset, History
from penchant.models import Popularity
from penchant.models.base import REPEAT_SHARE_TO_KEEP_SEEN, repeat_share


def dataset(repeats: bool) -> Dataset:
    """Five users over ten items; with ``repeats`` every user comes back to their first item twice."""
    rows = []
    for u in range(5):
        items = [f"i{(u + s) % 10}" for s in range(6)]
        if repeats:
            items += [items[0], items[0]]
        rows += [(f"u{u}", item, 100.0 * s) for s, item in enumerate(items)]
    return Dataset.from_frames(pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]))


def test_repeat_share_counts_events_that_return_to_an_item():
    histories = [History(np.array([1, 2, 1, 1]), np.arange(4.0)), History(np.array([3]), np.zeros(1))]
    assert repeat_share(histories) == pytest.approx(2 / 3)  # 2 of the 3 events after a first one
    assert repeat_share([]) == 0.0


@pytest.mark.parametrize("repeats", [False, True])
def test_the_default_follows_the_training_data_and_can_be_overridden(repeats, tmp_path):
    model = Popularity().fit(dataset(repeats), progress=False)
    assert model.excludes_seen is (not repeats)
    assert (model.repeat_share >= REPEAT_SHARE_TO_KEEP_SEEN) is repeats
    seen = {model.item_map.ids[i] for i in model.history_of("u0").items}
    default = {r.item_id for r in model.recommend("u0", k=10)}
    assert bool(default & seen) is repeats
    assert not {r.item_id for r in model.recommend("u0", k=10, exclude_seen=True)} & seen
    assert {r.item_id for r in model.recommend("u0", k=10, exclude_seen=False)} >= seen
    decision = model.seen_items_decision()
    assert decision["excluded_by_default"] is (not repeats)
    model.save(tmp_path)
    assert Popularity.load(tmp_path).excludes_seen is model.excludes_seen
