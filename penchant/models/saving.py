"""What ``run.json`` says about a trained model and its data, written once for both ways a run
directory comes to be: :meth:`penchant.models.Recommender.save` (the model's own data, trained in
this process) and :func:`penchant.runs.save_run` (which adds the split protocol it trained under).
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import asdict
from typing import TYPE_CHECKING

import torch

from penchant import __version__
from penchant.data.dataset import Dataset

if TYPE_CHECKING:
    from penchant.models.base import Recommender


def machine() -> dict:
    """What the numbers were measured on."""
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }


def run_meta(dataset: Dataset, model: Recommender, source: dict | None = None, **fields) -> dict:
    """The description of a run: versions, model, data, cleaning, training, seen-items rule, machine,
    and ``fields`` (the protocol, split notes, ...) added by the caller."""
    return {
        "penchant_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "model": model.name,
        "config": model.config.to_dict(),
        "source": source or {"dataset": dataset.name},
        **fields,
        "dataset": dataset.summary(),
        "cleaning": dataset.report.lines(),
        "fit": asdict(model.fit_stats),
        "seen_items": model.seen_items_decision(),
        "machine": machine(),
    }
