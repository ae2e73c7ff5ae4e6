"""Models behind one API (fit, recommend, recommend_batch, save, load), speaking external IDs."""

import json
from pathlib import Path

from penchant.errors import InputError
from penchant.models.base import ModelConfig, Recommendation, Recommender, model_directory
from penchant.models.ease import EASE, EASEConfig
from penchant.models.popularity import Popularity, PopularityConfig
from penchant.models.sequential import InterestTransformer
from penchant.models.transformer import TransformerConfig

# Name -> class, for the command line and for loading a saved model; library code passes classes.
MODELS: dict[str, type[Recommender]] = {m.name: m for m in (InterestTransformer, EASE, Popularity)}


def model_class(name: str) -> type[Recommender]:
    if name not in MODELS:
        raise InputError(f"unknown model '{name}' (available: {', '.join(MODELS)})")
    return MODELS[name]


def load_model(directory: str | Path) -> Recommender:
    """Load any saved model, whichever class wrote it."""
    meta_path = model_directory(directory) / "model.json"
    if not meta_path.exists():
        raise InputError(f"{directory}: no saved model here (model.json missing)")
    return model_class(json.loads(meta_path.read_text())["model"]).load(directory)


__all__ = [
    "EASE",
    "EASEConfig",
    "MODELS",
    "InterestTransformer",
    "ModelConfig",
    "Popularity",
    "PopularityConfig",
    "Recommendation",
    "Recommender",
    "TransformerConfig",
    "load_model",
    "model_class",
]
