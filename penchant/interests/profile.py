"""A user's interest profile: what they have been into for a long time, what they are into now, and
what is emerging or fading.

- **long term**: every event of the history, each weighted by ``0.5 ** (age / half_life)`` where the
  age is measured back from the user's last event (not from the wall clock, so an old log still has
  a meaningful profile), spread over the event's item's interests;
- **short term**: the recent window only (the last N events, or the last D days), each event weighted
  by the same decay, so the two horizons differ in what they cover, never in how they count;
- **emerging**: an interest whose short-term share is well above its long-term share (both a ratio and
  an absolute gap must be met, so tiny interests flickering do not count); **fading**: the reverse.
  Neither is computed when the short-term window holds more than half of the history: the two
  horizons would then be mostly the same events, and any difference between them an artefact (the
  profile says so in ``shift_note``).

Shares are normalised to sum to one in each horizon, so long and short term are comparable.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from penchant.data.dataset import History
from penchant.errors import InputError
from penchant.interests.taxonomy import Taxonomy

DAY = 86_400.0


@dataclass(frozen=True)
class ProfileConfig:
    """How a profile is computed; the defaults are the recommended settings."""

    half_life_days: float = 180.0  # long-term time decay
    short_events: int = 20  # short-term window: the last N events ...
    short_days: float | None = None  # ... or, when set, the events of the last D days before the last event
    shift_ratio: float = 1.5  # emerging: short >= ratio * long; fading: long >= ratio * short
    shift_gap: float = 0.05  # ... and the shares differ by at least this much
    top: int = 3  # interests named in the summary per horizon

    def __post_init__(self) -> None:
        if self.half_life_days <= 0:
            raise InputError(f"half_life_days must be positive, got {self.half_life_days}")
        if self.short_events < 1:
            raise InputError(f"short_events must be at least 1, got {self.short_events}")
        if self.short_days is not None and self.short_days <= 0:
            raise InputError(f"short_days must be positive, got {self.short_days}")
        if self.shift_ratio < 1:
            raise InputError(f"shift_ratio must be at least 1, got {self.shift_ratio}")

    def window(self) -> str:
        return (
            f"the last {self.short_days:g} days"
            if self.short_days
            else f"the last {self.short_events} events"
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class InterestWeight:
    interest: str
    weight: float

    def to_dict(self) -> dict[str, Any]:
        return {"interest": self.interest, "weight": round(self.weight, 4)}


@dataclass(frozen=True)
class InterestShift:
    """An interest whose recent share differs markedly from its long-term share."""

    interest: str
    long_term: float
    short_term: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "interest": self.interest,
            "long_term": round(self.long_term, 4),
            "short_term": round(self.short_term, 4),
            "change": round(self.short_term - self.long_term, 4),
        }


@dataclass
class Profile:
    user_id: str
    long_term: list[InterestWeight]  # strongest first, interests with weight > 0
    short_term: list[InterestWeight]
    emerging: list[InterestShift]  # biggest rise first
    fading: list[InterestShift]  # biggest fall first
    summary: str
    n_events: int
    n_recent: int
    window: str
    summary_source: str = "deterministic"  # or "llm"
    summary_note: str | None = None  # why a configured language model was not used
    config: ProfileConfig = field(default_factory=ProfileConfig)
    shift_note: str | None = None  # why emerging and fading were not computed

    def to_dict(self) -> dict[str, Any]:
        out = {
            "user_id": self.user_id,
            "long_term": [w.to_dict() for w in self.long_term],
            "short_term": [w.to_dict() for w in self.short_term],
            "emerging": [s.to_dict() for s in self.emerging],
            "fading": [s.to_dict() for s in self.fading],
            "summary": self.summary,
            "summary_source": self.summary_source,
            "n_events": self.n_events,
            "short_term_window": f"{self.window} ({self.n_recent} events)",
            "settings": self.config.to_dict(),
        }
        if self.summary_note:
            out["summary_note"] = self.summary_note
        if self.shift_note:
            out["shift_note"] = self.shift_note
        return out


def interest_shares(
    history: History, taxonomy: Taxonomy, config: ProfileConfig | None = None
) -> tuple[np.ndarray, np.ndarray, int]:
    """Long-term and short-term interest shares (K,) each, and the number of recent events."""
    config = config or ProfileConfig()
    k = taxonomy.n_interests
    if len(history) == 0:
        return np.zeros(k), np.zeros(k), 0
    age_days = (history.times[-1] - history.times) / DAY
    decay = 0.5 ** (age_days / config.half_life_days)
    membership = taxonomy.rows(history.items)  # (T, K)
    long_term = decay @ membership
    if config.short_days:
        recent = age_days <= config.short_days
    else:
        recent = np.arange(len(history)) >= len(history) - config.short_events
    short_term = decay[recent] @ membership[recent]
    return _normalise(long_term), _normalise(short_term), int(recent.sum())


def build_profile(
    user_id: str, history: History, taxonomy: Taxonomy, config: ProfileConfig | None = None
) -> Profile:
    """The profile of one user from their time-ordered history (internal item indices)."""
    config = config or ProfileConfig()
    long_term, short_term, n_recent = interest_shares(history, taxonomy, config)
    shift_note = None
    if 2 * n_recent > len(history):
        emerging, fading = [], []
        if len(history):
            shift_note = (
                f"emerging and fading not computed: {config.window()} hold {n_recent} of the user's "
                f"{len(history)} events; they need a history at least twice as long as the short term"
            )
    else:
        emerging, fading = shifts(long_term, short_term, taxonomy.names, config)
    profile = Profile(
        user_id=user_id,
        long_term=_weights(long_term, taxonomy.names),
        short_term=_weights(short_term, taxonomy.names),
        emerging=emerging,
        fading=fading,
        summary="",
        n_events=len(history),
        n_recent=n_recent,
        window=config.window(),
        config=config,
        shift_note=shift_note,
    )
    profile.summary = describe(profile)
    return profile


def shifts(
    long_term: np.ndarray, short_term: np.ndarray, names: list[str], config: ProfileConfig
) -> tuple[list[InterestShift], list[InterestShift]]:
    """Emerging and fading interests between two share vectors."""
    gap = short_term - long_term
    rising = (gap >= config.shift_gap) & (short_term >= config.shift_ratio * long_term)
    falling = (-gap >= config.shift_gap) & (long_term >= config.shift_ratio * short_term)
    emerging = [
        InterestShift(names[j], long_term[j], short_term[j])
        for j in np.argsort(-gap, kind="stable")
        if rising[j]
    ]
    fading = [
        InterestShift(names[j], long_term[j], short_term[j])
        for j in np.argsort(gap, kind="stable")
        if falling[j]
    ]
    return emerging, fading


def describe(profile: Profile) -> str:
    """A short plain-language summary of a profile; the same profile always gives the same words."""
    if profile.n_events == 0 or not profile.long_term:
        return f"User {profile.user_id} has no activity with a known interest yet."
    top = profile.config.top
    parts = [
        f"Over their {profile.n_events} events, user {profile.user_id} is mostly into "
        f"{_listing(profile.long_term[:top])}."
    ]
    if profile.short_term:
        parts.append(f"In {profile.window} it has been {_listing(profile.short_term[:top])}.")
    else:
        parts.append(f"Nothing in {profile.window} has a known interest.")
    if profile.emerging:
        parts.append(f"Emerging: {_names(profile.emerging)}.")
    if profile.fading:
        parts.append(f"Fading: {_names(profile.fading)}.")
    if profile.shift_note:
        parts.append("Too short a history yet to tell what is emerging or fading.")
    elif not profile.emerging and not profile.fading:
        parts.append("Their recent activity matches their long-term mix.")
    return " ".join(parts)


def _listing(weights: list[InterestWeight]) -> str:
    items = [f"{w.interest} ({w.weight:.0%})" for w in weights]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _names(shifts_: list[InterestShift]) -> str:
    return ", ".join(f"{s.interest} ({s.long_term:.0%} -> {s.short_term:.0%})" for s in shifts_)


def _normalise(v: np.ndarray) -> np.ndarray:
    total = v.sum()
    return v / total if total > 0 else v


def _weights(shares: np.ndarray, names: list[str]) -> list[InterestWeight]:
    return [
        InterestWeight(names[j], float(shares[j]))
        for j in np.argsort(-shares, kind="stable")
        if shares[j] > 0
    ]
