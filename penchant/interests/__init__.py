"""Interests: the taxonomy of interests and per-user interest profiles."""

from penchant.interests.taxonomy import Taxonomy

__all__ = ["Taxonomy"]
