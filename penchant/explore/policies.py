"""Exploration policies: re-rank one user's candidate list (e.g. the model's top 200) into a slate.

Every policy takes the same knob, ``explore`` in [0, 1]: 0 returns the model's own ranking exactly,
1 gives the policy's objective full weight. Each slate position says whether it *exploits* (the item
is among the model's own top k) or *explores* (the policy brought it in), and which interest it serves.

Policies work on internal item indices and a taxonomy's membership matrix, never on a model, so the
same policy re-ranks the interest transformer, EASE or saved candidate lists alike.
"""

from __future__ import annotations

import copy
import json
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from penchant.data.dataset import History
from penchant.errors import InputError
from penchant.explore.interests import (
    InterestTransitions,
    interest_closeness,
    interest_descriptions,
    interest_distribution,
    novel_interest_scores,
)
from penchant.explore.vectors import ItemVectors, item_vectors_for, unit_rows
from penchant.interests.taxonomy import Taxonomy
from penchant.models.base import Recommender
from penchant.models.topk import PAD, topk_indices

EXPLOIT, EXPLORE = "exploit", "explore"


@dataclass
class Candidates:
    """One user's candidates in the model's order (best first) with the model's scores."""

    items: np.ndarray  # (C,) int64 internal item indices
    scores: np.ndarray  # (C,) float64, non-increasing

    def __len__(self) -> int:
        return len(self.items)

    @classmethod
    def from_scores(cls, scores: np.ndarray, n: int, exclude: np.ndarray | None = None) -> Candidates:
        """The ``n`` best-scored items of a full-catalogue score row (ties: lower index first),
        selected without sorting the whole catalogue."""
        scores = np.asarray(scores, dtype=np.float64).copy()
        if exclude is not None and len(exclude):
            scores[exclude] = -np.inf
        if n < 1 or len(scores) == 0:
            return cls(np.zeros(0, dtype=np.int64), np.zeros(0))
        order = topk_indices(scores[None, :], min(n, len(scores)))[0]
        order = order[(order != PAD)]
        order = order[np.isfinite(scores[order])]
        return cls(order.astype(np.int64), scores[order])


@dataclass
class Slate:
    """A re-ranked list: items with their model scores, role and the interest each one serves."""

    items: np.ndarray  # (k,) int64
    scores: np.ndarray  # (k,) model scores of those items
    explores: np.ndarray  # (k,) bool: True where the policy, not the model's top k, put the item
    interests: np.ndarray  # (k,) int interest index, -1 where the item has none

    def roles(self) -> list[str]:
        return [EXPLORE if e else EXPLOIT for e in self.explores]


@dataclass
class UserContext:
    """Who the slate is for: an ID (for per-user state such as the bandit's) and their history."""

    history: History
    user_id: str | None = None


def _check_knob(explore: float) -> float:
    if not 0.0 <= explore <= 1.0:
        raise InputError(f"explore must be between 0 and 1, got {explore}")
    return float(explore)


def relevance(scores: np.ndarray) -> np.ndarray:
    """Model scores mapped onto [0, 1] over the candidate list (min-max; all ones when flat)."""
    lo, hi = float(scores.min()), float(scores.max())
    if hi - lo <= 0:
        return np.ones_like(scores, dtype=np.float64)
    return (scores - lo) / (hi - lo)


