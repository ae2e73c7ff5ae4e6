"""What routes get injected: the app's services and the caller's access check. Nothing here is a
module-level global; the services live on the app, created in its lifespan."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import APIKeyHeader
from starlette.concurrency import run_in_threadpool

from penchant.serve.keys import Scope, check_key
from penchant.serve.services import Services


async def get_services(request: Request) -> Services:
    # async: no I/O here, so FastAPI runs it inline instead of handing it to a worker thread.
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(get_services)]

_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="an API key (penchant keys create)")


async def scope_of(services: Services, key: str | None) -> Scope | None:
    """The scope of a valid key (from the cache of verified keys, else the database), None otherwise."""
    if not key:
        return None
    scope = services.keys.get(key)
    if scope is None:
        scope = await run_in_threadpool(check_key, services.db, key)
        if scope is not None:
            services.keys.put(key, scope)
    return scope


OptionalKey = Annotated[str | None, Security(_api_key)]


def _require(needed: Scope):
    # async, with a cache of verified keys: a request with a known key is checked on the event loop
    # without a hop to a worker thread; only an unknown key goes to the database (in a thread).
    async def check(services: ServicesDep, key: Annotated[str | None, Security(_api_key)]) -> None:
        if not services.settings.auth_required:
            return
        if not key:
            raise HTTPException(
                401,
                "X-API-Key: missing; create a key with penchant keys create",
                headers={"WWW-Authenticate": "X-API-Key"},
            )
        scope = await scope_of(services, key)
        if scope is None:
            raise HTTPException(401, "X-API-Key: not a valid key", headers={"WWW-Authenticate": "X-API-Key"})
        if not scope.allows(needed):
            raise HTTPException(
                403, f"X-API-Key: this key has the {scope.value} scope; this needs {needed.value}"
            )

    return check


CanRead = Depends(_require(Scope.read))
CanWrite = Depends(_require(Scope.write))
CanAdmin = Depends(_require(Scope.admin))
