"""Paired bootstrap intervals for the change of a per-user metric between two rankings of the same users."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class Change:
    """The relative change ``mean(other) / mean(base) - 1`` over the users both define, with a
    percentile-bootstrap interval; None throughout when the base mean is 0."""

    value: float | None
    low: float | None
    high: float | None
    users: int  # users both define (NaN in either leaves a user out)

    def to_dict(self) -> dict:
        return asdict(self)

    def excludes_zero(self) -> bool:
        return self.low is not None and (self.low > 0 or self.high < 0)


def paired_change(
    base: np.ndarray, other: np.ndarray, resamples: int = 2000, seed: int = 0, level: float = 0.95
) -> Change:
    """Relative change of ``other`` over ``base`` (per-user values of the same users, NaN where a
    user has none); each resample draws users with replacement and takes both values of each drawn
    user, so the interval reflects the paired design."""
    base, other = np.asarray(base, dtype=np.float64), np.asarray(other, dtype=np.float64)
    if base.shape != other.shape:
        raise ValueError(f"paired values must have one shape, got {base.shape} and {other.shape}")
    both = ~np.isnan(base) & ~np.isnan(other)
    b, o = base[both], other[both]
    n = len(b)
    if n == 0 or b.mean() == 0:
        return Change(None, None, None, n)
    counts = (
        np.random.default_rng(seed).multinomial(n, np.full(n, 1.0 / n), size=resamples).astype(np.float64)
    )
    sb, so = counts @ b, counts @ o
    ratios = np.divide(so, sb, out=np.full(resamples, np.nan), where=sb > 0) - 1.0
    tail = (1.0 - level) / 2 * 100
    low, high = np.nanpercentile(ratios, [tail, 100 - tail])
    return Change(float(o.mean() / b.mean() - 1.0), float(low), float(high), n)
