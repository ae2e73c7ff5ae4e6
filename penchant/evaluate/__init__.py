"""Evaluation: splitting, per-user metrics and their aggregation, independent of any model."""
