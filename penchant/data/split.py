"""Splits of a dataset into training events and evaluation cases.

An evaluation case is a user, the history a model may look at, and the items that user went on to
interact with. Every split is deterministic given the dataset (events are already ordered by user,
time, then input order).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from penchant.data.dataset import Dataset, History
from penchant.errors import InputError

PROTOCOLS = ("leave-one-out", "temporal", "cold-start", "next-n")


@dataclass(frozen=True)
class Protocol:
    """How the data was split and how ranking is done; printed next to every number."""

    name: str = "leave-one-out"
    test_fraction: float = 0.1  # temporal: share of events (by time) held out; cold-start: share of items
    ranking: str = "full catalogue"
    seed: int = 0  # cold-start only: which items are held out
    next_n: int = 10  # next-n only: each user's last this many events are test, the ones before validation

    def __post_init__(self) -> None:
        if self.name not in PROTOCOLS:
            raise InputError(f"unknown protocol '{self.name}' (available: {', '.join(PROTOCOLS)})")
        if not 0.0 < self.test_fraction < 0.5:
            raise InputError(f"protocol test_fraction must be in (0, 0.5), got {self.test_fraction}")
        if self.next_n < 1:
            raise InputError(f"protocol next_n must be at least 1, got {self.next_n}")

    def describe(self, exclude_seen: bool) -> dict:
        """The protocol as it must be reported beside a metric."""
        text = {
            "leave-one-out": "per user, the last event by time is the test target and the one before it "
            "the validation target; the model sees everything before the target",
            "cold-start": f"item split: {self.test_fraction:.0%} of the items with events (seed {self.seed}) are "
            "held out of training entirely; per user, the first event on a held-out item is the test target, the "
            "events before it the history; the last warm event is the validation target",
            "next-n": f"per-user time cut: each user's last {self.next_n} events are the test targets (the "
            f"distinct items among them) and the {self.next_n} before them the validation targets; the model "
            f"sees everything before the targets; users with no more than {self.next_n} events are not tested",
            "temporal": f"global time split: the last {self.test_fraction:.0%} of events (by time) are test, the "
            f"{self.test_fraction:.0%} before them validation; targets are the distinct items a user "
            "interacted with after the cut, the history everything before it",
        }[self.name]
        out = {"name": self.name, "description": text, "ranking": self.ranking, "exclude_seen": exclude_seen}
        if self.name == "temporal":
            out["test_fraction"] = self.test_fraction
        if self.name == "next-n":
            out["next_n"] = self.next_n
        if self.name == "cold-start":
            out["held_out_fraction"], out["seed"] = self.test_fraction, self.seed
        return out

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class EvalSet:
    """Evaluation cases: for each user (internal index) a history and the target items."""

    users: np.ndarray  # (U,) internal user indices
    histories: list[History]
    targets: list[np.ndarray]  # U arrays of distinct internal item indices

    def __len__(self) -> int:
        return len(self.users)

    def sample(self, n: int | None, seed: int = 0) -> EvalSet:
        """A seeded sample of ``n`` of the cases, in their order (all of them when ``n`` is None or
        not fewer)."""
        if n is None or n >= len(self):
            return self
        rows = np.sort(np.random.default_rng(seed).choice(len(self), n, replace=False))
        return EvalSet(self.users[rows], [self.histories[i] for i in rows], [self.targets[i] for i in rows])


@dataclass
class Split:
    protocol: Protocol
    train: pd.DataFrame  # training events, same columns as Dataset.events
    validation: EvalSet
    test: EvalSet
    notes: list[str] = field(default_factory=list)
    # Every event a model may learn from before it is tested: the training events plus the
    # validation targets' events (for a final fit once validation has chosen the settings).
    before_test: pd.DataFrame | None = None


def split(dataset: Dataset, protocol: Protocol | None = None) -> Split:
    """Split a dataset according to a protocol."""
    protocol = protocol or Protocol()
    if protocol.name == "leave-one-out":
        return _leave_one_out(dataset, protocol)
    if protocol.name == "cold-start":
        return _cold_start(dataset, protocol)
    if protocol.name == "next-n":
        return _next_n(dataset, protocol)
    return _temporal(dataset, protocol)


def one_event_back(dataset: Dataset) -> Dataset:
    """The dataset without each user's last event: leave-one-out on it tests on the real validation
    targets, so settings (and how long to train) can be chosen with the whole pipeline, early
    stopping and refit included, without ever touching a test target."""
    events = dataset.events
    last = events.groupby("user", sort=False).cumcount(ascending=False).to_numpy() == 0
    columns = ["user_id", "item_id", "timestamp", "event_type", "value", "text"]
    kept = events.loc[~last, [c for c in columns if c in events]].reset_index(drop=True)
    return Dataset.from_frames(
        kept, dataset.items.reset_index(), name=f"{dataset.name}, each user's last event removed"
    )


def _leave_one_out(dataset: Dataset, protocol: Protocol) -> Split:
    events = dataset.events
    users = events["user"].to_numpy()
    # Rank of each event from the end of its user's (already time-ordered) sequence: 0 = last.
    from_end = events.groupby("user", sort=False).cumcount(ascending=False).to_numpy()
    length = np.bincount(users, minlength=dataset.n_users)[users]
    is_test = (from_end == 0) & (length >= 2)
    is_valid = (from_end == 1) & (length >= 3)
    train = events[~is_test & ~is_valid]
    histories = dataset.histories()
    valid_cases, test_cases = [], []
    for user, history in histories.items():
        n = len(history)
        if n >= 3:
            valid_cases.append((user, history.take(slice(None, n - 2)), history.items[n - 2 : n - 1]))
        if n >= 2:
            test_cases.append((user, history.take(slice(None, n - 1)), history.items[n - 1 :]))
    notes = []
    short = int((np.bincount(users, minlength=dataset.n_users) < 3).sum())
    if short:
        notes.append(f"{short} users with fewer than 3 events have no validation (or test) target")
    return Split(protocol, train, _eval_set(valid_cases), _eval_set(test_cases), notes, events[~is_test])


def _next_n(dataset: Dataset, protocol: Protocol) -> Split:
    """Leave-one-out with blocks of ``next_n`` events: per user, the last block is test, the block
    before it validation (when the user has more than two blocks' worth), the rest training."""
    n_next = protocol.next_n
    events = dataset.events
    users = events["user"].to_numpy()
    from_end = events.groupby("user", sort=False).cumcount(ascending=False).to_numpy()
    length = np.bincount(users, minlength=dataset.n_users)[users]
    is_test = (from_end < n_next) & (length > n_next)
    is_valid = (from_end >= n_next) & (from_end < 2 * n_next) & (length > 2 * n_next)
    valid_cases, test_cases = [], []
    for user, history in dataset.histories().items():
        n = len(history)
        if n > 2 * n_next:
            block = history.items[n - 2 * n_next : n - n_next]
            valid_cases.append((user, history.take(slice(None, n - 2 * n_next)), pd.unique(block)))
        if n > n_next:
            test_cases.append(
                (user, history.take(slice(None, n - n_next)), pd.unique(history.items[n - n_next :]))
            )
    notes = []
    untested = int((np.bincount(users, minlength=dataset.n_users) <= n_next).sum())
    if untested:
        notes.append(f"{untested} users with no more than {n_next} events have no test targets")
    return Split(
        protocol,
        events[~is_test & ~is_valid],
        _eval_set(valid_cases),
        _eval_set(test_cases),
        notes,
        events[~is_test],
    )


def _temporal(dataset: Dataset, protocol: Protocol) -> Split:
    events = dataset.events
    times = events["timestamp"].to_numpy()
    test_cut = float(np.quantile(times, 1.0 - protocol.test_fraction))
    valid_cut = float(np.quantile(times, 1.0 - 2 * protocol.test_fraction))
    train = events[times < valid_cut]
    validation = _window_cases(dataset, events, valid_cut, test_cut)
    test = _window_cases(dataset, events, test_cut, np.inf)
    notes = [
        f"validation window starts at {valid_cut:.0f}, test window at {test_cut:.0f} (Unix seconds)",
        "users with no events before a window are not evaluated in it",
    ]
    return Split(protocol, train, validation, test, notes, events[times < test_cut])


def held_out_items(dataset: Dataset, protocol: Protocol) -> np.ndarray:
    """Internal indices of the items the cold-start protocol holds out of training: a seeded
    ``test_fraction`` share of the items that have events (at least one)."""
    active = np.unique(dataset.events["item"].to_numpy())
    n = max(1, int(round(protocol.test_fraction * len(active))))
    return np.sort(np.random.default_rng(protocol.seed).choice(active, size=n, replace=False))


def _cold_start(dataset: Dataset, protocol: Protocol) -> Split:
    # An item split, not a time split: no event on a held-out item is ever trained on, while events
    # on the other ("warm") items are, even those later than a user's test target.
    cold = np.zeros(dataset.n_items, dtype=bool)
    cold[held_out_items(dataset, protocol)] = True
    events = dataset.events
    warm = events[~cold[events["item"].to_numpy()]]
    users = warm["user"].to_numpy()
    from_end = warm.groupby("user", sort=False).cumcount(ascending=False).to_numpy()
    length = np.bincount(users, minlength=dataset.n_users)[users]
    train = warm[~((from_end == 0) & (length >= 2))]  # each user's last warm event validates
    valid_cases, test_cases, cold_first = [], [], 0
    for user, history in dataset.histories(warm).items():
        n = len(history)
        if n >= 2:
            valid_cases.append((user, history.take(slice(None, n - 1)), history.items[n - 1 :]))
    for user, history in dataset.histories().items():
        flags = cold[history.items]
        if not flags.any():
            continue
        first = int(np.argmax(flags))
        if first == 0:
            cold_first += 1
            continue
        test_cases.append((user, history.take(slice(None, first)), history.items[first : first + 1]))
    notes = [
        f"{int(cold.sum())} of {dataset.n_items} items ({protocol.test_fraction:.0%} of those with events, seed "
        f"{protocol.seed}) held out of training entirely",
        "test: per user, the first event on a held-out item is the target and the events before it (all on "
        "warm items) the history; validation: per user, the last warm event",
    ]
    if cold_first:
        notes.append(f"{cold_first} users whose very first event is on a held-out item have no test case")
    return Split(protocol, train, _eval_set(valid_cases), _eval_set(test_cases), notes, warm)


def _window_cases(dataset: Dataset, events: pd.DataFrame, start: float, end: float) -> EvalSet:
    times = events["timestamp"].to_numpy()
    before = dataset.histories(events[times < start])
    window = events[(times >= start) & (times < end)]
    cases = []
    for user, group in window.groupby("user", sort=True):
        history = before.get(int(user))
        if history is None or len(history) == 0:
            continue
        targets = pd.unique(group["item"].to_numpy())
        cases.append((int(user), history, np.asarray(targets, dtype=np.int64)))
    return _eval_set(cases)


def _eval_set(cases: list[tuple[int, History, np.ndarray]]) -> EvalSet:
    return EvalSet(
        users=np.array([c[0] for c in cases], dtype=np.int64),
        histories=[c[1] for c in cases],
        targets=[np.asarray(c[2], dtype=np.int64) for c in cases],
    )
