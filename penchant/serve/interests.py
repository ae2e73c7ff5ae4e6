"""The per-run objects behind profiles, explanations and exploration, built once when a run loads.

Interests come from the catalogue's item categories, or, in a catalogue without categories, from
topics clustered from the item text (as ``penchant profile`` finds them: the run's text encoder is
loaded once at start-up and the embeddings come from the on-disk cache after the first time). A
catalogue with neither gets no interests: the three capabilities then answer 409 with the reason,
and recommendations without a policy are unaffected.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from penchant.data.dataset import History
from penchant.errors import InputError
from penchant.explain import Explanation, explain
from penchant.explore import (
    EXPLOIT,
    EXPLORE,
    Bandit,
    Calibrated,
    Candidates,
    Diversity,
    NovelInterest,
    Policy,
    UserContext,
    make_policies,
    model_item_embeddings,
)
from penchant.interests import Profile, Taxonomy, build_profile
from penchant.models import Recommender
from penchant.runs import Run

DEFAULT_CANDIDATES = 200  # the model's top candidates a policy re-ranks (as penchant recommend does)


class PolicyName(StrEnum):
    diversity = "diversity"
    calibrated = "calibrated"
    novel_interest = "novel-interest"
    bandit = "bandit"


@dataclass(frozen=True)
class ExploredItem:
    item: int  # internal index
    score: float
    role: str  # exploit or explore
    interest: str | None
    propensity: float = 1.0  # probability that the policy shows the item at this position


Posterior = dict[str, tuple[float, float]]  # the bandit's Beta (alpha, beta) of one user, per interest


@dataclass
class RunInterests:
    """A run's taxonomy and exploration policies, learned from every history the model knows."""

    taxonomy: Taxonomy
    policies: dict[PolicyName, Policy]
    # The bandit holds the user's posterior (from the store) and a random generator while it draws a
    # slate: one slate at a time.
    _bandit_lock: threading.Lock

    @classmethod
    def build(cls, run: Run) -> RunInterests | None:
        """None when the catalogue has neither categories nor text to take interests from."""
        try:
            taxonomy = run.taxonomy()
        except InputError:
            return None
        built = make_policies(run.model, taxonomy, list(run.model.histories.values()))
        policies = {PolicyName(name): policy for name, policy in built.items()}
        return cls(taxonomy, policies, threading.Lock())

    def weights(self, item_id: str, model: Recommender) -> dict[str, float]:
        """The interests of an item of ``model``'s catalogue and its membership in each (what a
        reward or a miss credits to the bandit's posteriors); empty for an item the model lacks."""
        index = int(model.item_map.indices([item_id])[0])
        if index < 0 or index >= self.taxonomy.n_items:
            return {}
        row = self.taxonomy.rows([index])[0]
        return {self.taxonomy.names[j]: float(row[j]) for j in np.flatnonzero(row)}

    def with_items(self, model: Recommender, categories: list[list[str] | None]) -> RunInterests:
        """These interests for ``model``, whose catalogue grew by items with these categories (appended
        in order; categories the taxonomy does not have are left out, so an item may have none). The
        bandit's posteriors are per interest and live in the event store, so they carry over."""
        names = self.taxonomy.names
        index = {name: j for j, name in enumerate(names)}
        rows = np.zeros((len(categories), len(names)), dtype=np.float32)
        for row, cats in zip(rows, categories, strict=True):
            known = [index[c] for c in dict.fromkeys(cats or []) if c in index]
            for j in known:
                row[j] = 1.0 / len(known)
        taxonomy = self.taxonomy.with_items(rows)
        diversity: Diversity = self.policies[PolicyName.diversity]  # type: ignore[assignment]
        # The new items' vectors only, after the ones the policies hold (a million of them at most
        # copied once in a while, not per item).
        vectors = diversity.vectors.appended(model_item_embeddings(model, start=diversity.vectors.n_items))
        old: NovelInterest = self.policies[PolicyName.novel_interest]  # type: ignore[assignment]
        bandit: Bandit = self.policies[PolicyName.bandit]  # type: ignore[assignment]
        grown = Bandit(taxonomy, bandit.config)
        grown.rng = bandit.rng
        policies: dict[PolicyName, Policy] = {
            PolicyName.diversity: Diversity(taxonomy, vectors),
            PolicyName.calibrated: Calibrated(taxonomy),
            PolicyName.novel_interest: old.with_items(taxonomy, vectors, len(categories)),
            PolicyName.bandit: grown,
        }
        return RunInterests(taxonomy, policies, self._bandit_lock)  # one lock: the bandit state is shared

    def profile(self, user_id: str, history: History) -> Profile:
        return build_profile(user_id, history, self.taxonomy)

    def explain(self, run: Run, user_id: str, item_id: str, history: History, top: int) -> Explanation:
        return explain(run.model, self.taxonomy, item_id, user_id=user_id, history=history, top=top)

    def rerank(
        self,
        policy: PolicyName,
        user_id: str,
        history: History,
        candidates: list[tuple[int, float]],
        k: int,
        explore: float,
        posterior: Posterior | None = None,
    ) -> tuple[list[ExploredItem], Posterior | None]:
        """Re-rank the retriever's candidates (best first) into a slate of ``k``.

        The bandit draws from ``posterior`` (the user's, as stored; interests it lacks start from the
        model's prior) and returns the posterior it drew from, so the caller can store the new
        interests' priors; the other policies return None. The bandit keeps no user in memory."""
        if not candidates:
            return [], None
        pool = Candidates(
            np.array([i for i, _ in candidates], dtype=np.int64),
            np.array([s for _, s in candidates], dtype=np.float64),
        )
        chosen = self.policies[policy]
        context = UserContext(history, user_id)
        used = None
        if isinstance(chosen, Bandit):
            names = self.taxonomy.names
            with self._bandit_lock:
                alpha, beta = chosen.prior(pool)
                for j, name in enumerate(names):
                    if posterior and name in posterior:
                        alpha[j], beta[j] = posterior[name]
                chosen.state.alpha[user_id], chosen.state.beta[user_id] = list(alpha), list(beta)
                try:
                    slate = chosen.rerank(context, pool, k, explore)
                    propensities = chosen.propensities(context, pool, slate, explore)
                finally:
                    chosen.state.alpha.pop(user_id, None)
                    chosen.state.beta.pop(user_id, None)
            used = {name: (float(a), float(b)) for name, a, b in zip(names, alpha, beta, strict=True)}
        else:
            slate = chosen.rerank(context, pool, k, explore)
            propensities = np.ones(len(slate.items))  # a deterministic re-ranking shows what it shows
        names = self.taxonomy.names
        items = [
            ExploredItem(int(i), float(s), EXPLORE if e else EXPLOIT, names[j] if j >= 0 else None, float(p))
            for i, s, e, j, p in zip(
                slate.items, slate.scores, slate.explores, slate.interests, propensities, strict=True
            )
        ]
        return items, used
