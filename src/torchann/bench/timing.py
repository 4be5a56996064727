"""Timing done carefully: warm-up excluded, the device synchronised, many samples, spread kept.

Shared by the matmul benchmark (``bench.py``) and the training benchmarks in ``benchmarks/``.
"""

from __future__ import annotations

import functools
import math
import os
import platform
import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

from ..core.errors import UsageError

__all__ = ["Timing", "synchronizer", "time_call", "bf16_supported", "machine_info", "cpu_model"]


@dataclass(frozen=True)
class Timing:
    """Seconds per call, one value per sample; each sample averages ``number`` back-to-back calls."""

    samples: tuple[float, ...]
    number: int

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def min(self) -> float:
        return min(self.samples)

    @property
    def max(self) -> float:
        return max(self.samples)

    @property
    def quartiles(self) -> tuple[float, float]:
        if len(self.samples) < 2:
            return self.samples[0], self.samples[0]
        q1, _, q3 = statistics.quantiles(self.samples, n=4, method="inclusive")
        return q1, q3

    @property
    def iqr(self) -> float:
        q1, q3 = self.quartiles
        return q3 - q1


def synchronizer(device: str) -> Callable[[], None]:
    """A function that waits until ``device`` has finished the work queued on it."""
    kind = torch.device(device).type if device != "numpy" else "numpy"
    if kind == "cuda":
        return torch.cuda.synchronize
    if kind == "mps":
        return torch.mps.synchronize
    return lambda: None


def _check_counts(repeats: object, warmup: object) -> None:
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise UsageError(f"repeats must be an integer >= 1, got {repeats!r}")
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise UsageError(f"warmup must be an integer >= 0, got {warmup!r}")


def time_call(fn: Callable[[], Any], *, device: str = "cpu", repeats: int = 20, warmup: int = 3,
              min_sample_s: float = 1e-3, max_number: int = 1000) -> Timing:
    """Time ``fn()`` the careful way: warm-up excluded, device synchronised, many samples.

    A sample runs ``fn`` ``number`` times back to back, ``number`` chosen so that a sample lasts
    at least ``min_sample_s`` (so the clock's overhead is small against it). On CUDA the sample is
    measured with CUDA events around the calls; elsewhere with ``time.perf_counter`` and a
    synchronisation before the clock is read (``torch.mps.synchronize`` on MPS).
    """
    _check_counts(repeats, warmup)
    sync = synchronizer(device)
    use_events = device != "numpy" and torch.device(device).type == "cuda"

    def sample(number: int) -> float:
        if use_events:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(number):
                fn()
            end.record()
            end.synchronize()
            return start.elapsed_time(end) / 1e3  # ms -> s
        sync()
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        sync()
        return time.perf_counter() - t0

    for _ in range(warmup):
        fn()
    sync()
    number = 1
    while True:  # calibration runs are warm-up too; they are not reported
        took = sample(number)
        if took >= min_sample_s or number >= max_number:
            break
        number = min(max_number, max(2 * number, math.ceil(1.2 * number * min_sample_s / max(took, 1e-9))))
    return Timing(tuple(sample(number) / number for _ in range(repeats)), number)


def bf16_supported(device: str = "cpu") -> bool:
    """Whether ``device`` runs bfloat16 matmuls natively (not by a slow fallback)."""
    kind = torch.device(device).type
    if kind == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if kind == "cpu":
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return kind == "mps" and torch.backends.mps.is_available()


@functools.cache
def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict[str, Any]:
    try:
        numpy_blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]["name"]
    except Exception:  # older numpy: no mode="dicts"
        numpy_blas = "unknown"
    return {"cpu": cpu_model(), "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "numpy": np.__version__, "numpy_blas": numpy_blas,
            "torch_blas": "mkl" if torch.backends.mkl.is_available() else "other",
            "cuda": torch.version.cuda, "float32_matmul_precision": torch.get_float32_matmul_precision(),
            "python": platform.python_version(),
            "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None}
