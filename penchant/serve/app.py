"""The app factory: settings in, a FastAPI app out. Services are built when the app starts (its
lifespan), not when this module is imported, so tests and replicas each get their own."""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from contextlib import asynccontextmanager
from importlib import resources

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from penchant import __version__
from penchant.serve import errors
from penchant.serve.middleware import BodyLimit, LoopbackGuard, RequestMetrics
from penchant.serve.routes import (
    dashboard,
    events,
    feedback,
    items,
    profiles,
    recommendations,
    service,
    users,
)
from penchant.serve.services import Services
from penchant.serve.settings import Settings

log = logging.getLogger("penchant.serve")


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI):
        services = await asyncio.to_thread(Services.start, settings)
        app.state.services = services
        hangup = _reload_on_sighup(services)
        try:
            yield
        finally:
            hangup()
            services.close()

    app = FastAPI(
        title="penchant",
        version=__version__,
        description="Record what users do and recommend what they want next, reflecting every event at once.",
        lifespan=lifespan,
        # Swagger UI and ReDoc load their scripts from a CDN; the service works offline, so it serves
        # only the schema itself (/openapi.json), which any OpenAPI viewer can open.
        docs_url=None,
        redoc_url=None,
    )
    errors.install(app)
    for module in (events, users, recommendations, feedback, profiles, items, service, dashboard):
        app.include_router(module.router)
    app.mount(
        "/static", StaticFiles(directory=str(resources.files("penchant.serve") / "static")), name="static"
    )

    # Added innermost first: metrics see every answer, the 413s included; the size limit answers
    # before anything reads the body.
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    if settings.open_access:
        app.add_middleware(LoopbackGuard)
    app.add_middleware(RequestMetrics)
    return app


def _reload_on_sighup(services: Services):
    """SIGHUP reloads the run in a worker thread (the usual daemon convention); returns the undo."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGHUP"):
        return lambda: (
            None
        )  # a signal handler can only be installed from the main thread (not in tests' clients)
    loop = asyncio.get_running_loop()

    def reload() -> None:
        try:
            services.reload()
        except Exception:
            log.exception("reload on SIGHUP failed; still serving the previous run")

    loop.add_signal_handler(signal.SIGHUP, lambda: loop.run_in_executor(None, reload))
    return lambda: loop.remove_signal_handler(signal.SIGHUP)
