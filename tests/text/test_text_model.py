"""Text in the interest transformer: fused/text/ID item vectors, cold items scored by their text,
adding items without retraining, event text as a signal, and all of it surviving save/load."""

import numpy as np
import pandas as pd
import pytest
import torch

from penchant.data.dataset import Dataset, History
from penchant.errors import InputError
from penchant.models import EASE, InterestTransformer, TransformerConfig, load_model

SCIFI = [
    "Star Voyager",
    "Galactic War",
    "Mars Colony",
    "Alien Invasion",
    "Robot Uprising",
    "Time Machine",
    "Space Station Nine",
    "Warp Drive",
    "Nebula Pirates",
    "Asteroid Miners",
    "Moon Base",
    "Starship Trooper",
]
ROMANCE = [
    "Love in Paris",
    "Wedding Season",
    "Summer Romance",
    "The Kiss",
    "Sweethearts",
    "First Date",
    "Heartbreak Hotel",
    "Valentine",
    "Romeo's Letter",
    "Honeymoon",
    "Bride and Groom",
    "Falling in Love",
]
GENRE_TEXT = {
    "s": "A science fiction adventure in outer space with spaceships and aliens.",
    "r": "A romantic love story about a couple, a kiss and a wedding.",
}
COLD = {"s10", "s11", "r10", "r11"}  # in the catalogue, never in any event


def genre_items() -> pd.DataFrame:
    rows = [(f"s{i}", t, GENRE_TEXT["s"]) for i, t in enumerate(SCIFI)]
    rows += [(f"r{i}", t, GENRE_TEXT["r"]) for i, t in enumerate(ROMANCE)]
    return pd.DataFrame(rows, columns=["item_id", "title", "description"])


