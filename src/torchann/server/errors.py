"""The server's errors and the one place they become answers.

Every error answer is ``{"error": {"code": ..., "message": ...}}`` with the status below: one
line that names the problem and the fix, never a traceback, never the request echoed back
(messages are cut to ``MAX_MESSAGE`` characters and stripped of control characters). An
exception nobody expected is a 500 whose message says only that; its traceback goes to the
server's log.

| status | code | when |
|---|---|---|
| 400 | ``bad_json``, ``bad_csv``, ``bad_request``, ``no_members`` | the body cannot be read, or asks for something this model cannot do |
| 401 | ``unauthorized`` | an API key is required and missing or wrong |
| 404 | ``not_found`` | no such route or model name |
| 405 | ``method_not_allowed`` | e.g. GET on ``/invocations`` |
| 408 | ``body_timeout`` | the body stopped arriving before ``timeout`` |
| 413 | ``body_too_large`` | the body is over ``max_body_mb`` |
| 415 | ``unsupported_media_type`` | neither JSON nor CSV |
| 422 | ``missing_column``, ``bad_data`` | the rows do not fit the model (a column missing or misnamed, text in a number column) |
| 429 | ``too_many_requests`` | over ``max_concurrency`` requests inside the server |
| 503 | ``not_ready`` | the model is still loading, or the server is draining |
| 504 | ``timeout`` | the answer took longer than ``timeout`` |
| 500 | ``internal`` | a bug; see the server's log |
"""

from __future__ import annotations

import json
import logging
from typing import Any

from ..core.errors import DataError, TorchannError, UsageError

__all__ = ["ServerError", "error_body", "error_response", "install_handlers", "status_of", "MAX_MESSAGE"]

MAX_MESSAGE = 400
log = logging.getLogger("torchann.server")

_HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 408: "body_timeout", 413: "body_too_large",
               415: "unsupported_media_type", 422: "bad_data", 429: "too_many_requests", 500: "internal",
               503: "not_ready", 504: "timeout"}


class ServerError(Exception):
    """An answer other than 200: ``status``, a short ``code`` and a one-line ``message``."""

    def __init__(self, status: int, message: str, *, code: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code or _HTTP_CODES.get(status, "error")
        self.message = message
        self.headers = headers or {}


def _clean(message: str) -> str:
    text = "".join(c if c.isprintable() else " " for c in message)
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 3] + "..."


def error_body(code: str, message: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": _clean(message)}}).encode()


def status_of(err: TorchannError) -> tuple[int, str]:
    """The status and code of one of torchann's own errors raised while answering."""
    if isinstance(err, DataError):
        return 422, "bad_data"
    if isinstance(err, UsageError):
        return 400, "bad_request"
    return 500, "internal"


def _response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Any:
    from starlette.responses import Response

    return Response(error_body(code, message), status_code=status, media_type="application/json",
                    headers=headers)


def error_response(err: Exception, path: str) -> Any:
    """The answer to ``err`` raised while answering on ``path``: a ``ServerError`` as it says,
    one of torchann's own errors by ``status_of``; None for any other exception (a bug)."""
    if isinstance(err, ServerError):
        return _response(err.status, err.code, err.message, err.headers)
    if isinstance(err, TorchannError):
        status, code = status_of(err)
        if status == 500:
            log.error("model error on %s: %s", path, err)
            return _response(500, code, "the model could not answer; see the server's log")
        return _response(status, code, str(err))
    return None


def install_handlers(app: Any) -> None:
    """Register the exception handlers on a Starlette/FastAPI ``app``. (An exception of no
    kind here is a bug: ``gate.Gate`` answers it with a 500 and logs its traceback.)"""
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException

    async def torchann_error(request: Any, err: Exception) -> Any:
        return error_response(err, request.url.path)

    async def http_error(request: Any, err: HTTPException) -> Any:
        status = err.status_code
        message = {404: f"no route {request.url.path!r}; see /docs for the routes",
                   405: f"{request.method} is not allowed on this route; see /docs"}.get(status, str(err.detail))
        return _response(status, _HTTP_CODES.get(status, "error"), message, getattr(err, "headers", None))

    async def validation_error(request: Any, err: RequestValidationError) -> Any:
        first = err.errors()[0] if err.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return _response(400, "bad_request", f"{where}: {first.get('msg', 'invalid request')}")

    app.add_exception_handler(ServerError, torchann_error)
    app.add_exception_handler(TorchannError, torchann_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
