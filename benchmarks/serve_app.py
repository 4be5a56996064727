"""The server's own cost per request, without sockets: the ASGI app called in-process on uvloop.

``benchmarks/serve.py`` measures through HTTP with the load generator on the same cores, where
a run's p50 moves by +-0.2 ms with the machine's load. This calls ``create_app``'s app directly
(a one-row ``dataframe_split`` body, one request at a time) and reports, per request, the wall
time and the event loop thread's CPU time, beside the plain FastAPI app of ``serve.py`` (the
model on the event loop) and in-process ``Model.predict``, all in one process and one run:

* wall minus loop CPU minus the model's time is what the two hand-offs to the model thread
  and back cost;
* the loop CPU is the server's Python per request: routing, parsing, the table, the answer.

    python benchmarks/serve_app.py [--requests 1000] [--repeats 5] [--networks N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torchann  # noqa: E402
from torchann.bench.timing import cpu_model  # noqa: E402
from torchann.server import Limits, create_app  # noqa: E402
from torchann.server.loadgen import invocation_body, sample_rows  # noqa: E402

import serve as serve_bench  # noqa: E402


async def _lifespan(app) -> tuple[asyncio.Queue, asyncio.Task]:
    """The app started (its lifespan's startup answered); put a shutdown on the queue and await
    the task to stop it."""
    queue: asyncio.Queue = asyncio.Queue()
    await queue.put({"type": "lifespan.startup"})
    sent: list = []

    async def send(message: dict) -> None:
        sent.append(message)

    task = asyncio.get_running_loop().create_task(
        app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, queue.get, send))
    while not sent:
        await asyncio.sleep(0.01)
    if sent[0]["type"] != "lifespan.startup.complete":
        raise RuntimeError(f"the app did not start: {sent[0]}")
    return queue, task


def _scope(body: bytes) -> dict:
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
            "path": "/invocations", "raw_path": b"/invocations", "query_string": b"", "root_path": "",
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8080), "state": {}}


async def _request(app, scope: dict, body: bytes) -> int:
    answered = asyncio.Event()
    messages = [{"type": "http.request", "body": body, "more_body": False}]
    status = []

    async def receive() -> dict:
        if messages:
            return messages.pop()
        await answered.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])
        elif not message.get("more_body"):
            answered.set()

    await app(dict(scope), receive, send)
    return status[0]


async def _measure(app, body: bytes, requests: int, repeats: int) -> tuple[float, float]:
    queue, task = await _lifespan(app)
    try:
        return await _timed(app, body, requests, repeats)
    finally:
        await queue.put({"type": "lifespan.shutdown"})
        await task


async def _timed(app, body: bytes, requests: int, repeats: int) -> tuple[float, float]:
    scope = _scope(body)
    if (status := await _request(app, scope, body)) != 200:
        raise RuntimeError(f"the app answered {status}")
    for _ in range(requests // 4):
        await _request(app, scope, body)
    best = (float("inf"), float("inf"))
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.thread_time()
        for _ in range(requests):
            await _request(app, scope, body)
        wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
        best = min(best, (wall / requests * 1e6, cpu / requests * 1e6))
    return best


def main() -> None:
    import uvloop

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--networks", type=int, default=None, help="networks of the model [default: train's own]")
    args = ap.parse_args()
    run = serve_bench.make_model(Path(tempfile.mkdtemp()), args.networks)
    model = torchann.load(run)
    body = invocation_body(sample_rows(model, 1))
    os.environ["BENCH_MODEL"] = str(run)
    plain: dict = {}
    exec(serve_bench.PLAIN_APP, plain)
    one = {k: [v] for k, v in sample_rows(model, 1)[0].items()}
    for _ in range(200):
        model.predict(one)
    start = time.perf_counter()
    for _ in range(args.requests):
        model.predict(one)
    predict_us = (time.perf_counter() - start) / args.requests * 1e6
    print(f"{cpu_model()}, load average {os.getloadavg()[0]:.1f}; {model.members} network(s); "
          f"min of {args.repeats} x {args.requests} requests, one at a time")
    print(f"{'':44s} {'wall':>9s} {'loop CPU':>9s}")
    for name, app in [("torchann serve's app (model thread)", create_app(model, Limits())),
                      ("plain FastAPI app (model on the loop)", plain["app"])]:
        wall, cpu = uvloop.run(_measure(app, body, args.requests, args.repeats))
        print(f"{name:44s} {wall:6.0f} µs {cpu:6.0f} µs")
    print(f"{'in-process Model.predict, one row':44s} {predict_us:6.0f} µs")


if __name__ == "__main__":
    main()
