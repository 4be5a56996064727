"""The tutorial's own matmul timing, reproduced as it was written (§1.2): ``time.time()``
around one call, no warm-up, no synchronisation, numpy float64 against torch float32, so that
``explain`` can show from measured numbers what that reading measured."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from ..core.errors import UsageError
from .timing import synchronizer

__all__ = ["ACCELERATORS", "NaiveTiming", "naive_timings", "parse_shape"]

ACCELERATORS = ("cuda", "mps")


@dataclass
class NaiveTiming:
    """The tutorial's timing: ``time.time()`` around one call, no warm-up, no synchronisation."""

    device: str
    dtype: str                    # numpy: float64 (np.random.random), torch: float32 (torch.rand)
    status: str                   # ok or absent
    reason: str = ""
    seconds: float | None = None  # what the tutorial prints
    done_s: float | None = None   # accelerators: from the start until the result was ready
    setup_s: float | None = None  # accelerators: x.to(device), y.to(device), untimed in the tutorial


def _absence(device: str) -> str:
    """Why ``device`` cannot be used here, or "" when it can."""
    if device == "cuda":
        if torch.version.cuda is None:
            return f"this torch build has no CUDA support (torch {torch.__version__})"
        if not torch.cuda.is_available():
            return "torch was built with CUDA but no CUDA device is visible (torch.cuda.is_available() is False)"
    if device == "mps":
        if not torch.backends.mps.is_built():
            return f"this torch build has no MPS support (torch {torch.__version__}); MPS needs macOS on Apple silicon"
        if not torch.backends.mps.is_available():
            return "torch was built with MPS but no MPS device is available"
    return ""


def naive_timings(shape: Sequence[int], devices: Sequence[str], *, seed: int = 0) -> list[NaiveTiming]:
    """Run the tutorial's §1.2 timing code on ``shape``, in its order (numpy, gpu, cpu).

    The timed lines are the tutorial's; only the data comes from seeded generators instead of
    the global ones (same dtypes: ``np.random.random`` -> float64, ``torch.rand`` -> float32).
    """
    m, k, n = parse_shape(shape)
    rng, gen = np.random.default_rng(seed), torch.Generator().manual_seed(seed)
    out = []
    for device in [d for d in dict.fromkeys(("numpy", *ACCELERATORS, "cpu")) if d in devices]:
        if device == "numpy":
            x, y = rng.random((m, k)), rng.random((k, n))
            start_time = time.time()
            z = np.matmul(x, y)  # noqa: F841 (the tutorial's line)
            end_time = time.time()
            out.append(NaiveTiming("numpy", str(x.dtype), "ok", seconds=end_time - start_time))
            continue
        x, y = torch.rand(m, k, generator=gen), torch.rand(k, n, generator=gen)
        if device not in ACCELERATORS:  # torch_test_cpu
            x, y = x.cpu(), y.cpu()
            start_time = time.time()
            z = (x @ y)  # noqa: F841
            end_time = time.time()
            out.append(NaiveTiming(device, "float32", "ok", seconds=end_time - start_time))
            continue
        reason = _absence(device)
        if reason:  # the tutorial stops here: assert device == 'cuda'
            out.append(NaiveTiming(device, "float32", "absent", reason))
            continue
        sync = synchronizer(device)
        t0 = time.time()
        x, y = x.to(device), y.to(device)  # the first CUDA call also creates the context
        sync()
        setup = time.time() - t0
        start_time = time.time()
        z = (x @ y)  # noqa: F841
        end_time = time.time()
        sync()  # not in the tutorial: when was the result actually there?
        done = time.time() - start_time
        out.append(NaiveTiming(device, "float32", "ok", seconds=end_time - start_time, done_s=done, setup_s=setup))
    return out


def parse_shape(value: str | Sequence[int]) -> tuple[int, int, int]:
    """``"1x6400x5000"`` or ``(1, 6400, 5000)`` -> ``(M, K, N)`` for ``(M, K) @ (K, N)``."""
    try:
        if isinstance(value, str):
            parts = tuple(int(p) for p in value.lower().replace("*", "x").split("x"))
        else:
            parts = tuple(value)
        ok = len(parts) == 3 and all(isinstance(p, int) and not isinstance(p, bool) and p > 0 for p in parts)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise UsageError(f"shape {value!r} is not MxKxN with three positive integers; "
                         f"use e.g. 1x6400x5000 for (1, 6400) @ (6400, 5000)")
    return parts  # type: ignore[return-value]
