"""Exploration: re-ranking policies that trade the model's own ranking for wider interests.

One knob, ``explore`` in [0, 1] (0 = the model's ranking exactly), for every policy:

* :class:`Diversity` — maximal marginal relevance over item vectors (:class:`ItemVectors`);
* :class:`Calibrated` — match the slate's interests to the user's (Steck 2018);
* :class:`NovelInterest` — items from interests the user has never engaged with, predicted by an
  :class:`InterestTransitions` model learned across users and by closeness of interest centroids;
* :class:`Bandit` — Thompson sampling per user and interest, priors from the model, updated by clicks.

:class:`Explorer` runs a policy over any recommender; :mod:`penchant.explore.simulator` measures the
long-run value of exploring on simulated users.
"""

from penchant.explore.interests import InterestTransitions, interest_closeness, interest_distribution
from penchant.explore.policies import (
    EXPLOIT,
    EXPLORE,
    POLICY_NAMES,
    Bandit,
    BanditConfig,
    BanditState,
    Calibrated,
    Candidates,
    Diversity,
    NovelInterest,
    NovelInterestConfig,
    Policy,
    Slate,
    UserContext,
    interest_text_vectors,
    make_policies,
    make_policy,
)
from penchant.explore.rerank import ExploredRecommendation, Explorer, SlateBatch, rerank_scores
from penchant.explore.vectors import (
    ItemVectors,
    cooccurrence_vectors,
    item_vectors_for,
    model_item_embeddings,
)

__all__ = [
    "POLICY_NAMES",
    "make_policies",
    "make_policy",
    "EXPLOIT",
    "EXPLORE",
    "Bandit",
    "BanditConfig",
    "BanditState",
    "Calibrated",
    "Candidates",
    "Diversity",
    "ExploredRecommendation",
    "Explorer",
    "InterestTransitions",
    "ItemVectors",
    "NovelInterest",
    "NovelInterestConfig",
    "Policy",
    "Slate",
    "SlateBatch",
    "UserContext",
    "cooccurrence_vectors",
    "interest_closeness",
    "interest_distribution",
    "interest_text_vectors",
    "item_vectors_for",
    "model_item_embeddings",
    "rerank_scores",
]
