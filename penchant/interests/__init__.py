"""Interests: the taxonomy of interests, per-user interest profiles and next-interest prediction."""

from penchant.interests.narrate import LLMError, LLMSettings, narrate, propose_interests
from penchant.interests.predict import (
    history_frequency,
    interest_probabilities,
    predict_interests,
    top_interests,
)
from penchant.interests.profile import InterestShift, InterestWeight, Profile, ProfileConfig, build_profile
from penchant.interests.taxonomy import Taxonomy

__all__ = [
    "InterestShift",
    "InterestWeight",
    "LLMError",
    "LLMSettings",
    "Profile",
    "ProfileConfig",
    "Taxonomy",
    "build_profile",
    "history_frequency",
    "interest_probabilities",
    "narrate",
    "propose_interests",
    "predict_interests",
    "top_interests",
]
