"""Prometheus metrics of one app (its own registry, so two apps in one process never mix counts)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "penchant_http_requests",
            "HTTP requests answered",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "penchant_http_request_duration_seconds",
            "Time to answer a request",
            ["method", "route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=self.registry,
        )
        self.events_stored = Counter(
            "penchant_events_stored", "Events newly stored (duplicates excluded)", registry=self.registry
        )
        self.recommendations = Counter(
            "penchant_recommendations", "Recommendation lists served", ["retrieval"], registry=self.registry
        )
        # Click-through by role and policy: rewards / impressions (per process; sum over replicas).
        self.impressions = Counter(
            "penchant_impressions",
            "Items shown in recommendation responses (policy none: the model's own ranking)",
            ["policy", "role"],
            registry=self.registry,
        )
        self.rewards = Counter(
            "penchant_rewards",
            "Shown items that a later event of the user rewarded",
            ["policy", "role"],
            registry=self.registry,
        )
        self.reloads = Counter("penchant_model_reloads", "Model reloads", ["outcome"], registry=self.registry)
        self.model_loaded_at = Gauge(
            "penchant_model_loaded_timestamp_seconds",
            "When the serving model was loaded",
            registry=self.registry,
        )
        self.catalogue_items = Gauge(
            "penchant_model_items", "Items the serving model can rank", registry=self.registry
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
