"""The ASGI middleware every HTTP request passes: key, concurrency, size, metrics, log line.

Before routing it answers, without reading the body: 401 when an API key is required and the
request lacks it (``Authorization: Bearer KEY`` or ``X-API-Key: KEY``; the health routes
need none), 429 when ``max_concurrency`` requests are already inside, 413 when the declared
``Content-Length`` is over the limit. The prediction routes (``direct``) it hands to their
handlers itself, past FastAPI's routing and dependency machinery, which cost about a tenth of
a served row's time; FastAPI still routes every other request and documents them all. A client that left before its answer is counted
(``torchann_client_disconnects_total``). After the answer it counts the request by route and
status, observes its latency and, when request logging is on, writes one line. An exception
that no handler took (a bug) is answered here with a 500 and logged with its traceback.
"""

from __future__ import annotations

import hmac
import logging
import re
import time
from typing import Any

from .errors import error_body, error_response
from .state import Serving

__all__ = ["Gate", "route_of", "OPEN_ROUTES"]

access_log = logging.getLogger("torchann.server.access")
log = logging.getLogger("torchann.server")

OPEN_ROUTES = frozenset({"/livez", "/readyz", "/ping", "/health", "/v2/health/live", "/v2/health/ready"})
_STATIC = frozenset({"/invocations", "/version", "/metadata", "/metrics", "/v2", "/docs", "/openapi.json",
                     "/docs/oauth2-redirect", "/redoc"}) | OPEN_ROUTES
_MODEL_ROUTE = re.compile(r"^/v2/models/[^/]+(/ready|/infer)?$")


def route_of(path: str) -> str:
    """The route template of ``path`` (a metrics label with few values), ``other`` if none."""
    if path in _STATIC:
        return path
    m = _MODEL_ROUTE.match(path)
    if m:
        return "/v2/models/{name}" + (m.group(1) or "")
    return "other"


def _header(scope: dict, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value
    return None


class Gate:
    """Pure ASGI middleware (``app.add_middleware(Gate, serving=...)``)."""

    def __init__(self, app: Any, serving: Serving, log_requests: bool = False,
                 direct: dict[tuple[str, str], Any] | None = None) -> None:
        self.app = app
        self.serving = serving
        self.log_requests = log_requests
        self.direct = direct or {}  # (method, route) -> async handler(request) -> Response
        key = serving.limits.api_key
        self._key = key.encode() if key else None

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        s = self.serving
        route = route_of(scope["path"])
        status = 500

        started = False
        body_read = False  # the whole body has been received: a later receive() can only say "disconnected"

        async def receiving() -> dict:
            nonlocal body_read
            message = await receive()
            if message["type"] == "http.request" and not message.get("more_body", False):
                body_read = True
            return message

        async def sending(message: dict) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status, started = message["status"], True
                if body_read and await _client_left(receive):
                    s.metrics.disconnects.inc()  # the answer goes nowhere (the server drops it)
            await send(message)

        refusal = self._refusal(scope, route)
        if refusal is not None:
            status = refusal[0]
            await _answer(send, *refusal)
        else:
            s.in_flight += 1
            s.metrics.in_flight.inc()
            try:
                handler = self.direct.get((scope["method"], route))
                if handler is None:
                    await self.app(scope, receiving, sending)
                else:
                    await _handle(handler, scope, receiving, sending)
            except Exception:  # a bug: a 500 here keeps the connection (Starlette's own would drop it)
                log.exception("unexpected error on %s %s", scope["method"], scope["path"])
                if started:
                    raise
                status = 500
                await _answer(send, 500, "internal", "the server failed on this request; see the server's log", {})
            finally:
                s.in_flight -= 1
                s.metrics.in_flight.dec()
        seconds = time.perf_counter() - start
        s.metrics.answered(route, status, seconds)
        if self.log_requests:
            client = scope.get("client") or ("-", 0)
            access_log.info("%s %s %s %d %.2fms", client[0], scope["method"], scope["path"], status, seconds * 1e3)

    def _refusal(self, scope: dict, route: str) -> tuple[int, str, str, dict[str, str]] | None:
        s = self.serving
        if self._key is not None and route not in OPEN_ROUTES and not self._authorised(scope):
            return 401, "unauthorized", "this server needs an API key: send 'Authorization: Bearer KEY' or " \
                                        "'X-API-Key: KEY'", {"WWW-Authenticate": "Bearer"}
        if s.in_flight >= s.limits.max_concurrency:
            return 429, "too_many_requests", f"the server is at its limit of {s.limits.max_concurrency} " \
                                             f"requests at once; retry shortly", {"Retry-After": "1"}
        length = _header(scope, b"content-length")
        if length is not None:
            try:
                size = int(length)
            except ValueError:
                return 400, "bad_request", "the Content-Length header is not a number", {}
            if size > s.limits.max_body_bytes:
                return 413, "body_too_large", f"the body is {size:,} bytes, over the server's limit of " \
                                              f"{s.limits.max_body_bytes:,}; send fewer rows per request", {}
        return None

    def _authorised(self, scope: dict) -> bool:
        given = _header(scope, b"x-api-key")
        if given is None:
            auth = _header(scope, b"authorization") or b""
            given = auth[7:].strip() if auth[:7].lower() == b"bearer " else None
        return given is not None and hmac.compare_digest(given, self._key)


async def _handle(handler: Any, scope: dict, receive: Any, send: Any) -> None:
    """``handler``'s answer to the request, or the error's answer as the app's handlers give it
    (``errors.error_response``); an error of no known kind goes up to the gate's 500."""
    from starlette.requests import Request

    try:
        response = await handler(Request(scope, receive))
    except Exception as err:
        response = error_response(err, scope["path"])
        if response is None:
            raise
    await response(scope, receive, send)


async def _client_left(receive: Any) -> bool:
    """Whether the client has closed its connection, asked without waiting: only once the body
    is read, so that no body bytes are taken. ``receive()`` is stepped once by hand: a message
    that is already there (uvicorn's "disconnected") comes back at once; a receive that would
    wait is closed before it waits, so nothing is scheduled (a wait with a timeout costs a task
    and a timer on every answer)."""
    step = receive()
    try:
        step.send(None)
    except StopIteration as done:
        return (done.value or {}).get("type") == "http.disconnect"
    except Exception:  # a receive that fails to be asked: nothing to count
        return False
    finally:
        step.close()
    return False


async def _answer(send: Any, status: int, code: str, message: str, headers: dict[str, str]) -> None:
    body = error_body(code, message)
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    if status in (413, 400):
        raw.append((b"connection", b"close"))  # the unread body must not be taken for the next request
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