class Policy(ABC):
    """Re-ranks candidates into a slate of ``k`` under the ``explore`` knob."""

    name: str

    def __init__(self, taxonomy: Taxonomy):
        self.taxonomy = taxonomy
        self.membership = taxonomy.sparse  # (I, K) CSR, shared by every policy of the taxonomy

    def rows(self, items: np.ndarray) -> np.ndarray:
        """Dense membership rows (n, K) of a few items (a slate, a candidate list)."""
        return self.membership[np.asarray(items, dtype=np.int64)].toarray()

    def rerank(self, user: UserContext, candidates: Candidates, k: int, explore: float) -> Slate:
        explore = _check_knob(explore)
        if k < 1:
            raise InputError(f"k must be at least 1, got {k}")
        k = min(k, len(candidates))
        profile = interest_distribution(self.membership, user.history.items)
        if k == 0:
            return self._slate(candidates, np.zeros(0, dtype=np.int64), k, np.zeros(0, dtype=np.int64))
        if explore == 0.0:
            positions = np.arange(k)
            return self._slate(
                candidates, positions, k, self._exploit_interests(candidates.items[positions], profile)
            )
        positions, interests = self._select(user, candidates, k, explore, profile)
        return self._slate(candidates, positions, k, interests)

    @abstractmethod
    def _select(
        self, user: UserContext, candidates: Candidates, k: int, explore: float, profile: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Positions (k,) into the candidate list, in slate order, and the interest each one serves."""

    # ------------------------------------------------------------------ shared helpers
    def _exploit_interests(self, items: np.ndarray, profile: np.ndarray) -> np.ndarray:
        """The user's own interest each item serves best (its strongest one when the user has none)."""
        m = self.rows(items)  # (n, K)
        out = np.argmax(m * (profile[None, :] + 1e-6), axis=1)
        out[m.sum(axis=1) == 0] = -1
        return out

    def _slate(self, candidates: Candidates, positions: np.ndarray, k: int, interests: np.ndarray) -> Slate:
        positions = np.asarray(positions, dtype=np.int64)
        return Slate(
            items=candidates.items[positions],
            scores=candidates.scores[positions],
            explores=positions >= k,  # outside the model's own top k
            interests=np.asarray(interests, dtype=np.int64),
        )


# ---------------------------------------------------------------------- diversity
class Diversity(Policy):
    """Maximal marginal relevance (Carbonell & Goldstein 1998): ``(1-x)·rel - x·max-sim-to-chosen``."""

    name = "diversity"

    def __init__(self, taxonomy: Taxonomy, vectors: ItemVectors):
        super().__init__(taxonomy)
        self.vectors = vectors

    def _select(self, user, candidates, k, explore, profile):
        rel = relevance(candidates.scores)
        sim = self.vectors.similarity(candidates.items).astype(np.float64)  # (C, C)
        max_sim = np.full(len(candidates), -np.inf)
        taken = np.zeros(len(candidates), dtype=bool)
        chosen = []
        for _ in range(k):
            penalty = np.where(np.isfinite(max_sim), max_sim, 0.0)
            gain = np.where(taken, -np.inf, (1.0 - explore) * rel - explore * penalty)
            pick = int(np.argmax(gain))  # ties go to the better-ranked candidate
            chosen.append(pick)
            taken[pick] = True
            max_sim = np.maximum(max_sim, sim[:, pick])
        positions = np.array(chosen)
        interests = self._exploit_interests(candidates.items[positions], profile)
        primary = self.taxonomy.primary()[candidates.items[positions]]
        # An item the model would not have shown serves its own strongest interest.
        interests = np.where(positions >= k, primary, interests)
        return positions, interests


# ---------------------------------------------------------------------- calibration
class Calibrated(Policy):
    """Calibrated recommendations (Steck 2018): greedily maximise ``(1-x)·Σrel - x·KL(p || q~)``.

    ``p`` is the user's interest distribution, ``q`` that of the slate, ``q~ = (1-a)·q + a·p``.
    """

    name = "calibrated"

    def __init__(self, taxonomy: Taxonomy, smoothing: float = 0.01):
        super().__init__(taxonomy)
        self.smoothing = smoothing

    def _select(self, user, candidates, k, explore, profile):
        if profile.sum() <= 0:
            positions = np.arange(k)
            return positions, self._exploit_interests(candidates.items[positions], profile)
        rel = relevance(candidates.scores)
        m = self.rows(candidates.items)  # (C, K)
        q_mass = np.zeros_like(profile)
        taken = np.zeros(len(candidates), dtype=bool)
        chosen, interests = [], []
        support = profile > 0
        for _ in range(k):
            mass = q_mass[None, :] + m  # (C, K) slate mass with each candidate added
            totals = mass.sum(axis=1, keepdims=True)
            q = np.divide(mass, totals, out=np.zeros_like(mass), where=totals > 0)
            q = (1.0 - self.smoothing) * q + self.smoothing * profile[None, :]
            kl = (profile[support][None, :] * np.log(profile[support][None, :] / q[:, support])).sum(axis=1)
            gain = np.where(taken, -np.inf, (1.0 - explore) * rel - explore * kl)
            pick = int(np.argmax(gain))
            # The interest the pick most helps: the largest gap between wanted and shown shares.
            current = q_mass / q_mass.sum() if q_mass.sum() > 0 else np.zeros_like(q_mass)
            gap = np.where(m[pick] > 0, profile - current, -np.inf)
            interests.append(int(np.argmax(gap)) if m[pick].sum() > 0 else -1)
            chosen.append(pick)
            taken[pick] = True
            q_mass = q_mass + m[pick]
        return np.array(chosen), np.array(interests)


# ---------------------------------------------------------------------- novel interests
@dataclass(frozen=True)
class NovelInterestConfig:
    # Three signals propose the next new interest, mixed by these weights (normalised to sum to 1):
    transition_weight: float = 0.5  # interest transitions learned across users
    semantic_weight: float = 0.5  # closeness in meaning (interest text vectors, else item-vector centroids)
    model_weight: float = 0.0  # the model's own probability mass on the interest in its top candidates
    # The slots fill (and a language model's proposals in either fill):
    max_interests: int = 1  # predicted new interests one slate tries (the published recipe serves one)
    min_score: float = 0.02  # never explore an interest predicted with less than this next-interest mass
    # An interest with at most this share of the user's history still counts as new: 0 explores only
    # untouched interests; a small share keeps nurturing an interest the user has just started on.
    new_below_share: float = 0.0
    # How the explore slots are filled:
    # "by-score" (default): every item from a new interest gets a bonus of x·BONUS_SPREAD standard
    #   deviations of the candidates' model scores and enters the slate, after the model's own items,
    #   when that lifts it past the k-th item. Only items the model nearly ranks already get in, so the
    #   number of explore slots varies per user;
    # "slots": round(x·k) slots at the end of the slate go to the best items of the ``max_interests``
    #   new interests the signals rank first, whatever their model scores.
    fill: str = "by-score"
    # by-score: the share of the bonus that follows the three signals' score of the item's new interest
    # (0: every new interest gets the same bonus; 1: the bonus is proportional to the score). The
    # default 0.5 was near the best on ml-100k's validation targets for both models (the best there was
    # 0) and, unlike 0, gains clicks in the simulator, where the model knows nothing of the hidden
    # interests and the signals find them (benchmarks/results/explore.md, simulate.md).
    signal_share: float = 0.5

    def __post_init__(self):
        if self.fill not in FILLS:
            raise InputError(f"novel-interest fill must be one of {', '.join(FILLS)}, got '{self.fill}'")
        if not 0.0 <= self.signal_share <= 1.0:
            raise InputError(f"novel-interest signal_share must be between 0 and 1, got {self.signal_share}")


FILLS = ("slots", "by-score")
# by-score: the bonus at explore = 1, in standard deviations of the candidates' model scores.
BONUS_SPREAD = 3.0


class LLMInterestProposer:
    """New interests proposed by a language model (``PENCHANT_LLM_URL``) from the user's interest
    profile, as in the published recipe: the model names the next interest, the recommender picks the
    items inside it. Answers are cached per user and history length. When the endpoint fails or
    proposes nothing usable it returns None and the policy falls back to its own signals;
    ``last_error`` says why."""

    def __init__(self, taxonomy: Taxonomy, settings, cache_size: int = 10_000):
        self.taxonomy = taxonomy
        self.settings = settings
        self.index = {name: j for j, name in enumerate(taxonomy.names)}
        self.cache: OrderedDict[tuple, list[int] | None] = OrderedDict()
        self.cache_size = cache_size
        self.last_error: str | None = None

    def __call__(self, user: UserContext, novel: np.ndarray, n: int) -> list[int] | None:
        from penchant.interests import LLMError, build_profile, propose_interests

        history = user.history
        key = (user.user_id, len(history), int(history.items[-1]) if len(history) else -1, n)
        if key in self.cache:
            return self.cache[key]
        names = [self.taxonomy.names[j] for j in np.flatnonzero(novel)]
        try:
            profile = build_profile(user.user_id or "", history, self.taxonomy)
            chosen = [self.index[name] for name in propose_interests(profile, names, self.settings, n)]
        except LLMError as exc:
            self.last_error = str(exc)
            chosen = None
        self.cache[key] = chosen
        while len(self.cache) > self.cache_size:
            self.cache.popitem(last=False)
        return chosen


class NovelInterest(Policy):
    """Bring items from interests the user has never engaged with into the end of the slate; the rest
    is the model's own top items in its own order. By default ("by-score") a new-interest item gets in
    when a bonus of ``x`` times BONUS_SPREAD standard deviations of the candidates' scores lifts it past
    the k-th item; with the "slots" fill ``round(x·k)`` slots go to the model's best items inside the
    new interests the signals (transitions, closeness, the model's mass; or a language model) rank
    first. See :class:`NovelInterestConfig`.
    """

    name = "novel-interest"

    def __init__(
        self,
        taxonomy: Taxonomy,
        transitions: InterestTransitions,
        vectors: ItemVectors,
        config: NovelInterestConfig | None = None,
        interest_vectors: np.ndarray | None = None,
        proposer: LLMInterestProposer | None = None,
    ):
        """``interest_vectors`` (K, d): a text encoder's vectors of each interest's description; the
        closeness signal uses them when given, else the centroids of the item ``vectors``. With a
        ``proposer`` (a language model), its new interests come first and the signals are the fallback."""
        super().__init__(taxonomy)
        self.transitions = transitions
        self.config = config or NovelInterestConfig()
        self.interest_vectors = interest_vectors
        self.proposer = proposer
        # The interests' item-vector sums (K, d), so that items added later update them (with_items).
        self._sums = None if interest_vectors is not None else np.asarray(self.membership.T @ vectors.vectors)
        self.closeness = interest_closeness(
            unit_rows(interest_vectors if interest_vectors is not None else self._sums)
        )

    def with_items(self, taxonomy: Taxonomy, vectors: ItemVectors, n_new: int) -> NovelInterest:
        """This policy over ``taxonomy`` and ``vectors`` that grew by ``n_new`` appended items: their
        vectors are added to their interests' centroids (the rest is shared, not recomputed)."""
        grown = copy.copy(self)
        Policy.__init__(grown, taxonomy)
        if self._sums is not None:
            new = np.asarray(grown.membership[-n_new:].T @ vectors.vectors[-n_new:])
            grown._sums = self._sums + new
            grown.closeness = interest_closeness(unit_rows(grown._sums))
        return grown

    def interest_scores(self, profile: np.ndarray, candidates: Candidates | None = None) -> np.ndarray:
        """Score (K,) of each interest as the user's next new one (0 for interests they already have);
        with ``candidates``, the model's probability mass on each interest among them counts too."""
        c = self.config
        mass = None
        if candidates is not None and c.model_weight > 0 and len(candidates):
            z = candidates.scores - candidates.scores.max()
            weights = np.exp(z / (candidates.scores.std() or 1.0))
            mass = weights @ self.rows(candidates.items)
            mass = mass / mass.sum() if mass.sum() > 0 else mass
        return novel_interest_scores(
            profile,
            self.transitions,
            self.closeness,
            c.semantic_weight,
            c.new_below_share,
            model_mass=mass,
            model_weight=c.model_weight,
            transition_weight=c.transition_weight,
        )

    def _proposed(self, user: UserContext, profile: np.ndarray) -> list[int] | None:
        """The language model's new interests for the user, when a proposer is set and answers."""
        if self.proposer is None or profile.sum() <= 0:
            return None
        novel = profile <= self.config.new_below_share
        return self.proposer(user, novel, self.config.max_interests) if novel.any() else None

    def _select(self, user, candidates, k, explore, profile):
        if self.config.fill == "by-score":
            return self._select_by_score(user, candidates, k, explore, profile)
        n_explore = min(k, int(np.floor(explore * k + 0.5)))
        scores = self.interest_scores(profile, candidates)
        floor = max(self.config.min_score, np.finfo(float).tiny)
        ranked = [int(j) for j in np.argsort(-scores, kind="stable") if scores[j] >= floor]
        ranked = ranked[: self.config.max_interests]
        proposed = self._proposed(user, profile) if n_explore else None
        if proposed:
            ranked = proposed
        exploit = list(range(k - n_explore))
        picks: list[tuple[int, int]] = []  # (candidate position, interest)
        taken = np.zeros(len(candidates), dtype=bool)
        taken[exploit] = True
        m = self.rows(candidates.items)  # (C, K)
        cursor = 0
        while len(picks) < n_explore and ranked:
            # Round-robin over the predicted new interests; drop one once it has no candidates left.
            interest = ranked[cursor % len(ranked)]
            pool = np.flatnonzero((m[:, interest] > 0) & ~taken)
            if len(pool) == 0:
                ranked.remove(interest)
                continue
            picks.append((int(pool[0]), interest))  # the model's best candidate inside the interest
            taken[pool[0]] = True
            cursor += 1
        # Slots no new interest could fill go back to the model's next best items.
        rest = [p for p in range(len(candidates)) if not taken[p]][: n_explore - len(picks)]
        positions = np.array(exploit + rest + [p for p, _ in picks], dtype=np.int64)
        interests = self._exploit_interests(candidates.items[positions], profile)
        if picks:
            interests[-len(picks) :] = [j for _, j in picks]
        return positions, interests

    def _select_by_score(self, user, candidates, k, explore, profile):
        """The "by-score" fill: a bonus for items from new interests, in units of the score spread."""
        c = self.config
        novel = (profile <= c.new_below_share) & (profile.sum() > 0)  # nothing is new to a user with none
        proposed = self._proposed(user, profile)
        if proposed:
            novel = np.zeros_like(novel)
            novel[proposed] = True
        signal = self.interest_scores(profile, candidates)
        if signal.max() > 0:
            signal = signal / signal.max()
        weight = np.where(novel, (1.0 - c.signal_share) + c.signal_share * signal, 0.0)  # (K,)
        belongs = self.rows(candidates.items) > 0  # (C, K); shares of several interests count in full
        served = belongs * weight[None, :]
        value = served.max(axis=1)  # each candidate's bonus weight: its best new interest
        scores = candidates.scores.astype(np.float64)
        spread = scores.std() or 1.0
        lifted = scores + BONUS_SPREAD * explore * spread * value
        top = np.argsort(-lifted, kind="stable")[:k]
        promoted = top[top >= k]  # from outside the model's own top k: only new-interest items get there
        promoted = promoted[np.argsort(-lifted[promoted], kind="stable")]
        positions = np.concatenate([np.sort(top[top < k]), promoted]).astype(np.int64)
        interests = self._exploit_interests(candidates.items[positions], profile)
        if len(promoted):  # the new interest the item serves, the signals' first where it has several
            interests[-len(promoted) :] = np.argmax(served[promoted] * (1.0 + signal)[None, :], axis=1)
        return positions, interests


# ---------------------------------------------------------------------- bandit
@dataclass
class BanditState:
    """Per-user Beta posteriors over each interest's click rate; JSON-serialisable."""

    interests: list[str]
    alpha: dict[str, list[float]] = field(default_factory=dict)
    beta: dict[str, list[float]] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> BanditState:
        return cls(
            interests=list(values["interests"]), alpha=dict(values["alpha"]), beta=dict(values["beta"])
        )

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict()))

    @classmethod
    def load(cls, path: str | Path) -> BanditState:
        return cls.from_dict(json.loads(Path(path).read_text()))