def genre_dataset(n_users: int = 40, length: int = 12, seed: int = 0) -> Dataset:
    """Each user sticks to one genre; the last two items of each genre are never interacted with."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        genre = "s" if u % 2 == 0 else "r"
        for step, i in enumerate(rng.choice(10, size=length)):
            rows.append((f"u{u:02d}", f"{genre}{i}", 1_600_000_000 + 3600 * u + 60 * step))
    events = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
    return Dataset.from_frames(events, genre_items(), name="genres")


def config(**overrides) -> TransformerConfig:
    settings = dict(dim=32, layers=1, max_len=20, batch_size=32, threads=1, lr=3e-3, max_epochs=12, seed=0)
    return TransformerConfig(**{**settings, **overrides})


@pytest.fixture(scope="module")
def genres() -> Dataset:
    return genre_dataset()


@pytest.fixture(scope="module")
def fused(genres) -> InterestTransformer:
    return InterestTransformer(config()).fit(genres, progress=False)


def cold_margin(model, dataset, cold_ids=("s10", "s11", "r10", "r11")) -> np.ndarray:
    """Per user: mean score of the cold items of the user's genre minus the other genre's."""
    users = list(dataset.user_map.ids)
    scores = model.score([model.history_of(u) for u in users])
    idx = {i: model.item_map.index(i) for i in cold_ids}
    out = []
    for row, user in enumerate(users):
        own = "s" if int(user[1:]) % 2 == 0 else "r"
        mine = [scores[row, j] for i, j in idx.items() if i[0] == own]
        other = [scores[row, j] for i, j in idx.items() if i[0] != own]
        out.append(np.mean(mine) - np.mean(other))
    return np.array(out)


def test_auto_is_fused_with_item_text_and_id_without(fused, genres):
    assert fused.item_repr == "fused"
    bare = Dataset.from_frames(genres.events[["user_id", "item_id", "timestamp"]].copy(), name="bare")
    model = InterestTransformer(config(max_epochs=1)).fit(bare, progress=False)
    assert model.item_repr == "id" and model.net.item_text is None
    with pytest.raises(InputError, match="needs item text"):
        InterestTransformer(config(item_repr="text", max_epochs=1)).fit(bare, progress=False)
    with pytest.raises(InputError, match="item_repr"):
        TransformerConfig(item_repr="words")


def test_cold_items_are_ranked_by_their_text(fused, genres):
    # The four cold items have no interactions: only their text can tell a sci-fi fan's from a romantic's.
    margin = cold_margin(fused, genres)
    assert (margin > 0).mean() >= 0.9
    # Their ID part is masked (zero), not left as random noise.
    for item in COLD:
        token = fused.item_map.index(item) + 1
        assert not bool(fused.net.known[token])
    assert bool(fused.net.known[fused.item_map.index("s0") + 1])


def test_fused_text_projection_learns_at_its_own_rate(fused, genres):
    groups = fused._param_groups()
    assert len(groups) == 2 and groups[1]["lr"] == pytest.approx(fused.config.lr * fused.config.text_lr_scale)
    assert [id(p) for p in groups[1]["params"]] == [id(fused.net.text_proj.weight)]
    assert sum(len(g["params"]) for g in groups) == len(list(fused.net.parameters()))
    # The text-only model has nothing else to learn items with: its projection keeps the full rate.
    text_only = InterestTransformer(config(item_repr="text", max_epochs=1)).fit(genres, progress=False)
    assert len(text_only._param_groups()) == 1
    with pytest.raises(InputError, match="text_lr_scale"):
        TransformerConfig(text_lr_scale=0)


def test_id_only_model_cannot_tell_cold_items_apart(genres):
    model = InterestTransformer(config(item_repr="id")).fit(genres, progress=False)
    np.testing.assert_allclose(cold_margin(model, genres), 0.0, atol=1e-6)


def test_text_only_model_ranks_cold_items_by_text(genres):
    model = InterestTransformer(config(item_repr="text")).fit(genres, progress=False)
    assert model.net.item_emb is None
    assert (cold_margin(model, genres) > 0).mean() >= 0.9


def test_items_added_after_training_are_scored_by_text_and_saved(fused, genres, tmp_path):
    model = InterestTransformer(config()).fit(genres, progress=False)
    before = model.score([model.history_of("u00")])[0]
    new = pd.DataFrame(
        {
            "item_id": ["s-new", "r-new"],
            "title": ["Rocket to Jupiter", "Love Letters"],
            "description": [GENRE_TEXT["s"], GENRE_TEXT["r"]],
        }
    )
    assert model.add_items(new) == ["s-new", "r-new"]
    assert model.n_items == genres.n_items + 2 and model.titles[-2:] == ["Rocket to Jupiter", "Love Letters"]
    after = model.score([model.history_of("u00")])[0]
    np.testing.assert_allclose(after[: genres.n_items], before, rtol=1e-5, atol=1e-5)  # old items unchanged
    assert (cold_margin(model, genres, ("s-new", "r-new")) > 0).mean() >= 0.9
    recs = model.recommend(history=["s1", "s2", "s-new"], k=3)
    assert all(r.item_id in model.item_map for r in recs)
    with pytest.raises(InputError, match="'s-new'"):
        model.add_items(new.iloc[:1])
    model.save(tmp_path)
    loaded = load_model(tmp_path)
    users = list(genres.user_map.ids)
    # Added items' vectors were computed on their own, the loaded model's in one table: float32
    # rounding apart, no more.
    np.testing.assert_allclose(
        loaded.score([model.history_of(u) for u in users]),
        model.score([model.history_of(u) for u in users]),
        rtol=1e-6,
        atol=1e-6,
    )
    torch.testing.assert_close(loaded.net.item_text, model.net.item_text)


def test_a_network_grown_by_items_leaves_itself_unchanged_and_copies_no_row(fused, genres, tmp_path):
    """The service grows the model once per new item while requests still use the old one: the grown
    network shares the old rows (written after them, in spare room: no copy of a million-row table
    per item) and the old network stays exactly as it was."""
    net = fused.net.eval()
    vectors, bias = (t.clone() for t in net.table())
    text = net.item_text[1:3].flip(0).clone()  # two items with the text of two known ones
    first = net.with_items(text[:1], 1)
    second = first.with_items(text[1:], 1)

    assert net.n_tokens == genres.n_items + 1 and len(net.item_text) == len(net.known) == net.n_tokens
    torch.testing.assert_close(net.table()[0], vectors)
    torch.testing.assert_close(net.table()[1], bias)
    assert (first.n_tokens, second.n_tokens) == (net.n_tokens + 1, net.n_tokens + 2)
    assert len(first.item_text) == len(first.table()[0]) == net.n_tokens + 1
    # The second item went into the room the first one made: the same storage, nothing copied.
    for grown_from, grown in ((first.item_text, second.item_text), (first.table()[0], second.table()[0])):
        assert grown.untyped_storage().data_ptr() == grown_from.untyped_storage().data_ptr()
    # Its cached vectors are what the network computes for every item from scratch.
    fresh = second.item_vectors(torch.arange(second.n_tokens))
    torch.testing.assert_close(second.table()[0], fresh[0])
    torch.testing.assert_close(second.table()[1], fresh[1])
    assert not second.known[-2:].any()

    # A service makes room at start: then even the first item copies nothing.
    model = InterestTransformer(config(max_epochs=1)).fit(genres, progress=False)
    before = model.score([model.history_of("u00")])
    model.make_room_for_items(8)
    np.testing.assert_array_equal(model.score([model.history_of("u00")]), before)
    roomy = model.net.with_items(text[:1], 1)
    for name in ("item_text", "known"):
        assert (
            getattr(roomy, name).untyped_storage().data_ptr()
            == getattr(model.net, name).untyped_storage().data_ptr()
        )
    assert roomy.table()[0].untyped_storage().data_ptr() == model.net.table()[0].untyped_storage().data_ptr()

    # A model grown this way saves its items without the room.
    for name in ("a", "b"):
        model.add_items(pd.DataFrame({"item_id": [name], "title": [name], "description": [GENRE_TEXT["s"]]}))
    model.save(tmp_path)
    saved = torch.load(tmp_path / "model" / "transformer.pt", weights_only=True)["item_text"]
    assert len(saved) == model.n_items + 1 and saved.untyped_storage().nbytes() == saved.nbytes


def test_models_without_text_refuse_to_add_items(genres):
    model = EASE().fit(genres, progress=False)
    with pytest.raises(InputError, match="cannot add items"):
        model.add_items(pd.DataFrame({"item_id": ["x"], "title": ["X"]}))
    assert model.n_items == genres.n_items


def query_dataset(n_users: int = 60, length: int = 10, seed: int = 1, user_offset: int = 3600) -> Dataset:
    """Each event carries a search query naming the genre of the user's NEXT item; item IDs alone
    give no clue (genres alternate at random), so only the event text predicts the next genre.
    User ``u`` starts at ``u * user_offset`` seconds (0: every user's events share the same times)."""
    rng = np.random.default_rng(seed)
    queries = {
        "s": "looking for science fiction about space and aliens",
        "r": "looking for a romantic love story",
    }
    rows = []
    for u in range(n_users):
        genres = rng.choice(["s", "r"], size=length)
        for step in range(length):
            item = f"{genres[step]}{rng.integers(10)}"
            query = queries[genres[step + 1]] if step + 1 < length else queries[rng.choice(["s", "r"])]
            rows.append((f"u{u:02d}", item, 1_600_000_000 + user_offset * u + 60 * step, query))
    events = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "text"])
    return Dataset.from_frames(events, genre_items().assign(title=None, description=None), name="queries")


