"""Most-popular baseline: every user gets the items with the most training interactions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from penchant.data.dataset import Dataset, History
from penchant.models.base import ModelConfig, Recommender, Validator


@dataclass(frozen=True)
class PopularityConfig(ModelConfig):
    pass


class Popularity(Recommender):
    name = "popularity"
    config_class = PopularityConfig

    def _fit(
        self, dataset: Dataset, train_events: pd.DataFrame, validate: Validator | None, progress: bool
    ) -> None:
        # Nothing beyond the counts the base class keeps; top-k breaks ties by catalogue order.
        self._scores = self.popularity.astype(np.float32)

    def score(self, histories: Sequence[History]) -> np.ndarray:
        return np.tile(self._scores, (len(histories), 1))

    def popular_scores(self) -> np.ndarray:
        return self._scores.astype(np.float64)  # its own scores are the counts

    def _load_state(self, directory) -> None:
        self._scores = self.popularity.astype(np.float32)
