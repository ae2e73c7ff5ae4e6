"""Item-vector providers: unit rows, co-occurrence that reflects who consumed what, model embeddings."""

from __future__ import annotations

import numpy as np

from penchant.data.dataset import History
from penchant.explore import ItemVectors, cooccurrence_vectors, item_vectors_for, model_item_embeddings
from penchant.models import EASE


def test_from_array_gives_unit_rows_and_keeps_empty_rows_zero():
    vectors = ItemVectors.from_array(np.array([[3.0, 4.0], [0.0, 0.0]]))
    assert np.allclose(vectors.vectors, [[0.6, 0.8], [0.0, 0.0]])
    assert np.allclose(vectors.similarity(np.array([0, 0])), 1.0)


def test_cooccurrence_puts_items_consumed_together_close():
    # Items 0-2 are consumed by one group of users, 3-5 by another.
    histories = [History(np.array([0, 1, 2]), np.zeros(3))] * 5 + [
        History(np.array([3, 4, 5]), np.zeros(3))
    ] * 5
    vectors = cooccurrence_vectors(histories, 7, dim=4)
    sim = vectors.similarity(np.arange(6))
    assert sim[0, 1] > 0.9 and sim[3, 4] > 0.9
    assert abs(sim[0, 3]) < 0.1
    assert np.allclose(vectors.vectors[6], 0.0)  # never consumed: no information


def test_the_model_embeddings_are_used_when_the_model_exposes_them(cycle_dataset):
    class WithEmbeddings:
        name = "fake"

        def item_embeddings(self):
            return np.arange(6.0).reshape(3, 2)

    assert model_item_embeddings(WithEmbeddings()).shape == (3, 2)
    ease = EASE().fit(cycle_dataset, progress=False)
    assert model_item_embeddings(ease) is None
    fallback = item_vectors_for(ease)
    assert fallback.source == "co-occurrence" and fallback.n_items == cycle_dataset.n_items
    assert item_vectors_for(ease, text_vectors=np.ones((cycle_dataset.n_items, 3))).source == "text"


def test_large_cooccurrence_takes_a_sparse_truncated_svd_with_the_same_answer(monkeypatch):
    import penchant.explore.vectors as vectors_module

    rng = np.random.default_rng(3)
    histories = [
        History(rng.choice(60, size=rng.integers(3, 15), replace=False), np.zeros(1)) for _ in range(200)
    ]
    exact = cooccurrence_vectors(histories, 60, dim=8)
    monkeypatch.setattr(vectors_module, "DENSE_SVD_CELLS", 0)  # as if the matrix were too large
    truncated = cooccurrence_vectors(histories, 60, dim=8)
    items = np.arange(60)
    assert np.allclose(exact.similarity(items), truncated.similarity(items), atol=1e-3)


def test_appended_vectors_share_the_rows_and_leave_the_old_ones_as_they_were():
    """Adding items to a served catalogue appends their vectors: the result is unit rows, the vectors
    appended to stay as they were (requests still read them), and the next append writes into the room
    the first one made instead of copying every row again."""
    old = ItemVectors.from_array(np.arange(1.0, 41.0).reshape(20, 2))
    first = old.appended(np.array([[3.0, 4.0]]))
    second = first.appended(np.array([[0.0, 0.0], [0.0, 2.0]]))

    assert old.n_items == 20 and (first.n_items, second.n_items) == (21, 23)
    np.testing.assert_allclose(second.vectors[:20], old.vectors)
    np.testing.assert_allclose(second.vectors[20:], [[0.6, 0.8], [0.0, 0.0], [0.0, 1.0]])
    assert np.shares_memory(first.vectors, second.vectors)  # written into the room, not copied
    assert not np.shares_memory(old.vectors, first.vectors)  # old had no room: copied once
    np.testing.assert_allclose(first.vectors[20], [0.6, 0.8])  # the second append left it alone
