"""The interest transformer network: causal self-attention over a user's time-ordered items.

SASRec family (Kang & McAuley, 2018) with three changes that matter on small CPU budgets:
full-softmax cross-entropy over the catalogue at every position (not sampled negatives), a
time-gap embedding (log-bucketed seconds since the previous event) added to every input, and a
learned repeat bias that lets the model decide from data whether people come back to items they
already have (on MovieLens they never re-rate, on a shop they re-buy).

Item index 0 is padding; catalogue item ``i`` is token ``i + 1``. Sequences are right-padded; with a causal
mask no real position ever attends to padding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

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
        q, k, v = (z.view(b, t, self.heads, c // self.heads).transpose(1, 2) for z in (q, k, v))  # (B, H, T, C/H)
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
    def __init__(self, n_items: int, config: TransformerConfig):
        super().__init__()
        self.config = config
        self.n_tokens = n_items + 1
        self.item_emb = nn.Embedding(self.n_tokens, config.dim, padding_idx=PAD)
        self.pos_emb = nn.Embedding(config.max_len, config.dim)
        self.gap_emb = nn.Embedding(GAP_BUCKETS, config.dim, padding_idx=0) if config.time_gaps else None
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config.dim, config.heads, config.dropout) for _ in range(config.layers))
        self.ln_f = nn.LayerNorm(config.dim)
        self.item_bias = nn.Parameter(torch.zeros(self.n_tokens))
        self.repeat = nn.Parameter(torch.zeros(())) if config.repeat_bias else None
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=0.02)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=0.02)
            if module.padding_idx is not None:
                module.weight.data[module.padding_idx].zero_()

    def encode(self, items: torch.Tensor, gaps: torch.Tensor | None) -> torch.Tensor:
        """Hidden states (B, T, C) for right-padded token ids (B, T) and gap buckets (B, T)."""
        t = items.shape[1]
        positions = torch.arange(t, device=items.device)
        x = self.item_emb(items) * math.sqrt(self.config.dim) + self.pos_emb(positions)[None]  # (B, T, C)
        if self.gap_emb is not None and gaps is not None:
            x = x + self.gap_emb(gaps)
        x = self.drop(x)
        for block in self.blocks:
            x = block(x)
        return self.ln_f(x)

    def logits(self, hidden: torch.Tensor, seen: torch.Tensor | None) -> torch.Tensor:
        """Scores over all tokens (N, V) from hidden states (N, C); ``seen`` (N, V) bool marks tokens
        already in each row's input, which receive the repeat bias."""
        out = hidden @ self.item_emb.weight.T + self.item_bias  # (N, V)
        if self.repeat is not None and seen is not None:
            out = torch.where(seen, out + self.repeat, out)
        out[:, PAD] = float("-inf")
        return out

    def forward(
        self, items: torch.Tensor, gaps: torch.Tensor | None, targets: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Training: logits (N, V) at the N positions that have a target, and their mean cross-entropy.

        items, gaps, targets: (B, T), right-padded; targets are next-item tokens, PAD where none.
        """
        b, t = items.shape
        hidden = self.encode(items, gaps)  # (B, T, C)
        rows, cols = (targets != PAD).nonzero(as_tuple=True)  # N positions
        seen = None
        if self.repeat is not None:
            # First position of each token in each sequence; position t has seen it when first <= t.
            first = torch.full((b, self.n_tokens), t, dtype=torch.int16)
            first.scatter_reduce_(1, items, torch.arange(t, dtype=torch.int16).expand(b, t), reduce="amin")
            seen = first[rows] <= cols[:, None].to(torch.int16)  # (N, V)
        logits = self.logits(hidden[rows, cols], seen)  # (N, V)
        return logits, F.cross_entropy(logits, targets[rows, cols])

    @torch.no_grad()
    def score_last(self, items: torch.Tensor, gaps: torch.Tensor | None, lengths: torch.Tensor) -> torch.Tensor:
        """Scores over catalogue items (B, n_items) for the event after each right-padded sequence."""
        hidden = self.encode(items, gaps)  # (B, T, C)
        last = hidden[torch.arange(len(items)), lengths - 1]  # (B, C)
        seen = torch.zeros(len(items), self.n_tokens, dtype=torch.bool).scatter_(1, items, True)
        return self.logits(last, seen)[:, 1:]
