"""A load generator for any HTTP scoring endpoint: ``torchann bench serve`` and ``benchmarks/serve.py``.

``concurrency`` clients each send the same request back to back on their own keep-alive
connection (aiohttp) for ``duration`` seconds after a ``warmup``; every answer's latency and
status is kept. The result gives requests/s, rows/s, p50/p95/p99 latency and the errors
(any status but 200, and failed connections), counted per status.

It sends only to the URL it is given; point it at an address on this machine (127.0.0.1) or
one you own.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

__all__ = ["LoadResult", "run_load", "sample_rows", "invocation_body"]


@dataclass
class LoadResult:
    url: str
    concurrency: int
    rows_per_request: int
    seconds: float
    requests: int
    errors: int
    statuses: dict[str, int] = field(default_factory=dict)
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def rows_per_s(self) -> float:
        return self.requests_per_s * self.rows_per_request

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "requests_per_s": self.requests_per_s, "rows_per_s": self.rows_per_s}

    def line(self) -> str:
        return (f"c={self.concurrency} rows={self.rows_per_request}: {self.requests_per_s:,.0f} req/s, "
                f"{self.rows_per_s:,.0f} rows/s, p50 {self.p50_ms:.2f} ms, p95 {self.p95_ms:.2f} ms, "
                f"p99 {self.p99_ms:.2f} ms, errors {self.errors}")


def sample_rows(model: Any, rows: int) -> list[dict[str, Any]]:
    """``rows`` records inside the training data's ranges (numbers spread over the training
    range, categories in turn), for a model without a data file at hand."""
    out: list[dict[str, Any]] = [{} for _ in range(rows)]
    for f in model.preprocessor.features:
        if f.kind == "numeric":
            span = f.training_range or (f.mean - f.std, f.mean + f.std)
            values = np.linspace(span[0], span[1], rows + 2)[1:-1].tolist()
        elif f.kind == "categorical":
            cats = f.categories or [None]
            values = [cats[i % len(cats)] for i in range(rows)]
        else:
            values = [None] * rows  # a date left missing: filled with the training mean
        for record, v in zip(out, values):
            record[f.name] = v
    return out


def invocation_body(records: list[dict[str, Any]]) -> bytes:
    """An MLflow ``dataframe_split`` body for ``records``."""
    columns = list(records[0])
    return json.dumps({"dataframe_split": {"columns": columns,
                                           "data": [[r[c] for c in columns] for r in records]}}).encode()


async def _load(url: str, body: bytes, headers: dict[str, str], concurrency: int, duration: float,
                warmup: float) -> tuple[list[float], Counter, float]:
    import aiohttp

    latencies: list[float] = []
    statuses: Counter = Counter()
    start = time.perf_counter()
    measure_from = start + warmup
    stop_at = measure_from + duration
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    timeout = aiohttp.ClientTimeout(total=60)

    async def client(session: Any) -> None:
        while True:
            t0 = time.perf_counter()
            if t0 >= stop_at:
                return
            try:
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    status = str(response.status)
            except (aiohttp.ClientError, asyncio.TimeoutError) as err:
                status = type(err).__name__
            t1 = time.perf_counter()
            if t0 >= measure_from and t1 <= stop_at:
                latencies.append(t1 - t0)
                statuses[status] += 1

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(*(client(session) for _ in range(concurrency)))
    return latencies, statuses, duration


def run_load(url: str, body: bytes, *, rows: int, content_type: str = "application/json", concurrency: int = 1,
             duration: float = 5.0, warmup: float = 1.0, headers: dict[str, str] | None = None) -> LoadResult:
    """Send ``body`` to ``url`` from ``concurrency`` clients for ``duration`` seconds (after
    ``warmup``); ``rows``: the rows each request holds (for rows/s)."""
    from ..core.errors import UsageError

    try:
        import aiohttp  # noqa: F401
    except ImportError:
        raise UsageError("the load generator needs aiohttp; install torchann[serve]") from None
    if concurrency < 1 or duration <= 0 or warmup < 0:
        raise UsageError("concurrency must be >= 1, duration > 0 and warmup >= 0")
    sent = {"Content-Type": content_type, **(headers or {})}
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # pragma: no cover
        runner = asyncio.run
    latencies, statuses, seconds = runner(_load(url, body, sent, concurrency, duration, warmup))
    ms = np.asarray(latencies) * 1e3
    q = np.percentile(ms, [50, 95, 99]).tolist() if ms.size else [None] * 3
    ok = statuses.get("200", 0)
    return LoadResult(url=url, concurrency=concurrency, rows_per_request=rows, seconds=seconds, requests=ok,
                      errors=sum(statuses.values()) - ok, statuses=dict(statuses), p50_ms=q[0], p95_ms=q[1],
                      p99_ms=q[2])


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, *, timeout: float = 60.0, process: Any = None) -> None:
    """Poll ``url`` until it answers 200 (or ``process`` exits, or ``timeout`` passes)."""
    import urllib.error
    import urllib.request

    from ..core.errors import TorchannError

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise TorchannError(f"the server exited with code {process.returncode} before it was ready")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, OSError):
            pass
        time.sleep(0.05)
    raise TorchannError(f"{url} was not ready within {timeout:g} s")


class LocalServer:
    """A server process on this machine for the time of a ``with`` block; SIGTERM at the end.

    ``command`` is run as given with ``{port}`` replaced by a free port; ``ready_path`` is
    polled until it answers 200."""

    def __init__(self, command: list[str], *, ready_path: str = "/readyz", env: dict[str, str] | None = None,
                 log: Any = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.command = [c.replace("{port}", str(self.port)) for c in command]
        self.ready_path = ready_path
        self.env = env
        self.log = log
        self.process: Any = None

    def __enter__(self) -> "LocalServer":
        import os
        import subprocess

        env = {**os.environ, **(self.env or {})}
        self.process = subprocess.Popen(self.command, env=env, stdout=self.log or subprocess.DEVNULL,
                                        stderr=self.log or subprocess.DEVNULL, start_new_session=True)
        try:
            wait_ready(self.url + self.ready_path, process=self.process)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        import os
        import signal
        import subprocess

        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)  # its own session: workers and children too
            self.process.wait(timeout=30)
        except (subprocess.TimeoutExpired, ProcessLookupError):
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait()
