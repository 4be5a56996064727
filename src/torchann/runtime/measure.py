"""A short timing of one training step's products, and the cache that keeps what it found.

The automatic choices (``precision="auto"``, the default thread count) are settled by timing
the step they are for, not by a table of processors: ``step_timer`` builds, for the model's
linear layers at the step's row count, the three matrix products a training step runs per
layer (forward, the input's gradient, the weight's gradient) on random data, and returns a
function that times them in a given dtype and thread count. A choice made from those times is
kept in a ``MeasuredCache`` for the rest of the process (or, for choices that depend on the
load of the machine, for ``ttl`` seconds), so a tuning loop or a benchmark that fits the same
shape many times measures it once.

The cache is an object of its own, with ``clear()``, so that tests can start from an empty one
and inject a clock.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Callable, Hashable

import torch
from torch import nn

__all__ = ["MeasuredCache", "linear_shapes", "step_timer", "median_times"]

# Each timed call repeats the products until it lasts this long: a step of a small network
# takes tens of microseconds, too short for one reading to stand out from the clock's and the
# scheduler's noise; longer would make the timing cost more than a short fit can pay.
MIN_SECONDS = 0.0005


@dataclass
class _Entry:
    value: object
    at: float
    stamp: Hashable


class MeasuredCache:
    """Choices found by a measurement, by key; an entry older than ``ttl`` seconds, or made under
    another ``stamp`` (a reading of the machine's load), is measured again."""

    def __init__(self, ttl: float | None = None, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl, self.clock = ttl, clock
        self._entries: dict[Hashable, _Entry] = {}

    def get(self, key: Hashable, stamp: Hashable = None) -> object | None:
        entry = self._entries.get(key)
        if entry is None or entry.stamp != stamp:
            return None
        if self.ttl is not None and self.clock() - entry.at > self.ttl:
            return None
        return entry.value

    def put(self, key: Hashable, value: object, stamp: Hashable = None) -> None:
        self._entries[key] = _Entry(value, self.clock(), stamp)

    def clear(self) -> None:
        self._entries.clear()


def linear_shapes(model: nn.Module) -> tuple[tuple[int, int], ...]:
    """``(in_features, out_features)`` of every ``nn.Linear`` in ``model``, in order."""
    return tuple((m.in_features, m.out_features) for m in model.modules() if isinstance(m, nn.Linear))


def step_timer(shapes: tuple[tuple[int, int], ...], rows: int, device: torch.device,
               clock: Callable[[], float] = time.perf_counter) -> Callable[[torch.dtype], float]:
    """A function ``time(dtype) -> seconds`` of one step's products for ``shapes`` at ``rows`` rows.

    Per layer: ``(B, in) @ (in, out)`` forward, ``(B, out) @ (out, in)`` for the input's gradient
    and ``(out, B) @ (B, in)`` for the weight's, in ``dtype``; for bfloat16 also the casts of the
    float32 weights and gradients that autocast makes every step. It runs in whatever thread
    count torch has when called; the first call for a dtype also allocates (time it once first).
    """
    gen = torch.Generator().manual_seed(0)
    layers = [(torch.randn(rows, i, generator=gen).to(device), torch.randn(o, i, generator=gen).to(device),
               torch.randn(rows, o, generator=gen).to(device)) for i, o in shapes]
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def once(dtype: torch.dtype) -> None:
        for x, w, g in layers:
            if dtype != torch.float32:  # autocast casts the weights and the incoming data each step
                x, w, g = x.to(dtype), w.to(dtype), g.to(dtype)
            x @ w.t()   # (B, in) @ (in, out) -> (B, out)
            g @ w       # (B, out) @ (out, in) -> (B, in)
            g.t() @ x   # (out, B) @ (B, in) -> (out, in)

    def timed(dtype: torch.dtype) -> float:
        reps, elapsed = 0, 0.0
        sync()
        start = clock()
        while reps == 0 or elapsed < MIN_SECONDS:
            once(dtype)
            sync()
            reps += 1
            elapsed = clock() - start
        return elapsed / reps

    return timed


def median_times(candidates: tuple, time_one: Callable[[object], float], *, rounds: int = 3,
                 clear: float = 1.5, budget: Callable[[float], float] | None = None,
                 clock: Callable[[], float] = time.perf_counter) -> dict[object, float]:
    """Median seconds of ``time_one(c)`` per candidate over up to ``rounds`` interleaved rounds,
    after one warm-up call (allocations), so that a burst of load elsewhere falls on every
    candidate alike.

    Stops after a round once every other candidate takes ``clear`` times the fastest (a gap that
    wide needs no more samples, and the slow candidates are the costly ones to keep timing), or
    once the wall time spent passes ``budget(warm-up seconds)``. Returns ``{}`` when even one
    round would pass the budget: then nothing is worth timing.
    """
    started = clock()
    warm = time_one(candidates[0])
    limit = budget(warm) if budget is not None else float("inf")
    if (clock() - started) * (1 + len(candidates)) > limit:
        return {}
    times: dict[object, list[float]] = {c: [] for c in candidates}
    for _ in range(rounds):
        for c in candidates:
            times[c].append(time_one(c))
        medians = sorted(statistics.median(v) for v in times.values())
        if len(medians) < 2 or medians[1] >= clear * medians[0] or clock() - started > limit:
            break
    return {c: statistics.median(v) for c, v in times.items()}
