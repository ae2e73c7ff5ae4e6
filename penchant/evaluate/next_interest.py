"""The next-interest task: precision, recall and F1 at k of predicted interests against the interests
of the item(s) the user went on to, for the model and for the history-frequency baseline.

Per-user metrics are computed from saved top-k interest lists and aggregated separately, like the
item-ranking metrics, so a list can be scored without the model.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from penchant.data.split import EvalSet, Protocol
from penchant.errors import InputError
from penchant.interests.predict import history_frequency, predict_interests, top_interests
from penchant.interests.taxonomy import Taxonomy
from penchant.models.base import Recommender


def target_interests(cases: EvalSet, taxonomy: Taxonomy) -> list[np.ndarray]:
    """Per case, the distinct interests of its target item(s)."""
    return [np.flatnonzero((taxonomy.rows(targets) > 0).any(axis=0)) for targets in cases.targets]


def per_user_interest_metrics(
    top: np.ndarray, targets: Sequence[np.ndarray], k: int
) -> dict[str, np.ndarray]:
    """Per-user precision, recall and F1 at k of top-k interest lists (U, >=k) against target sets."""
    hits = np.array(
        [np.isin(row[:k], t).sum() for row, t in zip(top, targets, strict=True)], dtype=np.float64
    )
    n_relevant = np.array([len(t) for t in targets], dtype=np.float64)
    precision = hits / k
    recall = np.divide(hits, n_relevant, out=np.zeros_like(hits), where=n_relevant > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(denom), where=denom > 0)
    return {"precision": precision, "recall": recall, "f1": f1}


def aggregate_interest_metrics(per_user: dict[str, np.ndarray], k: int) -> dict[str, float]:
    return {f"{name}@{k}": float(values.mean()) if len(values) else 0.0 for name, values in per_user.items()}


def interest_lists(
    model: Recommender,
    taxonomy: Taxonomy,
    cases: EvalSet,
    k: int,
    exclude_seen: bool = False,
    temperature: float = 1.0,
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Top-k interests (U, k) of the model and of the baseline, and the target interests, for the
    cases whose target has at least one interest (the others cannot be scored)."""
    if k > taxonomy.n_interests:
        raise InputError(f"k={k} is more than the {taxonomy.n_interests} interests there are to predict")
    targets = target_interests(cases, taxonomy)
    keep = [len(t) > 0 for t in targets]
    histories = [h for h, ok in zip(cases.histories, keep, strict=True) if ok]
    targets = [t for t, ok in zip(targets, keep, strict=True) if ok]
    model_top = top_interests(predict_interests(model, histories, taxonomy, temperature, exclude_seen), k)
    base_top = top_interests(history_frequency(histories, taxonomy), k)
    return model_top, base_top, targets


def evaluate_next_interest(
    model: Recommender,
    taxonomy: Taxonomy,
    cases: EvalSet,
    protocol: Protocol,
    ks: Sequence[int] = (1, 3, 5),
    exclude_seen: bool = False,
    temperature: float = 1.0,
) -> dict:
    """``{"task", "protocol", "metrics", "baseline", "n_users"}`` for next-interest prediction."""
    model_top, base_top, targets = interest_lists(model, taxonomy, cases, max(ks), exclude_seen, temperature)
    metrics, baseline = {}, {}
    for k in sorted(ks):
        metrics.update(aggregate_interest_metrics(per_user_interest_metrics(model_top, targets, k), k))
        baseline.update(aggregate_interest_metrics(per_user_interest_metrics(base_top, targets, k), k))
    description = protocol.describe(exclude_seen)
    description["task"] = (
        "next interest: rank the interests by the probability that the user's next item carries them "
        f"(softmax over the model's full-catalogue scores, temperature {temperature:g}, summed over each "
        "interest's items); relevant = the interests of the test target item(s)"
    )
    description["baseline"] = "interests ranked by how many items of the user's history carry them"
    description["interests"] = f"{taxonomy.n_interests} interests from {taxonomy.source}"
    description["users_without_target_interest"] = len(cases) - len(targets)
    return {
        "task": "next-interest",
        "protocol": description,
        "metrics": metrics,
        "baseline": baseline,
        "n_users": len(targets),
    }
