"""Explanations: which past items and which interests drove a recommendation, measured on the model."""

from penchant.explain.occlusion import (
    Explanation,
    FaithfulnessCase,
    HistoryContribution,
    explain,
    faithfulness,
    occlusion_weights,
)

__all__ = [
    "Explanation",
    "FaithfulnessCase",
    "HistoryContribution",
    "explain",
    "faithfulness",
    "occlusion_weights",
]
