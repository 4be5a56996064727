"""``serve(model, ...)``: run the app under uvicorn until SIGTERM or Ctrl-C.

* Binds 127.0.0.1 unless told otherwise; any other address without an API key is served with
  a warning (anyone who reaches the port can use the model).
* SIGTERM (or Ctrl-C): ``/readyz`` turns 503, the listening socket closes, every request
  inside is answered, then the process exits 0. A second Ctrl-C stops at once.
* ``workers > 1``: uvicorn's process manager runs that many processes on one port, each
  loading the model directory itself (``TORCHANN_SERVE_CONFIG`` carries the settings, the API
  key stays in its environment variable).
* Logging: one line per request on stderr when stderr is not a terminal (a log), else only
  the start line and errors (``log_requests`` decides when given).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import signal
import sys
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Callable

from ..core.errors import UsageError
from .limits import Limits

__all__ = ["serve", "worker_app", "CONFIG_ENV", "is_loopback"]

CONFIG_ENV = "TORCHANN_SERVE_CONFIG"
log = logging.getLogger("torchann.server")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _setup_logging(log_requests: bool) -> None:
    for name, level in (("torchann.server", logging.INFO),
                        ("torchann.server.access", logging.INFO if log_requests else logging.WARNING)):
        logger = logging.getLogger(name)
        logger.setLevel(level)
    root = logging.getLogger("torchann.server")
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        root.addHandler(handler)
        root.propagate = False


def _one_thread(workers: int) -> int | None:
    """One intra-op thread per server process unless OMP_NUM_THREADS says otherwise: the event
    loop, the load and other processes share the cores, and a small pass on two threads cost
    4 to 60 times one thread's time on a busy 2-core machine; add --workers for more cores.
    Returns the threads for large passes (the process's share of the cores; None: the count
    OMP_NUM_THREADS gave): a 1,000-row request took 15.2 ms on two threads against 17.8 ms on
    one (docs/serve.md)."""
    if "OMP_NUM_THREADS" in os.environ:
        return None
    import torch

    from ..runtime.threads import allowed_cores

    torch.set_num_threads(1)
    return allowed_cores(local_processes=workers)


def _uvicorn() -> Any:
    try:
        import uvicorn
    except ImportError:
        raise UsageError("torchann serve needs FastAPI and uvicorn; install torchann[serve]") from None
    return uvicorn


def _server_class(uvicorn: Any) -> type:
    class DrainingServer(uvicorn.Server):
        """uvicorn's server, that marks the app not ready on the first signal and exits 0 after
        a SIGTERM it drained (uvicorn would re-raise the signal and end with 143)."""

        serving: Any = None
        on_ready: Callable[[str], None] | None = None

        def handle_exit(self, sig: int, frame: Any) -> None:
            if self.serving is not None:
                self.serving.begin_drain()
            super().handle_exit(sig, frame)
            if sig == signal.SIGTERM:
                self._captured_signals = [s for s in self._captured_signals if s != signal.SIGTERM]

        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets)
            if self.started and self.servers:
                host, port = self.servers[0].sockets[0].getsockname()[:2]
                url = f"http://{'[' + host + ']' if ':' in host else host}:{port}"
                log.info("serving %s on %s (routes: %s/docs); SIGTERM or Ctrl-C stops it",
                         getattr(self.serving, "name", "the model"), url, url)
                if self.on_ready is not None:
                    self.on_ready(url)

    return DrainingServer


def serve(model: Any, *, host: str = "127.0.0.1", port: int = 8080, workers: int = 1, limits: Limits | None = None,
          name: str | None = None, log_requests: bool | None = None,
          on_ready: Callable[[str], None] | None = None) -> None:
    """Serve ``model`` (a ``torchann.Model`` or a model directory) over HTTP until stopped.

    Args:
        host, port: where to listen (port 0: any free port; the start line names it).
        workers: processes (each loads the model directory; needs a model saved on disk).
        limits: batching, size, time, concurrency and API key (``Limits``).
        name: the model's name in the v2 routes (default: the directory's name).
        log_requests: one log line per request (default: when stderr is not a terminal).
        on_ready: called with the server's URL once it listens (one worker).
    """
    uvicorn = _uvicorn()
    limits = limits or Limits()
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise UsageError(f"workers must be a positive integer, got {workers!r}")
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise UsageError(f"port must be an integer from 0 to 65535, got {port!r}")
    if log_requests is None:
        log_requests = not sys.stderr.isatty()
    _setup_logging(log_requests)
    if not is_loopback(host) and limits.api_key is None:
        log.warning("warning: listening on %s without an API key: anyone who reaches this port can use the "
                    "model; pass --api-key-env NAME", host)
    common = dict(host=host, port=port, log_config=None, access_log=False, server_header=False,
                  timeout_graceful_shutdown=max(int(limits.timeout) + 5, 5), lifespan="on")
    if workers > 1:
        path = model if isinstance(model, (str, os.PathLike)) else getattr(model, "path", None)
        if path is None:
            raise UsageError("workers > 1 load the model in each process: save it first (model.save(dir)) "
                             "and serve the directory")
        config = {"model": str(Path(path).resolve()), "name": name, "log_requests": log_requests, "workers": workers,
                  "limits": {k: v for k, v in asdict(replace(limits, api_key=None)).items()},
                  "api_key_env": _KEY_ENV if limits.api_key else None}
        os.environ[CONFIG_ENV] = json.dumps(config)
        if limits.api_key:
            os.environ[_KEY_ENV] = limits.api_key
        uvicorn.run("torchann.server.runner:worker_app", factory=True, workers=workers, **common)
        return
    from .app import create_app

    large = _one_thread(1)
    app = create_app(model, limits, name=name, log_requests=log_requests, own_process=True, large_pass_threads=large)
    server = _server_class(uvicorn)(uvicorn.Config(app, **common))
    server.serving = app.state.serving
    server.on_ready = on_ready
    server.run()


_KEY_ENV = "TORCHANN_SERVE_KEY"


def worker_app() -> Any:
    """The app of one worker process, from ``TORCHANN_SERVE_CONFIG`` (uvicorn's factory)."""
    from .app import create_app

    config = json.loads(os.environ[CONFIG_ENV])
    key = os.environ.get(config["api_key_env"]) if config.get("api_key_env") else None
    limits = Limits(**{**config["limits"], "api_key": key})
    _setup_logging(bool(config.get("log_requests")))
    large = _one_thread(int(config.get("workers") or 1))
    return create_app(config["model"], limits, name=config.get("name"), log_requests=bool(config.get("log_requests")),
                      own_process=True, large_pass_threads=large)
