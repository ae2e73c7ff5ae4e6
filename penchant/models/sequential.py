"""The interest transformer as a recommender: windows of each user's history in, full-catalogue scores out.

Text is optional and frozen: item texts (built by a template from title, categories, description)
and event texts (reviews, queries in ``events["text"]``) are encoded once by a pretrained sentence
encoder (cached on disk by content) and saved with the model, so a loaded run needs the encoder only
to embed new text (new items, new events).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from penchant.data.dataset import Dataset, History
from penchant.errors import InputError
from penchant.models.base import Recommender, Validator
from penchant.models.devices import (
    Processes,
    autocast,
    backend,
    local_device,
    processes,
    resolve_device,
    uses_bf16,
)
from penchant.models.sequences import EventKey, Sequences, batch_order, training_batches, training_windows
from penchant.models.training import LoopSettings, run_training
from penchant.models.transformer import Batch, InterestTransformerNet, TransformerConfig, window_for
from penchant.models.transitions import FLOOR, ItemTransitions
from penchant.models.transitions import WEIGHTS as TRANSITION_WEIGHTS
from penchant.text import TextEncoder, has_item_text, item_texts, load_encoder

PRIVATE_WINDOW = 50  # the window of a differentially private run (``max_len`` 0 is read from data)
TRANSITIONS_FILE = "transitions.npz"


class InterestTransformer(Recommender):
    """Causal self-attention over each user's time-ordered items, trained with cross-entropy over the
    full catalogue of trained items or over sampled negatives (by catalogue size)."""

    name = "transformer"
    config_class = TransformerConfig

    def __init__(self, config: TransformerConfig | None = None, encoder: TextEncoder | None = None):
        super().__init__(config)
        self._encoder = encoder  # loaded from config.text_encoder when first needed
        self.item_repr = "id"  # config.item_repr resolved against the data at fit time
        # Event text: (user ID, item index, timestamp) -> row of event_vectors; row 0 is "no text".
        self.event_index: dict[EventKey, int] = {}
        self.event_vectors = np.zeros((1, 0), dtype=np.float32)
        self.device = torch.device("cpu")  # see :meth:`to`
        # Counted item-to-item transitions and their weight in scores (0: not used).
        self.transitions: ItemTransitions | None = None
        self.transition_weight = 0.0

    @property
    def encoder(self) -> TextEncoder:
        if self._encoder is None:
            self._encoder = load_encoder(self.config.text_encoder)
        return self._encoder

    @property
    def uses_event_text(self) -> bool:
        return self.event_vectors.shape[1] > 0

    # ------------------------------------------------------------------ devices
    def to(self, device: str | torch.device = "auto") -> InterestTransformer:
        """Run training and scoring on ``device`` (auto, cpu, cuda[:N], mps); see penchant.models.devices."""
        self.device = resolve_device(device)
        if getattr(self, "net", None) is not None:
            self.net.to(self.device)
        return self

    @property
    def window(self) -> int:
        """How many of a user's most recent events the network attends to (resolved at fit time)."""
        return self.net.window

    # ------------------------------------------------------------------ training
    @contextlib.contextmanager
    def _threads(self):
        """torch's intra-op threads as the config asks, for the duration of training."""
        before = torch.get_num_threads()
        if self.config.threads:
            torch.set_num_threads(self.config.threads)
        try:
            yield
        finally:
            torch.set_num_threads(before)

    def _fit(
        self, dataset: Dataset, train_events: pd.DataFrame, validate: Validator | None, progress: bool
    ) -> None:
        with self._threads():
            self._train(dataset, train_events, validate, progress)

    def _train(
        self, dataset: Dataset, train_events: pd.DataFrame, validate: Validator | None, progress: bool
    ) -> None:
        cfg: TransformerConfig = self.config
        procs = processes()
        device = local_device(self.device)
        self.device = device
        self.item_repr = self._resolve_item_repr(dataset)
        item_text = self._item_text(dataset.items, progress) if self.item_repr != "id" else None
        self.event_index, self.event_vectors = {}, np.zeros((1, 0), dtype=np.float32)
        if cfg.event_text and _has_event_text(dataset.events):
            # Every event's text may be indexed: a text only ever enters as input at its own
            # position, never as a target, so held-out targets' texts are never seen.
            self._index_event_text(dataset.events, progress)
        torch.manual_seed(cfg.seed)
        rng = np.random.default_rng(cfg.seed)
        histories = list(dataset.histories(train_events).values())
        private = cfg.dp_epsilon is not None
        if private and procs.distributed:
            raise InputError(
                "dp_epsilon: differentially private training runs in one process, not under torchrun"
            )
        if private:
            # Nothing about the network may be read from the data outside DP-SGD: a fixed window,
            # and every catalogue item a candidate (which items have events is private too).
            window = cfg.max_len or PRIVATE_WINDOW
            trained = dataset.n_items
        else:
            window = window_for(np.fromiter((len(h) for h in histories), dtype=np.int64), cfg)
            trained = int((self.popularity > 0).sum())
        loss = (
            cfg.loss if cfg.loss != "auto" else ("full" if trained <= cfg.full_softmax_items else "sampled")
        )
        # Sparse gradients for the per-item parameters: a step then touches only the items in it. nccl
        # cannot all-reduce sparse tensors, so a multi-GPU job keeps them dense; so does DP-SGD, whose
        # noise reaches every parameter.
        sparse = not private and not (procs.distributed and backend() == "nccl")
        self.net = InterestTransformerNet(
            dataset.n_items, cfg, self.item_repr, item_text, self.event_vectors.shape[1], window, sparse
        )
        # Items never trained on keep no ID embedding: they are scored by their text alone, and they
        # are never a candidate in the training softmax (they cost nothing there).
        known = np.ones(dataset.n_items, dtype=bool) if private else self.popularity > 0
        self.net.known = torch.from_numpy(np.concatenate([[True], known]))
        self.net.to(device)
        self.transitions, self.transition_weight = None, 0.0
        if private:  # the counts would be a release outside DP-SGD: a private run has none
            self._train_private(histories, loss, window, device, rng, progress)
            return
        network = self.net
        if procs.distributed:
            network = torch.nn.parallel.DistributedDataParallel(
                self.net, device_ids=[device.index] if device.type == "cuda" else None
            )
        self._training = _Training(
            network=network,
            optimizers=self._optimizers(sparse),
            rng=rng,
            generator=torch.Generator(device=device).manual_seed(cfg.seed + procs.rank),
            procs=procs,
            loss=loss,
            progress=progress,
        )
        epochs = self._epochs(histories)
        patience = patience_epochs(epochs.sequences.lengths, window, cfg)
        settings = LoopSettings(cfg.max_epochs, patience, cfg.max_seconds, progress, desc="transformer")
        stats = run_training(
            self.net, epochs, (lambda: validate(self)) if validate else None, settings, procs
        )
        stats.settings = {
            "loss": loss,
            "negatives": epochs.negatives if loss == "sampled" else None,
            "popular_negatives": cfg.popular_negatives if loss == "sampled" else None,
            "trained_items": trained,
            "window": window,
            "long_term": cfg.long_term,
            "device": str(device),
            "precision": "bf16" if uses_bf16(device, cfg.precision) else "fp32",
            "processes": procs.world,
            "steps_per_epoch": epochs.steps,
            "patience_epochs": patience,
            "windows_per_step": round(epochs.windows_per_step, 1),
            "threads": torch.get_num_threads(),
        }
        self.transitions = ItemTransitions.fit(histories, dataset.n_items)
        stats.settings["transitions"] = self._choose_transition_weight(validate)
        self.fit_stats = stats

    def _choose_transition_weight(self, validate: Validator | None) -> dict:
        """Set :attr:`transition_weight`: the setting's number, or with "auto" the weight of
        :data:`~penchant.models.transitions.WEIGHTS` that scores best on validation (the first of
        equals, so 0 unless the counts help); without validation "auto" is 0."""
        wanted = self.config.transitions
        if wanted != "auto":
            self.transition_weight = float(wanted)
            return {"weight": self.transition_weight, "chosen_by": "setting"}
        if validate is None:
            self.transition_weight = 0.0
            return {"weight": 0.0, "chosen_by": "no validation to choose on"}
        each = getattr(validate, "each", None)
        if each is not None:  # one pass of the network for all the weights
            scores = {w: round(float(v), 5) for w, v in each(self, TRANSITION_WEIGHTS).items()}
        else:
            scores = {}
            for weight in TRANSITION_WEIGHTS:
                self.transition_weight = weight
                scores[weight] = round(float(validate(self)), 5)
        self.transition_weight = max(scores, key=lambda w: (scores[w], -w))
        return {"weight": self.transition_weight, "chosen_by": "validation", "validation": scores}

    def _train_private(
        self,
        histories: Sequence[History],
        loss: str,
        window: int,
        device: torch.device,
        rng: np.random.Generator,
        progress: bool,
    ) -> None:
        """DP-SGD (:func:`penchant.models.private.train_private`) for ``dp_epochs`` passes over the
        users, no validation; the (ε, δ) spent go into the fit stats' settings and so into run.json."""
        from penchant.models.private import Privacy, default_delta, train_private

        cfg = self.config
        sequences = Sequences.from_histories(histories, self.event_index if self.uses_event_text else None)
        users = int((sequences.lengths >= 2).sum())
        privacy = Privacy(
            epsilon=cfg.dp_epsilon,
            delta=cfg.dp_delta if cfg.dp_delta is not None else default_delta(users),
            clip=cfg.dp_clip,
            users_per_step=cfg.dp_users_per_step,
            epochs=cfg.dp_epochs,
        )
        known = self.net.known_tokens()
        negatives = min(cfg.negatives, len(known))
        generator = torch.Generator(device=device).manual_seed(cfg.seed)
        long_events = cfg.long_term_events if cfg.long_term else 0
        vectors = self.event_vectors if self.uses_event_text else None

        def loss_of(windows) -> torch.Tensor:
            batch = sequences.batch(windows, True, long_events, vectors).to(device)
            sample = None
            if loss == "sampled":  # uniform negatives: drawn without looking at the data
                drawn = torch.randint(len(known), (negatives,), generator=generator, device=device)
                sample = torch.unique(known[drawn])
            with autocast(device, cfg.precision):
                return self.net(batch, sample)

        optimizer = torch.optim.AdamW(self._param_groups(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        stats, spent = train_private(self.net, sequences, window, privacy, optimizer, loss_of, rng, progress)
        stats.settings = {
            "loss": loss,
            "negatives": negatives if loss == "sampled" else None,
            "window": window,
            "long_term": cfg.long_term,
            "device": str(device),
            "precision": "bf16" if uses_bf16(device, cfg.precision) else "fp32",
            "processes": 1,
            "threads": torch.get_num_threads(),
            "privacy": spent,
        }
        self.fit_stats = stats
        self._training = None  # nothing to refit: more training would spend more than ε

    def refit(
        self, dataset: Dataset, events: pd.DataFrame, progress: bool = True, epochs: int | None = None
    ) -> None:
        """Go on training the fitted model on ``events`` for ``epochs`` (default ``refit_epochs``) more
        epochs, without validation: after early stopping chose the model on the validation targets,
        those targets' events (each user's most recent before the test) are learnt from too, and items
        first seen there become known. The optimiser state carries over from training."""
        epochs = self.config.refit_epochs if epochs is None else epochs
        if not epochs or self.config.dp_epsilon is not None:  # a private run spent its ε in fit()
            return
        if getattr(self, "_training", None) is None:
            raise RuntimeError("refit() continues a training run in this process; call fit() first")
        with self._threads():
            self.popularity = np.bincount(events["item"].to_numpy(), minlength=self.n_items).astype(
                np.float64
            )
            known = np.concatenate([[True], self.popularity > 0])
            self.net.known = torch.from_numpy(known).to(self.device)
            histories = list(dataset.histories(events).values())
            runner = self._epochs(histories)
            self._training.progress = progress
            settings = LoopSettings(epochs, 1, None, progress, desc="transformer refit")
            stats = run_training(self.net, runner, None, settings, self._training.procs)
            if self.transitions is not None:  # the counts learn the refit's events as the weights do
                self.transitions = ItemTransitions.fit(histories, self.n_items)
        self.fit_stats.refit_epochs += epochs
        self.fit_stats.refit_seconds += round(sum(stats.epoch_seconds), 2)
        self.fit_stats.seconds += sum(stats.epoch_seconds)

    def _epochs(self, histories: Sequence[History]) -> _Epochs:
        """One epoch at a time over ``histories``, negatives drawn from the items known now."""
        known = self.net.known_tokens()
        negatives = min(self.config.negatives, len(known))
        draw, log_q = self._negative_sampler(known, negatives)
        index = self.event_index if self.uses_event_text else None
        return _Epochs(
            model=self,
            sequences=Sequences.from_histories(histories, index),
            known=known,
            negatives=negatives,
            draw=draw,
            log_q=log_q,
        )

    def _negative_sampler(self, known: torch.Tensor, draws: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Sampling weights over the trained items (K,) and each token's log chance (V,) to be in a
        sample of ``draws`` draws with replacement, deduplicated: ``log(1 - (1 - q)^draws)``."""
        counts = torch.from_numpy(self.popularity).to(known.device, torch.float64)[known - 1]
        share = self.config.popular_negatives
        q = (1 - share) / len(known) + share * counts / counts.sum()  # (K,)
        log_q = torch.zeros(self.net.n_tokens, dtype=torch.float64, device=known.device)
        log_q[known] = torch.log(-torch.expm1(draws * torch.log1p(-q.clamp(max=1 - 1e-12))))
        return q.float(), log_q.float()

    def _optimizers(self, sparse: bool) -> list[torch.optim.Optimizer]:
        """SparseAdam for the per-item parameters when their gradients are sparse (a step costs nothing
        for the items it does not touch), AdamW for the rest (see :meth:`_param_groups`)."""
        cfg = self.config
        groups = self._param_groups()
        if not sparse:
            return [torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay, foreach=True)]
        per_item = {
            id(p) for m in (self.net.item_emb, self.net.item_bias) if m is not None for p in m.parameters()
        }
        dense = [{**g, "params": [p for p in g["params"] if id(p) not in per_item]} for g in groups]
        items = [p for g in groups for p in g["params"] if id(p) in per_item]
        dense = [g for g in dense if g["params"]]
        out = [torch.optim.AdamW(dense, lr=cfg.lr, weight_decay=cfg.weight_decay, foreach=True)]
        if items:
            out.append(torch.optim.SparseAdam(items, lr=cfg.lr))
        return out

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

    def forget_user(self, user_id: str) -> bool:
        history = self.histories.get(user_id)
        counted = self.transitions is not None and user_id in self.transitions.counted
        if counted:
            self.transitions.forget(user_id, history if history is not None else History.empty())
        known = super().forget_user(user_id) or counted
        gone = [key for key in self.event_index if key[0] == user_id]
        for key in gone:
            del self.event_index[key]
        if gone:  # keep only the rows still indexed, renumbered (row 0 is padding)
            kept = sorted(self.event_index.items(), key=lambda kv: kv[1])
            self.event_vectors = self.event_vectors[np.array([0] + [row for _, row in kept], dtype=np.int64)]
            self.event_index = {key: n + 1 for n, (key, _) in enumerate(kept)}
        return known or bool(gone)

    def observe(self, dataset: Dataset, events: pd.DataFrame) -> None:
        super().observe(dataset, events)
        net = getattr(self, "net", None)
        if net is not None and net.event_proj is not None:
            self._index_event_text(events)

    def _batch(self, histories: Sequence[History]) -> Batch:
        """The histories' last windows (and what came before them) as a batch on the model's device."""
        index = self.event_index if self.uses_event_text else None
        sequences = Sequences.from_histories(histories, index)
        long_events = self.config.long_term_events if self.net.long_proj is not None else 0
        vectors = self.event_vectors if self.uses_event_text else None
        batch = sequences.batch(sequences.last_windows(self.window), False, long_events, vectors)
        return batch.to(self.device)

    # ------------------------------------------------------------------ scoring
    def score(self, histories: Sequence[History]) -> np.ndarray:
        out = np.empty((len(histories), self.n_items), dtype=np.float32)
        weight = self.transition_weight if self.transitions is not None else 0.0
        for (start, end), logits, term in self._chunks(histories, bool(weight)):
            out[start:end] = term.add_to(logits, weight) if term is not None else logits.cpu().numpy()
        return out

    def score_each(
        self, histories: Sequence[History], weights: Sequence[float]
    ) -> Iterator[tuple[tuple[int, int], float, np.ndarray]]:
        """What :meth:`score` gives under each transition weight, a chunk of histories at a time:
        ``((start, end), weight, scores (end - start, I))``. The network's logits and the transition
        term are computed once per chunk for all the weights."""
        for rows, logits, term in self._chunks(histories, self.transitions is not None):
            for weight in weights:
                yield (
                    rows,
                    weight,
                    term.add_to(logits.clone(), weight) if term is not None else logits.cpu().numpy(),
                )

    def _chunks(
        self, histories: Sequence[History], boosted: bool
    ) -> Iterator[tuple[tuple[int, int], torch.Tensor, _TransitionTerm | None]]:
        """``((start, end), logits, term)`` per chunk of ``histories``: the network's scores (B, I)
        float32 (training popularity for an empty history) and, with ``boosted``, the item-transition
        term that :meth:`score` adds times the weight. At most ~64M scores per chunk, so a
        million-item catalogue scores in bounded memory."""
        self.net.eval()
        step = max(1, min(256, (1 << 26) // max(1, self.n_items)))
        popular = torch.as_tensor(np.log1p(self.popularity), dtype=torch.float32, device=self.device)
        unseen = (
            torch.as_tensor(np.flatnonzero(~self.transitions.seen), device=self.device) if boosted else None
        )
        for start in range(0, len(histories), step):
            chunk = list(histories[start : start + step])
            known = [i for i, h in enumerate(chunk) if len(h) > 0]
            if len(known) == len(chunk):  # the usual case
                logits = self.net.score_last(self._batch(chunk)).float()  # (B, I)
            else:
                logits = popular.expand(len(chunk), -1).clone()  # no behaviour to attend to: popularity
                if known:
                    scored = self.net.score_last(self._batch([chunk[i] for i in known])).float()
                    logits[torch.as_tensor(known, device=self.device)] = scored
            term = _TransitionTerm.of(self, chunk, known, logits, unseen) if boosted else None
            yield (start, start + len(chunk)), logits, term

    # Vector form of :meth:`score`, for nearest-neighbour retrieval: for a non-empty history,
    # score(h)[i] == user_vectors([h]) @ item_vectors()[i] + (repeat_bias() if i is in h's window else 0)
    #                + (the transition boost of i if transition_boost(h) lists i, else its base).
    def transition_boost(self, history: History) -> tuple[np.ndarray, np.ndarray, float]:
        """For one non-empty history: the items with counted transitions from its last items (K,),
        what each adds to its score (K,), and what every other item adds (``base``)."""
        if not self.transition_weight or self.transitions is None:
            return np.zeros(0, dtype=np.int64), np.zeros(0), 0.0
        extra, base = self.transitions.log_boost([history], self.transition_weight)
        return extra.indices.astype(np.int64), extra.data + base, base

    @torch.no_grad()
    def user_vectors(self, histories: Sequence[History]) -> np.ndarray:
        """Query vectors (B, dim + 1): the final hidden state of each non-empty history, then a 1."""
        self.net.eval()
        hidden = self.net.last_hidden(self._batch(list(histories))).float().cpu()  # (B, C)
        return torch.cat([hidden, torch.ones(len(hidden), 1)], dim=1).numpy()

    @torch.no_grad()
    def item_vectors(self, start: int = 0) -> np.ndarray:
        """Item vectors (n_items - start, dim + 1) of the items from ``start`` on: each item's (ID,
        text or fused) vector, then its bias."""
        self.net.eval()
        vectors, bias = self.net.table()
        return torch.cat([vectors[1 + start :], bias[1 + start :, None]], dim=1).cpu().numpy()

    @torch.no_grad()
    def item_embeddings(self, start: int = 0) -> np.ndarray:
        """Item vectors (n_items - start, dim) as the model scores them (ID, text or fused), of the
        items from ``start`` on."""
        self.net.eval()
        return self.net.table()[0][1 + start :].cpu().numpy().copy()

    def repeat_bias(self) -> float:
        """The score offset of items already in the model's input window (0 when not learned)."""
        return float(self.net.repeat.detach()) if self.net.repeat is not None else 0.0

    # ------------------------------------------------------------------ new items
    def make_room_for_items(self, n_more: int) -> None:
        """Load the text encoder and make room after the item rows for ``n_more`` new items, so that
        adding the next ones (:meth:`add_items`) copies nothing (see
        :meth:`InterestTransformerNet.make_room`): seconds at a million items, better spent when a
        service starts than on its first new item."""
        self.encoder  # noqa: B018 -- loaded now
        self.net.make_room(n_more)

    def _add_items(self, items: pd.DataFrame) -> None:
        """New items are cold: no ID embedding; in the text and fused modes their text scores them."""
        text = self._item_text(items) if self.item_repr != "id" else None
        self.net = self.net.with_items(text, len(items))
        if self.transitions is not None:
            self.transitions = self.transitions.grown(self.n_items + len(items))

    # ------------------------------------------------------------------ persistence
    def _save_state(self, directory: Path) -> None:
        # A tensor with room for more items (InterestTransformerNet.make_room) is saved without the room.
        state = {
            k: v.cpu().clone() if v.untyped_storage().nbytes() > v.nbytes else v.cpu()
            for k, v in self.net.state_dict().items()
        }
        torch.save(state, directory / "transformer.pt")
        network = {
            "item_repr": self.item_repr,
            "event_text_dim": int(self.event_vectors.shape[1]),
            "window": self.window,
            "long_term_mode": self.net.long_mode,
            "transition_weight": self.transition_weight,
        }
        (directory / "network.json").write_text(json.dumps(network))
        if self.transitions is not None:
            self.transitions.save(directory / TRANSITIONS_FILE)
        if self.uses_event_text:
            keys = sorted(self.event_index.items(), key=lambda kv: kv[1])
            np.savez(
                directory / "event_text.npz",
                users=np.array([k[0] for k, _ in keys], dtype=str),
                items=np.array([k[1] for k, _ in keys], dtype=np.int64),
                times=np.array([k[2] for k, _ in keys], dtype=np.float64),
                # Only the indexed rows, in key order (a row whose key a later text of the same
                # user, item and time took over is left out), so the loader's row n + 1 is key n's.
                vectors=self.event_vectors[np.array([0] + [row for _, row in keys], dtype=np.int64)],
            )

    def _load_state(self, directory: Path) -> None:
        state = torch.load(directory / "transformer.pt", weights_only=True, map_location="cpu")
        network = {"item_repr": "id", "event_text_dim": 0}
        for name in ("network.json", "text.json"):  # text.json: runs saved before network.json
            if (directory / name).exists():
                network.update(json.loads((directory / name).read_text()))
                break
        # Runs saved before the window was resolved from the data used max_len as given (50), and had
        # no long-term summary.
        window = network.get("window") or self.config.max_len or 50
        config = self.config
        if "long_proj.weight" not in state and config.long_term:
            config = replace(config, long_term=False)
        # The block kind is in the saved weights (runs saved before "block" existed are "pre-ln").
        block = "gated" if "blocks.0.gate1.weight" in state else "pre-ln"
        if config.block != block:
            config = replace(config, block=block)
        self.item_repr = network["item_repr"]
        item_text = state["item_text"][1:] if "item_text" in state else None
        self.net = InterestTransformerNet(
            len(self.item_map),
            config,
            self.item_repr,
            item_text,
            network["event_text_dim"],
            window,
            long_mode=network.get("long_term_mode", "add"),  # before the token, the summary was added
        )
        state.setdefault(
            "known", torch.ones(len(self.item_map) + 1, dtype=torch.bool)
        )  # runs saved before cold start
        self.net.load_state_dict(state)
        self.net.to(self.device)
        # Runs saved before the transition counts have none (weight 0).
        self.transition_weight = float(network.get("transition_weight", 0.0))
        path = directory / TRANSITIONS_FILE
        self.transitions = ItemTransitions.load(path) if path.exists() else None
        self.net.eval()
        if network["event_text_dim"]:
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


@dataclass
class _Training:
    """What carries over between the epochs of one model's training (and a refit after it)."""

    network: torch.nn.Module  # the net, or its DistributedDataParallel wrapper
    optimizers: list[torch.optim.Optimizer]
    rng: np.random.Generator  # windows and batch order
    generator: torch.Generator  # negatives
    procs: Processes
    loss: str  # "full" or "sampled"
    progress: bool = True  # a bar over each epoch's steps (rank 0)


@dataclass
class _Epochs:
    """Runs one training epoch over fixed sequences when called; returns the mean loss."""

    model: InterestTransformer
    sequences: Sequences
    known: torch.Tensor  # trained tokens, ascending
    negatives: int
    draw: torch.Tensor  # sampling weights over ``known``
    log_q: torch.Tensor  # (V,) log chance of each token to be in a sample
    steps: int = 0  # of the last epoch
    windows_per_step: float = 0.0  # in this process, in the last epoch

    def __call__(self, epoch: int) -> float:
        model, cfg = self.model, self.model.config
        run = model._training
        device = model.device
        total, count = 0.0, 0
        windows = training_windows(self.sequences.lengths, model.window, run.rng)
        groups = batch_order(windows, cfg.batch_size, run.rng, run.procs.rank, run.procs.world)
        self.steps = len(groups)
        self.windows_per_step = sum(len(g) for g in groups) / max(len(groups), 1)
        long_events = cfg.long_term_events if cfg.long_term else 0
        vectors = model.event_vectors if model.uses_event_text else None
        batches = tqdm(
            training_batches(self.sequences, windows, groups, long_events, vectors),
            desc=f"epoch {epoch}",
            total=len(groups),
            unit="step",
            leave=False,
            disable=not run.progress or not run.procs.main,
        )
        for batch in batches:
            batch = batch.to(device)
            sample = None
            if run.loss == "sampled":
                drawn = torch.multinomial(
                    self.draw, self.negatives, replacement=True, generator=run.generator
                )
                sample = torch.unique(self.known[drawn])
            with autocast(device, cfg.precision):
                value = run.network(batch, sample, self.log_q)
            for optimizer in run.optimizers:
                optimizer.zero_grad(set_to_none=True)
            value.backward()
            for optimizer in run.optimizers:
                optimizer.step()
            n = int((batch.targets != 0).sum())
            total += value.item() * n
            count += n
        return total / max(count, 1)


def patience_epochs(lengths: np.ndarray, window: int, cfg: TransformerConfig) -> int:
    """Epochs without a better validation score before early stopping: ``patience``, or more on
    data so small that those epochs hold fewer than ``patience_steps`` optimiser steps (at most five
    times ``patience``, so that a toy dataset of one step an epoch does not wait hundreds of epochs).

    One epoch of ml-100k is 21 steps, so ten epochs without a new best were often validation noise:
    three seeds stopped at epochs 35, 64 and 100 and scored NDCG@10 0.090, 0.095 and 0.110, in the
    order of how long they trained (benchmarks/results/scale.md)."""
    windows = len(training_windows(lengths, window, np.random.default_rng(0)))
    steps = max(1, -(-windows // cfg.batch_size))
    return max(cfg.patience, min(5 * cfg.patience, -(-cfg.patience_steps // steps)))


def _has_event_text(events: pd.DataFrame) -> bool:
    return "text" in events and bool(
        (events["text"].notna() & (events["text"].astype(str).str.strip() != "")).any()
    )


@dataclass
class _TransitionTerm:
    """What the item-transition counts add to a chunk's logits per unit of weight, kept in parts so
    that adding it costs no (B, I) temporary: ``log FLOOR`` for every item, ``log(P + FLOOR) -
    log FLOOR`` where the counts' next-item probability P > 0 (sparse), and for the items the counts
    never saw the model's own probability in place of P (so a new or held-out item scored by its
    text is not buried under counted pairs): ``log(softmax(logits) + FLOOR)``, (B, unseen)."""

    base: float
    extra: object  # scipy COO (B, I)
    unseen: torch.Tensor  # (U,) item indices
    own: torch.Tensor | None  # (B, U)
    rows: np.ndarray  # the chunk rows that have a history (the others get no term)

    @classmethod
    def of(cls, model, chunk, known, logits, unseen) -> _TransitionTerm:
        extra, base = model.transitions.log_boost([chunk[i] for i in known], 1.0)
        own = None
        if len(unseen) and known:
            every = len(known) == logits.shape[0]  # the usual case: no copy of the rows
            rows = logits if every else logits[torch.as_tensor(known, device=logits.device)]
            own = rows[:, unseen].sub_(torch.logsumexp(rows, dim=1, keepdim=True))
            own.exp_().add_(FLOOR).log_()
        return cls(base, extra.tocoo(), unseen, own, np.asarray(known, dtype=np.int64))

    def add_to(self, logits: torch.Tensor, weight: float) -> np.ndarray:
        """``logits + weight x term`` (in place on ``logits``) as a numpy array."""
        if weight and len(self.rows):
            every = len(self.rows) == logits.shape[0]  # the usual case: no copy of the rows
            part = logits if every else logits[torch.as_tensor(self.rows, device=logits.device)]
            if self.own is not None:  # unseen items: weight x own in place of weight x base
                part.index_add_(1, self.unseen, (self.own - self.base).mul_(weight))
            part += weight * self.base
            if not every:
                logits[torch.as_tensor(self.rows, device=logits.device)] = part
        out = logits.cpu().numpy()
        if weight and self.extra.nnz:
            np.add.at(
                out,
                (self.rows[self.extra.row], self.extra.col),
                (weight * self.extra.data).astype(np.float32),
            )
        return out
