"""The interest transformer as a recommender: windows of each user's history in, full-catalogue scores out.

Text is optional and frozen: item texts (built by a template from title, categories, description)
and event texts (reviews, queries in ``events["text"]``) are encoded once by a pretrained sentence
encoder (cached on disk by content) and saved with the model, so a loaded run needs the encoder only
to embed new text (new items, new events).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from penchant.data.dataset import Dataset, History
from penchant.errors import InputError
from penchant.models.base import Recommender, Validator
from penchant.models.sequences import EventKey, batches, event_text_rows, pack, training_windows
from penchant.models.training import LoopSettings, run_training
from penchant.models.transformer import InterestTransformerNet, TransformerConfig
from penchant.text import TextEncoder, has_item_text, item_texts, load_encoder


class InterestTransformer(Recommender):
    """Causal self-attention over each user's time-ordered items, trained with full-softmax CE."""

    name = "transformer"
    config_class = TransformerConfig

    def __init__(self, config: TransformerConfig | None = None, encoder: TextEncoder | None = None):
        super().__init__(config)
        self._encoder = encoder  # loaded from config.text_encoder when first needed
        self.item_repr = "id"  # config.item_repr resolved against the data at fit time
        # Event text: (user ID, item index, timestamp) -> row of event_vectors; row 0 is "no text".
        self.event_index: dict[EventKey, int] = {}
        self.event_vectors = np.zeros((1, 0), dtype=np.float32)

    @property
    def encoder(self) -> TextEncoder:
        if self._encoder is None:
            self._encoder = load_encoder(self.config.text_encoder)
        return self._encoder

    @property
    def uses_event_text(self) -> bool:
        return self.event_vectors.shape[1] > 0

    # ------------------------------------------------------------------ training
    def _fit(
        self, dataset: Dataset, train_events: pd.DataFrame, validate: Validator | None, progress: bool
    ) -> None:
        cfg: TransformerConfig = self.config
        threads = torch.get_num_threads()
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        try:
            self._train(dataset, train_events, validate, progress)
        finally:
            torch.set_num_threads(threads)

    def _train(
        self, dataset: Dataset, train_events: pd.DataFrame, validate: Validator | None, progress: bool
    ) -> None:
        cfg: TransformerConfig = self.config
        self.item_repr = self._resolve_item_repr(dataset)
        item_text = self._item_text(dataset.items, progress) if self.item_repr != "id" else None
        self.event_index, self.event_vectors = {}, np.zeros((1, 0), dtype=np.float32)
        if cfg.event_text and _has_event_text(dataset.events):
            # Every event's text may be indexed: a text only ever enters as input at its own
            # position, never as a target, so held-out targets' texts are never seen.
            self._index_event_text(dataset.events, progress)
        torch.manual_seed(cfg.seed)
        rng = np.random.default_rng(cfg.seed)
        self.net = InterestTransformerNet(
            dataset.n_items, cfg, self.item_repr, item_text, self.event_vectors.shape[1]
        )
        # Items never trained on keep no ID embedding: they are scored by their text alone.
        self.net.known = torch.from_numpy(np.concatenate([[True], self.popularity > 0]))
        optimizer = torch.optim.AdamW(self._param_groups(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        histories = list(dataset.histories(train_events).values())
        index = self.event_index if self.uses_event_text else None

        def run_epoch(epoch: int) -> float:
            total, count = 0.0, 0
            windows = training_windows(histories, cfg.max_len, rng)
            for items, gaps, targets, text_rows in batches(windows, cfg.batch_size, rng, index):
                _, loss = self.net(items, gaps, targets, self._event_text(text_rows))
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

    def _param_groups(self) -> list[dict]:
        """The optimiser's parameter groups: in the fused model the shared text projection learns at
        ``text_lr_scale`` times the base rate, everything else at the base rate."""
        slow, rest = [], []
        for name, param in self.net.named_parameters():
            (slow if self.item_repr == "fused" and name.startswith("text_proj.") else rest).append(param)
        groups = [{"params": rest}]
        if slow:
            groups.append({"params": slow, "lr": self.config.lr * self.config.text_lr_scale})
        return groups

    def _resolve_item_repr(self, dataset: Dataset) -> str:
        wanted = self.config.item_repr
        has_text = has_item_text(dataset.items)
        if wanted == "auto":
            return "fused" if has_text else "id"
        if wanted != "id" and not has_text:
            raise InputError(
                f"{dataset.name}: item_repr '{wanted}' needs item text, but the catalogue has no title, "
                "description or categories"
            )
        return wanted

    def _item_text(self, items: pd.DataFrame, progress: bool = False) -> torch.Tensor:
        """Frozen text embeddings (n, D) of catalogue rows; zero for items without any text."""
        texts = item_texts(items, self.config.text_template)
        vectors = self.encoder.encode(texts, progress=progress)
        vectors[[i for i, t in enumerate(texts) if not t]] = 0.0
        return torch.from_numpy(vectors)

    def _index_event_text(self, events: pd.DataFrame, progress: bool = False) -> None:
        """Encode the texts of events not indexed yet and add them to the event-text table."""
        if "text" not in events:
            return
        with_text = events[events["text"].notna() & (events["text"].astype(str).str.strip() != "")]
        keys = list(
            zip(
                with_text["user_id"].astype(str),
                with_text["item"].astype(int),
                with_text["timestamp"].astype(float),
                strict=True,
            )
        )
        new = [
            (key, text)
            for key, text in zip(keys, with_text["text"].astype(str), strict=True)
            if key not in self.event_index
        ]
        if not new:
            return
        vectors = self.encoder.encode([text for _, text in new], progress=progress)
        if self.event_vectors.shape[1] == 0:
            self.event_vectors = np.zeros((1, vectors.shape[1]), dtype=np.float32)
        start = len(self.event_vectors)
        self.event_vectors = np.concatenate([self.event_vectors, vectors])
        for offset, (key, _) in enumerate(new):
            self.event_index[key] = start + offset

    def observe(self, dataset: Dataset, events: pd.DataFrame) -> None:
        super().observe(dataset, events)
        net = getattr(self, "net", None)
        if net is not None and net.event_proj is not None:
            self._index_event_text(events)

    def _event_text(self, rows: torch.Tensor | None) -> torch.Tensor | None:
        """Event text vectors (B, T, D) for table rows (B, T), or None without event text."""
        if rows is None or not self.uses_event_text:
            return None
        return torch.from_numpy(self.event_vectors)[rows]

    def _pack(self, histories: Sequence[History]):
        items, gaps, lengths = pack(histories, self.config.max_len)
        rows = (
            event_text_rows(histories, self.config.max_len, self.event_index)
            if self.uses_event_text
            else None
        )
        return items, gaps, lengths, self._event_text(rows)

    # ------------------------------------------------------------------ scoring
    def score(self, histories: Sequence[History]) -> np.ndarray:
        out = np.empty((len(histories), self.n_items), dtype=np.float32)
        empty = [i for i, h in enumerate(histories) if len(h) == 0]
        known = [i for i, h in enumerate(histories) if len(h) > 0]
        self.net.eval()
        for start in range(0, len(known), 256):
            rows = known[start : start + 256]
            items, gaps, lengths, event_text = self._pack([histories[i] for i in rows])
            out[rows] = self.net.score_last(items, gaps, lengths, event_text).numpy()
        if empty:
            # No behaviour to attend to: fall back to training popularity.
            out[empty] = np.log1p(self.popularity).astype(np.float32)
        return out

    # Vector form of :meth:`score`, for nearest-neighbour retrieval: for a non-empty history,
    # score(h)[i] == user_vectors([h]) @ item_vectors()[i] + (repeat_bias() if i is in h's window else 0).
    @torch.no_grad()
    def user_vectors(self, histories: Sequence[History]) -> np.ndarray:
        """Query vectors (B, dim + 1): the final hidden state of each non-empty history, then a 1."""
        self.net.eval()
        items, gaps, lengths, event_text = self._pack(list(histories))
        hidden = self.net.encode(items, gaps, event_text)[torch.arange(len(items)), lengths - 1]  # (B, C)
        return torch.cat([hidden, torch.ones(len(items), 1)], dim=1).numpy()

    @torch.no_grad()
    def item_vectors(self) -> np.ndarray:
        """Item vectors (n_items, dim + 1): each item's (ID, text or fused) vector, then its bias."""
        self.net.eval()
        vectors, bias = self.net.item_table()
        return torch.cat([vectors[1:], bias[1:, None]], dim=1).numpy().copy()

    @torch.no_grad()
    def item_embeddings(self) -> np.ndarray:
        """Item vectors (n_items, dim) as the model scores them (ID, text or fused)."""
        self.net.eval()
        return self.net.item_table()[0][1:].numpy().copy()

    def repeat_bias(self) -> float:
        """The score offset of items already in the model's input window (0 when not learned)."""
        return float(self.net.repeat.detach()) if self.net.repeat is not None else 0.0

    # ------------------------------------------------------------------ new items
    def _add_items(self, items: pd.DataFrame) -> None:
        """New items are cold: no ID embedding; in the text and fused modes their text scores them."""
        text = self._item_text(items) if self.item_repr != "id" else None
        self.net.add_items(text, len(items))

    # ------------------------------------------------------------------ persistence
    def _save_state(self, directory: Path) -> None:
        torch.save(self.net.state_dict(), directory / "transformer.pt")
        text = {"item_repr": self.item_repr, "event_text_dim": int(self.event_vectors.shape[1])}
        (directory / "text.json").write_text(json.dumps(text))
        if self.uses_event_text:
            keys = sorted(self.event_index.items(), key=lambda kv: kv[1])
            np.savez(
                directory / "event_text.npz",
                users=np.array([k[0] for k, _ in keys], dtype=str),
                items=np.array([k[1] for k, _ in keys], dtype=np.int64),
                times=np.array([k[2] for k, _ in keys], dtype=np.float64),
                vectors=self.event_vectors,
            )

    def _load_state(self, directory: Path) -> None:
        state = torch.load(directory / "transformer.pt", weights_only=True)
        text_path = directory / "text.json"
        text = (
            json.loads(text_path.read_text())
            if text_path.exists()
            else {"item_repr": "id", "event_text_dim": 0}
        )
        self.item_repr = text["item_repr"]
        item_text = state["item_text"][1:] if "item_text" in state else None
        self.net = InterestTransformerNet(
            len(self.item_map), self.config, self.item_repr, item_text, text["event_text_dim"]
        )
        state.setdefault(
            "known", torch.ones(len(self.item_map) + 1, dtype=torch.bool)
        )  # runs saved before cold start
        self.net.load_state_dict(state)
        self.net.eval()
        if text["event_text_dim"]:
            saved = np.load(directory / "event_text.npz")
            self.event_vectors = saved["vectors"]
            owners = (
                [[str(user)] for user in saved["users"]]
                if "users" in saved
                else self._users_of_events(saved["items"], saved["times"])
            )
            self.event_index = {}
            for row, (users, item, t) in enumerate(zip(owners, saved["items"], saved["times"], strict=True)):
                for user in users:
                    self.event_index[(user, int(item), float(t))] = row + 1

    def _users_of_events(self, items: np.ndarray, times: np.ndarray) -> list[list[str]]:
        """For runs saved when event text was keyed by (item, timestamp) alone: the users whose known
        histories hold each such event (several when two users' events coincide, as they did then)."""
        owners: dict[tuple[int, float], list[str]] = {}
        for user, history in self.histories.items():
            for item, t in zip(history.items, history.times, strict=True):
                owners.setdefault((int(item), float(t)), []).append(user)
        return [owners.get((int(i), float(t)), []) for i, t in zip(items, times, strict=True)]


def _has_event_text(events: pd.DataFrame) -> bool:
    return "text" in events and bool(
        (events["text"].notna() & (events["text"].astype(str).str.strip() != "")).any()
    )
