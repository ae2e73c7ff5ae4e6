"""The objects one running service is made of, built once in the app's lifespan and closed with it."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

import torch

from penchant.serve.answers import Answers
from penchant.serve.db import Database, redact
from penchant.serve.feedback import Feedback
from penchant.serve.keys import KeyCache, count_keys
from penchant.serve.metrics import Metrics
from penchant.serve.settings import Settings
from penchant.serve.state import LoadedRun, ModelHolder
from penchant.serve.store import EventStore, Item

log = logging.getLogger("penchant.serve")


@dataclass
class Services:
    settings: Settings
    db: Database
    store: EventStore
    models: ModelHolder  # the served run: load, reload, add items
    answers: Answers  # per-user reads: recommendations, profiles, explanations
    feedback: Feedback  # impressions, rewards, bandit posteriors
    metrics: Metrics
    torch_threads_before: int = 0
    keys: KeyCache = field(default_factory=KeyCache)
    retention: Retention | None = None

    @classmethod
    def start(cls, settings: Settings) -> Services:
        """Open (and create or migrate) the database, then load the run and import its data."""
        threads_before = torch.get_num_threads()
        torch.set_num_threads(settings.torch_threads)
        db = Database(settings.db_url, pool_size=settings.db_pool_size)
        feedback = None
        try:
            before = db.migrate()
            if before == 0:
                log.info("created the event store schema in %s", redact(settings.db_url))
            store = EventStore(db)
            models = ModelHolder(settings, store)
            feedback = Feedback(db, settings.reward_window, erasures=store)
            answers = Answers(settings, store, models, feedback)
            services = cls(settings, db, store, models, answers, feedback, Metrics(), threads_before)
        except BaseException:
            if feedback is not None:
                feedback.close()
            db.close()
            torch.set_num_threads(threads_before)
            raise
        services._loaded(services.models.current)
        if settings.retain_days is not None:
            services.retention = Retention(store, settings.retain_days)
        if settings.auth_required and count_keys(db) == 0:
            log.warning(
                "no API keys in %s yet: every request but /health will get 401; create one with "
                "penchant keys create --db %s --scope write",
                redact(settings.db_url),
                redact(settings.db_url),
            )
        return services

    def reload(self) -> LoadedRun:
        try:
            loaded = self.models.reload()
        except Exception:
            self.metrics.reloads.labels("failed").inc()
            raise
        self.metrics.reloads.labels("ok").inc()
        self._loaded(loaded)
        return loaded

    def add_item(self, item: Item) -> bool:
        """Add a stored item to the served model when it can score it (see ModelHolder.add_item)."""
        known = self.models.add_item(item)
        self._loaded(self.models.current)
        return known

    def _loaded(self, loaded: LoadedRun) -> None:
        self.metrics.model_loaded_at.set(loaded.loaded_at)
        self.metrics.catalogue_items.set(loaded.run.model.n_items)

    def close(self) -> None:
        if self.retention is not None:
            self.retention.stop()
        self.feedback.close()
        self.db.close()
        torch.set_num_threads(self.torch_threads_before)  # leave the process as it was (tests run many apps)


class Retention:
    """Deletes events older than ``days`` from the store now and then every ``every`` seconds, in a
    thread of its own (the event store's one-line log says how many)."""

    def __init__(self, store: EventStore, days: float, every: float = 3600.0):
        self.store, self.days, self.every = store, days, every
        self._stop = threading.Event()
        self.sweep()
        self._thread = threading.Thread(target=self._run, name="penchant-retention", daemon=True)
        self._thread.start()

    def sweep(self) -> int:
        deleted = self.store.delete_older_than(time.time() - self.days * 86_400)
        if deleted:
            log.info("retention: deleted %d events older than %g days", deleted, self.days)
        return deleted

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.sweep()
            except Exception:  # the next sweep tries again; the service goes on
                log.exception("retention sweep failed")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