@dataclass(frozen=True)
class BanditConfig:
    prior_strength: float = 2.0  # pseudo-observations the model's prior is worth
    prior_floor: float = 0.02  # smallest prior click rate, so every interest can be tried
    seed: int = 0


class Bandit(Policy):
    """Thompson sampling per user and interest.

    A user's first slate sets Beta priors from the model: the share of the candidate list's softmax
    mass in each interest, scaled so the user's top interest has mean ``1 - prior_floor``. Every slate
    draws a click rate per interest and scores items by ``(1-x)·rel + x·(drawn rate of their interests)``.
    :meth:`update` feeds back what was shown and clicked.
    """

    name = "bandit"

    def __init__(
        self, taxonomy: Taxonomy, config: BanditConfig | None = None, state: BanditState | None = None
    ):
        super().__init__(taxonomy)
        self.config = config or BanditConfig()
        self.state = state or BanditState(interests=list(taxonomy.names))
        if self.state.interests != list(taxonomy.names):
            raise InputError("bandit state was saved for a different set of interests")
        self.rng = np.random.default_rng(self.config.seed)

    def prior(self, candidates: Candidates) -> tuple[np.ndarray, np.ndarray]:
        """The Beta prior (alpha, beta) per interest that a user's first slate starts from."""
        z = candidates.scores - candidates.scores.max()
        spread = candidates.scores.std() or 1.0
        weights = np.exp(z / spread)
        mass = weights @ self.rows(candidates.items)  # (K,)
        mean = mass / mass.max() if mass.max() > 0 else np.zeros_like(mass)
        mean = np.clip(mean, self.config.prior_floor, 1.0 - self.config.prior_floor)
        n0 = self.config.prior_strength
        return 1.0 + n0 * mean, 1.0 + n0 * (1.0 - mean)

    def _posterior(self, user_id: str, candidates: Candidates) -> tuple[np.ndarray, np.ndarray]:
        if user_id not in self.state.alpha:
            alpha, beta = self.prior(candidates)
            self.state.alpha[user_id], self.state.beta[user_id] = list(alpha), list(beta)
        return np.array(self.state.alpha[user_id]), np.array(self.state.beta[user_id])

    def _select(self, user, candidates, k, explore, profile):
        alpha, beta = self._posterior(user.user_id or "", candidates)
        theta = self.rng.beta(alpha, beta)  # (K,)
        positions = self._top(candidates, k, explore, theta[None, :])[0]
        m = self.rows(candidates.items)  # (C, K)
        interests = np.argmax(m[positions] * theta[None, :], axis=1)
        interests[m[positions].sum(axis=1) == 0] = -1
        return positions, interests

    def _top(self, candidates: Candidates, k: int, explore: float, thetas: np.ndarray) -> np.ndarray:
        """Positions (D, k) of the slate each row of drawn click rates ``thetas`` (D, K) gives."""
        drawn = thetas @ self.rows(candidates.items).T  # (D, C)
        combined = (1.0 - explore) * relevance(candidates.scores)[None, :] + explore * drawn
        # Ties go to the better model rank, as a stable sort of -combined does.
        return np.argsort(-combined, axis=1, kind="stable")[:, :k]

    def propensities(
        self, user: UserContext, candidates: Candidates, slate: Slate, explore: float, draws: int = 256
    ) -> np.ndarray:
        """For each item of ``slate``: the probability that a slate drawn from this user's posterior
        puts that item at that position (a Monte Carlo estimate over ``draws`` draws, never below
        1 / (draws + 1)), the propensity an item-position off-policy estimate divides by. Call it right
        after :meth:`rerank`, before any update."""
        if explore == 0.0 or len(slate.items) == 0:
            return np.ones(len(slate.items))
        alpha, beta = self._posterior(user.user_id or "", candidates)
        rng = np.random.default_rng([self.config.seed, draws])  # its own draws: the slates' stay as they were
        thetas = rng.beta(alpha, beta, size=(draws, len(alpha)))
        shown = candidates.items[self._top(candidates, len(slate.items), explore, thetas)]  # (D, k)
        hits = (shown == np.asarray(slate.items)[None, :]).sum(axis=0)
        return (hits + 1.0) / (draws + 1.0)

    def update(self, user_id: str, items: np.ndarray, clicked: np.ndarray) -> None:
        """Credit each shown item's interests (by membership) with a click or a miss."""
        if user_id not in self.state.alpha:
            return  # no prior yet: the user has not been shown a slate by this policy
        m = self.rows(items)  # (n, K)
        clicked = np.asarray(clicked, dtype=np.float64)
        self.state.alpha[user_id] = list(np.array(self.state.alpha[user_id]) + clicked @ m)
        self.state.beta[user_id] = list(np.array(self.state.beta[user_id]) + (1.0 - clicked) @ m)


