"""Differentially private training of the interest transformer: DP-SGD with each user as the
privacy unit.

Every step samples users (Poisson, rate ``q``); each sampled user gives one window of their history,
and that user's gradient is clipped to norm ``clip`` before Opacus's :class:`DPOptimizer` adds
Gaussian noise and takes the step. Opacus's RDP accountant tracks (ε, δ) over the steps, and the
noise is calibrated up front so that the whole run spends the ε asked for.

Why per-user gradients are computed here, one user at a time, rather than by Opacus's
``GradSampleModule`` (hooks or ghost clipping): the item table is used twice, as the inputs and, tied,
as the output softmax over candidate items shared by every row of the batch. That output use has no
per-sample batch dimension, so Opacus's grad samplers cannot split its gradient by user, and the
repeat bias and long-term token are parameters outside any layer it supports. A loop over the
sampled users is exact for every parameter and holds one gradient per sampled user.

What ε covers: the trained weights. Training uses no validation (choosing an epoch on held-out
events would spend privacy too), so it runs a fixed number of epochs and says so. The run directory
still holds the events themselves, and the item popularity counts that rank items for a user
without history, as every run does.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from penchant.models.base import FitStats
from penchant.models.sequences import Sequences, Windows

PRIVACY_BUDGET = "privacy budget"
# Rényi orders the accountant tries: Opacus's defaults plus high orders, which give the tightest
# bound at large ε and few steps (Opacus warns when its largest default order is the best one).
ALPHAS = [1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64)) + [80, 96, 128, 192, 256, 384, 512, 1024]


@dataclass(frozen=True)
class Privacy:
    """What a private run spends and how: ``epsilon`` and ``delta`` for the whole run, per-user
    gradients clipped to ``clip``, ``users_per_step`` expected users a step, ``epochs`` passes."""

    epsilon: float
    delta: float
    clip: float
    users_per_step: int
    epochs: float

    def sample_rate(self, n_users: int) -> float:
        return min(1.0, self.users_per_step / max(n_users, 1))

    def steps(self, n_users: int) -> int:
        return max(1, round(self.epochs / self.sample_rate(n_users)))

    def noise_multiplier(self, n_users: int) -> float:
        """The Gaussian noise (in units of ``clip``) that spends exactly ``epsilon`` over the run, by
        Opacus's RDP accountant."""
        from opacus.accountants.utils import get_noise_multiplier

        return float(
            get_noise_multiplier(
                target_epsilon=self.epsilon,
                target_delta=self.delta,
                sample_rate=self.sample_rate(n_users),
                steps=self.steps(n_users),
                accountant="rdp",
                alphas=ALPHAS,
            )
        )


def default_delta(n_users: int) -> float:
    """δ well below 1 / users (a tenth of it), and at most 1e-5."""
    return min(1e-5, 0.1 / max(n_users, 1))


def train_private(
    net: torch.nn.Module,
    sequences: Sequences,
    window: int,
    privacy: Privacy,
    optimizer: torch.optim.Optimizer,
    loss_of: Callable[[Windows], torch.Tensor],
    rng: np.random.Generator,
    progress: bool = True,
) -> tuple[FitStats, dict]:
    """Train ``net`` with DP-SGD over the users of ``sequences``; ``loss_of(windows)`` is the mean
    training loss of those windows. Returns the stats and what was spent (``epsilon`` by the
    accountant, ``delta``, the noise multiplier, the sample rate, steps)."""
    from opacus.accountants import RDPAccountant
    from opacus.optimizers import DPOptimizer

    lengths = sequences.lengths
    users = np.flatnonzero(lengths >= 2)  # a user with one event has no next-item target
    n = len(users)
    q = privacy.sample_rate(n)
    steps = privacy.steps(n)
    sigma = privacy.noise_multiplier(n)
    params = [p for p in net.parameters() if p.requires_grad]
    dp = DPOptimizer(
        optimizer,
        noise_multiplier=sigma,
        max_grad_norm=privacy.clip,
        expected_batch_size=max(1, round(q * n)),
        loss_reduction="mean",
    )
    accountant = RDPAccountant()
    per_epoch = max(1, round(1 / q))
    stats = FitStats(losses=[], validation_curve=None, epoch_seconds=[])
    bar = tqdm(desc="transformer (DP)", total=steps, disable=not progress)
    began, total, count = time.perf_counter(), 0.0, 0
    net.train()
    for step in range(1, steps + 1):
        chosen = users[rng.random(n) < q]
        samples = [[] for _ in params]
        for user in chosen:
            end = int(rng.integers(1, lengths[user]))  # targets start+1..end, inputs start..end-1
            loss = loss_of(Windows(np.array([user]), np.array([max(0, end - window)]), np.array([end])))
            grads = torch.autograd.grad(loss, params, allow_unused=True)
            for kept, grad, param in zip(samples, grads, params, strict=True):
                kept.append(torch.zeros_like(param) if grad is None else grad.detach())
            total, count = total + loss.item(), count + 1
        for param, kept in zip(params, samples, strict=True):
            param.grad_sample = torch.stack(kept) if kept else param.new_zeros((0, *param.shape))
        dp.step()
        dp.zero_grad(set_to_none=True)
        accountant.step(noise_multiplier=sigma, sample_rate=q)
        bar.update(1)
        if step % per_epoch == 0 or step == steps:
            stats.epoch_seconds.append(time.perf_counter() - began)
            stats.losses.append(total / max(count, 1))
            bar.set_postfix(
                {
                    "loss": f"{stats.losses[-1]:.4f}",
                    "ε": f"{accountant.get_epsilon(privacy.delta, alphas=ALPHAS):.2f}",
                }
            )
            began, total, count = time.perf_counter(), 0.0, 0
    bar.close()
    net.eval()
    stats.epochs = len(stats.epoch_seconds)
    stats.best_epoch = stats.epochs
    stats.seconds = sum(stats.epoch_seconds)
    stats.stopped_by = PRIVACY_BUDGET
    stats.converged = False  # never checked: validation would spend privacy
    spent = {
        "epsilon": round(float(accountant.get_epsilon(privacy.delta, alphas=ALPHAS)), 3),
        "epsilon_target": privacy.epsilon,
        "delta": privacy.delta,
        "noise_multiplier": round(sigma, 4),
        "clip": privacy.clip,
        "sample_rate": round(q, 5),
        "steps": steps,
        "users": n,
        "unit": "user",
        "accountant": "RDP (Opacus)",
    }
    return stats, spent
