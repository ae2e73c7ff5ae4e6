"""The model API every recommender implements: ``fit``, ``score``, ``recommend`` (single and batched),
``save`` and ``load``, speaking external IDs to callers and internal indices inside.

A model keeps the histories of the users it knows (the events it was fitted on, plus any it is told
about with :meth:`Recommender.observe`), so ``recommend(user_id)`` works from an ID alone; a caller with
fresher behaviour passes a history explicitly.
"""

from __future__ import annotations

import json
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd

from penchant.data.dataset import Dataset, History, IdMap, items_to_indices
from penchant.errors import InputError
from penchant.models.saving import run_meta
from penchant.models.topk import PAD, topk_indices

# A validation callback: given the model being trained, return the score to maximise (e.g. NDCG@10).
Validator = Callable[["Recommender"], float]

# Below this share of training events that return to an item the user already had, people here do
# not come back to items (MovieLens: 0%; Amazon Beauty: 0%), so ``recommend`` leaves already-seen
# items out unless asked to keep them; at or above it (a shop where people re-buy) they stay in.
REPEAT_SHARE_TO_KEEP_SEEN = 0.05

# What ``recommend`` does for a user it has no events of: the most popular items, or an error.
UNKNOWN_USERS = ("popular", "error")


def repeat_share(histories: Iterable[History]) -> float:
    """The share of events, after each user's first, whose item the user already had before."""
    repeats = events = 0
    for history in histories:
        n = len(history)
        if n > 1:
            repeats += n - len(np.unique(history.items))
            events += n - 1
    return repeats / events if events else 0.0


@dataclass(frozen=True)
class ModelConfig:
    """Base of every model's typed config: serialisable, validated on load."""

    seed: int = 42

    def __post_init__(self) -> None:
        for f in fields(self):
            _check_type(type(self).__name__, f.name, f.type, getattr(self, f.name))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Self:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise InputError(
                f"{cls.__name__}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        return cls(**values)


_TYPES = {"int": (int,), "float": (int, float), "bool": (bool,), "str": (str,)}


def _check_type(owner: str, name: str, annotation: str, value: Any) -> None:
    """Refuse a setting whose value is not of its declared type, in one line (e.g. ``"20"`` for an
    int). Annotations are the plain forms configs use: int, float, bool, str, X | None, tuple[...]."""
    allowed: tuple[type, ...] = ()
    for part in str(annotation).split("|"):
        part = part.strip()
        if part == "None":
            allowed += (type(None),)
        elif part.startswith("tuple"):
            allowed += (tuple, list)
        else:
            allowed += _TYPES.get(part, (object,))
    wrong = not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed)
    if wrong:
        expected = str(annotation).replace(" | None", " or null")
        raise InputError(f"{owner}: setting '{name}' must be {expected}, got {value!r}")


@dataclass(frozen=True)
class Recommendation:
    item_id: str
    score: float
    title: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"item_id": self.item_id, "score": self.score, "title": self.title}


@dataclass
class FitStats:
    """What training did, for reports."""

    seconds: float = 0.0
    epochs: int = 0
    best_epoch: int = 0
    best_validation: float | None = None
    losses: list[float] | None = None
    validation_curve: list[float] | None = None
    epoch_seconds: list[float] | None = None
    # "early stopping", "epoch budget", "time budget" or "privacy budget" (penchant.models.private)
    stopped_by: str | None = None
    converged: bool | None = None  # early stopping ended training (None: not an iterative model)
    still_improving: bool = False  # a budget ended training before validation stopped improving
    settings: dict | None = None  # what "auto" settings resolved to (objective, window, device, ...)
    refit_epochs: int = 0  # epochs trained after early stopping on training + validation events
    refit_seconds: float = 0.0

    @property
    def seconds_per_epoch(self) -> float | None:
        return sum(self.epoch_seconds) / len(self.epoch_seconds) if self.epoch_seconds else None

    def budget_note(self) -> str | None:
        """One line when a budget stopped training before early stopping said validation had stopped
        improving."""
        if self.stopped_by == "privacy budget":
            return (
                f"differentially private training ran its fixed {self.epochs} epochs without validation "
                "(choosing an epoch on held-out events would spend privacy too), so whether it converged "
                "was not checked"
            )
        if not self.still_improving:
            return None
        return (
            f"training was stopped by its {self.stopped_by} after {self.epochs} epochs, before validation "
            f"stopped improving (best so far at epoch {self.best_epoch}): the model may be undertrained"
        )