POLICY_NAMES = ("diversity", "calibrated", "novel-interest", "bandit")


def make_policy(
    name: str,
    taxonomy: Taxonomy,
    vectors: ItemVectors | None = None,
    transitions: InterestTransitions | None = None,
    novel: NovelInterestConfig | None = None,
    interest_vectors: np.ndarray | None = None,
    proposer: LLMInterestProposer | None = None,
) -> Policy:
    """The policy called ``name`` (one of :data:`POLICY_NAMES`) over ``taxonomy``; ``diversity`` needs
    item ``vectors``, ``novel-interest`` both ``vectors`` and interest ``transitions`` (and takes its
    ``novel`` settings and the text ``interest_vectors`` of :func:`interest_text_vectors`)."""
    _check_names([name])
    if name == "calibrated":
        return Calibrated(taxonomy)
    if name == "bandit":
        return Bandit(taxonomy)
    if vectors is None or (name == "novel-interest" and transitions is None):
        raise ValueError(f"policy '{name}' needs item vectors (and novel-interest, interest transitions)")
    if name == "diversity":
        return Diversity(taxonomy, vectors)
    return NovelInterest(taxonomy, transitions, vectors, novel, interest_vectors, proposer)


def interest_text_vectors(
    taxonomy: Taxonomy, titles: Sequence[str] | None, histories: Sequence[History], encoder
) -> np.ndarray:
    """A text encoder's vector (K, d) of each interest's description: its name, its keywords (text
    topics) and the titles of its five most popular items in ``histories``."""
    counts = np.zeros(taxonomy.membership.shape[0])
    for history in histories:
        np.add.at(counts, history.items, 1.0)
    examples = []
    for j in range(taxonomy.n_interests):
        members = taxonomy.items_of(j)
        best = members[np.argsort(-counts[members], kind="stable")[:5]]
        examples.append([str(titles[i]) for i in best if titles and titles[i]] if titles else [])
    texts = interest_descriptions(list(taxonomy.names), taxonomy.keywords, examples)
    return np.asarray(encoder.encode(texts), dtype=np.float64)


