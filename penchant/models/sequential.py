"""The interest transformer as a recommender: windows of each user's history in, full-catalogue scores out."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from penchant.data.dataset import Dataset, History
from penchant.models.base import Recommender, Validator
from penchant.models.sequences import batches, pack, training_windows
from penchant.models.training import LoopSettings, run_training
from penchant.models.transformer import InterestTransformerNet, TransformerConfig


class InterestTransformer(Recommender):
    """Causal self-attention over each user's time-ordered items, trained with full-softmax CE."""

    name = "transformer"
    config_class = TransformerConfig

    def _fit(self, dataset: Dataset, train_events: pd.DataFrame, validate: Validator | None, progress: bool) -> None:
        cfg: TransformerConfig = self.config
        threads = torch.get_num_threads()
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        try:
            self._train(dataset, train_events, validate, progress)
        finally:
            torch.set_num_threads(threads)

    def _train(self, dataset: Dataset, train_events: pd.DataFrame, validate: Validator | None, progress: bool) -> None:
        cfg: TransformerConfig = self.config
        torch.manual_seed(cfg.seed)
        rng = np.random.default_rng(cfg.seed)
        self.net = InterestTransformerNet(dataset.n_items, cfg)
        optimizer = torch.optim.AdamW(self.net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        histories = list(dataset.histories(train_events).values())

        def run_epoch(epoch: int) -> float:
            total, count = 0.0, 0
            for items, gaps, targets in batches(training_windows(histories, cfg.max_len, rng), cfg.batch_size, rng):
                _, loss = self.net(items, gaps, targets)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                n = int((targets != 0).sum())
                total += loss.item() * n
                count += n
            return total / max(count, 1)

        settings = LoopSettings(cfg.max_epochs, cfg.patience, cfg.max_seconds, progress, desc="transformer")
        stats = run_training(self.net, run_epoch, (lambda: validate(self)) if validate else None, settings)
        self.fit_stats = stats

    def score(self, histories: Sequence[History]) -> np.ndarray:
        out = np.empty((len(histories), self.n_items), dtype=np.float32)
        empty = [i for i, h in enumerate(histories) if len(h) == 0]
        known = [i for i, h in enumerate(histories) if len(h) > 0]
        self.net.eval()
        for start in range(0, len(known), 256):
            rows = known[start : start + 256]
            items, gaps, lengths = pack([histories[i] for i in rows], self.config.max_len)
            out[rows] = self.net.score_last(items, gaps, lengths).numpy()
        if empty:
            # No behaviour to attend to: fall back to training popularity.
            out[empty] = np.log1p(self.popularity).astype(np.float32)
        return out

    def _save_state(self, directory: Path) -> None:
        torch.save(self.net.state_dict(), directory / "transformer.pt")

    def _load_state(self, directory: Path) -> None:
        self.net = InterestTransformerNet(len(self.item_map), self.config)
        self.net.load_state_dict(torch.load(directory / "transformer.pt", weights_only=True))
        self.net.eval()
