"""Device choice, seeding, and the precision ``auto`` picks: bf16 only where it is measured faster.

Every entry point resolves the device and seeds first. ``resolve_precision`` then turns
``precision="auto"`` into bf16 or fp32. bf16 must pass three checks, cheapest first:

* the hardware multiplies bfloat16 natively: a CPU with AMX or AVX512-BF16 (``/proc/cpuinfo``
  flags, unless ``ONEDNN_MAX_CPU_ISA`` keeps oneDNN below them), or a CUDA device with bf16
  support. Elsewhere (an AVX2-only CPU, say) bf16 is converted to and from float32 around every
  product and runs slower than float32, so it is never picked there and nothing is timed;
* the step does at least ``BF16_MIN_FLOPS`` of work: below it the casts cost more than the
  faster products save, even with AMX, and tiny networks (the tutorial's 2-8-1) keep the
  float32 numbers the tutorial prints;
* a short timing of this step's own products (``measure.step_timer``: the model's linear
  layers at the step's rows, forward and both gradients, fp32 against bf16 with its casts)
  finds bf16 at least ``BF16_GAIN`` times faster. It runs once per process for a shape, device
  and thread count (``PRECISION_TIMES``, a cache tests can clear) and takes a few milliseconds
  to a few tenths of a second, against a fit that runs for seconds when the step is that large.
  The margin keeps ``auto`` from taking bf16 for a gain that the timing's noise or the
  real step's extra work (activations, the loss) would eat.

An explicit ``precision="bf16"`` on a CPU without native support still runs, with one warning
that gives the cost measured on this machine.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np
import torch

from ..core.choices import Precision, parse
from ..core.errors import UsageError
from .measure import MeasuredCache, median_times, step_timer
from ..core.warn import warn

__all__ = ["resolve_device", "seed_everything", "CpuCapability", "cpu_capability", "native_bf16",
           "BF16_MIN_FLOPS", "BF16_GAIN", "PRECISION_TIMES", "bf16_step_times", "resolve_precision"]

# Step work (6 x rows x parameters) from which bf16 autocast beats float32 on a CPU with AMX
# (measured: docs/benchmarks.md, "Precision"); below it ``auto`` keeps float32.
BF16_MIN_FLOPS = 200e6
# How much faster bf16 must time than fp32 for ``auto`` to take it.
BF16_GAIN = 1.1
# (device, layer shapes, rows, threads) -> (fp32 seconds, bf16 seconds) of one step's products.
PRECISION_TIMES = MeasuredCache()

# oneDNN ISA limits (ONEDNN_MAX_CPU_ISA) that still include native bf16 instructions.
_BF16_ISAS = {"ALL", "DEFAULT", "AVX512_CORE_BF16", "AVX512_CORE_FP16", "AVX10_1_512", "AVX512_CORE_AMX",
              "AVX512_CORE_AMX_FP16", "AVX10_1_512_AMX", "AVX10_1_512_AMX_FP16", "AVX10_2_512",
              "AVX10_2_512_AMX_2"}
_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "avx512_fp16")


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``"auto"`` picks cuda, then mps, then cpu; anything else must be available here."""
    if device is None or str(device) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise UsageError(f"unknown device {device!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"device {device!r} requested but CUDA is not available here; use --device cpu or auto")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise UsageError(f"device {device!r} requested but MPS is not available here; use --device cpu or auto")
    return dev


def seed_everything(seed: int) -> None:
    """Seed torch (all devices), numpy and Python's ``random``."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise UsageError(f"seed must be an integer, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# -- what the hardware runs natively ---------------------------------------------------------


@dataclass(frozen=True)
class CpuCapability:
    """The CPU features that decide how fast float32 and bfloat16 run."""

    torch_isa: str             # torch.backends.cpu.get_cpu_capability(): AVX512, AVX2, DEFAULT, ...
    flags: frozenset[str]      # of _FLAGS, those /proc/cpuinfo lists
    onednn_limit: str | None   # ONEDNN_MAX_CPU_ISA, when set

    @property
    def native_bf16(self) -> bool:
        """AMX or AVX512-BF16, and oneDNN allowed to use them."""
        has = bool({"amx_bf16", "avx512_bf16"} & self.flags)
        return has and (self.onednn_limit is None or self.onednn_limit.upper() in _BF16_ISAS)

    def describe(self) -> str:
        """One line: ``AVX512 (amx_bf16 avx512_bf16 ...): native bf16`` ."""
        flags = " ".join(f for f in _FLAGS if f in self.flags) or "no flags read"
        limit = f", ONEDNN_MAX_CPU_ISA={self.onednn_limit}" if self.onednn_limit else ""
        return f"{self.torch_isa} ({flags}{limit}): {'native' if self.native_bf16 else 'no native'} bf16"


def cpu_capability(*, cpuinfo: str = "/proc/cpuinfo", environ: Mapping[str, str] | None = None,
                   torch_isa: str | None = None) -> CpuCapability:
    """Read this CPU's capability (``/proc/cpuinfo`` flags and torch's kernel ISA)."""
    environ = os.environ if environ is None else environ
    flags: set[str] = set()
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    flags = set(line.split(":", 1)[1].split()) & set(_FLAGS)
                    break
    except OSError:
        pass
    if torch_isa is None:
        try:
            torch_isa = torch.backends.cpu.get_cpu_capability()
        except (AttributeError, RuntimeError):
            torch_isa = "unknown"
    return CpuCapability(torch_isa, frozenset(flags), environ.get("ONEDNN_MAX_CPU_ISA") or None)


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` multiplies bfloat16 natively (not through float32 conversions)."""
    if device.type == "cuda":
        try:
            return bool(torch.cuda.is_bf16_supported(including_emulation=False))
        except TypeError:  # older torch: no including_emulation
            return bool(torch.cuda.is_bf16_supported())
    if device.type == "cpu":
        return cpu_capability().native_bf16
    return False  # mps and others: auto keeps float32


