"""The server's model thread: calls run in order on one thread, a caller that gives up does not
stop the call, ``busy`` counts what is still on the thread, and stopping answers what waits."""

from __future__ import annotations

import asyncio
import threading

import pytest

from torchann.server.errors import ServerError
from torchann.server.model_thread import ModelThread, answer_within


def test_calls_run_in_order_on_one_thread_and_errors_come_back():
    async def main():
        t = ModelThread(initializer=lambda: seen.append(("init", threading.current_thread().name)))
        t.start()
        futs = [t.call(lambda i=i: (i, threading.current_thread().name)) for i in range(5)]
        assert t.busy == 5
        results = await asyncio.gather(*futs)
        with pytest.raises(ZeroDivisionError):
            await t.call(lambda: 1 / 0)
        assert t.busy == 0
        t.stop(ServerError(503, "closing"))
        return results

    seen: list = []
    results = asyncio.run(main())
    assert [r[0] for r in results] == [0, 1, 2, 3, 4]
    assert {r[1] for r in results} == {"torchann-model"} and seen == [("init", "torchann-model")]


def test_a_caller_that_gives_up_leaves_the_call_running_and_the_thread_busy():
    gate, ran = threading.Event(), threading.Event()

    def held():
        gate.wait(30)
        ran.set()
        return "late"

    async def main():
        t = ModelThread()
        t.start()
        fut = t.call(held)
        with pytest.raises(ServerError) as err:
            await answer_within(fut, 0.01, lambda: ServerError(504, "too late"))
        assert err.value.status == 504 and fut.cancelled() and t.busy == 1  # still on the thread
        queued = t.call(lambda: "next")
        gate.set()
        assert await queued == "next" and ran.is_set()
        await t.free()
        assert t.busy == 0
        t.stop(ServerError(503, "closing"))

    asyncio.run(main())


def test_stop_answers_the_calls_still_waiting():
    gate, started = threading.Event(), threading.Event()

    def held():
        started.set()
        return gate.wait(30)

    async def main():
        t = ModelThread()
        t.start()
        first = t.call(held)
        waiting = t.call(lambda: "never")
        while not started.is_set():  # the first call is on the thread; the second waits behind it
            await asyncio.sleep(0.001)
        t.stop(ServerError(503, "closing"))
        with pytest.raises(ServerError):
            await waiting
        gate.set()
        assert await first is True

    asyncio.run(main())
