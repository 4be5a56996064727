"""``create_app(model, limits)``: the ASGI application over one model (FastAPI).

Routes (``/docs`` lists them with their bodies):

* MLflow's scoring protocol: ``POST /invocations`` (``?proba=true``, ``?std=true``),
  ``GET /ping``, ``/health``, ``/version``.
* Open Inference Protocol v2: ``/v2``, ``/v2/health/live``, ``/v2/health/ready``,
  ``/v2/models/{name}``, ``/v2/models/{name}/ready``, ``POST /v2/models/{name}/infer``.
* Operations: ``/livez``, ``/readyz``, ``/metrics`` (Prometheus), ``/metadata``.

Handlers read the body themselves (bounded in size and time), so no request body is parsed
twice and no value in it can name a file. The model runs on the batcher's thread, never on
the event loop. The two prediction routes are declared to FastAPI (for ``/docs``) but called
by the gate directly (``gate.Gate``'s ``direct``), with the same handlers and error answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

from fastapi import FastAPI, Request
from starlette.responses import Response

from .errors import ServerError, install_handlers
from .gate import Gate
from .limits import Limits
from .mlflow_protocol import invocation_answer, read_invocation
from .predictor import Job
from .state import Serving
from .v2_protocol import infer_answer, model_metadata, read_infer

__all__ = ["create_app"]

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
_QUERY = [{"name": n, "in": "query", "required": False, "schema": {"type": "boolean", "default": False},
           "description": d} for n, d in (("proba", "add classes and one probability list per row (classifiers)"),
                                          ("std", "add the ensemble members' spread per row"))]
_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": {"type": "object"}, "example": {"dataframe_split": {
        "columns": ["a", "b"], "data": [[1.0, "x"]]}}},
    "text/csv": {"schema": {"type": "string"}, "example": "a,b\n1.0,x\n"}}}}


try:
    from orjson import dumps as _dumps  # torchann[serve]: 5x json.dumps on a 1,000-row answer
except ImportError:  # pragma: no cover
    def _dumps(value: Any) -> bytes:
        return json.dumps(value, separators=(",", ":")).encode()


def _json(value: Any, status: int = 200) -> Any:
    return Response(_dumps(value), status_code=status, media_type="application/json")


def _flag(request: Any, name: str, params: dict | None = None) -> bool:
    raw = request.query_params.get(name)
    if raw is None:
        value = (params or {}).get(name, False)
        if isinstance(value, bool):
            return value
        raw = str(value)
    text = raw.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ServerError(400, f"{name} must be true or false, got {raw[:20]!r}")


async def _within(awaitable: Any, seconds: float) -> Any:
    timeout = getattr(asyncio, "timeout", None)
    if timeout is None:  # Python 3.10
        return await asyncio.wait_for(awaitable, seconds)
    async with timeout(seconds):
        return await awaitable


async def read_body(request: Any, limits: Limits, deadline: float) -> bytes:
    """The whole body, at most ``max_body_mb`` (413) and before ``deadline`` (408)."""
    limit = limits.max_body_bytes

    async def collect() -> bytes:
        parts, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise ServerError(413, f"the body is over the server's limit of {limit:,} bytes; send fewer rows "
                                       f"per request", headers={"Connection": "close"})
            parts.append(chunk)
        return b"".join(parts)

    try:
        return await _within(collect(), max(deadline - time.monotonic(), 0.0))
    except (asyncio.TimeoutError, TimeoutError):
        raise ServerError(408, f"the body did not arrive within the server's timeout of {limits.timeout:g} s",
                          headers={"Connection": "close"}) from None


def _metadata(s: Serving) -> dict[str, Any]:
    model = s.model
    features = []
    for f in model.preprocessor.features:
        item: dict[str, Any] = {"name": f.name, "kind": f.kind, "inputs": f.width}
        if f.kind == "numeric":
            span = f.training_range
            item["training_range"] = None if span is None else list(span)
            item["fill"] = f.fill
        elif f.kind == "categorical":
            item["categories"] = f.categories
            item["other"] = bool(f.other)
        else:
            item["date_format"] = f.date_format
        features.append(item)
    return {"name": s.name, "task": model.task, "targets": model.target_names, "classes": model.classes,
            "features": features, "members": s.predictor.members, "torchann": s.version}


def create_app(model: Any, limits: Limits | None = None, *, name: str | None = None,
               log_requests: bool = False, own_process: bool = False, large_pass_threads: int | None = None) -> Any:
    """The server for ``model`` (a ``torchann.Model``, a model directory, or a function that
    returns a Model) under ``limits``; an ASGI app to run with uvicorn.

    Args:
        name: the model's name in the v2 routes (default: its directory's name).
        log_requests: one log line per request on the ``torchann.server.access`` logger.
        own_process: the server owns its process, as in ``torchann serve``: once the model is
            loaded every object of the process is moved out of the cyclic collector's sight
            (``gc.freeze``, see ``state``). Off by default: it is a choice for the whole process.
        large_pass_threads: intra-op threads for passes of ``predictor.LARGE_PASS_ROWS`` rows or
            more (``torchann serve``: the process's share of the cores); None: the app's own count.

    Example:
        >>> app = create_app(torchann.load("runs/price"), Limits(max_wait_ms=1))
        >>> uvicorn.run(app, host="127.0.0.1", port=8080)
    """
    limits = limits or Limits()
    s = Serving(model, limits, name=name, own_process=own_process, large_pass_threads=large_pass_threads)

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> Any:
        await s.start()
        try:
            yield
        finally:
            await s.stop()

    app = FastAPI(title="torchann serve", version=s.version, lifespan=lifespan,
                  description="A torchann model behind MLflow's scoring protocol and the Open Inference Protocol v2.")
    app.state.serving = s
    install_handlers(app)
    direct: dict[tuple[str, str], Any] = {}  # the prediction routes, filled below: the gate calls them itself
    app.add_middleware(Gate, serving=s, log_requests=log_requests, direct=direct)

    async def _predict(request: Request, job_of: Any) -> tuple[Any, Any]:
        deadline = time.monotonic() + limits.timeout
        model, predictor, batcher = s.require_model()
        with batcher.ticket() as ticket:
            body = await read_body(request, limits, deadline)
            job = job_of(body, model)
            predictor.check(job)
            answer = await ticket.submit(job, max(deadline - time.monotonic(), 0.001))
        s.metrics.answered_rows(job.rows, answer.facts.counts())
        return model, answer

    # ------------------------------------------------------------------------------ MLflow

    @app.post("/invocations", summary="Predict (MLflow scoring protocol)", openapi_extra={
        "parameters": _QUERY, **_BODY})
    async def invocations(request: Request) -> Any:
        """Rows as dataframe_split, dataframe_records, instances, inputs, or a CSV table; answers
        ``{"predictions", "warnings"}`` (+ ``classes``/``probabilities``, ``std`` on request)."""
        def job_of(body: bytes, model: Any) -> Job:
            table = read_invocation(body, request.headers.get("content-type"), model)
            return Job(table, proba=_flag(request, "proba"), std=_flag(request, "std"))

        model, answer = await _predict(request, job_of)
        return _json(invocation_answer(answer, model))

    @app.get("/ping", summary="200 when the model is ready (MLflow)")
    @app.get("/health", summary="200 when the model is ready")
    async def ping() -> Any:
        return Response(b"\n", media_type="application/json", status_code=200 if s.ready else 503)

    @app.get("/version", summary="torchann's version and the model's name")
    async def version() -> Any:
        return _json({"torchann": s.version, "model": s.name})

    # ---------------------------------------------------------------------------- operations

    @app.get("/livez", summary="200 while the process answers")
    async def livez() -> Any:
        return _json({"live": True})

    @app.get("/readyz", summary="200 when the model is loaded and the server is not draining")
    async def readyz() -> Any:
        if s.ready:
            return _json({"ready": True})
        return _json({"ready": False, "reason": s.not_ready_reason()}, 503)

    @app.get("/metrics", summary="Prometheus metrics")
    async def metrics() -> Any:
        from .metrics import CONTENT_TYPE

        return Response(s.metrics.render(), media_type=CONTENT_TYPE)

    @app.get("/metadata", summary="Features with kinds and training ranges, classes, task, version")
    async def metadata() -> Any:
        s.require_model()
        return _json(_metadata(s))

    # ------------------------------------------------------------------------ Open Inference v2

    def _named(name: str) -> Any:
        model, _, _ = s.require_model()
        if name != s.name:
            raise ServerError(404, f"no model {name[:60]!r} here; this server has {s.name!r}")
        return model

    @app.get("/v2", summary="Server metadata (v2)")
    async def v2_server() -> Any:
        return _json({"name": "torchann", "version": s.version, "extensions": []})

    @app.get("/v2/health/live", summary="Liveness (v2)")
    async def v2_live() -> Any:
        return _json({"live": True})

    @app.get("/v2/health/ready", summary="Readiness (v2)")
    async def v2_ready() -> Any:
        return _json({"ready": s.ready}, 200 if s.ready else 503)

    @app.get("/v2/models/{name}", summary="Model metadata (v2)")
    async def v2_model(name: str) -> Any:
        return _json(model_metadata(_named(name), s.name, s.version))

    @app.get("/v2/models/{name}/ready", summary="Model readiness (v2)")
    async def v2_model_ready(name: str) -> Any:
        if s.model is not None:
            _named(name)
        return _json({"name": name, "ready": s.ready}, 200 if s.ready else 503)

    @app.post("/v2/models/{name}/infer", summary="Predict (v2)", openapi_extra={"parameters": _QUERY})
    async def v2_infer(name: str, request: Request) -> Any:
        """One input tensor per feature column (or one [rows, features] tensor); answers one output
        per target, ``probabilities`` and ``std`` on request, warnings in ``parameters``."""
        _named(name)
        found: dict[str, Any] = {}

        def job_of(body: bytes, model: Any) -> Job:
            kind = (request.headers.get("content-type") or "application/json").split(";")[0].strip().lower()
            if kind != "application/json" and not kind.endswith("+json"):
                raise ServerError(415, "the v2 infer route takes application/json")
            table, params, found["id"] = read_infer(body, list(model.feature_names))
            return Job(table, proba=_flag(request, "proba", params), std=_flag(request, "std", params))

        model, answer = await _predict(request, job_of)
        return _json(infer_answer(answer, model, s.name, found.get("id")))

    async def v2_infer_direct(request: Request) -> Any:
        return await v2_infer(request.scope["path"].split("/")[3], request)  # /v2/models/{name}/infer

    direct[("POST", "/invocations")] = invocations
    direct[("POST", "/v2/models/{name}/infer")] = v2_infer_direct
    return app
