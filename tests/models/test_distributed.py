"""Training with several processes: ``torchrun --nproc-per-node 2 -m penchant train`` on the CPU (gloo).

Each rank trains its own shard of the windows, rank 0 validates, prints and saves, and the saved run
is an ordinary run directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from penchant.evaluate.ranking import rank
from penchant.runs import load_run
from tests.clitools import penchant

SMALL = {"dim": 32, "layers": 1, "max_len": 20, "threads": 1, "lr": 0.003, "patience": 3, "seed": 0}


def torchrun(*args: str, cwd) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    return subprocess.run(
        [*command, "-m", "penchant", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=600
    )


def hit_rate_at_1(run) -> float:
    parts = run.split()
    top = rank(run.model, parts.test, 1)[:, 0]
    return float(np.mean([t in wanted for t, wanted in zip(top, parts.test.targets, strict=True)]))


def test_two_processes_train_one_ordinary_run(cycle_files):
    out = cycle_files / "ddp-run"
    config = json.dumps({**SMALL, "max_epochs": 30})
    result = torchrun(
        "train",
        "--events",
        str(cycle_files / "events.csv"),
        "--config",
        config,
        "--out",
        str(out),
        cwd=cycle_files,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    # Rank 0 alone reports: one summary line, one "saved" line.
    assert result.stderr.count("run saved to") == 1, result.stderr[-3000:]
    meta = json.loads((out / "run.json").read_text())
    assert meta["fit"]["settings"]["processes"] == 2
    run = load_run(out, "cpu")
    assert hit_rate_at_1(run) >= 0.8

    # Same format as a single-process run: evaluate and recommend read it as they read any run.
    report = penchant("evaluate", "--run", str(out), "--json")
    assert report.returncode == 0, report.stderr
    assert json.loads(report.stdout)["training"]["settings"]["processes"] == 2
    assert penchant("recommend", "--run", str(out), "--user", "u000", "--json").returncode == 0


def test_each_process_trains_half_of_each_batch(cycle_files):
    out1, out2 = cycle_files / "one-epoch-1", cycle_files / "one-epoch-2"
    config = json.dumps({**SMALL, "max_epochs": 1, "batch_size": 8})
    single = penchant(
        "train", "--events", str(cycle_files / "events.csv"), "--config", config, "--out", str(out1)
    )
    assert single.returncode == 0, single.stderr
    double = torchrun(
        "train",
        "--events",
        str(cycle_files / "events.csv"),
        "--config",
        config,
        "--out",
        str(out2),
        cwd=cycle_files,
    )
    assert double.returncode == 0, double.stderr[-3000:]
    one = json.loads((out1 / "run.json").read_text())["fit"]["settings"]
    two = json.loads((out2 / "run.json").read_text())["fit"]["settings"]
    # The same steps as one process, each batch split in two (the windows each rank gathered).
    assert one["steps_per_epoch"] == two["steps_per_epoch"] > 1
    assert one["windows_per_step"] == pytest.approx(2 * two["windows_per_step"], rel=0.1)
