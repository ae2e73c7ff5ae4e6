"""A seeded user simulator for the long-run value of exploring.

The world (everything here is drawn from one seed, and the click model is known exactly):

* ``n_interests`` interests lie on a ring; an interest's centroid vector sits at its angle, so ring
  neighbours are close in meaning, and each item's vector is its interest's centroid plus noise (the
  stand-in for text embeddings). Every item belongs to one interest and has a quality ``q`` in (0, 1).
* Each user has a home interest ``h``. They like ``known_interests`` contiguous interests starting at
  ``h`` and have engaged with them already (a starting history), and they equally like
  ``hidden_interests`` further ring neighbours they have never engaged with: interests not yet discovered.
  Liked interests have affinity ``a ~ U(like_low, like_high)``, all others ``dislike``.
* Clicks: an item shown at rank ``r`` (0-based) is clicked with probability
  ``examine(r) · a[u, g(i)] · q[i] · satiation^(n)``, where ``examine(r) = 1 / log2(r + 2)`` and ``n`` is
  how many items of that interest the user clicked in the last ``satiation_window`` rounds (people tire of
  more of the same). A clicked item is never shown to that user again.

The recommender being steered is deliberately plain and model-agnostic: it scores an item by the user's
click share in its interest (smoothed) times the item's click popularity, learns from every click, and
re-ranks its top ``n_candidates`` with the policy. Exploit-only is the same recommender with ``explore=0``.
Interests discovered counts hidden interests in which the user has clicked at least once.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from penchant.data.dataset import History
from penchant.explore.policies import Bandit, Candidates, Policy, UserContext
from penchant.explore.vectors import ItemVectors
from penchant.interests.taxonomy import Taxonomy


@dataclass(frozen=True)
class SimulatorConfig:
    n_users: int = 200
    n_interests: int = 16
    items_per_interest: int = 40
    known_interests: int = 2
    hidden_interests: int = 2
    history_length: int = 20
    like_low: float = 0.5
    like_high: float = 0.9
    dislike: float = 0.03
    satiation: float = 0.85
    recency: float = 0.9  # the steered model's decay per older click
    satiation_window: int = 3
    rounds: int = 40
    k: int = 10
    n_candidates: int = 200
    vector_dim: int = 16
    vector_noise: float = 0.35

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class World:
    """One seeded draw of users, items and their latent interests."""

    config: SimulatorConfig
    taxonomy: Taxonomy
    vectors: ItemVectors
    item_interest: np.ndarray  # (I,) int
    quality: np.ndarray  # (I,) float
    affinity: np.ndarray  # (U, K) latent click propensity per interest
    hidden: np.ndarray  # (U, K) bool: liked but never engaged with at the start
    histories: list[History]  # starting histories (from known interests only)
    popularity: np.ndarray  # (I,) starting click counts

    @property
    def n_items(self) -> int:
        return len(self.item_interest)


def make_world(config: SimulatorConfig, seed: int) -> World:
    rng = np.random.default_rng(seed)
    c = config
    n_k, n_i = c.n_interests, c.n_interests * c.items_per_interest
    item_interest = np.repeat(np.arange(n_k), c.items_per_interest)
    quality = rng.beta(2.0, 3.0, size=n_i)
    angles = 2 * np.pi * np.arange(n_k) / n_k
    centroids = np.zeros((n_k, c.vector_dim))
    centroids[:, 0], centroids[:, 1] = np.cos(angles), np.sin(angles)
    vectors = centroids[item_interest] + c.vector_noise * rng.normal(size=(n_i, c.vector_dim)) / np.sqrt(
        c.vector_dim
    )
    membership = np.zeros((n_i, n_k), dtype=np.float32)
    membership[np.arange(n_i), item_interest] = 1.0
    taxonomy = Taxonomy(
        names=[f"interest-{j:02d}" for j in range(n_k)], membership=membership, source="simulated"
    )

    affinity = np.full((c.n_users, n_k), c.dislike)
    hidden = np.zeros((c.n_users, n_k), dtype=bool)
    histories = []
    popularity = np.zeros(n_i)
    for u in range(c.n_users):
        home = int(rng.integers(n_k))
        known = [(home + j) % n_k for j in range(c.known_interests)]
        # Hidden interests alternate on either side of the known block: home-1, home+known, home-2, ...
        sides = [
            (home - 1 - j // 2) % n_k if j % 2 == 0 else (home + c.known_interests + j // 2) % n_k
            for j in range(c.hidden_interests)
        ]
        liked = known + sides
        affinity[u, liked] = rng.uniform(c.like_low, c.like_high, size=len(liked))
        hidden[u, sides] = True
        # Starting history: items of the known interests, better items more often, one interest then the next.
        pool = np.flatnonzero(np.isin(item_interest, known))
        weights = quality[pool] * affinity[u, item_interest[pool]]
        items = rng.choice(
            pool, size=min(c.history_length, len(pool)), replace=False, p=weights / weights.sum()
        )
        items = items[np.argsort([known.index(int(item_interest[i])) for i in items], kind="stable")]
        histories.append(History(items.astype(np.int64), np.arange(len(items), dtype=np.float64)))
        popularity[items] += 1.0
    return World(
        c,
        taxonomy,
        ItemVectors.from_array(vectors, "simulated text"),
        item_interest,
        quality,
        affinity,
        hidden,
        histories,
        popularity,
    )


@dataclass
class SimulationResult:
    clicks_per_round: np.ndarray  # (T,) total clicks over users
    discovered_per_round: np.ndarray  # (T,) mean hidden interests discovered per user, after each round
    explore_share: float  # share of shown slots with role "explore"

    @property
    def cumulative_clicks(self) -> float:
        return float(self.clicks_per_round.sum())

    @property
    def discovered(self) -> float:
        return float(self.discovered_per_round[-1])


def model_scores(
    world: World, histories: list[History], popularity: np.ndarray, recency: float
) -> np.ndarray:
    """The steered recommender, (U, I): the user's recency-weighted click share in the item's interest
    (each older click counts ``recency`` times the next one, smoothed) times the item's click popularity."""
    n_k = world.taxonomy.n_interests
    shares = np.zeros((len(histories), n_k))
    for u, history in enumerate(histories):
        weights = recency ** np.arange(len(history))[::-1]
        mass = np.bincount(world.item_interest[history.items], weights=weights, minlength=n_k)
        shares[u] = (mass + 0.01) / (mass.sum() + 0.01 * n_k)
    pop = (popularity + 1.0) / (popularity.max() + 1.0)
    return shares[:, world.item_interest] * pop[None, :]


