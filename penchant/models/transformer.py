"""The interest transformer network: causal self-attention over a user's time-ordered items.

SASRec family (Kang & McAuley, 2018) with three changes that matter on small CPU budgets:
full-softmax cross-entropy over the catalogue at every position (not sampled negatives), a
time-gap embedding (log-bucketed seconds since the previous event) added to every input, and a
learned repeat bias that lets the model decide from data whether people come back to items they
already have (on MovieLens they never re-rate, on a shop they re-buy).

Text enters in two places (both optional, both from a frozen pretrained sentence encoder):

* **items**: an item's vector is its learned ID embedding, a linear projection of its text
  embedding, or their sum (``item_repr`` "id", "text", "fused"); the same table embeds inputs and
  scores outputs. Items without training interactions ("cold") have no usable ID embedding, so
  their ID part is masked to zero and only the text speaks for them; ID dropout during training
  masks random warm items the same way, so the text path learns to stand alone;
* **events**: text attached to an event (a review, a query) is projected and added to that
  position's input.

Item index 0 is padding; catalogue item ``i`` is token ``i + 1``. Sequences are right-padded; with a causal
mask no real position ever attends to padding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from penchant.errors import InputError
from penchant.models.base import ModelConfig

PAD = 0


@dataclass(frozen=True)
class TransformerConfig(ModelConfig):
    """Settings of the interest transformer; defaults are the recommended ones for ~1k-100k items."""

    dim: int = 64
    layers: int = 2
    heads: int = 2
    max_len: int = 50  # most recent events the model attends to
    dropout: float = 0.3
    time_gaps: bool = True  # add the time-gap embedding
    repeat_bias: bool = True  # learn a logit offset for items already in the input
    lr: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 64
    max_epochs: int = 200
    patience: int = 10  # epochs without a better validation score before stopping
    max_seconds: float = 270.0  # wall-clock budget for training
    threads: int = 0  # torch intra-op threads; 0 = torch's default (the machine's cores)
    item_repr: str = "auto"  # "id", "text", "fused", or "auto": fused when items have text, else id
    text_encoder: str = "minilm"  # "minilm", "multilingual" or a sentence-transformers directory
    text_template: str = "{title}. {categories}. {description}"  # item text, see penchant.text.item_texts
    event_text: bool = True  # add encoded event text (reviews, queries) to its position's input
    id_dropout: float = 0.1  # share of warm items whose ID part is masked per batch (text modes only)
    # Fused only: the text projection's learning rate relative to ``lr``. The projection is shared by
    # every item, so at the full rate one step moves every item's vector at once, outrunning the
    # per-item ID embeddings; slowed down, fused ml-100k runs scored higher and steadier across seeds
    # (benchmarks/results/text.md).
    text_lr_scale: float = 0.03

    def __post_init__(self) -> None:
        if self.item_repr not in ITEM_REPRS:
            raise InputError(f"item_repr must be one of {', '.join(ITEM_REPRS)}, got '{self.item_repr}'")
        if not 0.0 <= self.id_dropout < 1.0:
            raise InputError(f"id_dropout must be in [0, 1), got {self.id_dropout}")
        if self.text_lr_scale <= 0:
            raise InputError(f"text_lr_scale must be > 0, got {self.text_lr_scale}")


ITEM_REPRS = ("auto", "id", "text", "fused")


GAP_BUCKETS = 32  # 0 = padding, 1 = first event (no previous), 2.. = log2 buckets of the gap in seconds


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


class InterestTransformerNet(nn.Module):
    """The network. ``item_text`` (n_items, D) are frozen item text embeddings (zero rows for items
    without text), needed unless ``item_repr == "id"``; ``event_text_dim`` > 0 adds a projection for
    event text, whose vectors are passed to :meth:`encode` per position."""

    def __init__(
        self,
        n_items: int,
        config: TransformerConfig,
        item_repr: str = "id",
        item_text: torch.Tensor | None = None,
        event_text_dim: int = 0,
    ):
        super().__init__()
        if item_repr not in ("id", "text", "fused"):
            raise ValueError(f"item_repr must be resolved to id, text or fused, got {item_repr!r}")
        if item_repr != "id" and item_text is None:
            raise ValueError(f"item_repr={item_repr!r} needs item text embeddings")
        self.config = config
        self.item_repr = item_repr
        self.n_tokens = n_items + 1
        c = config.dim
        self.item_emb = nn.Embedding(self.n_tokens, c, padding_idx=PAD) if item_repr != "text" else None
        self.item_bias = nn.Parameter(torch.zeros(self.n_tokens)) if item_repr != "text" else None
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
        self.pos_emb = nn.Embedding(config.max_len, c)
        self.gap_emb = nn.Embedding(GAP_BUCKETS, c, padding_idx=0) if config.time_gaps else None
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(c, config.heads, config.dropout) for _ in range(config.layers))
        self.ln_f = nn.LayerNorm(c)
        self.repeat = nn.Parameter(torch.zeros(())) if config.repeat_bias else None
        self.apply(self._init_weights)

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

    def item_table(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Every token's vector (V, C) and output bias (V,): ID part (masked for cold items, and for a
        random share of warm ones while training) plus the text part."""
        vectors = torch.zeros(self.n_tokens, self.config.dim)
        bias = torch.zeros(self.n_tokens)
        if self.item_emb is not None:
            keep = self.known
            if self.training and self.item_repr == "fused" and self.config.id_dropout > 0:
                keep = keep & (torch.rand(self.n_tokens) >= self.config.id_dropout)
            keep = keep.float()  # (V,)
            vectors = vectors + self.item_emb.weight * keep[:, None]  # (V, C)
            bias = bias + self.item_bias * keep
        if self.text_proj is not None:
            vectors = vectors + self.text_proj(self.item_text)  # (V, C)
            bias = bias + self.text_bias(self.item_text).squeeze(1)  # (V,)
        return vectors, bias

    def encode(
        self,
        items: torch.Tensor,
        gaps: torch.Tensor | None,
        event_text: torch.Tensor | None = None,
        table: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Hidden states (B, T, C) for right-padded token ids (B, T), gap buckets (B, T) and optional
        event text vectors (B, T, D), zero where an event has no text."""
        t = items.shape[1]
        table = self.item_table()[0] if table is None else table  # (V, C)
        positions = torch.arange(t, device=items.device)
        x = table[items] * math.sqrt(self.config.dim) + self.pos_emb(positions)[None]  # (B, T, C)
        if self.gap_emb is not None and gaps is not None:
            x = x + self.gap_emb(gaps)
        if self.event_proj is not None and event_text is not None:
            x = x + self.event_proj(event_text)  # (B, T, C)
        x = self.drop(x)
        for block in self.blocks:
            x = block(x)
        return self.ln_f(x)

    def logits(
        self,
        hidden: torch.Tensor,
        seen: torch.Tensor | None,
        table: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Scores over all tokens (N, V) from hidden states (N, C); ``seen`` (N, V) bool marks tokens
        already in each row's input, which receive the repeat bias."""
        vectors, bias = self.item_table() if table is None else table
        out = hidden @ vectors.T + bias  # (N, V)
        if self.repeat is not None and seen is not None:
            out = torch.where(seen, out + self.repeat, out)
        out[:, PAD] = float("-inf")
        return out

    def forward(
        self,
        items: torch.Tensor,
        gaps: torch.Tensor | None,
        targets: torch.Tensor,
        event_text: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Training: logits (N, V) at the N positions that have a target, and their mean cross-entropy.

        items, gaps, targets: (B, T), right-padded; targets are next-item tokens, PAD where none.
        event_text: (B, T, D) or None.
        """
        b, t = items.shape
        table = self.item_table()  # one ID-dropout draw for inputs and outputs alike
        hidden = self.encode(items, gaps, event_text, table[0])  # (B, T, C)
        rows, cols = (targets != PAD).nonzero(as_tuple=True)  # N positions
        seen = None
        if self.repeat is not None:
            # First position of each token in each sequence; position t has seen it when first <= t.
            first = torch.full((b, self.n_tokens), t, dtype=torch.int16)
            first.scatter_reduce_(1, items, torch.arange(t, dtype=torch.int16).expand(b, t), reduce="amin")
            seen = first[rows] <= cols[:, None].to(torch.int16)  # (N, V)
        logits = self.logits(hidden[rows, cols], seen, table)  # (N, V)
        # Items without training events are left out of the softmax, as if not yet in the catalogue:
        # as never-positive negatives they would only learn to score low, by ID and text alike.
        logits = logits.masked_fill(~self.known, float("-inf"))
        return logits, F.cross_entropy(logits, targets[rows, cols])

    @torch.no_grad()
    def score_last(
        self,
        items: torch.Tensor,
        gaps: torch.Tensor | None,
        lengths: torch.Tensor,
        event_text: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Scores over catalogue items (B, n_items) for the event after each right-padded sequence."""
        table = self.item_table()
        hidden = self.encode(items, gaps, event_text, table[0])  # (B, T, C)
        last = hidden[torch.arange(len(items)), lengths - 1]  # (B, C)
        seen = torch.zeros(len(items), self.n_tokens, dtype=torch.bool).scatter_(1, items, True)
        return self.logits(last, seen, table)[:, 1:]

    @torch.no_grad()
    def add_items(self, item_text: torch.Tensor | None, n_new: int) -> None:
        """Grow the catalogue by ``n_new`` cold items (text (n_new, D) unless item_repr is "id")."""
        if self.item_emb is not None:
            grown = nn.Embedding(self.n_tokens + n_new, self.config.dim, padding_idx=PAD)
            grown.weight.zero_()
            grown.weight[: self.n_tokens] = self.item_emb.weight
            self.item_emb = grown
            self.item_bias = nn.Parameter(torch.cat([self.item_bias, torch.zeros(n_new)]))
        if self.item_text is not None:
            self.item_text = torch.cat([self.item_text, item_text.float()])
        self.known = torch.cat([self.known, torch.zeros(n_new, dtype=torch.bool)])
        self.n_tokens += n_new
