"""The served ANN index, kept current in background threads so that no request waits for it.

* A run whose index is not kept from an earlier start and would take long to build
  (``ann_background_from`` items) is served exactly while a thread builds the index; the index is
  swapped in when ready and kept in the run directory for the next start.
* Items added to the served model (``POST /items``) are scored exactly beside the index; once
  :data:`~penchant.serve.retrieval.FOLD` of them have come, a thread inserts them into a copy of the
  index (seconds at a million items), swapped in when ready.

A swap goes through the owner's ``swap`` (:meth:`penchant.serve.state.ModelHolder.swap_retriever`),
which applies it under the owner's lock to the run served at that moment; a swap for a run or an
index replaced meanwhile is dropped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from penchant.serve import retrieval
from penchant.serve.retrieval import (
    AnnRetriever,
    ExactRetriever,
    Retriever,
    build_retriever,
    has_kept_index,
    wants_ann,
)
from penchant.serve.settings import Settings

if TYPE_CHECKING:
    from penchant.runs import Run
    from penchant.serve.state import LoadedRun

log = logging.getLogger("penchant.serve")

ANN_FOLDER = "ann"  # inside the run directory: the HNSW index kept between starts

# Given the run served now, the retriever to serve instead, or None to keep it. Called under the
# owner's lock, so it may also update this module's bookkeeping safely.
Update = Callable[["LoadedRun"], "Retriever | None"]


class IndexUpkeep:
    """Builds and grows the served run's ANN index in background threads. ``swap(update)`` applies
    ``update`` to the run served at that moment, under the owner's lock, and returns whether it
    swapped a retriever in. Every method but the threads' bodies is called under that lock."""

    def __init__(self, settings: Settings, swap: Callable[[Update], bool]):
        self.settings = settings
        self._swap = swap
        self._building: str | None = None  # the run key whose index a background thread builds
        self._folding = False  # whether a background thread inserts added items into an index copy

    def retriever(self, run: Run, run_key: str) -> Retriever:
        """The run's retriever. An index that is not kept from an earlier start and would take long
        to build is built in a background thread while exact retrieval serves; the service answers
        from the start."""
        model, settings = run.model, self.settings
        cache = Path(settings.run_dir) / ANN_FOLDER
        if (
            wants_ann(model, settings.ann_threshold)
            and model.n_items >= settings.ann_background_from
            and not has_kept_index(model, cache)
        ):
            if self._building != run_key:
                self._building = run_key
                threading.Thread(
                    target=self._build, args=(run_key, model, cache), name="ann-index", daemon=True
                ).start()
                log.info(
                    "building the ANN index over %d items in the background; exact retrieval until it is ready",
                    model.n_items,
                )
            return ExactRetriever(model)
        return build_retriever(model, settings.ann_threshold, settings.ann_ef_search, cache=cache)

    def building(self, run_key: str) -> bool:
        """Whether a background thread builds this run's index (it extends it by the items added
        meanwhile when it ends, so an addition need not build one)."""
        return self._building == run_key

    def _build(self, run_key: str, model, cache: Path) -> None:
        started = time.perf_counter()
        try:
            built: AnnRetriever | None = AnnRetriever(
                model, ef_search=self.settings.ann_ef_search, cache=cache
            )
        except Exception:  # the service keeps answering exactly
            log.exception("building the ANN index failed; exact retrieval goes on")
            built = None

        def update(loaded: LoadedRun) -> Retriever | None:
            if self._building == run_key:
                self._building = None
            if built is None or loaded.run_key != run_key:
                return None  # another run was loaded meanwhile; the index stays kept for it on disk
            if loaded.run.model is not model:  # items were added (or the same run reloaded) meanwhile
                return built.extended(loaded.run.model)
            return built

        if self._swap(update):
            log.info(
                "ANN index over %d items ready in %.0f s; serving through it",
                len(built.vectors),
                time.perf_counter() - started,
            )

    def fold_if_due(self, served: Retriever) -> None:
        """Once :data:`~penchant.serve.retrieval.FOLD` added items are scored beside the served
        index, insert them into a copy of it in a background thread."""
        if isinstance(served, AnnRetriever) and len(served.recent) >= retrieval.FOLD and not self._folding:
            self._folding = True
            threading.Thread(target=self._fold, args=(served,), name="ann-fold", daemon=True).start()

    def _fold(self, served: AnnRetriever) -> None:
        started = time.perf_counter()
        try:
            folded: AnnRetriever | None = served.folded()
        except Exception:  # the added items stay scored beside the index
            log.exception("inserting the added items into the ANN index failed")
            folded = None

        def update(loaded: LoadedRun) -> Retriever | None:
            self._folding = False
            now = loaded.retriever
            if folded is None or not isinstance(now, AnnRetriever) or now.index is not served.index:
                return None  # another run or index was swapped in meanwhile
            return now.rebased(folded)  # items added while the fold ran stay beside the new index

        if self._swap(update):
            log.info(
                "%d added items inserted into the ANN index in %.1f s",
                len(served.recent),
                time.perf_counter() - started,
            )
