"""EASE (Steck, 2019): a closed-form linear item-item autoencoder, a strong non-sequential baseline.

Scores are ``x_u @ B`` where ``x_u`` is the user's binary history and ``B`` solves a ridge
regression of every item on all others with a zero diagonal. With a validation callback the ridge
strength is chosen from a small grid by the validation score.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import sparse
from tqdm.auto import tqdm

from penchant.data.dataset import Dataset, History
from penchant.models.base import ModelConfig, Recommender, Validator
from penchant.models.memory import require_memory


def ease_bytes(n_items: int) -> float:
    """Peak memory of fitting EASE on ``n_items`` items: about 44 bytes per item pair."""
    return 44.0 * n_items * n_items


@dataclass(frozen=True)
class EASEConfig(ModelConfig):
    l2: float = 300.0  # ridge strength, used as-is when no validation is given
    l2_grid: tuple[float, ...] = (50.0, 100.0, 200.0, 300.0, 500.0, 800.0, 1500.0)

    @classmethod
    def from_dict(cls, values):
        values = dict(values)
        if "l2_grid" in values:
            values["l2_grid"] = tuple(values["l2_grid"])
        return super().from_dict(values)


class EASE(Recommender):
    name = "ease"
    config_class = EASEConfig

    def _fit(
        self, dataset: Dataset, train_events: pd.DataFrame, validate: Validator | None, progress: bool
    ) -> None:
        n = dataset.n_items
        require_memory(
            ease_bytes(n),
            f"ease on {n:,} items (dense items x items matrices: the Gram matrix, its inverse and the "
            "weights)",
            "use --model transformer, whose memory grows with the catalogue, not its square",
        )
        users, items = train_events["user"].to_numpy(), train_events["item"].to_numpy()
        x = sparse.csr_matrix((np.ones(len(users)), (users, items)), shape=(dataset.n_users, n))
        x.data[:] = 1.0  # binary: a user's repeated item counts once
        gram = (x.T @ x).toarray()  # (I, I)
        grid = self.config.l2_grid if validate is not None else (self.config.l2,)
        best = (-np.inf, None, None)
        curve = []
        for l2 in tqdm(grid, desc="ease: ridge grid", disable=not progress or len(grid) == 1):
            self.weights = self._solve(gram, l2)
            value = validate(self) if validate is not None else 0.0
            curve.append(value)
            if value > best[0]:
                best = (value, l2, self.weights)
        _, self.l2, self.weights = best
        self.fit_stats.epochs = len(grid)
        self.fit_stats.best_epoch = int(np.argmax(curve)) + 1
        self.fit_stats.validation_curve = curve if validate is not None else None
        self.fit_stats.best_validation = best[0] if validate is not None else None

    @staticmethod
    def _solve(gram: np.ndarray, l2: float) -> np.ndarray:
        # Peak: the Gram matrix, its regularised copy, the inverse and the scaled weights (float64),
        # and the float32 result: about 44 bytes per item pair (see ease_bytes).
        p = np.linalg.inv(gram + l2 * np.eye(len(gram)))
        b = -p / np.diag(p)[None, :]
        np.fill_diagonal(b, 0.0)
        return b.astype(np.float32)

    def score(self, histories: Sequence[History]) -> np.ndarray:
        x = np.zeros((len(histories), self.weights.shape[0]), dtype=np.float32)
        for row, history in enumerate(histories):
            x[row, history.items] = 1.0
        return x @ self.weights

    def _save_state(self, directory: Path) -> None:
        np.save(directory / "ease_weights.npy", self.weights)

    def _load_state(self, directory: Path) -> None:
        self.weights = np.load(directory / "ease_weights.npy")
