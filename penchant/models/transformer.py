"""The interest transformer network: causal self-attention over a user's time-ordered items.

SASRec family (Kang & McAuley, 2018) with four additions:

* a **time-gap embedding** (log-bucketed seconds since the previous event) added to every input;
* a learned **repeat bias** that lets the model decide from data whether people come back to items
  they already have (on MovieLens they never re-rate, in a shop they re-buy);
* a **long-term summary**: the mean of the vectors of the user's events from before the attention
  window (up to ``long_term_events`` of them), projected and added to every position, so that
  interests from far outside the window still count;
* an objective that scales with the catalogue (``loss``): cross-entropy over every trained item
  (full softmax) for small catalogues, and cross-entropy over the target and a shared sample of
  negatives drawn uniformly from the trained items for large ones. With uniform sampling the logQ
  correction is the same constant for every candidate and cancels. Neither path ever builds a
  (positions x catalogue) tensor of anything but the logits it needs: items without training events
  are not scored at all, and the repeat bias is added at the candidates a position has seen.

Text enters in two places (both optional, both from a frozen pretrained sentence encoder):

* **items**: an item's vector is its learned ID embedding, a linear projection of its text
  embedding, or their sum (``item_repr`` "id", "text", "fused"); the same vectors embed inputs and
  score outputs. Items without training interactions ("cold") have no usable ID embedding, so
  their ID part is masked to zero and only the text speaks for them; ID dropout during training
  masks random warm items the same way, so the text path learns to stand alone;
* **events**: text attached to an event (a review, a query) is projected and added to that
  position's input.

Item index 0 is padding; catalogue item ``i`` is token ``i + 1``. Sequences are right-padded; with a causal
mask no real position ever attends to padding.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from penchant.errors import InputError
from penchant.models.base import ModelConfig

PAD = 0
ITEM_REPRS = ("auto", "id", "text", "fused")
LOSSES = ("auto", "full", "sampled")
BLOCKS = ("pre-ln", "gated")
PRECISIONS = ("auto", "fp32", "bf16")
GAP_BUCKETS = 32  # 0 = padding, 1 = first event (no previous), 2.. = log2 buckets of the gap in seconds


@dataclass(frozen=True)
class TransformerConfig(ModelConfig):
    """Settings of the interest transformer; the defaults are the recommended ones.

    Training ends by early stopping on validation (``patience`` epochs, and ``patience_steps`` steps,
    without a better score).
    ``max_epochs`` and ``max_seconds`` are budgets a user may ask for; none is set by default, and a
    budget that stops training while validation is still improving is reported as such.
    """

    # 128 and 0.5 (below) measured best on both Amazon Beauty and ml-100k, scored on validation
    # targets (benchmarks/results/tune/beauty_capacity.md, ml-100k_capacity_refit.md).
    dim: int = 128
    layers: int = 2
    heads: int = 2
    # Most recent events the model attends to; 0 = from the data: enough to cover 90% of the
    # training histories in full, between 20 and 50 (see ``window_for``).
    max_len: int = 0
    dropout: float = 0.5
    # "pre-ln": pre-LayerNorm residual blocks with a GELU MLP (SASRec, GPT-2); "gated": each residual
    # branch scaled by a learned sigmoid gate of the block's input, and a SwiGLU MLP (LiGR, the
    # layers of eSASRec, Tikhonovich et al. 2025).
    block: str = "pre-ln"
    time_gaps: bool = True  # add the time-gap embedding
    repeat_bias: bool = True  # learn a logit offset for items already in the input
    long_term: bool = True  # one input token summarising the events before the window
    long_term_events: int = 1000  # at most this many events before the window are summarised
    # "full": softmax over every trained item; "sampled": over the target and ``negatives`` shared
    # uniform negatives per batch; "auto": full up to ``full_softmax_items`` trained items.
    loss: str = "auto"
    # 2,048, half by popularity: on Beauty's validation targets, trained to early stopping on the
    # CPU, 4,096 (half or all by popularity) scored the same (NDCG@10 0.0321, 0.0320 against 0.0320)
    # at 1.6x the cost of an epoch (benchmarks/results/tune/beauty_cpu_negatives.md); more negatives
    # led only in runs cut at ~21 epochs (beauty_gpu_objective.md).
    negatives: int = 2048
    # Sampled only: the share of negatives drawn by training popularity rather than uniformly; every
    # candidate's logit is corrected by the log of its chance to be in the sample (logQ), so the
    # estimate stays that of the full softmax while popular, hard negatives are seen more often.
    popular_negatives: float = 0.5
    full_softmax_items: int = 20_000
    lr: float = 1e-3
    weight_decay: float = 0.0  # AdamW decay of the dense parameters (item embeddings take none)
    batch_size: int = 128
    max_epochs: int | None = None  # an epoch budget; None: until early stopping
    patience: int = 10  # epochs without a better validation score before stopping
    # ... and at least this many optimiser steps, for data whose epochs are only a few steps long
    # (see ``penchant.models.sequential.patience_epochs``); 0: ``patience`` epochs alone.
    patience_steps: int = 500
    # Epochs of further training after early stopping on the training events plus the validation
    # targets' events (each user's most recent before the test), so that the final model knows them
    # too; 0: none. See benchmarks/results/scale.md for how many paid on validation.
    refit_epochs: int = 4
    max_seconds: float | None = None  # a wall-clock budget; None: until early stopping
    validation_users: int = 10_000  # early stopping ranks this many validation users (seeded sample)
    threads: int = 0  # torch intra-op threads; 0 = torch's default (the machine's cores)
    # "auto": bf16 autocast on a CUDA device that supports it, fp32 elsewhere (on the reference CPUs a
    # whole Beauty training under bf16 took longer, 972 s against 928 s, to a slightly lower NDCG@10,
    # 0.0369 against 0.0371: benchmarks/results/scale.md, ablation).
    precision: str = "auto"
    item_repr: str = "auto"  # "id", "text", "fused", or "auto": fused when items have text, else id
    text_encoder: str = "minilm"  # "minilm", "multilingual" or a sentence-transformers directory
    text_template: str = "{title}, {year}. {categories}. {description}"  # see penchant.text.item_texts
    event_text: bool = True  # add encoded event text (reviews, queries) to its position's input
    id_dropout: float = 0.1  # share of warm items whose ID part is masked per batch (text modes only)
    # Fused only: the text projection's learning rate relative to ``lr``. The projection is shared by
    # every item, so at the full rate one step moves every item's vector at once, outrunning the
    # per-item ID embeddings; slowed down, fused ml-100k runs scored higher and steadier across seeds
    # (benchmarks/results/text.md).
    text_lr_scale: float = 0.03
    # Item-to-item transitions counted in the training histories, added to the logits as
    # ``transitions * log(P(next | last items) + 1e-4)`` (penchant.models.transitions): "auto"
    # chooses the weight on validation after training (0 when the counts add nothing), a number
    # fixes it, 0 turns them off.
    transitions: float | str = "auto"
    # Differential privacy (``penchant train --dp-epsilon``): DP-SGD with each user as the privacy
    # unit (penchant.models.private). None: ordinary training. A private run trains ``dp_epochs``
    # passes over the users, ``dp_users_per_step`` expected users a step, each user's gradient
    # clipped to ``dp_clip``; ``dp_delta`` None: a tenth of 1 / users, at most 1e-5.
    dp_epsilon: float | None = None
    dp_delta: float | None = None
    dp_clip: float = 1.0
    dp_users_per_step: int = 256
    dp_epochs: int = 30

    def __post_init__(self) -> None:
        super().__post_init__()
        choices = {"item_repr": ITEM_REPRS, "loss": LOSSES, "precision": PRECISIONS, "block": BLOCKS}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise InputError(f"{name} must be one of {', '.join(allowed)}, got '{getattr(self, name)}'")
        if self.dim % self.heads:
            raise InputError(f"dim ({self.dim}) must be a multiple of heads ({self.heads})")
        if not 0.0 <= self.dropout < 1.0:
            raise InputError(f"dropout must be in [0, 1), got {self.dropout}")
        if not 0.0 <= self.popular_negatives <= 1.0:
            raise InputError(f"popular_negatives must be in [0, 1], got {self.popular_negatives}")
        if not 0.0 <= self.id_dropout < 1.0:
            raise InputError(f"id_dropout must be in [0, 1), got {self.id_dropout}")
        positive = (
            "dim",
            "layers",
            "heads",
            "batch_size",
            "patience",
            "negatives",
            "lr",
            "text_lr_scale",
            "dp_clip",
            "dp_users_per_step",
            "dp_epochs",
        )
        for name in positive:
            if getattr(self, name) <= 0:
                raise InputError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.transitions != "auto" and (isinstance(self.transitions, str) or self.transitions < 0):
            raise InputError(f'transitions must be "auto" or a weight >= 0, got {self.transitions!r}')
        if self.dp_delta is not None and not 0.0 < self.dp_delta < 1.0:
            raise InputError(f"dp_delta must be in (0, 1), got {self.dp_delta}")
        if self.dp_epsilon is not None and self.dp_epsilon <= 0:
            raise InputError(
                f"dp_epsilon must be > 0 (or null: no differential privacy), got {self.dp_epsilon}"
            )
        for name in ("max_epochs", "max_seconds", "validation_users", "long_term_events"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise InputError(f"{name} must be > 0 (or null for no limit), got {value}")
        non_negative = ("max_len", "threads", "full_softmax_items", "weight_decay", "refit_epochs")
        for name in (*non_negative, "patience_steps"):
            if getattr(self, name) < 0:
                raise InputError(f"{name} must be >= 0, got {getattr(self, name)}")


def window_for(lengths, config: TransformerConfig) -> int:
    """The attention window: ``config.max_len``, or when 0, the 90th percentile of the training
    history lengths (so most users are seen whole), rounded up to a multiple of 10, in [20, 50].

    The cap is measured: on ml-100k (whose 90th percentile is over 200) a window of 50 scored NDCG@10
    0.105 on the validation targets against 0.086 for 200 (benchmarks/results/tune/ml-100k_window.md);
    events from before the window still count through the long-term summary."""
    if config.max_len:
        return config.max_len
    if len(lengths) == 0:
        return 50
    p90 = float(torch.quantile(torch.as_tensor(lengths, dtype=torch.float64), 0.9))
    return int(min(50, max(20, 10 * math.ceil(p90 / 10))))


class CausalSelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.resid_dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape  # (B, T, C)
        q, k, v = self.qkv(x).split(c, dim=2)
        q, k, v = (
            z.view(b, t, self.heads, c // self.heads).transpose(1, 2) for z in (q, k, v)
        )  # (B, H, T, C/H)
        # Sequences are right-padded, so a causal mask alone keeps real positions off the padding.
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        y = y.transpose(1, 2).contiguous().view(b, t, c)  # (B, T, C)
        return self.resid_dropout(self.proj(y))


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.ln1 = nn.LayerNorm(dim)
        self.attn = CausalSelfAttention(dim, heads, dropout)
        self.ln2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim), nn.Dropout(dropout)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


@dataclass
class Batch:
    """One training or scoring batch, all tensors right-padded.

    items, gaps: (B, T) tokens and gap buckets; targets: (B, T) next-item tokens, PAD where none
    (None when scoring); lengths: (B,); event_text: (B, T, D) or None; long_tokens, long_rows: the
    tokens of the events before each row's window, flat, and the row each belongs to (None without
    the long-term summary).
    """

    items: torch.Tensor
    gaps: torch.Tensor
    lengths: torch.Tensor
    targets: torch.Tensor | None = None
    event_text: torch.Tensor | None = None
    long_tokens: torch.Tensor | None = None
    long_rows: torch.Tensor | None = None

    def to(self, device: torch.device) -> Batch:
        moved = {
            k: (v.to(device, non_blocking=True) if v is not None else None) for k, v in vars(self).items()
        }
        return Batch(**moved)


class SwiGLU(nn.Module):
    def __init__(self, dim: int, hidden: int, dropout: float):
        super().__init__()
        self.gate = nn.Linear(dim, hidden, bias=False)
        self.up = nn.Linear(dim, hidden, bias=False)
        self.down = nn.Linear(hidden, dim, bias=False)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.down(F.silu(self.gate(x)) * self.up(x)))


class GatedBlock(nn.Module):
    """A block whose residual branches are scaled by sigmoid gates read from the block's input (LiGR)."""

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.ln1 = nn.LayerNorm(dim)
        self.attn = CausalSelfAttention(dim, heads, dropout)
        self.gate1 = nn.Linear(dim, dim)
        self.ln2 = nn.LayerNorm(dim)
        self.mlp = SwiGLU(dim, 4 * dim, dropout)
        self.gate2 = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + torch.sigmoid(self.gate1(x)) * self.attn(self.ln1(x))
        return x + torch.sigmoid(self.gate2(x)) * self.mlp(self.ln2(x))


