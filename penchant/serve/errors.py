"""Every error is JSON ``{"detail": "<one line naming the field>", "errors": [...]}``; none is a traceback."""

from __future__ import annotations

import logging

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from penchant.errors import InputError
from penchant.serve.answers import NoInterests, UnknownItem, UnknownUser
from penchant.serve.store import UnknownItems

log = logging.getLogger("penchant.serve")


def field_name(loc: tuple | list) -> str:
    """Where an error is, as the client wrote it: ('body', 'batch', 2, 'timestamp') -> 'events[2].timestamp',
    ('body', 'event', 'extra') -> 'extra', ('query', 'k') -> 'k'."""
    loc = list(loc)
    source = loc.pop(0) if loc and loc[0] in ("body", "query", "path", "header", "cookie") else "body"
    shape = loc.pop(0) if source == "body" and loc and loc[0] in ("event", "batch") else None
    out = "events" if shape == "batch" else ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or source


_PLAIN = {"missing": "required", "extra_forbidden": "unknown field"}


def _message(error: dict) -> str:
    if error.get("type") == "json_invalid":
        return f"not valid JSON ({error.get('ctx', {}).get('error', 'cannot parse')})"
    if error.get("type") in _PLAIN:
        return _PLAIN[error["type"]]
    return error.get("msg", "invalid value").removeprefix("Value error, ")


def install(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {
                "field": "body" if e.get("type") == "json_invalid" else field_name(e.get("loc", ())),
                "message": _message(e),
            }
            for e in exc.errors()
        ]
        # A union member fails in several ways at once; one line per field is enough.
        unique = list({e["field"]: e for e in errors}.values())
        first = unique[0] if unique else {"field": "body", "message": "invalid request"}
        more = f" (and {len(unique) - 1} more)" if len(unique) > 1 else ""
        return JSONResponse(
            status_code=422,
            content={"detail": f"{first['field']}: {first['message']}{more}", "errors": unique},
        )

    @app.exception_handler(UnknownItems)
    async def unknown_items(request: Request, exc: UnknownItems) -> JSONResponse:
        errors = [
            {"field": f"events[{p}].item_id", "message": f"unknown item '{i}'; add it with POST /items first"}
            for p, i in zip(exc.positions, exc.item_ids, strict=True)
        ]
        return JSONResponse(
            status_code=422,
            content={"detail": f"{errors[0]['field']}: {errors[0]['message']}", "errors": errors},
        )

    @app.exception_handler(UnknownUser)
    @app.exception_handler(UnknownItem)
    async def not_found(request: Request, exc: LookupError) -> JSONResponse:
        return JSONResponse(status_code=404, content={"detail": str(exc)})

    @app.exception_handler(NoInterests)
    async def no_interests(request: Request, exc: NoInterests) -> JSONResponse:
        return JSONResponse(status_code=409, content={"detail": str(exc)})

    @app.exception_handler(InputError)
    async def input_error(request: Request, exc: InputError) -> JSONResponse:
        return JSONResponse(status_code=422, content={"detail": str(exc)})

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse(
            status_code=exc.status_code, content={"detail": str(exc.detail)}, headers=exc.headers
        )

    @app.exception_handler(TimeoutError)
    async def busy(request: Request, exc: TimeoutError) -> JSONResponse:
        return JSONResponse(
            status_code=503, content={"detail": f"service busy: {exc}"}, headers={"Retry-After": "1"}
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error in %s %s", request.method, request.url.path)
        return JSONResponse(
            status_code=500, content={"detail": "internal error; the server log has the details"}
        )
