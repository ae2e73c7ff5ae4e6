"""Off-policy evaluation: what a candidate policy's recommendations would have earned, estimated from
slates a different (logging) policy showed, with the propensity of each shown item at its position.

The estimators follow the item-position click model (Li et al., WSDM 2018): the chance that an item
is clicked depends on the item, the user and its position, not on the other items of the slate. A
logged item at position ``p`` counts for the candidate policy when the candidate puts that same item
at ``p``, weighted by one over its logging propensity there:

* **IPS**: the mean over slates of ``sum_p r[n, p] * w[n, p]``, ``w = 1[candidate shows it at p] / mu``:
  unbiased wherever the logging policy could show each of the candidate's items at its position;
* **SNIPS**: per position, ``sum_n r w / sum_n w``, summed over positions: a little bias for much
  less variance when the weights are large.

Both are expected clicks per slate. Intervals are percentile bootstraps over slates (a slate's items
are resampled together).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from penchant.errors import InputError


@dataclass(frozen=True)
class LoggedSlate:
    """One logged slate: what was shown in position order, each item's logging propensity at its
    position, and whether it was rewarded."""

    items: np.ndarray  # (k,) item indices (or IDs)
    propensities: np.ndarray  # (k,) in (0, 1]
    rewards: np.ndarray  # (k,) 0/1 (or any reward)


@dataclass(frozen=True)
class Estimate:
    ips: float
    ips_low: float
    ips_high: float
    snips: float
    snips_low: float
    snips_high: float
    slates: int  # logged slates
    matched: int  # logged item-positions the candidate policy reproduces (the estimate's support)

    def to_dict(self) -> dict:
        return asdict(self)


def weights(logged: Sequence[LoggedSlate], targets: Sequence[Sequence]) -> tuple[np.ndarray, np.ndarray]:
    """(rewards, weights), each (slates, k): ``w[n, p]`` is 1/propensity where the candidate's slate
    ``targets[n]`` has the logged item at ``p``, else 0. Slates shorter than ``k`` pad with zeros."""
    if len(logged) != len(targets):
        raise InputError(f"{len(logged)} logged slates but {len(targets)} candidate slates")
    k = max((len(s.items) for s in logged), default=0)
    r, w = np.zeros((len(logged), k)), np.zeros((len(logged), k))
    for n, (slate, target) in enumerate(zip(logged, targets, strict=True)):
        propensities = np.asarray(slate.propensities, dtype=np.float64)
        if ((propensities <= 0) | (propensities > 1)).any():
            raise InputError(f"slate {n}: propensities must be in (0, 1], got {propensities.tolist()}")
        target = list(target)
        for p, item in enumerate(slate.items):
            r[n, p] = slate.rewards[p]
            if p < len(target) and target[p] == item:
                w[n, p] = 1.0 / propensities[p]
    return r, w


def estimate(
    logged: Sequence[LoggedSlate],
    targets: Sequence[Sequence],
    resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> Estimate:
    """IPS and SNIPS of the candidate policy whose slate for the ``n``-th logged context is
    ``targets[n]``, with percentile-bootstrap intervals at ``level``."""
    if not logged:
        raise InputError("no logged slates to estimate from")
    r, w = weights(logged, targets)
    n = len(logged)
    # Each resample as how many times it takes each slate: (resamples, slates) counts.
    counts = (
        np.random.default_rng(seed).multinomial(n, np.full(n, 1.0 / n), size=resamples).astype(np.float64)
    )
    ips_draws = counts @ (r * w).sum(axis=1) / n
    snips_draws = _snips(counts @ (r * w), counts @ w)
    tail = (1.0 - level) / 2 * 100
    return Estimate(
        ips=float((r * w).sum(axis=1).mean()),
        ips_low=float(np.percentile(ips_draws, tail)),
        ips_high=float(np.percentile(ips_draws, 100 - tail)),
        snips=float(_snips((r * w).sum(axis=0)[None], w.sum(axis=0)[None])[0]),
        snips_low=float(np.percentile(snips_draws, tail)),
        snips_high=float(np.percentile(snips_draws, 100 - tail)),
        slates=len(logged),
        matched=int((w > 0).sum()),
    )


def _snips(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """Per position sums of r w and of w, (B, k) -> (B,): sum over positions of their ratio (0 where a
    position has no weight)."""
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0).sum(axis=1)
