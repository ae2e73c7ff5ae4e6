"""Topics for catalogues without categories: k-means over item text embeddings, labelled by c-TF-IDF.

Embeddings are L2-normalised sentence vectors (``penchant.text``), so Euclidean k-means on them is
k-means on cosine distance. Each topic is labelled with the terms that are frequent in its items'
titles and descriptions but rare across the other topics (class-based TF-IDF, as in BERTopic), so a
person can read what the topic is about.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

import numpy as np

# Words that never make a useful label. Kept short on purpose: c-TF-IDF already pushes down words
# that are common to every topic; this only removes the ones frequent enough to survive that.
STOPWORDS = frozenset(
    """a an and are as at be but by for from has have he her his in into is it its of on or she that the
    their them they this to was were will with you your we our not no so than then there these those
    what when where which who why how all any can do does did just more most other some such only own
    same too very s t i me my him who whom about above after again against below between both during
    each few further here if nor off once out over under until up down while il la le les de des du et
    un une der die das und ein eine el los las del y""".split()
)

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af"
_TOKEN = re.compile(rf"[{_CJK}]+|[^\W\d_][\w'-]*", re.UNICODE)
_IS_CJK = re.compile(rf"[{_CJK}]")


def tokenize(text: str) -> list[str]:
    """Lower-cased word tokens; runs of CJK characters (no spaces between words) become bigrams."""
    out: list[str] = []
    for token in _TOKEN.findall(text.lower()):
        if _IS_CJK.match(token):
            out.extend([token] if len(token) == 1 else [token[i : i + 2] for i in range(len(token) - 1)])
        elif len(token) > 1 and token not in STOPWORDS:
            out.append(token.strip("'-"))
    return [t for t in out if t]


def kmeans(
    x: np.ndarray, k: int, seed: int = 0, n_init: int = 4, max_iter: int = 100
) -> tuple[np.ndarray, np.ndarray]:
    """Lloyd's k-means with k-means++ seeding; the best of ``n_init`` starts by inertia.

    Returns ``(labels (N,), centroids (k, D))``. Deterministic for a given seed.
    """
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    if not 1 <= k <= n:
        raise ValueError(f"k must be between 1 and the number of points {n}, got {k}")
    rng = np.random.default_rng(seed)
    sq_norms = (x * x).sum(axis=1)
    best: tuple[float, np.ndarray, np.ndarray] | None = None
    for _ in range(n_init):
        centroids = _kmeans_pp(x, sq_norms, k, rng)
        labels = np.full(n, -1)
        for _ in range(max_iter):
            d2 = _sq_distances(x, sq_norms, centroids)  # (N, k)
            new_labels = d2.argmin(axis=1)
            if np.array_equal(new_labels, labels):
                break
            labels = new_labels
            for j in range(k):
                members = labels == j
                if members.any():
                    centroids[j] = x[members].mean(axis=0)
                else:
                    # An empty cluster takes the point farthest from its centroid.
                    far = int(d2[np.arange(n), labels].argmax())
                    centroids[j] = x[far]
                    labels[far] = j
        inertia = float(_sq_distances(x, sq_norms, centroids)[np.arange(n), labels].sum())
        if best is None or inertia < best[0]:
            best = (inertia, labels.copy(), centroids.copy())
    return best[1], best[2]


def _sq_distances(x: np.ndarray, sq_norms: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    d2 = sq_norms[:, None] - 2.0 * x @ centroids.T + (centroids * centroids).sum(axis=1)[None, :]
    return np.maximum(d2, 0.0)


def _kmeans_pp(x: np.ndarray, sq_norms: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    centroids = np.empty((k, x.shape[1]))
    centroids[0] = x[rng.integers(len(x))]
    closest = _sq_distances(x, sq_norms, centroids[:1])[:, 0]
    for j in range(1, k):
        total = closest.sum()
        pick = int(rng.choice(len(x), p=closest / total)) if total > 0 else int(rng.integers(len(x)))
        centroids[j] = x[pick]
        closest = np.minimum(closest, _sq_distances(x, sq_norms, centroids[j : j + 1])[:, 0])
    return centroids


def ctfidf_keywords(
    texts: Sequence[str],
    labels: np.ndarray,
    n_topics: int,
    top: int = 5,
    doc_weights: np.ndarray | None = None,
) -> list[list[str]]:
    """The ``top`` most distinctive terms of each topic by class-based TF-IDF.

    A topic's documents are pooled into one; a term's weight is its frequency in the topic (relative
    to the topic's length) times ``log(1 + A / f)``, where ``A`` is the mean number of words per topic
    and ``f`` the term's frequency over all topics. ``doc_weights`` (e.g. each item's similarity to its
    topic's centre) let the words of typical items count more, which matters for short titles where
    most words occur once. Remaining ties break alphabetically, so labels are stable.
    """
    weights = (
        np.ones(len(texts))
        if doc_weights is None
        else np.clip(np.asarray(doc_weights, dtype=np.float64), 1e-3, None)
    )
    counts = [Counter() for _ in range(n_topics)]
    for text, label, weight in zip(texts, labels, weights, strict=True):
        for token in tokenize(text or ""):
            counts[int(label)][token] += float(weight)
    overall: Counter = Counter()
    for c in counts:
        overall.update(c)
    mean_words = sum(overall.values()) / max(n_topics, 1)
    keywords = []
    for c in counts:
        length = sum(c.values())
        scored = [(-(n / length) * math.log(1.0 + mean_words / overall[t]), t) for t, n in c.items()]
        keywords.append([t for _, t in sorted(scored)[:top]])
    return keywords


def default_n_topics(n_items: int) -> int:
    """About sqrt(n/2) topics, between 2 and 20: few enough to read, enough to tell users apart."""
    return int(min(20, max(2, round(math.sqrt(n_items / 2)))))


def topic_names(keywords: list[list[str]], n_words: int = 3) -> list[str]:
    """Readable, unique topic names from keywords, e.g. ``"space, galaxy, rocket"``."""
    names, used = [], set()
    for j, words in enumerate(keywords):
        name = ", ".join(words[:n_words]) if words else f"topic {j + 1}"
        if name in used:
            name = f"{name} ({j + 1})"
        used.add(name)
        names.append(name)
    return names
