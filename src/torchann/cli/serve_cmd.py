"""``torchann serve RUN``: a saved model behind HTTP (``torchann.serve``; install torchann[serve]).

The flags are ``torchann.server.Limits``' fields (their defaults and help come from there),
plus where to listen and how many worker processes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..server.limits import limit_default as _d, limit_help as _h
from ._app import app


@app.command("serve", short_help="Serve a saved model over HTTP (MLflow and v2 protocols).")
def serve_cmd(
    model_dir: Annotated[Path, typer.Argument(help="A model directory written by train, demo or save.",
                                              show_default=False)],
    host: Annotated[str, typer.Option("--host", help="Address to listen on; 0.0.0.0 for every interface "
                                                     "(then give --api-key-env).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port; 0 picks a free one.")] = 8080,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Processes, each with the model loaded.")] = 1,
    max_batch_rows: Annotated[int, typer.Option("--max-batch-rows", min=1, help=_h("max_batch_rows"))] = _d(
        "max_batch_rows"),
    max_wait_ms: Annotated[float, typer.Option("--max-wait-ms", min=0.0, help=_h("max_wait_ms"))] = _d(
        "max_wait_ms"),
    max_body_mb: Annotated[float, typer.Option("--max-body-mb", min=0.001, help=_h("max_body_mb"))] = _d(
        "max_body_mb"),
    timeout: Annotated[float, typer.Option("--timeout", min=0.001, help=_h("timeout"))] = _d("timeout"),
    max_concurrency: Annotated[int, typer.Option("--max-concurrency", min=1, help=_h("max_concurrency"))] = _d(
        "max_concurrency"),
    api_key_env: Annotated[Optional[str], typer.Option(
        "--api-key-env", help="Name of an environment variable holding the API key that requests must send "
                              "('Authorization: Bearer KEY' or 'X-API-Key: KEY').")] = None,
    name: Annotated[Optional[str], typer.Option("--name", help="The model's name in the v2 routes "
                                                               "[default: the directory's name].")] = None,
    log_requests: Annotated[Optional[bool], typer.Option(
        "--log-requests/--quiet", help="One line per request on stderr [default: when stderr is not a "
                                       "terminal].")] = None,
) -> None:
    """Serve a saved model: POST /invocations (MLflow), /v2/models/NAME/infer, /metrics, /docs."""
    from ..core.errors import UsageError
    from ..server import Limits, serve

    key = None
    if api_key_env is not None:
        key = os.environ.get(api_key_env)
        if not key:
            raise UsageError(f"--api-key-env {api_key_env}: the environment variable {api_key_env} is not set or "
                             f"empty; export {api_key_env}=<a long random key>")
    limits = Limits(max_batch_rows=max_batch_rows, max_wait_ms=max_wait_ms, max_body_mb=max_body_mb,
                    timeout=timeout, max_concurrency=max_concurrency, api_key=key)
    from ..api.model import load

    model = load(model_dir)  # a damaged directory is one line and exit 2, before anything listens
    serve(model if workers == 1 else model_dir, host=host, port=port, workers=workers, limits=limits, name=name,
          log_requests=log_requests)
