"""ASGI middleware: request size limit, per-route metrics and the open mode's loopback guard. Plain
ASGI (no BaseHTTPMiddleware), so they add microseconds, not a task per request."""

from __future__ import annotations

import json
import time
from urllib.parse import urlsplit

from penchant.serve.metrics import Metrics
from penchant.serve.settings import is_loopback

UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


async def _reply(send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    """413 for bodies over ``max_bytes``, whether they declare their length or stream in chunks."""

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        message = (
            f"request body: larger than the limit of {self.max_bytes} bytes; send fewer events per request"
        )
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            try:
                too_big = int(declared) > self.max_bytes
            except ValueError:
                return await _reply(send, 400, "content-length: not a number")
            if too_big:
                return await _reply(send, 413, message)

        received = 0
        exceeded = False

        async def limited_receive():
            nonlocal received, exceeded
            if exceeded:
                return {"type": "http.disconnect"}
            event = await receive()
            if event["type"] == "http.request":
                received += len(event.get("body", b""))
                if received > self.max_bytes:
                    # Stop reading: the app sees a client that went away, and its answer is dropped.
                    exceeded = True
                    return {"type": "http.disconnect"}
            return event

        async def guarded_send(event):
            if not exceeded:
                await send(event)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not exceeded:
                raise
        if exceeded:
            await _reply(send, 413, message)


class RequestMetrics:
    """Counts and times every request by method, route template and status."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        status = 500

        async def recording_send(event):
            nonlocal status
            if event["type"] == "http.response.start":
                status = event["status"]
            await send(event)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            services = getattr(scope["app"].state, "services", None)
            if services is not None:
                self._record(services.metrics, scope, status, time.perf_counter() - start)

    @staticmethod
    def _record(metrics: Metrics, scope, status: int, seconds: float) -> None:
        route = scope.get("route")
        # The template (/users/{user_id}/events), never the raw path, keeps the label set small.
        template = getattr(route, "path", None) or "unmatched"
        metrics.requests.labels(scope["method"], template, str(status)).inc()
        metrics.latency.labels(scope["method"], template).observe(seconds)


class LoopbackGuard:
    """For a server without API keys (``--open``, loopback only): the Host header must name a
    loopback address, so a page whose DNS name is rebound to 127.0.0.1 cannot read the service, and a
    request that changes state must not come from another site's page (its Origin header, which
    browsers send on cross-site POST and DELETE, must be loopback too)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        host = _hostname("//" + headers.get(b"host", b"").decode("latin-1"))
        if not is_loopback(host):
            return await _reply(
                send,
                403,
                f"Host header '{host}': a server without API keys (--open) answers only requests "
                "addressed to a loopback name (localhost, 127.0.0.1, ::1)",
            )
        origin = headers.get(b"origin")
        if scope["method"] in UNSAFE_METHODS and origin is not None:
            origin_host = _hostname(origin.decode("latin-1"))
            if not is_loopback(origin_host):
                return await _reply(
                    send,
                    403,
                    f"Origin '{origin.decode('latin-1')}': a server without API keys (--open) refuses "
                    "requests that change data from another site's page",
                )
        return await self.app(scope, receive, send)


def _hostname(url: str) -> str:
    try:
        return urlsplit(url).hostname or ""
    except ValueError:
        return ""
