"""``Serving``: what one server holds: the model (once loaded), its batcher, metrics, readiness.

The model comes as a ``Model``, or as a model directory or a function that returns one; those
are loaded on a worker thread after the server starts, so ``/livez`` answers at once and
``/readyz`` says 503 until the model is there. ``begin_drain()`` (SIGTERM) makes ``/readyz``
503 again while the requests inside finish.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
from pathlib import Path
from typing import Any, Callable

from ..core.version import __version__
from .batcher import Batcher
from .errors import ServerError
from .limits import Limits
from .metrics import Metrics
from .predictor import Predictor

__all__ = ["Serving", "model_name"]

log = logging.getLogger("torchann.server")


def model_name(model: Any, given: str | None = None) -> str:
    """The name the v2 routes use: ``given``, else the model directory's name, else ``model``."""
    if given:
        return given
    path = getattr(model, "path", None) if not isinstance(model, (str, os.PathLike)) else Path(model)
    return Path(path).name if path is not None and Path(path).name else "model"


def _freeze_gc() -> None:
    """Leave what the process holds for its life (modules, the model, the app) out of every later
    cyclic collection: ``gc.collect()`` then ``gc.freeze()``.

    A server process with torch loaded holds about 210,000 objects that the collector tracks.
    Under load its full collections came every few hundred milliseconds and each took 20 to
    100 ms on a 2-core AMD EPYC, during which no request moved: at concurrency 32 they were
    the p99 (110 ms against a p95 of 15 ms). After the freeze a full collection looks at the
    objects made since, those of the requests in flight.
    """
    gc.collect()
    gc.freeze()


class Serving:
    """The server's state; one per app (tests build several side by side)."""

    def __init__(self, source: Any, limits: Limits, *, name: str | None = None, own_process: bool = False,
                 large_pass_threads: int | None = None) -> None:
        self.limits = limits
        self.own_process = own_process
        self.large_pass_threads = large_pass_threads
        self.metrics = Metrics()
        is_model = hasattr(source, "predict") and hasattr(source, "preprocessor")
        self._named = name is not None
        self.name = model_name(source, name) if is_model or isinstance(source, (str, os.PathLike)) else name or "model"
        self.version = __version__
        self.model: Any = None
        self.predictor: Predictor | None = None
        self.batcher: Batcher | None = None
        self.draining = False
        self.load_error: str | None = None
        self.in_flight = 0
        self._source = source
        self._loading: asyncio.Task | None = None
        if is_model:  # a Model: ready once the batcher runs
            self._use(source)

    @property
    def ready(self) -> bool:
        return self.model is not None and self.batcher is not None and not self.draining

    def _use(self, model: Any) -> None:
        self.model = model
        self.predictor = Predictor(model, large_threads=self.large_pass_threads)

    def _loader(self) -> Callable[[], Any]:
        source = self._source
        if callable(source):
            return source
        from ..api.model import load

        return lambda: load(source)

    async def start(self) -> None:
        """Start the batcher, and the model's loading when it is not loaded yet."""
        if self.model is None:
            self._loading = asyncio.get_running_loop().create_task(self._load())
        else:
            await self._start_batcher()

    async def _start_batcher(self) -> None:
        batcher = Batcher(self.predictor, self.limits, self.metrics)
        await batcher.start()
        if self.own_process:
            _freeze_gc()
        self.batcher = batcher

    async def _load(self) -> None:
        try:
            model = await asyncio.get_running_loop().run_in_executor(None, self._loader())
        except Exception as err:  # a damaged model directory: stay alive and not ready, and say why
            self.load_error = str(err) or type(err).__name__
            log.error("the model could not be loaded: %s", self.load_error)
            return
        self._use(model)
        if not self._named:
            self.name = model_name(model)
        await self._start_batcher()
        log.info("model %s loaded", self.name)

    async def stop(self) -> None:
        if self._loading is not None and not self._loading.done():
            self._loading.cancel()
        if self.batcher is not None:
            await self.batcher.stop()

    def begin_drain(self) -> None:
        """Not ready from now on (SIGTERM): the requests inside still finish."""
        if not self.draining:
            self.draining = True
            log.info("draining: %d request(s) in flight", self.in_flight)

    def require_model(self) -> tuple[Any, Predictor, Batcher]:
        """The model, predictor and batcher, or a 503 while the model is not there."""
        if self.model is None or self.batcher is None or self.predictor is None:
            why = f"the model could not be loaded ({self.load_error})" if self.load_error else \
                "the model is still loading; retry shortly (GET /readyz says when it is ready)"
            raise ServerError(503, why, headers={"Retry-After": "1"})
        return self.model, self.predictor, self.batcher

    def not_ready_reason(self) -> str:
        if self.draining:
            return "draining: the server is shutting down"
        if self.load_error:
            return f"the model could not be loaded: {self.load_error}"
        return "the model is still loading"
