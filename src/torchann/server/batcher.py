"""Dynamic batching: requests that arrive together share one forward pass, off the event loop.

Every model call runs on one model thread, so the event loop keeps reading and answering
requests while the network computes. With batching on (``max_wait_ms > 0``) requests are
queued; when the model thread is free, one batch takes every queued request (up to
``max_batch_rows`` rows). A lone request runs at once: a batch waits, at most
``max_wait_ms``, only while other requests are inside the server but not yet queued (their
bodies still being read or parsed), so a single client never pays the wait. A request that
finds the server idle (nothing queued, nothing computing, nobody else arriving) goes straight
to the model thread, as without batching, skipping the batch task's wake-up (docs/serve.md:
the served single row's median p50 at concurrency 1 went from 1.48 to 1.32 ms over eight
alternating runs); requests that come while it computes queue and form the next batch when
it ends. With ``max_wait_ms == 0`` each request is its own forward pass.

A request whose client gave up (its ``timeout`` passed) is marked cancelled and skipped if
its batch has not started.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any

from .errors import ServerError
from .limits import Limits
from .model_thread import ModelThread, answer_within
from .predictor import Answer, Job, Predictor

__all__ = ["Batcher", "Ticket"]


class Ticket:
    """A request on its way to the batcher: counted as arriving until it is submitted."""

    def __init__(self, batcher: "Batcher") -> None:
        self.batcher = batcher
        self.open = True
        batcher.arriving += 1

    def close(self) -> None:
        if self.open:
            self.open = False
            self.batcher.arriving -= 1

    def __enter__(self) -> "Ticket":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    async def submit(self, job: Job, timeout: float) -> Answer:
        self.close()
        return await self.batcher.submit(job, timeout)


class Batcher:
    """Coalesces concurrent requests into batches for ``predictor.run`` (see the module doc)."""

    def __init__(self, predictor: Predictor, limits: Limits, metrics: Any = None) -> None:
        self.predictor = predictor
        self.limits = limits
        self.metrics = metrics
        self.arriving = 0  # requests inside the server that have not reached the queue yet
        self._queue: deque[tuple[Job, asyncio.Future]] = deque()
        self._thread: ModelThread | None = None
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._direct: asyncio.Future | None = None  # a lone request sent straight to the model thread
        self._in_batch = False  # the batch task has taken a batch and not yet answered it

    def ticket(self) -> Ticket:
        return Ticket(self)

    async def start(self) -> None:
        import torch

        count = torch.get_num_threads()  # the loop thread's: a new thread would start with torch's default
        self._thread = ModelThread(initializer=lambda: torch.set_num_threads(count))
        self._thread.start()
        self._wake = asyncio.Event()
        if self.limits.batching:
            self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        closing = ServerError(503, "the server is shutting down; retry on another instance")
        while self._queue:
            _, fut = self._queue.popleft()
            if not fut.done():
                fut.set_exception(closing)
        if self._thread is not None:
            self._thread.stop(closing)
            self._thread = None

    async def submit(self, job: Job, timeout: float) -> Answer:
        """The job's answer; a 504 when it does not come within ``timeout`` seconds."""
        thread = self._thread
        if thread is None:
            raise ServerError(503, "the model is not loaded yet; retry shortly")
        if self._task is None:  # no batching: the job is its own pass
            fut = thread.call(self._alone, job)
        elif self._idle():  # nothing to share a pass with: straight to the model thread
            fut = self._direct = thread.call(self._alone, job)
        else:
            fut = asyncio.get_running_loop().create_future()
            self._queue.append((job, fut))
            self._wake.set()

        def too_late() -> Exception:
            job.cancelled = True
            return ServerError(504, f"no answer within the server's timeout of {self.limits.timeout:g} s; send fewer "
                                    f"rows or retry later")

        result = await answer_within(fut, timeout, too_late)
        if isinstance(result, Exception):
            raise result
        return result

    def _idle(self) -> bool:
        return not self._queue and not self._in_batch and self.arriving == 0 and self._thread.busy == 0

    def _alone(self, job: Job) -> Answer | Exception:
        if job.cancelled:
            return ServerError(504, "the request was given up")
        self._count([job])
        return self.predictor.run([job])[0]

    def _count(self, jobs: list[Job]) -> None:
        if self.metrics is not None:
            self.metrics.batch(sum(j.rows for j in jobs), len(jobs))

    def _take(self, room: int, *, first: bool = True) -> tuple[list[tuple[Job, asyncio.Future]], int]:
        """Queued jobs in order while they fit in ``room`` rows (with ``first``, the first one always)."""
        taken, rows = [], 0
        while self._queue:
            job, fut = self._queue[0]
            if (taken or not first) and rows + job.rows > room:
                break
            self._queue.popleft()
            if fut.done() or job.cancelled:
                continue
            taken.append((job, fut))
            rows += job.rows
        return taken, rows

    async def _loop(self) -> None:
        limit, wait = self.limits.max_batch_rows, self.limits.max_wait_ms / 1000.0
        while True:
            while not self._queue:
                self._wake.clear()
                await self._wake.wait()
            if self._thread.busy:  # the model thread is on a lone request: what queues meanwhile joins this batch
                await self._thread.free()
            self._in_batch = True
            try:
                await self._batch(limit, wait)
            finally:
                self._in_batch = False

    async def _batch(self, limit: int, wait: float) -> None:
        """One batch: the queued jobs (and those arriving within the wait) in one pass."""
        batch, rows = self._take(limit)
        deadline = time.monotonic() + wait
        while rows < limit and self.arriving > 0:  # others are on their way: give them until the deadline
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), left)
            except asyncio.TimeoutError:
                break
            more, extra = self._take(limit - rows, first=False)
            batch += more
            rows += extra
            if self._queue:  # the next one does not fit: it starts the next batch
                break
        if not batch:
            return
        jobs = [job for job, _ in batch]
        self._count(jobs)
        try:
            results = await self._thread.call(self.predictor.run, jobs)
        except Exception as err:  # a bug in the model code: every request of the batch gets it
            results = [err] * len(jobs)
        for (_, fut), result in zip(batch, results):
            if not fut.done():
                fut.set_result(result)
