"""The ASGI application: both REST APIs, ``/health``, the guard in front of them, and errors.

The guard (:class:`Guard`) runs before any route: with a token configured, a request other
than ``GET /health`` needs ``Authorization: Bearer TOKEN`` (compared in constant time; the
token is never logged or echoed); a body over the limit is refused with 413 before a route
reads it. Every refusal, from the guard, a route, or request validation, is one line of
JSON, ``{"error": MESSAGE, "field": PATH}``, with a 4xx status; a store that cannot be
reached is 503.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hpo_kfp.errors import (
    Forbidden,
    InputError,
    RequestError,
    SpecError,
    TooLarge,
    TrackingError,
    Unauthorized,
)
from hpo_kfp.service import api, kruize
from hpo_kfp.service.tuning import Tuner

__all__ = ["DEFAULT_MAX_BODY", "Guard", "create_app"]

DEFAULT_MAX_BODY = 1024 * 1024
"""The largest request body accepted by default, in bytes (a Katib Experiment is a few KB)."""

_log = logging.getLogger("hpo_kfp.service")
_OPEN = frozenset({"/health"})


class ErrorReply(BaseModel):
    """A refused request: what is wrong, and the field of the request it is about."""

    error: str
    field: str


class Health(BaseModel):
    """The server is ready."""

    status: str
    grpc: bool


def create_app(
    tuner: Tuner,
    *,
    token: str | None = None,
    max_body: int = DEFAULT_MAX_BODY,
    ready: Callable[[], bool] = lambda: True,
    grpc: bool = False,
    local_hosts_only: bool = False,
) -> ASGIApp:
    """The application over ``tuner``, behind the guard.

    Args:
        tuner: The operations on the store.
        token: The bearer token every request needs, or None for none.
        local_hosts_only: Refuse a request whose ``Host`` is not a loopback name (a server on
            loopback without a token: a web page of another site, its name rebound to
            127.0.0.1, cannot reach it through the browser).
        max_body: The largest request body, in bytes.
        ready: Whether everything the server runs (the gRPC server too) is serving.
        grpc: Whether a gRPC server runs beside (reported by ``/health``).
    """
    app = FastAPI(
        title="hpo-kfp",
        version="1",
        summary="Hyperparameter tuning as a service: Kruize-compatible REST, hpo-kfp's /v1 API.",
    )
    app.state.tuner = tuner
    app.include_router(api.router)
    app.include_router(kruize.router)

    @app.get("/health", tags=["health"], response_model=Health, summary="200 once the server is ready")
    def health() -> JSONResponse:
        if not ready():
            return JSONResponse(
                {"error": "the server is starting or stopping", "field": "health"}, status_code=503
            )
        return JSONResponse({"status": "ok", "grpc": grpc})

    app.add_exception_handler(RequestError, _request_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(InputError, _input_error)
    app.add_exception_handler(TrackingError, _store_error)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return Guard(app, token=token, max_body=max_body, local_hosts_only=local_hosts_only)


_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]"})
"""The names a loopback server without a token answers to (a ``Host`` header's, port apart)."""


class Guard:
    """ASGI middleware: the bearer token and the request size limit, before any route.

    The whole body (at most ``max_body`` bytes) is read here and handed to the route as
    ``request.state.body``; a larger one is refused without reading the rest.
    """

    def __init__(
        self, app: ASGIApp, *, token: str | None, max_body: int, local_hosts_only: bool = False
    ) -> None:
        self.app = app
        self._token = token.encode() if token is not None else None
        self._max_body = max_body
        self._local_hosts_only = local_hosts_only

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {name.decode("latin-1").lower(): value for name, value in scope["headers"]}
        misdirected = self._check_host(headers.get("host"))
        if misdirected is not None:
            await _send_error(send, misdirected)
            return
        refusal = self._authorize(scope["path"], headers.get("authorization"))
        if refusal is not None:
            await _send_error(send, refusal, [(b"www-authenticate", b'Bearer realm="hpo-kfp"')])
            return
        declared = headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                await _send_error(send, RequestError("Content-Length", "must be a whole number of bytes"))
                return
            if int(declared) > self._max_body:
                await _send_error(send, self._too_large(int(declared)))
                return
        body = bytearray()
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            body += message.get("body", b"")
            if len(body) > self._max_body:
                await _send_error(send, self._too_large(len(body)))
                return
            more = message.get("more_body", False)
        scope.setdefault("state", {})["body"] = bytes(body)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    def _authorize(self, path: str, header: bytes | None) -> Unauthorized | None:
        if self._token is None or path in _OPEN:
            return None
        if header is None:
            return Unauthorized("Authorization", "must be 'Bearer TOKEN', but the request has none")
        scheme, _, given = header.partition(b" ")
        if scheme.lower() != b"bearer" or not hmac.compare_digest(given.strip(), self._token):
            return Unauthorized(
                "Authorization", "must carry the server's bearer token, but it carries another"
            )
        return None

    def _check_host(self, header: bytes | None) -> Forbidden | None:
        if not self._local_hosts_only or header is None:
            return None
        host = header.decode("latin-1").strip().lower()
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        if name in _LOCAL_HOSTS:
            return None
        return Forbidden(
            "Host",
            f"must be one of {', '.join(sorted(_LOCAL_HOSTS))} on a server without a token (a page of "
            f"another site must not reach it through a browser), but got {host!r}",
        )

    def _too_large(self, size: int) -> TooLarge:
        return TooLarge("body", f"must be at most {self._max_body} bytes, but got {size} or more")


async def _send_error(
    send: Send, error: RequestError, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    payload = json.dumps(error.body()).encode()
    await send(
        {
            "type": "http.response.start",
            "status": error.status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


def _reply(status: int, error: str, field: str) -> JSONResponse:
    return JSONResponse({"error": " ".join(error.split()), "field": field}, status_code=status)


async def _request_error(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestError)
    return JSONResponse(error.body(), status_code=error.status)


async def _validation_error(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    first: dict[str, Any] = error.errors()[0] if error.errors() else {"loc": ("body",), "msg": "malformed"}
    location = [str(part) for part in first.get("loc", ("body",))]
    if location[:1] in (["query"], ["path"], ["header"]):
        location = location[1:]
    field = ".".join(location) or "body"
    got = first.get("input")
    shown = "nothing" if got is None else json.dumps(got, default=str)[:60]
    return _reply(400, f"{field}: {first.get('msg', 'is malformed')}, but got {shown}", field)


async def _http_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, HTTPException)
    if error.status_code == 404:
        return _reply(404, f"path: no such endpoint {request.url.path!r}", "path")
    if error.status_code == 405:
        return _reply(405, f"method: {request.method} is not allowed on {request.url.path!r}", "method")
    return _reply(error.status_code, str(error.detail), "request")


async def _input_error(_request: Request, error: Exception) -> JSONResponse:
    # An InputError a route did not translate: a sampler missing its libraries, say.
    field = error.path if isinstance(error, SpecError) else "body"
    return _reply(400, f"{field}: {error}" if not str(error).startswith(field) else str(error), field)


async def _store_error(_request: Request, error: Exception) -> JSONResponse:
    # Where the store is (its user, host, database) is the operator's to read, in the log.
    _log.error("store: %s", error)
    return _reply(
        503,
        "store: the experiment store cannot be reached or written now (the server's log says why)",
        "store",
    )


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, with the error replies this server really gives: request
    validation answers 400 (not 422), and every operation may answer an error."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    from fastapi.openapi.utils import get_openapi

    document = get_openapi(
        title=app.title, version=app.version, summary=app.summary, routes=app.routes, tags=app.openapi_tags
    )
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas["ErrorReply"] = ErrorReply.model_json_schema()
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    error = {
        "description": "A refused request (4xx) or an unreachable store (503)",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorReply"}}},
    }
    for path in document.get("paths", {}).values():
        for operation in path.values():
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            responses["default"] = error
    app.openapi_schema = document
    return document