def make_policies(
    model: Recommender,
    taxonomy: Taxonomy,
    histories: Sequence[History],
    names: Sequence[str] = POLICY_NAMES,
) -> dict[str, Policy]:
    """The named policies over ``model``'s ranking, learning only from ``histories`` (the training
    split when evaluating, every known history when serving): item vectors and interest transitions
    are computed once, and only when a named policy needs them. With ``PENCHANT_LLM_URL`` and
    ``PENCHANT_LLM_MODEL`` set, novel-interest asks that language model for each user's next interests
    (its own signals when the endpoint fails)."""
    from penchant.interests import LLMSettings

    _check_names(names)  # before the vectors and transitions are computed
    vectors = item_vectors_for(model, histories) if {"diversity", "novel-interest"} & set(names) else None
    transitions = (
        InterestTransitions.fit(histories, taxonomy.membership) if "novel-interest" in names else None
    )
    settings = LLMSettings.from_env()
    proposer = LLMInterestProposer(taxonomy, settings) if settings is not None and settings.model else None
    return {name: make_policy(name, taxonomy, vectors, transitions, proposer=proposer) for name in names}


def _check_names(names: Sequence[str]) -> None:
    for name in names:
        if name not in POLICY_NAMES:
            raise InputError(f"unknown policy '{name}' (available: {', '.join(POLICY_NAMES)})")
