"""Differentially private training (DP-SGD, each user one unit): the mechanism itself on a model
whose gradients are known, then ``penchant train --dp-epsilon`` end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from penchant.models.private import Privacy, train_private
from penchant.models.sequences import Sequences
from penchant.runs import load_run
from tests.clitools import penchant
from tests.models.test_distributed import hit_rate_at_1

USERS = 200


class Weights(torch.nn.Module):
    def __init__(self, size: int):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(size))


def users_with_events(n: int = USERS) -> Sequences:
    lengths = np.full(n, 5)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    tokens = np.ones(int(offsets[-1]), dtype=np.int64)
    return Sequences(tokens, np.ones_like(tokens), None, offsets)


def one_step(privacy: Privacy, gradient: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """The update of one DP-SGD step (plain SGD, rate 1) when every user's gradient is ``gradient``."""
    net = Weights(len(gradient))
    optimizer = torch.optim.SGD(net.parameters(), lr=1.0)

    def loss_of(windows):
        return (net.w * gradient).sum()

    _, spent = train_private(
        net, users_with_events(), 5, privacy, optimizer, loss_of, np.random.default_rng(0), False
    )
    return -net.w.detach(), spent


def test_each_users_gradient_is_clipped_before_averaging():
    # Every user pushes with norm 10 along one direction; clipped to 1, the averaged step is about 1.
    direction = torch.zeros(1000)
    direction[0] = 1.0
    privacy = Privacy(epsilon=1e5, delta=1e-5, clip=1.0, users_per_step=50, epochs=0.25)
    assert privacy.steps(USERS) == 1
    update, _ = one_step(privacy, 10.0 * direction)
    assert 0.6 < float(update[0]) < 1.4  # Poisson sampling: about 50 users, divided by 50
    assert float(update[1:].abs().max()) < 0.05  # the noise at this ε is tiny


def test_the_noise_is_the_accountants_and_the_run_spends_the_epsilon_asked_for():
    privacy = Privacy(epsilon=2.0, delta=1e-5, clip=1.0, users_per_step=50, epochs=0.25)
    sigma = privacy.noise_multiplier(USERS)
    update, spent = one_step(privacy, torch.zeros(20_000))  # no signal: the step is the noise alone
    expected = sigma * privacy.clip / 50  # Gaussian noise on the sum, divided by the expected batch
    assert float(update.std()) == pytest.approx(expected, rel=0.05)
    assert spent["noise_multiplier"] == pytest.approx(sigma, rel=1e-3)
    assert 0.9 * privacy.epsilon <= spent["epsilon"] <= 1.02 * privacy.epsilon
    assert spent["unit"] == "user" and spent["sample_rate"] == pytest.approx(0.25)


def test_more_privacy_needs_more_noise():
    sigmas = [Privacy(e, 1e-5, 1.0, 50, 5).noise_multiplier(USERS) for e in (1.0, 4.0, 8.0)]
    assert sigmas[0] > sigmas[1] > sigmas[2] > 0


SMALL = {"dim": 32, "layers": 1, "max_len": 20, "threads": 1, "lr": 0.01, "seed": 0, "dropout": 0.1}


def test_penchant_train_dp_epsilon_spends_it_and_says_so(cycle_files):
    out = cycle_files / "private"
    config = json.dumps({**SMALL, "dp_epochs": 2, "dp_users_per_step": 16})
    result = penchant(
        "train",
        "--events",
        str(cycle_files / "events.csv"),
        "--dp-epsilon",
        "4",
        "--config",
        config,
        "--out",
        str(out),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "privacy: DP-SGD, ε = " in result.stderr
    fit = json.loads((out / "run.json").read_text())["fit"]
    privacy = fit["settings"]["privacy"]
    assert 3.6 <= privacy["epsilon"] <= 4.08 and privacy["delta"] == pytest.approx(1e-5)  # at most 1e-5
    assert (
        fit["stopped_by"] == "privacy budget" and fit["refit_epochs"] == 0 and fit["validation_curve"] is None
    )
    report = penchant("evaluate", "--run", str(out))
    assert report.returncode == 0, report.stderr
    assert "privacy: DP-SGD, ε = " in report.stdout and "convergence" not in report.stdout
    assert "whether it converged was not checked" in " ".join(report.stdout.split())


def test_the_private_loop_learns_when_its_noise_is_negligible(cycle_files):
    # The same loop with ε so large that the noise is nothing: it must learn the cycle, so a loop that
    # never stepped, or stepped on the wrong gradients, fails here.
    out = cycle_files / "nearly-public"
    config = json.dumps({**SMALL, "dp_epochs": 40, "dp_users_per_step": 16, "dp_clip": 100.0})
    result = penchant(
        "train",
        "--events",
        str(cycle_files / "events.csv"),
        "--dp-epsilon",
        "1e7",
        "--config",
        config,
        "--out",
        str(out),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert hit_rate_at_1(load_run(out, "cpu")) >= 0.8
