"""Topics for catalogues without categories: k-means, c-TF-IDF keywords and the topic taxonomy."""

import numpy as np
import pandas as pd
import pytest

from penchant.data.dataset import Dataset
from penchant.errors import InputError
from penchant.interests import Taxonomy
from penchant.interests.topics import ctfidf_keywords, default_n_topics, kmeans, tokenize, topic_names

THEMES = {
    "space": ["space rocket launch", "galaxy space station", "rocket to the galaxy", "astronaut space walk"],
    "food": ["pasta recipe kitchen", "kitchen knife recipe", "pasta sauce recipe", "baking bread kitchen"],
    "sport": ["football match goal", "goal keeper football", "tennis match point", "football league match"],
}


def blobs(seed: int = 0) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Three tight, well-separated groups of unit vectors with theme texts: (embeddings, truth, texts)."""
    rng = np.random.default_rng(seed)
    centres = np.eye(3, 16)
    rows, truth, texts = [], [], []
    for j, (_, docs) in enumerate(THEMES.items()):
        for doc in docs:
            v = centres[j] + 0.05 * rng.standard_normal(16)
            rows.append(v / np.linalg.norm(v))
            truth.append(j)
            texts.append(doc)
    order = rng.permutation(len(rows))  # interleave, so cluster order is not input order
    return np.array(rows, dtype=np.float32)[order], np.array(truth)[order], [texts[i] for i in order]


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    return all(len(set(b[a == label])) == 1 for label in set(a)) and len(set(a)) == len(set(b))


def test_kmeans_recovers_separated_groups_and_is_deterministic():
    x, truth, _ = blobs()
    labels, centroids = kmeans(x, 3, seed=1)
    assert same_partition(labels, truth)
    assert centroids.shape == (3, 16)
    again, _ = kmeans(x, 3, seed=1)
    assert np.array_equal(labels, again)


def test_kmeans_rejects_more_clusters_than_points():
    with pytest.raises(ValueError, match="between 1 and"):
        kmeans(np.zeros((2, 3)), 3)


def test_tokenize_drops_stopwords_numbers_and_splits_chinese_into_bigrams():
    assert tokenize("The Return of the Jedi (1983)") == ["return", "jedi"]
    assert tokenize("太空探索") == ["太空", "空探", "探索"]


def test_ctfidf_names_each_topic_by_its_own_words_not_shared_ones():
    texts = ["great space rocket", "great rocket galaxy", "great pasta recipe", "great recipe kitchen"]
    keywords = ctfidf_keywords(texts, np.array([0, 0, 1, 1]), 2, top=2)
    assert keywords == [["rocket", "galaxy"], ["recipe", "kitchen"]]


def test_topic_taxonomy_from_embeddings_labels_topics_readably():
    x, truth, texts = blobs()
    taxonomy = Taxonomy.from_embeddings(x, texts, n_topics=3)
    assert taxonomy.source == "topics"
    assert taxonomy.membership.shape == (12, 3)
    assert np.array_equal(taxonomy.membership.toarray().sum(axis=1), np.ones(12))
    assert same_partition(taxonomy.primary(), truth)
    # Each name leads with the words its theme repeats most (3 times; every other word fewer).
    leads = {frozenset(name.split(", ")[:2]) for name in taxonomy.names}
    assert {frozenset({"football", "match"}), frozenset({"kitchen", "recipe"})} < leads
    assert any(name.startswith("space, ") for name in taxonomy.names)
    for j, words in enumerate(taxonomy.keywords):
        assert taxonomy.names[j] == ", ".join(words[:3])


def test_topic_names_stay_unique():
    assert topic_names([["a", "b"], ["a", "b"], []]) == ["a, b", "a, b (2)", "topic 3"]
    assert default_n_topics(10) == 2 and default_n_topics(1682) == 20 and default_n_topics(200) == 10


def test_for_dataset_uses_categories_when_the_catalogue_has_them():
    events = pd.DataFrame({"user_id": ["u", "u"], "item_id": ["a", "b"], "timestamp": [1, 2]})
    items = pd.DataFrame({"item_id": ["a", "b"], "categories": [["x", "y"], ["y"]]})
    taxonomy = Taxonomy.for_dataset(Dataset.from_frames(events, items))
    assert taxonomy.source == "categories"
    assert taxonomy.names == ["x", "y"]
    assert taxonomy.interests_of(0) == ["x", "y"] and taxonomy.interests_of(1) == ["y"]


def test_from_embeddings_checks_its_inputs():
    x, _, texts = blobs()
    with pytest.raises(ValueError, match="texts for"):
        Taxonomy.from_embeddings(x, texts[:-1])
    with pytest.raises(InputError, match="n_topics"):
        Taxonomy.from_embeddings(x, texts, n_topics=13)


TITLES = {
    "space": [
        "Rocket launch to Mars",
        "Astronauts on the space station",
        "A journey across the galaxy",
        "Landing on the Moon",
        "Telescope finds distant planets",
        "Spacewalk repair mission",
        "Black holes and stars",
        "Life aboard a spaceship",
    ],
    "food": [
        "Pasta with tomato sauce",
        "Baking sourdough bread",
        "Italian cooking at home",
        "Chocolate cake recipe",
        "Grilled fish and vegetables",
        "Spicy curry for dinner",
        "Homemade pizza dough",
        "Breakfast pancakes",
    ],
    "sport": [
        "Football cup final",
        "Tennis championship match",
        "Marathon runners",
        "Basketball playoffs",
        "The football transfer window",
        "Olympic swimming race",
        "Cycling the mountain stage",
        "Boxing title fight",
    ],
}


def test_topics_from_real_text_embeddings_follow_the_themes():
    """A catalogue with titles and no categories gets topics from the minilm encoder (penchant.text)."""
    rows = [(title, theme) for theme, titles in TITLES.items() for title in titles]
    items = pd.DataFrame({"item_id": [f"i{n}" for n in range(len(rows))], "title": [t for t, _ in rows]})
    events = pd.DataFrame({"user_id": ["u", "u"], "item_id": ["i0", "i1"], "timestamp": [1, 2]})
    taxonomy = Taxonomy.for_dataset(Dataset.from_frames(events, items), n_topics=3)
    assert taxonomy.source == "topics" and taxonomy.n_interests == 3
    themes = np.array([theme for _, theme in rows])
    topic = taxonomy.primary()
    majority = {j: max(set(themes[topic == j]), key=list(themes[topic == j]).count) for j in set(topic)}
    assert set(majority.values()) == set(TITLES)  # one topic per theme
    assert sum(majority[j] == theme for j, theme in zip(topic, themes, strict=True)) >= 20  # of 24
    for j, theme in majority.items():
        words = {w for title in TITLES[theme] for w in tokenize(title)}
        assert taxonomy.keywords[j][0] in words, (taxonomy.names[j], theme)


def test_items_with_missing_categories_have_no_interest():
    events = pd.DataFrame({"user_id": ["u", "u", "u"], "item_id": ["a", "b", "c"], "timestamp": [1, 2, 3]})
    items = pd.DataFrame({"item_id": ["a", "b", "c"], "categories": [["x"], None, np.nan]})
    taxonomy = Taxonomy.for_dataset(Dataset.from_frames(events, items))
    assert taxonomy.names == ["x"] and taxonomy.primary().tolist() == [0, -1, -1]


def test_the_membership_is_sparse_and_read_by_rows():
    """Items x interests are kept as CSR (memory by the memberships, not by I x K); readers get dense
    rows of the items they ask for, and catalogue growth appends rows."""
    from scipy import sparse

    dense = np.zeros((6, 4), dtype=np.float32)
    dense[0, 1] = 1.0
    dense[2, [0, 3]] = 0.5
    dense[5, 2] = 1.0
    taxonomy = Taxonomy(names=list("wxyz"), membership=dense)

    assert sparse.issparse(taxonomy.membership) and taxonomy.membership.nnz == 4
    np.testing.assert_array_equal(taxonomy.rows([[2, 0], [5, 1]]), dense[[[2, 0], [5, 1]]])
    assert taxonomy.primary().tolist() == [1, -1, 0, -1, -1, 2]
    np.testing.assert_array_equal(taxonomy.of_items(np.array([0, 2, 2])), [1.0, 1.0, 0.0, 1.0])
    assert taxonomy.items_of(3).tolist() == [2] and taxonomy.interests_of(2) == ["w", "z"]
    assert taxonomy.tags().toarray().tolist() == (dense > 0).astype(float).tolist()
    grown = taxonomy.with_items(np.array([[0, 0, 0, 1]], dtype=np.float32))
    assert grown.n_items == 7 and grown.primary()[-1] == 3 and taxonomy.n_items == 6


def test_categories_at_a_large_catalogue_stay_sparse():
    import pandas as pd

    from penchant.data.dataset import Dataset

    n = 200_000
    items = pd.DataFrame(
        {
            "item_id": [f"i{i}" for i in range(n)],
            "categories": [[f"c{i % 500}", f"c{(i * 7) % 500}"] for i in range(n)],
        }
    )
    events = pd.DataFrame({"user_id": ["u"] * 3, "item_id": ["i0", "i1", "i2"], "timestamp": [1.0, 2.0, 3.0]})
    taxonomy = Taxonomy.from_categories(Dataset.from_frames(events, items))
    m = taxonomy.membership
    assert m.shape == (n, 500) and m.nnz <= 2 * n  # dense float32 would be 400 MB; this is a few MB
    assert m.data.nbytes + m.indices.nbytes + m.indptr.nbytes < 5e6
    np.testing.assert_allclose(np.asarray(m.sum(axis=1)).ravel(), 1.0, rtol=1e-6)
    columns = [taxonomy.names.index("c7"), taxonomy.names.index("c49")]
    assert taxonomy.rows([7])[0][columns].tolist() == [0.5, 0.5]
    assert taxonomy.rows([0])[0][taxonomy.names.index("c0")] == 1.0  # listed twice, counted once