def click_probability(world: World, user: int, items: np.ndarray, recent: np.ndarray) -> np.ndarray:
    """The known click model: each of ``items`` shown at ranks 0, 1, ... to ``user``, given the
    interests they clicked in the last rounds ``recent`` (window, U, K)."""
    c = world.config
    g = world.item_interest[items]
    tired = c.satiation ** recent[:, user, :].sum(axis=0)[g]
    examine = 1.0 / np.log2(np.arange(len(items)) + 2.0)
    return examine * world.affinity[user, g] * world.quality[items] * tired


def _learn(
    world: World,
    histories: list[History],
    popularity: np.ndarray,
    clicked_now: np.ndarray,
    user: int,
    got: np.ndarray,
    t: int,
) -> None:
    """What the steered model and the world keep of ``user``'s clicks ``got`` in round ``t``: their
    history, the items' popularity, and the round's clicked interests (for satiation)."""
    histories[user] = History(
        np.append(histories[user].items, got), np.append(histories[user].times, np.full(len(got), t + 100.0))
    )
    popularity[got] += 1.0
    np.add.at(clicked_now[user], world.item_interest[got], 1.0)


def simulate(world: World, policy: Policy | None, explore: float, seed: int) -> SimulationResult:
    """Run ``config.rounds`` rounds of slates and clicks; ``policy=None`` is exploit-only."""
    c = world.config
    rng = np.random.default_rng(seed)
    histories = [History(h.items.copy(), h.times.copy()) for h in world.histories]
    popularity = world.popularity.copy()
    recent = np.zeros((c.satiation_window, c.n_users, world.taxonomy.n_interests))
    discovered = np.zeros((c.n_users, world.taxonomy.n_interests), dtype=bool)
    clicks_per_round, discovered_per_round = np.zeros(c.rounds), np.zeros(c.rounds)
    shown = explored = 0
    for t in range(c.rounds):
        scores = model_scores(world, histories, popularity, c.recency)
        clicked_now = np.zeros((c.n_users, world.taxonomy.n_interests))
        for u in range(c.n_users):
            candidates = Candidates.from_scores(scores[u], c.n_candidates, exclude=histories[u].items)
            if policy is None or explore == 0.0:
                items, explores = candidates.items[: c.k], np.zeros(min(c.k, len(candidates)), dtype=bool)
            else:
                slate = policy.rerank(UserContext(histories[u], str(u)), candidates, c.k, explore)
                items, explores = slate.items, slate.explores
            p = click_probability(world, u, items, recent)
            clicks = rng.random(len(items)) < p
            if isinstance(policy, Bandit) and explore > 0.0:
                policy.update(str(u), items, clicks)
            shown += len(items)
            explored += int(explores.sum())
            if clicks.any():
                got = items[clicks]
                _learn(world, histories, popularity, clicked_now, u, got, t)
                discovered[u, world.item_interest[got]] = True
        recent = np.roll(recent, 1, axis=0)
        recent[0] = clicked_now
        clicks_per_round[t] = clicked_now.sum()
        discovered_per_round[t] = (discovered & world.hidden).sum(axis=1).mean()
    return SimulationResult(clicks_per_round, discovered_per_round, explored / max(shown, 1))


