"""Text: pretrained language-model encoders turning item and user text into vectors, cached by content."""

from penchant.text.cache import EmbeddingCache, cache_dir
from penchant.text.encoders import E5Encoder, SentenceTransformerEncoder, TextEncoder, load_encoder
from penchant.text.items import DEFAULT_TEMPLATE, has_item_text, item_texts

__all__ = [
    "DEFAULT_TEMPLATE",
    "E5Encoder",
    "EmbeddingCache",
    "SentenceTransformerEncoder",
    "TextEncoder",
    "cache_dir",
    "has_item_text",
    "item_texts",
    "load_encoder",
]
