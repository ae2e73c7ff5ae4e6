"""Runs: training a model under a protocol and keeping it, with its data, in a run directory.

This is the layer the evaluation reports, the service and the command line stand on to get a
trained model; it imports models and data, never evaluation or serving.
"""

from penchant.models.saving import machine
from penchant.runs.directory import Run, add_items_to_run, erase_user, load_run, save_run
from penchant.runs.training import fit_split, train, train_run

__all__ = [
    "Run",
    "add_items_to_run",
    "erase_user",
    "fit_split",
    "load_run",
    "machine",
    "save_run",
    "train",
    "train_run",
]
