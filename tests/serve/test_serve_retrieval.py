"""Retrieval: the vector form of the transformer's scores, and the ANN path held against exact scoring."""

import time

import numpy as np
import pytest
import torch

from penchant.data.dataset import History
from penchant.runs import load_run
from penchant.serve.retrieval import AnnRetriever, ExactRetriever, build_retriever


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # As the service runs it: one request's small forward pass is fastest on one thread.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def transformer(transformer_run):
    return load_run(transformer_run).model


@pytest.fixture(scope="module")
def boosted(transformer_run):
    """The same run with its item-transition counts weighted in (whatever validation chose)."""
    model = load_run(transformer_run).model
    assert model.transitions is not None
    model.transition_weight = 1.0
    return model


@pytest.fixture(scope="module")
def ease(ease_run):
    return load_run(ease_run).model


@pytest.mark.parametrize("name", ["transformer", "boosted"])
def test_user_and_item_vectors_reproduce_the_scores(request, name):
    transformer = request.getfixturevalue(name)
    histories = list(transformer.histories.values())
    window = transformer.window
    reference = transformer.user_vectors(histories) @ transformer.item_vectors().T  # (U, I)
    for row, history in enumerate(histories):
        reference[row, np.unique(history.items[-window:])] += transformer.repeat_bias()
        listed, boost, base = transformer.transition_boost(history)
        reference[row] += base
        reference[row, listed] += boost - base
    if name == "boosted":
        assert any(len(transformer.transition_boost(h)[0]) for h in histories)
    np.testing.assert_allclose(transformer.score(histories), reference, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("exclude_seen", [False, True])
@pytest.mark.parametrize("name", ["transformer", "boosted"])
def test_ann_retrieval_matches_exact_on_a_small_catalogue(request, name, exclude_seen):
    transformer = request.getfixturevalue(name)
    exact, ann = ExactRetriever(transformer), AnnRetriever(transformer, ef_search=64)
    for history in transformer.histories.values():
        for k in (1, 5):
            want, got = exact.top_k(history, k, exclude_seen), ann.top_k(history, k, exclude_seen)
            assert [i for i, _ in got] == [i for i, _ in want]
            np.testing.assert_allclose([s for _, s in got], [s for _, s in want], rtol=1e-4, atol=1e-4)


def test_empty_histories_get_the_most_popular_items(transformer, ease):
    for model in (transformer, ease):
        top = ExactRetriever(model).top_k(History.empty(), 3, exclude_seen=False)
        assert [i for i, _ in top] == list(np.argsort(-model.popularity, kind="stable")[:3])
    assert AnnRetriever(transformer).top_k(History.empty(), 3, False) == ExactRetriever(transformer).top_k(
        History.empty(), 3, False
    )


def test_the_threshold_picks_the_retriever(transformer, ease):
    assert build_retriever(transformer, ann_threshold=21).kind == "exact"
    assert build_retriever(transformer, ann_threshold=20).kind == "ann"
    assert build_retriever(ease, ann_threshold=1).kind == "exact"  # EASE has no vector form


def test_the_index_finds_the_largest_inner_products_for_queries_pointing_away_from_the_items():
    """Item vectors that share a common direction, with norms over a 6x range, and queries pointing
    away from it, as the ml-100k transformer's do (cosine -0.4 with the mean item vector): an HNSW
    graph built on inner products finds a few percent of the true top 10 here (0.64 on that model);
    the index's reduction to nearest neighbours finds nearly all, items added later included."""
    from penchant.serve.retrieval import MipsIndex

    rng = np.random.default_rng(0)
    d = 32
    common = np.zeros(d)
    common[0] = 2.0
    items = (common + rng.normal(size=(3000, d)) / np.sqrt(d)) * rng.uniform(0.3, 1.9, size=(3000, 1))
    queries = rng.normal(size=(200, d))
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    queries[:, 0] -= 0.8
    index = MipsIndex(items[:2900])
    grown = index.copy()
    grown.add(items[2900:])
    assert (index.ntotal, grown.ntotal) == (2900, 3000)
    truth = np.argsort(-(queries @ items.T), axis=1)[:, :10]
    found = grown.search(queries, 10, ef_search=64)
    recall = np.mean([len(set(t) & set(f)) / 10 for t, f in zip(truth, found, strict=True)])
    assert recall >= 0.95


def test_a_built_index_is_kept_and_the_next_start_loads_it(transformer, tmp_path, monkeypatch):
    from penchant.serve import retrieval
    from penchant.serve.retrieval import MipsIndex, index_file

    first = AnnRetriever(transformer, cache=tmp_path)
    assert [p.name for p in tmp_path.glob("*.faiss")] == [index_file(first.vectors)]

    def build_again(*args, **kwargs):
        raise AssertionError("the kept index was built again")

    monkeypatch.setattr(MipsIndex, "__init__", build_again)
    second = AnnRetriever(transformer, cache=tmp_path)
    assert (second.index.ntotal, second.index.radius) == (first.index.ntotal, first.index.radius)
    for history in transformer.histories.values():
        assert second.top_k(history, 5, False) == first.top_k(history, 5, False)
    monkeypatch.undo()

    # Other vectors (a retrained run) are kept under another name, replacing the old index.
    other = first.vectors * 2
    retrieval._keep(MipsIndex(other), tmp_path / index_file(other))
    assert [p.name for p in tmp_path.glob("*.faiss")] == [index_file(other)]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_large_index_is_built_in_the_background_while_exact_retrieval_serves(
    serve, text_run, tmp_path, monkeypatch
):
    import shutil
    import threading
    import time

    from penchant.serve import index_upkeep
    from penchant.serve.retrieval import MipsIndex

    run_dir = tmp_path / "run"
    shutil.copytree(text_run, run_dir, ignore=shutil.ignore_patterns(index_upkeep.ANN_FOLDER))  # none kept
    gate, building = threading.Event(), threading.Event()

    class Gated(AnnRetriever):
        def __init__(self, *args, **kwargs):
            building.set()
            assert gate.wait(60)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(index_upkeep, "AnnRetriever", Gated)
    client = serve(run_dir, ann_threshold=1, ann_background_from=1)
    models = client.app.state.services.models
    assert building.wait(10)  # the build started, and the service answers meanwhile, exactly
    assert client.get("/health").json()["retrieval"] == "exact"
    answer = client.get("/users/u00/recommendations", params={"k": 5})
    assert answer.status_code == 200 and answer.json()["retrieval"] == "exact"
    new = {
        "item_id": "s-new",
        "title": "Star Voyager Returns",
        "description": "Space, spaceships and aliens.",
    }
    assert client.post("/items", json=new).json()["recommendable"] is True  # no index built for it
    assert models.current.retriever.kind == "exact"
    # A state cached for exact retrieval (a score row) must not be taken for an ANN query vector.
    assert client.get("/users/u00/recommendations", params={"k": 5}).status_code == 200
    assert len(models.current.users) == 1

    gate.set()
    deadline = time.monotonic() + 60
    while models.current.retriever.kind != "ann" and time.monotonic() < deadline:
        time.sleep(0.05)
    retriever = models.current.retriever
    assert retriever.kind == "ann" and retriever.n_items == 13  # 12 trained + the one added
    answer = client.get("/users/u00/recommendations", params={"k": 13, "exclude_seen": False}).json()
    assert answer["retrieval"] == "ann" and "s-new" in {r["item_id"] for r in answer["items"]}
    assert len(list((run_dir / index_upkeep.ANN_FOLDER).glob("*.faiss"))) == 1

    # The next start loads the kept index before it answers (the stored item is scored beside it).
    monkeypatch.undo()

    def build_again(*args, **kwargs):
        raise AssertionError("the kept index was built again")

    monkeypatch.setattr(MipsIndex, "__init__", build_again)
    again = serve(run_dir, ann_threshold=1, ann_background_from=1)
    assert again.app.state.services.models.current.retriever.kind == "ann"
    assert again.app.state.services.models.current.retriever.n_items == 13


@pytest.mark.parametrize("exclude_seen", [False, True])
def test_items_added_are_found_before_and_after_they_go_into_the_index(text_run, exclude_seen):
    """A new item is scored exactly beside the index's candidates (the index is shared, not copied:
    adding one item to a million-item catalogue must not copy the index); folding the added items
    into a copy of the index leaves the retriever folded from as it was, and items added while the
    fold ran stay scored beside the new index."""
    from penchant.serve.state import _with_items
    from penchant.serve.store import Item

    model = load_run(text_run).model
    n = model.n_items
    texts = ["Rocket to Jupiter", "A kiss at the wedding", "Aliens over the spaceport"]
    models = [model]
    for number, text in enumerate(texts):
        models.append(_with_items(models[-1], [Item(f"new-{number}", title=text, description=text)]))
    first = AnnRetriever(model, ef_search=64)
    one = first.extended(models[1])
    two = one.extended(models[2])
    folded = two.folded()
    three = two.extended(models[3])  # added while the fold ran
    rebased = three.rebased(folded)

    assert one.index is first.index and two.index is first.index and len(two.recent) == 2
    assert folded.index is not two.index and folded.index.ntotal == n + 2 and len(folded.recent) == 0
    assert two.index.ntotal == n and len(two.vectors) == n  # what requests on it still search
    assert rebased.index is folded.index and len(rebased.recent) == 1 and rebased.n_items == n + 3
    for grown, ann in (
        (model, first),
        (models[1], one),
        (models[2], two),
        (models[2], folded),
        (models[3], rebased),
    ):
        exact = ExactRetriever(grown)
        found = set()
        for history in grown.histories.values():
            want, got = exact.top_k(history, 5, exclude_seen), ann.top_k(history, 5, exclude_seen)
            assert [i for i, _ in got] == [i for i, _ in want]
            np.testing.assert_allclose([s for _, s in got], [s for _, s in want], rtol=1e-4, atol=1e-4)
            found |= {i for i, _ in ann.top_k(history, grown.n_items, exclude_seen)}
        assert set(range(n, grown.n_items)) <= found  # every added item can be recommended


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_service_folds_added_items_into_its_index_in_the_background(serve, text_run, monkeypatch):
    from penchant.serve import retrieval

    monkeypatch.setattr(retrieval, "FOLD", 2)
    client = serve(text_run, ann_threshold=1)
    models = client.app.state.services.models
    n = models.current.retriever.n_items
    for number in range(3):
        item = {"item_id": f"new-{number}", "title": "Rocket to Jupiter", "description": "Space and aliens."}
        assert client.post("/items", json=item).json()["recommendable"] is True
    deadline = time.monotonic() + 30
    while models.current.retriever.index.ntotal == n and time.monotonic() < deadline:
        time.sleep(0.05)
    retriever = models.current.retriever
    # The fold began at the second item: two in the index; the third, if it came after, beside it.
    assert retriever.index.ntotal + len(retriever.recent) == n + 3 and retriever.index.ntotal >= n + 2
    answer = client.get("/users/u00/recommendations", params={"k": n + 3, "exclude_seen": False}).json()
    assert {f"new-{i}" for i in range(3)} <= {r["item_id"] for r in answer["items"]}