class Recommender(ABC):
    """Base class. Subclasses implement :meth:`_fit`, :meth:`score` and the state hooks."""

    name: ClassVar[str]
    config_class: ClassVar[type[ModelConfig]]

    def __init__(self, config: ModelConfig | None = None):
        self.config = config or self.config_class()
        self.item_map: IdMap | None = None
        self.titles: list[str | None] = []
        self.popularity: np.ndarray | None = None  # training interaction counts per item
        self.histories: dict[str, History] = {}
        self.fit_stats = FitStats()
        self.repeat_share: float | None = None  # see :attr:`excludes_seen`

    # ------------------------------------------------------------------ training
    def fit(
        self,
        dataset: Dataset,
        train_events: pd.DataFrame | None = None,
        validate: Validator | None = None,
        progress: bool = True,
    ) -> Self:
        """Train on ``train_events`` (default: all of the dataset's events) over the full catalogue."""
        train_events = dataset.events if train_events is None else train_events
        self.item_map = IdMap(dataset.item_map.ids)
        self.titles = dataset.titles()
        self.popularity = np.bincount(train_events["item"].to_numpy(), minlength=dataset.n_items).astype(
            np.float64
        )
        self.trained_on = dataset  # what :meth:`save` writes beside the model (kept in memory only)
        self.histories = {}
        self.observe(dataset, train_events)
        self.repeat_share = repeat_share(self.histories.values())
        start = time.perf_counter()
        self._fit(dataset, train_events, validate, progress)
        self.fit_stats.seconds = time.perf_counter() - start
        return self

    def refit(self, dataset: Dataset, events: pd.DataFrame, progress: bool = True) -> None:  # noqa: B027
        """Learn from ``events`` too (the training events plus the validation targets' events) with the
        settings validation chose, once training is done. Models that do not do this keep what
        :meth:`fit` learnt (the default)."""

    @abstractmethod
    def _fit(
        self, dataset: Dataset, train_events: pd.DataFrame, validate: Validator | None, progress: bool
    ) -> None:
        """Learn parameters from the training events."""

    def observe(self, dataset: Dataset, events: pd.DataFrame) -> None:
        """Replace the known histories of the users in ``events`` with those events (time-ordered)."""
        for user, history in dataset.histories(events).items():
            self.histories[dataset.user_map.ids[user]] = history

    def forget_user(self, user_id: str) -> bool:
        """Drop what the model keeps about one user besides its trained weights: their history (a
        sequential model also their events' text vectors). Returns whether the model knew them."""
        return self.histories.pop(user_id, None) is not None

    def to(self, device: str = "auto") -> Self:
        """Place the model on a device; models without a network run on the CPU and ignore it."""
        return self

    # ------------------------------------------------------------------ scoring
    @abstractmethod
    def score(self, histories: Sequence[History]) -> np.ndarray:
        """Scores (B, n_items) over the full catalogue for a batch of histories; higher is better."""

    def score_items(self, histories: Sequence[History], items: np.ndarray, rows: int = 0) -> np.ndarray:
        """Scores (B, len(items)) of only these items, with memory bounded by catalogue rows of
        ``rows`` histories at a time (default: as many as fit about 2^24 scores)."""
        items = np.asarray(items, dtype=np.int64)
        out = np.empty((len(histories), len(items)), dtype=np.float64)
        step = rows or max(1, (1 << 24) // max(1, self.n_items))
        for start in range(0, len(histories), step):
            out[start : start + step] = self.score(histories[start : start + step])[:, items]
        return out

    def scores_or_popular(self, histories: Sequence[History]) -> np.ndarray:
        """:meth:`score` as float64, with the training popularity (``log1p`` of the counts) for each
        empty history: with nothing to go on, every model answers with the most popular items."""
        scores = self.score(histories).astype(np.float64, copy=True)
        for row, history in enumerate(histories):
            if len(history) == 0:
                scores[row] = self.popular_scores()
        return scores

    def popular_scores(self) -> np.ndarray:
        """Scores (I,) that rank the catalogue by training popularity: what an empty history gets."""
        return np.log1p(self.popularity)

    def _require_fitted(self) -> None:
        if self.item_map is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted; call fit() or load() first")

    @property
    def excludes_seen(self) -> bool:
        """Whether ``recommend`` leaves out items the user already has when not told: yes unless the
        training data shows people coming back to items (:data:`REPEAT_SHARE_TO_KEEP_SEEN`)."""
        if self.repeat_share is None:  # a model saved before this was recorded
            self.repeat_share = repeat_share(self.histories.values())
        return self.repeat_share < REPEAT_SHARE_TO_KEEP_SEEN

    def seen_items_decision(self) -> dict:
        """What :attr:`excludes_seen` decided, and from what, for run.json."""
        excluded = self.excludes_seen
        return {
            "repeat_share": round(float(self.repeat_share), 4),
            "threshold": REPEAT_SHARE_TO_KEEP_SEEN,
            "excluded_by_default": excluded,
        }

    def knows(self, user_id: str) -> bool:
        """Whether the model has events of this user (else ``recommend`` falls back, see there)."""
        return user_id in self.histories

    def history_of(self, user_id: str) -> History:
        if user_id not in self.histories:
            raise InputError(f"unknown user '{user_id}': no events for this user in the run")
        return self.histories[user_id]

    def recommend(
        self,
        user_id: str | None = None,
        k: int = 10,
        exclude_seen: bool | None = None,
        history: History | Sequence[str] | None = None,
        unknown_user: str = "popular",
    ) -> list[Recommendation]:
        """Top-k items for a user, or for an explicit history (internal History or item IDs).

        ``exclude_seen`` None: as :attr:`excludes_seen` decided from the training data. A user the
        model has no events of gets the most popular training items (``unknown_user="popular"``,
        the same answer the service and the command line give; :meth:`knows` tells them apart), or
        an :class:`InputError` naming the user (``"error"``)."""
        if unknown_user not in UNKNOWN_USERS:
            raise InputError(f"unknown_user must be one of {', '.join(UNKNOWN_USERS)}, got '{unknown_user}'")
        if history is None:
            if user_id is None:
                raise InputError("recommend needs a user_id or a history")
            if unknown_user == "popular" and not self.knows(user_id):
                history = History(np.zeros(0, dtype=np.int64), np.zeros(0), user_id)
            else:
                history = self.history_of(user_id)
        elif not isinstance(history, History):
            history = self._history_from_ids(history)
        return self._recommend_histories([history], k, exclude_seen)[0]

    def recommend_batch(
        self,
        user_ids: Sequence[str],
        k: int = 10,
        exclude_seen: bool | None = None,
        unknown_user: str = "popular",
    ) -> dict[str, list[Recommendation]]:
        """Top-k for many users at once (one scoring pass per batch); unknown users as in :meth:`recommend`."""
        if unknown_user not in UNKNOWN_USERS:
            raise InputError(f"unknown_user must be one of {', '.join(UNKNOWN_USERS)}, got '{unknown_user}'")
        empty = np.zeros(0, dtype=np.int64)
        histories = [
            History(empty, np.zeros(0), u)
            if unknown_user == "popular" and not self.knows(u)
            else self.history_of(u)
            for u in user_ids
        ]
        lists: list[list[Recommendation]] = []
        for start in range(0, len(histories), 256):
            lists.extend(self._recommend_histories(histories[start : start + 256], k, exclude_seen))
        return dict(zip(user_ids, lists, strict=True))

    def _history_from_ids(self, item_ids: Sequence[str]) -> History:
        self._require_fitted()
        idx = items_to_indices(self.item_map, item_ids, source="history")
        # Without timestamps, space the events one minute apart ending now.
        now = time.time()
        return History(idx, now - 60.0 * np.arange(len(idx))[::-1])

    def _recommend_histories(
        self, histories: list[History], k: int, exclude_seen: bool | None
    ) -> list[list[Recommendation]]:
        self._require_fitted()
        if k < 1:
            raise InputError(f"k must be at least 1, got {k}")
        if exclude_seen is None:
            exclude_seen = self.excludes_seen
        scores = self.scores_or_popular(histories)
        if exclude_seen:
            for row, history in enumerate(histories):
                scores[row, history.items] = -np.inf
        top = topk_indices(scores, min(k, scores.shape[1]))
        out = []
        for row in range(len(histories)):
            out.append(
                [
                    Recommendation(
                        self.item_map.ids[i], float(scores[row, i]), self.titles[i] if self.titles else None
                    )
                    for i in top[row]
                    if i != PAD
                ]
            )
        return out

    # ------------------------------------------------------------------ new items
    def add_items(self, items: pd.DataFrame) -> list[str]:
        """Add catalogue items (canonical columns: ``item_id``, optional ``title``, ``description``,
        ``categories``) to a fitted model without retraining; returns their IDs, now rankable.

        Models that cannot score an item they were not trained on refuse with an :class:`InputError`.
        """
        self._require_fitted()
        frame = items.reset_index() if "item_id" not in items.columns else items.reset_index(drop=True)
        ids = [str(i) for i in frame["item_id"]]
        known = [i for i in ids if i in self.item_map]
        if known:
            raise InputError(f"item '{known[0]}' is already in the model's catalogue")
        if len(set(ids)) != len(ids):
            raise InputError("new items: an item_id appears more than once")
        self._add_items(frame)  # first, so that a refusal leaves the model unchanged
        for item_id in ids:
            self.item_map.add(item_id)
        titles = frame["title"] if "title" in frame else [None] * len(ids)
        self.titles = list(self.titles) + [None if pd.isna(t) else str(t) for t in titles]
        self.popularity = np.concatenate([self.popularity, np.zeros(len(ids))])
        return ids

    def _add_items(self, items: pd.DataFrame) -> None:
        """Extend learned state by new items (models that can score unseen items override)."""
        raise InputError(f"the {self.name} model cannot add items without retraining; use the transformer")

    # ------------------------------------------------------------------ persistence
    def save(self, directory: str | Path) -> None:
        """Write a run directory that every command opens (``penchant recommend --run DIR``, ``profile``,
        ``serve``): ``run.json``, the data the model was fitted on (``data/``) and the model
        (``model/``). It records no held-out split, so ``penchant evaluate`` asks for a run from
        ``penchant train`` or :func:`penchant.runs.train_run` instead. A model loaded from disk, whose
        data is not at hand, writes the model alone (:meth:`save_model`)."""
        dataset = getattr(self, "trained_on", None)
        if dataset is None:
            self.save_model(directory)
            return
        directory = Path(directory)
        self.save_model(directory / "model")
        dataset.save(directory / "data")
        meta = run_meta(dataset, self, {"saved_by": "model.save"}, protocol=None, split_notes=[])
        (directory / "run.json").write_text(json.dumps(meta, indent=2))

    def save_model(self, directory: str | Path) -> None:
        """Write config, catalogue, known histories and parameters to a directory."""
        self._require_fitted()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        meta = {
            "model": self.name,
            "config": self.config.to_dict(),
            "item_ids": self.item_map.ids,
            "titles": self.titles,
            "fit_stats": asdict(self.fit_stats),
            "repeat_share": self.repeat_share,
        }
        (directory / "model.json").write_text(json.dumps(meta))
        np.save(directory / "popularity.npy", self.popularity)
        # Columns built from whole arrays (no Python loop per event); the user column is dictionary
        # encoded, each ID stored once.
        users = list(self.histories)
        values = list(self.histories.values())
        lengths = np.fromiter((len(h.items) for h in values), dtype=np.int64, count=len(values))
        codes = np.repeat(np.arange(len(users), dtype=np.int32), lengths)
        pd.DataFrame(
            {
                "user_id": pd.Categorical.from_codes(codes, categories=pd.Index(users, dtype=object)),
                "item": np.concatenate([h.items for h in values]).astype(np.int64) if values else [],
                "timestamp": np.concatenate([h.times for h in values]).astype(np.float64) if values else [],
            }
        ).to_parquet(directory / "histories.parquet", index=False)
        self._save_state(directory)

    @classmethod
    def load(cls, directory: str | Path) -> Self:
        """Load a model written by :meth:`save_model`, or the model of a run directory."""
        directory = model_directory(directory)
        meta = json.loads((directory / "model.json").read_text())
        if meta["model"] != cls.name:
            raise InputError(f"{directory}: holds a '{meta['model']}' model, not '{cls.name}'")
        model = cls(cls.config_class.from_dict(meta["config"]))
        model.item_map = IdMap(meta["item_ids"])
        model.titles = meta["titles"]
        model.fit_stats = FitStats(**meta["fit_stats"])
        model.repeat_share = meta.get("repeat_share")
        model.popularity = np.load(directory / "popularity.npy")
        frame = pd.read_parquet(directory / "histories.parquet")
        codes, users = pd.factorize(frame["user_id"], sort=False)
        order = np.argsort(codes, kind="stable")  # each user's events together, in stored order
        items = frame["item"].to_numpy(np.int64)[order]
        times = frame["timestamp"].to_numpy(np.float64)[order]
        ends = np.cumsum(np.bincount(codes, minlength=len(users)))
        starts = ends - np.bincount(codes, minlength=len(users))
        model.histories = {
            str(user): History(items[a:b], times[a:b], str(user))
            for user, a, b in zip(users, starts.tolist(), ends.tolist(), strict=True)
        }
        model._load_state(directory)
        return model

    def _save_state(self, directory: Path) -> None:  # noqa: B027 - optional hook
        """Write learned parameters (subclasses with parameters override)."""

    def _load_state(self, directory: Path) -> None:  # noqa: B027 - optional hook
        """Read learned parameters (subclasses with parameters override)."""

    @property
    def n_items(self) -> int:
        self._require_fitted()
        return len(self.item_map)


def model_directory(directory: str | Path) -> Path:
    """Where a model's files are: ``directory`` itself, or its ``model/`` when it is a run."""
    directory = Path(directory)
    inner = directory / "model"
    if not (directory / "model.json").exists() and (inner / "model.json").exists():
        return inner
    return directory