def _bf16_cost(size: int = 512, repeats: int = 5) -> tuple[float, float]:
    """GFLOP/s of a ``size`` square matmul in float32 and in bfloat16 on the CPU (a few ms)."""
    import time

    out = []
    for dtype in (torch.float32, torch.bfloat16):
        a = torch.ones(size, size, dtype=dtype)
        a @ a  # warm-up
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            a @ a
            best = min(best, time.perf_counter() - t0)
        out.append(2 * size**3 / best / 1e9)
    return out[0], out[1]


def bf16_step_times(shapes: tuple[tuple[int, int], ...], rows: int, device: torch.device, *,
                    cache: MeasuredCache = PRECISION_TIMES) -> tuple[float, float]:
    """Seconds of one step's products for ``shapes`` at ``rows`` rows, in fp32 and in bf16
    (median of interleaved rounds, ``measure.median_times``), measured once and cached."""
    key = (str(device), tuple(shapes), int(rows), torch.get_num_threads() if device.type == "cpu" else None)
    hit = cache.get(key)
    if hit is None:
        times = median_times((torch.float32, torch.bfloat16), step_timer(tuple(shapes), rows, device))
        hit = (times[torch.float32], times[torch.bfloat16])
        cache.put(key, hit)
    return hit  # type: ignore[return-value]


_warned_bf16 = False


def resolve_precision(precision: str | Precision, device: torch.device, flops: float, *,
                      native: bool | None = None, timing: Callable[[], tuple[float, float]] | None = None,
                      measure: Callable[[], tuple[float, float]] = _bf16_cost) -> Precision:
    """The precision a step of ``flops`` work trains in on ``device``: fp32 or bf16.

    Args:
        native: whether ``device`` runs bf16 natively (``native_bf16(device)`` when None).
        timing: seconds of the step in fp32 and in bf16 (``bf16_step_times`` of the model's
            shapes); called only when ``auto`` gets past the native and work checks. Without
            it ``auto`` keeps fp32: nothing was measured to be faster.
        measure: for the warning on an explicit bf16 without native support, the float32 and
            bfloat16 GFLOP/s of a square matmul.

    ``auto`` gives bf16 where ``native``, ``flops >= BF16_MIN_FLOPS`` and
    ``fp32 seconds >= BF16_GAIN * bf16 seconds``; else fp32.
    """
    global _warned_bf16
    precision = parse(Precision, precision, name="precision")
    if precision is Precision.AUTO:
        if flops < BF16_MIN_FLOPS or timing is None or not (native_bf16(device) if native is None else native):
            return Precision.FP32
        fp32, bf16 = timing()
        return Precision.BF16 if fp32 >= BF16_GAIN * bf16 else Precision.FP32
    native = native_bf16(device) if native is None else native
    if precision is Precision.BF16 and device.type == "cpu" and not native and not _warned_bf16:
        _warned_bf16 = True
        fp32, bf16 = measure()
        warn(
            f"precision='bf16' on a CPU without native bfloat16 ({cpu_capability().describe()}): a 512x512 "
            f"matmul runs at {bf16:.0f} GFLOP/s in bf16 against {fp32:.0f} in fp32 here "
            f"({fp32 / max(bf16, 1e-9):.1f}x slower); use precision='auto' or 'fp32'",
            RuntimeWarning)
    return precision
