"""measure.py: the step timing behind the automatic choices, checked with an injected clock."""

from __future__ import annotations

import pytest
import torch

import torchann
from torchann.runtime import measure
from torchann.runtime.measure import MeasuredCache, linear_shapes, median_times, step_timer


def test_linear_shapes_lists_the_models_layers_in_order():
    assert linear_shapes(torchann.mlp(64, [256, 256], 10)) == ((64, 256), (256, 256), (256, 10))
    assert linear_shapes(torch.nn.ReLU()) == ()


class _Ticks:
    """A clock that advances ``step`` seconds at each reading."""

    def __init__(self, step):
        self.step, self.now, self.reads = step, 0.0, 0

    def __call__(self):
        self.reads += 1
        self.now += self.step
        return self.now


def test_step_timer_repeats_the_products_until_they_last_min_seconds(monkeypatch):
    calls = []
    real_matmul = torch.Tensor.__matmul__
    monkeypatch.setattr(torch.Tensor, "__matmul__", lambda a, b: calls.append((tuple(a.shape), tuple(b.shape)))
                        or real_matmul(a, b))
    clock = _Ticks(measure.MIN_SECONDS / 4)  # each repetition reads the clock once: four reach MIN_SECONDS
    timer = step_timer(((3, 5), (5, 2)), 7, torch.device("cpu"), clock=clock)
    seconds = timer(torch.float32)
    assert seconds == pytest.approx(measure.MIN_SECONDS / 4)
    # per layer: forward (B, in) @ (in, out), input grad (B, out) @ (out, in), weight grad (out, B) @ (B, in)
    one_rep = [((7, 3), (3, 5)), ((7, 5), (5, 3)), ((5, 7), (7, 3)), ((7, 5), (5, 2)), ((7, 2), (2, 5)),
               ((2, 7), (7, 5))]
    assert calls == one_rep * 4


def test_step_timer_times_one_long_repetition_once():
    clock = _Ticks(1.0)  # far past MIN_SECONDS after one repetition
    assert step_timer(((4, 4),), 2, torch.device("cpu"), clock=clock)(torch.bfloat16) == 1.0


def test_median_times_warms_up_once_then_interleaves_rounds():
    readings = {"a": iter([9.0, 1.0, 3.0, 2.0]), "b": iter([1.2, 1.8, 1.1])}
    order = []

    def time_one(c):
        order.append(c)
        return next(readings[c])

    assert median_times(("a", "b"), time_one, rounds=3) == {"a": 2.0, "b": 1.2}  # the 9.0 warm-up dropped
    assert order == ["a"] + ["a", "b"] * 3


def test_median_times_stops_once_the_gap_is_clear():
    readings = {"a": iter([1.0, 1.0, 1.0]), "b": iter([1.6, 1.6])}
    assert median_times(("a", "b"), lambda c: next(readings[c]), clear=1.5) == {"a": 1.0, "b": 1.6}


class _Spent:
    """``time_one`` on a fake clock: each call moves the clock on by the seconds it returns."""

    def __init__(self, readings):
        self.readings, self.now = {k: iter(v) for k, v in readings.items()}, 0.0

    def __call__(self, c):
        seconds = next(self.readings[c])
        self.now += seconds
        return seconds

    def clock(self):
        return self.now


def test_median_times_stops_at_the_budget():
    spent = _Spent({"a": [1.0, 1.0, 3.0, 2.0], "b": [1.2, 1.8, 1.1]})
    # warm-up 1.0 s: budget 5 s; round 1 ends at 3.2 s, round 2 at 8.0 s: past it, so no round 3
    times = median_times(("a", "b"), spent, rounds=3, budget=lambda warm: 5 * warm, clock=spent.clock)
    assert times == {"a": 2.0, "b": 1.5}
    assert spent.now == pytest.approx(8.0)


def test_median_times_times_nothing_when_one_round_would_pass_the_budget():
    spent = _Spent({"a": [1.0], "b": []})
    # the warm-up took 1 s; a round of two more calls would bring it to about 3 s, past 2 s
    assert median_times(("a", "b"), spent, budget=lambda warm: 2 * warm, clock=spent.clock) == {}
    assert spent.now == 1.0  # only the warm-up ran


def test_measured_cache_by_key_stamp_and_age():
    now = [0.0]
    cache = MeasuredCache(ttl=10.0, clock=lambda: now[0])
    cache.put("k", 3, stamp=0)
    assert cache.get("k", 0) == 3 and cache.get("other", 0) is None
    assert cache.get("k", 1) is None  # made under another load
    now[0] = 10.5
    assert cache.get("k", 0) is None  # too old
    forever = MeasuredCache()
    forever.put("k", (1.0, 2.0))
    now[0] = 1e9
    assert forever.get("k") == (1.0, 2.0)
    forever.clear()
    assert forever.get("k") is None