@dataclass
class OffPolicyLog:
    """Slates logged by a randomised policy, with what each candidate policy would have shown in the
    same contexts and its true value there."""

    items: np.ndarray  # (N, k) logged slates, position order (-1 pads a short slate)
    propensities: np.ndarray  # (N, k) each logged item's probability of being at its position
    rewards: np.ndarray  # (N, k) clicks
    targets: dict[str, np.ndarray]  # candidate -> (N, k) its slate in each logged context
    values: dict[str, float]  # candidate -> its expected clicks per slate over the logged contexts


def log_for_offpolicy(
    world: World, candidates: dict[str, tuple[Policy | None, float]], seed: int, rounds: int | None = None
) -> OffPolicyLog:
    """Run the world with a logging policy made for counterfactual evaluation: each slate is a
    uniformly random order of the union ``U`` of the candidates' slates for that user, cut to ``k``,
    so every candidate item has propensity ``1 / |U|`` at every position. Users click by the known
    click model, and their histories, the recommender's popularity and satiation follow the logged
    clicks, as in :func:`simulate`. ``candidates``: name -> (policy, explore); None is exploit-only.
    A candidate's true value is its expected clicks per slate under the click model in the same
    contexts (what an off-policy estimate from the log should recover). The bandit is not updated."""
    c = world.config
    rng = np.random.default_rng(seed)
    histories = [History(h.items.copy(), h.times.copy()) for h in world.histories]
    popularity = world.popularity.copy()
    recent = np.zeros((c.satiation_window, c.n_users, world.taxonomy.n_interests))
    n = (rounds or c.rounds) * c.n_users
    logged = np.full((n, c.k), -1, dtype=np.int64)
    propensities, rewards = np.ones((n, c.k)), np.zeros((n, c.k))
    targets = {name: np.full((n, c.k), -1, dtype=np.int64) for name in candidates}
    values = dict.fromkeys(candidates, 0.0)
    row = 0
    for t in range(rounds or c.rounds):
        scores = model_scores(world, histories, popularity, c.recency)
        clicked_now = np.zeros((c.n_users, world.taxonomy.n_interests))
        for u in range(c.n_users):
            pool = Candidates.from_scores(scores[u], c.n_candidates, exclude=histories[u].items)
            union: dict[int, None] = {}
            for name, (policy, explore) in candidates.items():
                if policy is None or explore == 0.0:
                    slate = pool.items[: c.k]
                else:
                    slate = policy.rerank(UserContext(histories[u], str(u)), pool, c.k, explore).items
                targets[name][row, : len(slate)] = slate
                values[name] += float(click_probability(world, u, slate, recent).sum())
                union.update(dict.fromkeys(int(i) for i in slate))
            shown = rng.permutation(np.array(list(union), dtype=np.int64))[: c.k]
            clicks = rng.random(len(shown)) < click_probability(world, u, shown, recent)
            logged[row, : len(shown)] = shown
            propensities[row, : len(shown)] = 1.0 / len(union)
            rewards[row, : len(shown)] = clicks
            row += 1
            if clicks.any():
                _learn(world, histories, popularity, clicked_now, u, shown[clicks], t)
        recent = np.roll(recent, 1, axis=0)
        recent[0] = clicked_now
    return OffPolicyLog(logged, propensities, rewards, targets, {name: v / n for name, v in values.items()})
