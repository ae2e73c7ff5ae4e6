"""Training a run: split the data by its protocol, fit with early stopping on validation, save.

Under ``torchrun`` every process runs this; the model trains its own shard of the data in each, and
only rank 0 writes the run directory (the same format as a single-process run).
"""

from __future__ import annotations

from pathlib import Path

from penchant.data.dataset import Dataset
from penchant.data.split import Protocol, Split, split
from penchant.errors import InputError
from penchant.models import Recommender
from penchant.models.devices import processes
from penchant.models.validation import VALIDATION_USERS, validator
from penchant.runs.directory import Run, save_run


def fit_split(model: Recommender, dataset: Dataset, parts: Split, progress: bool = True) -> None:
    """Fit on the split's training events with early stopping on its validation targets, then learn
    from the validation targets' events too (:meth:`Recommender.refit`): from every event before
    the test targets, never from a test target."""
    if len(parts.validation) == 0:
        raise InputError(
            f"{dataset.name}: the {parts.protocol.name} split left no validation targets (no user has "
            "enough events for one to train on, one to validate on and one to test on), so early "
            "stopping would watch nothing; bring users with at least 3 events (--min-user-events 3)"
        )
    # Models with many validation users to rank each epoch say how many to sample (a setting).
    users = getattr(model.config, "validation_users", VALIDATION_USERS)
    validate = validator(parts.validation, max_users=users, progress=progress)
    model.fit(dataset, parts.train, validate=validate, progress=progress)
    model.refit(dataset, parts.before_test, progress=progress)


def train(
    dataset: Dataset, model: Recommender, protocol: Protocol | None = None, progress: bool = True
) -> Split:
    """Split by the protocol and :func:`fit_split`.

    Afterwards the model knows every user's full history, so ``recommend(user_id)`` uses all of it;
    evaluation always passes the split's own histories, so this leaks nothing into the metrics.
    """
    parts = split(dataset, protocol)
    fit_split(model, dataset, parts, progress)
    model.observe(dataset, dataset.events)
    return parts


def train_run(
    dataset: Dataset,
    model: Recommender,
    directory: str | Path,
    protocol: Protocol | None = None,
    source: dict | None = None,
    progress: bool = True,
) -> Run:
    """Train and save a run directory (under torchrun: rank 0 saves, the other ranks only train)."""
    protocol = protocol or Protocol()
    parts = train(dataset, model, protocol, progress)
    if not processes().main:
        return Run(Path(directory), dataset, model, parts.protocol, {})
    return save_run(directory, dataset, model, parts, source)
