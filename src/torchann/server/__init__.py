"""torchann's HTTP server: a trained Model behind MLflow's scoring protocol and the Open
Inference Protocol v2, with dynamic batching, limits, per-row warnings and Prometheus metrics.

Modules, one concept each:

* ``limits``: ``Limits``, every server limit and its default, declared once.
* ``errors``: ``ServerError`` and the one set of exception handlers (JSON error bodies).
* ``rows``, ``mlflow_protocol``, ``v2_protocol``: request bodies into a ``Table``; answers out.
* ``predictor``: encode, forward, decode for a batch of requests (the model's side).
* ``batcher``: coalescing concurrent requests into one forward pass on the model thread.
* ``metrics``: the Prometheus registry of one server.
* ``state``, ``gate``, ``app``: the server's state, the middleware every request passes, the
  routes (``create_app(model, limits)``).
* ``runner``: uvicorn, workers, SIGTERM drain (``serve(...)``).

May import: ``api`` and the layers below it (``model``, ``preprocess``, ``data``, ``core``);
only ``cli`` imports it. FastAPI, uvicorn and
prometheus_client (``pip install torchann[serve]``) are imported inside the modules that use
them; importing this package imports none of them.

The folder is ``server/``, not ``serve/``: a subpackage ``torchann.serve`` would hide the
function ``torchann.serve(model, ...)`` once imported.
"""

from __future__ import annotations

from typing import Any

from .limits import Limits

__all__ = ["Limits", "create_app", "serve"]


def create_app(model: Any, limits: Limits | None = None, **kwargs: Any) -> Any:
    """The ASGI app over ``model`` (see ``torchann.server.app.create_app``)."""
    try:
        from .app import create_app as _create
    except ImportError as err:
        if err.name not in ("fastapi", "starlette", "prometheus_client", "uvicorn"):
            raise
        from ..core.errors import UsageError

        raise UsageError("torchann serve needs FastAPI, uvicorn and prometheus_client; install torchann[serve]") \
            from None

    return _create(model, limits, **kwargs)


def serve(model: Any, **kwargs: Any) -> None:
    """Run the server until SIGTERM or Ctrl-C (see ``torchann.server.runner.serve``)."""
    from .runner import serve as _serve

    _serve(model, **kwargs)
