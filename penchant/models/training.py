"""The shared training loop for neural models: epochs, progress, early stopping, budgets.

It knows nothing about any one model: it is given a function that runs one epoch and returns the
mean loss, and an optional validation function that returns a score to maximise. By default it
trains until validation stops improving; an epoch or time budget is only there when asked for, and
when one ends training while validation was still improving, the stats say so.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from penchant.errors import InputError
from penchant.models.base import FitStats
from penchant.models.devices import Processes

EARLY_STOPPING = "early stopping"
EPOCH_BUDGET = "epoch budget"
TIME_BUDGET = "time budget"


@dataclass(frozen=True)
class LoopSettings:
    max_epochs: int | None
    patience: int
    max_seconds: float | None = None
    progress: bool = True
    desc: str = "training"


def run_training(
    module: torch.nn.Module,
    run_epoch: Callable[[int], float],
    validate: Callable[[], float] | None,
    settings: LoopSettings,
    procs: Processes | None = None,
) -> FitStats:
    """Train until validation stops improving (``patience`` epochs), or a budget the caller set.

    With validation, the module ends with the parameters of its best-scoring epoch. Under several
    processes only rank 0 validates; its score and its decision to stop reach every rank.
    """
    procs = procs or Processes()
    if validate is None and settings.max_epochs is None:
        raise InputError("training without validation needs an epoch budget (max_epochs)")
    stats = FitStats(losses=[], validation_curve=[] if validate else None, epoch_seconds=[])
    best_score, best_state, stale = -float("inf"), None, 0
    start = time.perf_counter()
    device = next(module.parameters()).device
    bar = tqdm(desc=settings.desc, total=settings.max_epochs, disable=not settings.progress or not procs.main)
    epoch = 0
    while True:
        epoch += 1
        began = time.perf_counter()
        module.train()
        loss = run_epoch(epoch)
        stats.epoch_seconds.append(time.perf_counter() - began)
        stats.losses.append(loss)
        stats.epochs = epoch
        postfix = {"loss": f"{loss:.4f}", "s/epoch": f"{stats.epoch_seconds[-1]:.1f}"}
        if validate is not None:
            module.eval()
            score = validate() if procs.main else 0.0
            score = procs.broadcast([score], device)[0]
            stats.validation_curve.append(score)
            postfix["val"] = f"{score:.4f}"
            if score > best_score:
                best_score, best_state, stale = score, copy.deepcopy(module.state_dict()), 0
                stats.best_epoch, stats.best_validation = epoch, score
            else:
                stale += 1
        bar.update(1)
        bar.set_postfix(postfix)
        if validate is not None and stale >= settings.patience:
            stats.stopped_by = EARLY_STOPPING
            break
        if settings.max_epochs is not None and epoch >= settings.max_epochs:
            stats.stopped_by = EPOCH_BUDGET
            break
        out_of_time = settings.max_seconds is not None and time.perf_counter() - start > settings.max_seconds
        if procs.broadcast([float(out_of_time)], device)[0]:
            stats.stopped_by = TIME_BUDGET
            break
    bar.close()
    # A budget ended it while the last `patience` epochs still held a new best: not converged.
    stats.converged = stats.stopped_by == EARLY_STOPPING
    stats.still_improving = validate is not None and not stats.converged and stale < settings.patience
    if best_state is not None:
        module.load_state_dict(best_state)
    else:
        stats.best_epoch = stats.epochs
    module.eval()
    return stats
