"""The shared training loop for neural models: epochs, progress, early stopping, time budget.

It knows nothing about any one model: it is given a function that runs one epoch and returns the
mean loss, and an optional validation function that returns a score to maximise.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from penchant.models.base import FitStats


@dataclass(frozen=True)
class LoopSettings:
    max_epochs: int
    patience: int
    max_seconds: float
    progress: bool = True
    desc: str = "training"


def run_training(
    module: torch.nn.Module,
    run_epoch: Callable[[int], float],
    validate: Callable[[], float] | None,
    settings: LoopSettings,
) -> FitStats:
    """Train until validation stops improving (``patience`` epochs), the epoch cap, or the time budget.

    With validation, the module ends with the parameters of its best-scoring epoch.
    """
    stats = FitStats(losses=[], validation_curve=[] if validate else None)
    best_score, best_state, stale = -float("inf"), None, 0
    start = time.perf_counter()
    bar = tqdm(
        range(1, settings.max_epochs + 1), desc=settings.desc, disable=not settings.progress, leave=False
    )
    for epoch in bar:
        module.train()
        loss = run_epoch(epoch)
        stats.losses.append(loss)
        stats.epochs = epoch
        postfix = {"loss": f"{loss:.4f}"}
        if validate is not None:
            module.eval()
            score = validate()
            stats.validation_curve.append(score)
            postfix["val"] = f"{score:.4f}"
            if score > best_score:
                best_score, best_state, stale = score, copy.deepcopy(module.state_dict()), 0
                stats.best_epoch, stats.best_validation = epoch, score
            else:
                stale += 1
        bar.set_postfix(postfix)
        if validate is not None and stale >= settings.patience:
            break
        if time.perf_counter() - start > settings.max_seconds:
            break
    bar.close()
    if best_state is not None:
        module.load_state_dict(best_state)
    else:
        stats.best_epoch = stats.epochs
    module.eval()
    return stats