def appended(t: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """``t`` with ``rows`` after it (along dim 0). Where ``t``'s storage has room past its end (one
    this or :func:`with_room` returned), the rows are written there and the result is a longer view
    of the same storage: ``t`` itself is unchanged, and nothing is copied. Otherwise the result is a
    new tensor with room for an eighth more. Only grow the newest view of a storage: rows past an
    older view's end may belong to a newer one. (``ItemVectors.appended`` does the same for the
    explore layer's numpy vectors.)"""
    n, needed = t.shape[0], t.shape[0] + rows.shape[0]
    row_bytes = t[:1].nbytes if n else 0
    roomy = (
        n > 0
        and t.is_contiguous()
        and t.storage_offset() == 0
        and t.untyped_storage().nbytes() >= needed * row_bytes
    )
    if not roomy:
        t = with_room(t, max(rows.shape[0], n // 8, 16))
    longer = t.new_empty(0).set_(t.untyped_storage(), 0, (needed, *t.shape[1:]))
    longer[n:] = rows.to(t.dtype)
    return longer


def with_room(t: torch.Tensor, n_more: int) -> torch.Tensor:
    """A copy of ``t`` whose storage has room for ``n_more`` more rows after it (see :func:`appended`)."""
    store = t.new_empty((t.shape[0] + n_more, *t.shape[1:]))
    store[: t.shape[0]] = t
    return store[: t.shape[0]]


class InterestTransformerNet(nn.Module):
    """The network. ``item_text`` (n_items, D) are frozen item text embeddings (zero rows for items
    without text), needed unless ``item_repr == "id"``; ``event_text_dim`` > 0 adds a projection for
    event text. ``sparse`` gives the per-item parameters sparse gradients (for ``SparseAdam``), so a
    step costs nothing for the items it does not touch."""

    def __init__(
        self,
        n_items: int,
        config: TransformerConfig,
        item_repr: str = "id",
        item_text: torch.Tensor | None = None,
        event_text_dim: int = 0,
        window: int = 50,
        sparse: bool = False,
        long_mode: str = "token",
    ):
        super().__init__()
        if item_repr not in ("id", "text", "fused"):
            raise ValueError(f"item_repr must be resolved to id, text or fused, got {item_repr!r}")
        if item_repr != "id" and item_text is None:
            raise ValueError(f"item_repr={item_repr!r} needs item text embeddings")
        self.config = config
        self.item_repr = item_repr
        self.window = window
        self.n_tokens = n_items + 1
        c = config.dim
        if item_repr != "text":
            self.item_emb = nn.Embedding(self.n_tokens, c, padding_idx=PAD, sparse=sparse)
            self.item_bias = nn.Embedding(self.n_tokens, 1, padding_idx=PAD, sparse=sparse)
        else:
            self.item_emb = self.item_bias = None
        if item_repr != "id":
            # (V, D) with the padding row zero; frozen, saved with the parameters.
            padded = torch.cat([torch.zeros(1, item_text.shape[1]), item_text.float()])
            self.register_buffer("item_text", padded)
            self.text_proj = nn.Linear(item_text.shape[1], c, bias=False)  # no bias: padding stays zero
            self.text_bias = nn.Linear(item_text.shape[1], 1)  # a popularity prior read from the text
        else:
            self.register_buffer("item_text", None)
            self.text_proj = self.text_bias = None
        # Items with training interactions; the others' ID part is masked. Set by the trainer.
        self.register_buffer("known", torch.ones(self.n_tokens, dtype=torch.bool))
        self.event_proj = nn.Linear(event_text_dim, c, bias=False) if event_text_dim else None
        self.pos_emb = nn.Embedding(window, c)
        self.gap_emb = nn.Embedding(GAP_BUCKETS, c, padding_idx=0) if config.time_gaps else None
        self.long_proj = nn.Linear(c, c, bias=False) if config.long_term else None
        # "token": the summary is one extra input before the window, which every position may attend
        # to (or not); "add": added to every position's input (runs saved before the token).
        self.long_mode = long_mode
        self.long_token = nn.Parameter(torch.zeros(c)) if config.long_term and long_mode == "token" else None
        self.drop = nn.Dropout(config.dropout)
        kind = GatedBlock if config.block == "gated" else Block
        self.blocks = nn.ModuleList(kind(c, config.heads, config.dropout) for _ in range(config.layers))
        self.ln_f = nn.LayerNorm(c)
        self.repeat = nn.Parameter(torch.zeros(())) if config.repeat_bias else None
        self.apply(self._init_weights)
        if self.item_bias is not None:
            nn.init.zeros_(self.item_bias.weight)
        self._table: tuple[torch.Tensor, torch.Tensor] | None = None  # eval-mode cache of all vectors

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=0.02)
            if module.padding_idx is not None:
                module.weight.data[module.padding_idx].zero_()

    def train(self, mode: bool = True) -> InterestTransformerNet:
        if mode or self.training:  # parameters may change from here on, or have changed since
            self._table = None  # (eval() on a module already in eval mode keeps the cache)
        return super().train(mode)

    def _load_from_state_dict(self, state, prefix, *args, **kwargs):
        # Runs saved before the item bias became an embedding hold it as a (V,) vector.
        bias = state.get(prefix + "item_bias")
        if bias is not None and bias.dim() == 1:
            state[prefix + "item_bias.weight"] = state.pop(prefix + "item_bias")[:, None]
        self._table = None
        super()._load_from_state_dict(state, prefix, *args, **kwargs)

    # ------------------------------------------------------------------ item vectors
    @property
    def device(self) -> torch.device:
        return self.known.device

    def known_tokens(self) -> torch.Tensor:
        """Tokens of the items with training events, ascending (K,)."""
        return torch.nonzero(self.known[1:]).squeeze(1) + 1

    def item_vectors(
        self, tokens: torch.Tensor, keep: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Vectors (..., C) and output biases (...) of ``tokens``: ID part (masked for cold items and
        where ``keep`` is False) plus the text part."""
        c = self.config.dim
        vectors = torch.zeros(*tokens.shape, c, device=tokens.device)
        bias = torch.zeros(tokens.shape, device=tokens.device)
        if self.item_emb is not None:
            mask = self.known[tokens] if keep is None else self.known[tokens] & keep
            mask = mask.to(vectors.dtype)
            vectors = vectors + self.item_emb(tokens) * mask[..., None]
            bias = bias + self.item_bias(tokens).squeeze(-1) * mask
        if self.text_proj is not None:
            text = self.item_text[tokens]  # (..., D)
            vectors = vectors + self.text_proj(text)
            bias = bias + self.text_bias(text).squeeze(-1)
        return vectors, bias

    def table(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Every token's vector (V, C) and bias (V,), cached while the module is in eval mode."""
        if self.training:
            return self.item_vectors(torch.arange(self.n_tokens, device=self.device))
        if self._table is None:
            with torch.no_grad():
                self._table = self.item_vectors(torch.arange(self.n_tokens, device=self.device))
        return self._table

    # ------------------------------------------------------------------ encoder
    def encode(
        self, batch: Batch, vectors: torch.Tensor | None = None, summary: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Hidden states (B, T, C). ``vectors`` (B, T, C) and ``summary`` (B, C) are the input items'
        vectors and the long-term summaries when the caller has them already (training draws one
        ID-dropout mask for inputs and outputs alike)."""
        items = batch.items
        b, t = items.shape
        if vectors is None:
            vectors = self.table()[0][items]
        if summary is None and self.long_proj is not None and batch.long_tokens is not None:
            summary = self._long_summary(batch.long_rows, self.table()[0][batch.long_tokens], b)
        positions = torch.arange(t, device=items.device)
        x = vectors * math.sqrt(self.config.dim) + self.pos_emb(positions)[None]  # (B, T, C)
        if self.gap_emb is not None:
            x = x + self.gap_emb(batch.gaps)
        if self.event_proj is not None and batch.event_text is not None:
            x = x + self.event_proj(batch.event_text)  # (B, T, C)
        prepended = False
        if self.long_proj is not None and summary is not None:
            if self.long_token is None:
                x = x + self.long_proj(summary)[:, None, :]  # the same summary at every position
            else:
                token = self.long_proj(summary) + self.long_token  # (B, C)
                x = torch.cat([token[:, None, :], x], dim=1)  # (B, 1 + T, C)
                prepended = True
        x = self.drop(x)
        for block in self.blocks:
            x = block(x)
        x = self.ln_f(x)
        return x[:, 1:] if prepended else x  # (B, T, C)

    def _long_summary(self, rows: torch.Tensor, vectors: torch.Tensor, b: int) -> torch.Tensor:
        """(B, C): the mean of each row's pre-window event vectors (L, C), zero for a row with none."""
        sums = torch.zeros(b, self.config.dim, device=vectors.device, dtype=vectors.dtype)
        sums = sums.index_add(0, rows, vectors)
        counts = torch.bincount(rows, minlength=b).clamp(min=1).to(vectors.dtype)
        return sums / counts[:, None]

    # ------------------------------------------------------------------ training
    def forward(
        self, batch: Batch, negatives: torch.Tensor | None = None, log_q: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Training: the mean cross-entropy of every next-item target in the batch.

        With ``negatives`` None, over every trained item (full softmax); otherwise over each target
        and the given tokens, ascending (sampled softmax; a negative equal to a row's target is
        masked), every logit less ``log_q`` (V,) of its token: the log chance that the token is drawn.
        """
        items, targets = batch.items, batch.targets
        b, t = items.shape
        rows, cols = (targets != PAD).nonzero(as_tuple=True)  # N positions
        wanted = targets[rows, cols]  # (N,)
        candidates = self.known_tokens() if negatives is None else negatives  # (S,), ascending
        # One set of vectors for every token the batch touches, so that one ID-dropout draw holds for
        # inputs, outputs and the long-term summary alike.
        parts = [items.reshape(-1), wanted, candidates]
        summarise = self.long_proj is not None and batch.long_tokens is not None
        if summarise:
            parts.append(batch.long_tokens)
        tokens, inverse = torch.unique(torch.cat(parts), return_inverse=True)
        keep = None
        if self.item_repr == "fused" and self.config.id_dropout > 0:
            keep = torch.rand(len(tokens), device=tokens.device) >= self.config.id_dropout
        vectors, bias = self.item_vectors(tokens, keep)  # (U, C), (U,)
        at = torch.split(inverse, [len(p) for p in parts])
        summary = self._long_summary(batch.long_rows, vectors[at[3]], b) if summarise else None
        hidden = self.encode(batch, vectors[at[0]].view(b, t, -1), summary)  # (B, T, C)
        h = hidden[rows, cols]  # (N, C)
        logits = h @ vectors[at[2]].T + bias[at[2]]  # (N, S)
        seen_tokens, seen = self._prefix(items, rows, cols)  # (N, T) each
        logits = self._add_repeat(logits, candidates, seen_tokens, seen)
        if negatives is None:
            return F.cross_entropy(logits, torch.searchsorted(candidates, wanted))
        positive = (h * vectors[at[1]]).sum(-1) + bias[at[1]]  # (N,)
        if log_q is not None:
            logits = logits - log_q[candidates][None, :]
            positive = positive - log_q[wanted]
        if self.repeat is not None:
            positive = positive + self.repeat * (seen & (seen_tokens == wanted[:, None])).any(1)
        # A negative that is the row's own target (an accidental hit) is taken out.
        column = torch.searchsorted(candidates, wanted).clamp(max=len(candidates) - 1)
        hit = (candidates[column] == wanted).nonzero(as_tuple=True)[0]
        logits = logits.index_put((hit, column[hit]), torch.tensor(float("-inf"), device=logits.device))
        logits = torch.cat([positive[:, None], logits], dim=1)  # (N, 1 + S); the target is column 0
        return F.cross_entropy(logits, torch.zeros(len(h), dtype=torch.long, device=h.device))

    @staticmethod
    def _prefix(
        items: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """For each position (rows[n], cols[n]): the row's tokens (N, T) and which of them it has seen,
        counting each token once (its first occurrence) so a repeated token gets one repeat bias."""
        t = items.shape[1]
        earlier = torch.ones(t, t, dtype=torch.bool, device=items.device).tril(-1)  # j' < j
        duplicate = ((items[:, :, None] == items[:, None, :]) & earlier).any(-1)  # (B, T)
        first = ~duplicate & (items != PAD)
        positions = torch.arange(t, device=items.device)
        seen = first[rows] & (positions[None, :] <= cols[:, None])  # (N, T)
        return items[rows], seen

    def _add_repeat(
        self, logits: torch.Tensor, candidates: torch.Tensor, tokens: torch.Tensor, seen: torch.Tensor
    ) -> torch.Tensor:
        """``logits`` (N, S) over ascending ``candidates`` plus the repeat bias where a row has seen the
        candidate, without any (N, V) tensor."""
        if self.repeat is None:
            return logits
        column = torch.searchsorted(candidates, tokens).clamp(max=len(candidates) - 1)  # (N, T)
        hit = seen & (candidates[column] == tokens)
        return logits.scatter_add(1, column, hit.to(logits.dtype) * self.repeat)

    # ------------------------------------------------------------------ scoring
    @torch.no_grad()
    def last_hidden(self, batch: Batch) -> torch.Tensor:
        """(B, C): the hidden state after each row's last event."""
        hidden = self.encode(batch)  # (B, T, C)
        return hidden[torch.arange(len(batch.items), device=hidden.device), batch.lengths - 1]

    @torch.no_grad()
    def score_last(self, batch: Batch) -> torch.Tensor:
        """Scores over catalogue items (B, n_items) for the event after each right-padded sequence."""
        vectors, bias = self.table()
        out = torch.addmm(bias, self.last_hidden(batch), vectors.T)  # (B, V), one pass over memory
        if self.repeat is not None:
            # Tokens already in the window: the same value is written for a token repeated in a row.
            out.scatter_(1, batch.items, out.gather(1, batch.items) + self.repeat)
        out[:, PAD] = float("-inf")
        return out[:, 1:]

    @torch.no_grad()
    def with_items(self, item_text: torch.Tensor | None, n_new: int) -> InterestTransformerNet:
        """This network with ``n_new`` cold items appended (text (n_new, D) unless item_repr is
        "id"), as a new module that shares every layer and the item rows already there with this one,
        which stays as it was for whoever still uses it. The rows are written into spare room after
        this one's (see :func:`appended`), so adding an item to a catalogue of a million copies
        nothing but the item (and, every eighth more items, makes room for the next eighth)."""
        grown = copy.copy(self)  # nn.Module: its own dicts of parameters, buffers and submodules below
        grown._parameters, grown._buffers = dict(self._parameters), dict(self._buffers)
        grown._modules = dict(self._modules)
        n = self.n_tokens
        if self.item_emb is not None:
            for name in ("item_emb", "item_bias"):
                old = getattr(self, name)
                emb = copy.copy(old)
                emb._parameters = dict(old._parameters)
                rows = old.weight.new_zeros(n_new, old.embedding_dim)
                emb.weight = nn.Parameter(appended(old.weight.detach(), rows), old.weight.requires_grad)
                emb.num_embeddings = n + n_new
                setattr(grown, name, emb)
        if self.item_text is not None:
            grown.item_text = appended(self.item_text, item_text.float().to(self.item_text.device))
        grown.known = appended(self.known, torch.zeros(n_new, dtype=torch.bool, device=self.device))
        grown.n_tokens = n + n_new
        grown._table = None
        if self._table is not None and not self.training:  # the new items' vectors only
            vectors, bias = grown.item_vectors(torch.arange(n, n + n_new, device=self.device))
            grown._table = (appended(self._table[0], vectors), appended(self._table[1], bias))
        return grown

    @torch.no_grad()
    def make_room(self, n_more: int) -> None:
        """Compute the eval-mode table of item vectors and give it and every item row room for
        ``n_more`` items after them, so that :meth:`with_items` copies nothing until that many have
        come (a service that takes new items does this at start, not on its first new item)."""
        self.eval()
        vectors, bias = self.table()
        self._table = (with_room(vectors, n_more), with_room(bias, n_more))
        if self.item_emb is not None:
            for emb in (self.item_emb, self.item_bias):
                emb.weight = nn.Parameter(with_room(emb.weight.detach(), n_more), emb.weight.requires_grad)
        if self.item_text is not None:
            self.item_text = with_room(self.item_text, n_more)
        self.known = with_room(self.known, n_more)