def next_genre_accuracy(model, dataset) -> float:
    """Share of users whose top-5 items are all of the genre their last query asked for."""
    last = dataset.events.groupby("user_id").tail(1)
    hits = []
    for user, text in zip(last["user_id"], last["text"], strict=True):
        want = "s" if "science" in text else "r"
        hits.append(all(r.item_id[0] == want for r in model.recommend(user, k=5)))
    return float(np.mean(hits))


def test_event_text_enters_the_sequence(tmp_path):
    data = query_dataset()
    with_text = InterestTransformer(config(max_epochs=15)).fit(data, progress=False)
    without = InterestTransformer(config(max_epochs=15, event_text=False)).fit(data, progress=False)
    assert with_text.item_repr == "id" and with_text.uses_event_text and not without.uses_event_text
    assert next_genre_accuracy(with_text, data) >= 0.8
    assert next_genre_accuracy(without, data) <= 0.6
    with_text.save_model(tmp_path)  # the model files alone: the test edits one below
    loaded = load_model(tmp_path)
    histories = [with_text.history_of(u) for u in list(data.user_map.ids)[:10]]
    np.testing.assert_array_equal(loaded.score(histories), with_text.score(histories))
    # The same items without their texts (e.g. a history given as bare IDs) score differently.
    bare = [History(h.items, h.times + 0.5) for h in histories]
    assert not np.allclose(loaded.score(bare), loaded.score(histories))
    # Runs saved before event text was keyed by user too still load with the same texts.
    saved = dict(np.load(tmp_path / "event_text.npz"))
    del saved["users"]
    np.savez(tmp_path / "event_text.npz", **saved)
    np.testing.assert_array_equal(load_model(tmp_path).score(histories), with_text.score(histories))


def test_event_text_belongs_to_its_user_when_events_coincide():
    # Every user's events fall at the same instants, so the same item at the same time often carries
    # different users' queries: each event must keep its own user's text.
    data = query_dataset(user_offset=0)
    model = InterestTransformer(config(max_epochs=15)).fit(data, progress=False)
    assert len(model.event_index) == len(data.events)
    assert next_genre_accuracy(model, data) >= 0.8
