"""Matmul benchmark: the tutorial's numpy / torch-CPU / torch-GPU timing (§1.2), done right.

``bench_matmul`` times one product ``(M, K) @ (K, N)`` on every backend with the same dtype,
after a warm-up, with the device synchronised (CUDA events on CUDA), over many repeats, and
reports medians with their spread, GFLOP/s and GB/s. Beside it, it runs the tutorial's own
single-shot timing (``time.time()`` around one call, numpy float64 against torch float32, no
warm-up, no synchronisation) and explains from the measured numbers why that misleads.

``time_call`` and ``peak_gflops`` are shared with the training benchmarks.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ..core.choices import Choice, parse
from ..runtime.devices import cpu_capability
from ..core.errors import UsageError
from .explain import explain
from . import naive
from .naive import NaiveTiming, _absence, naive_timings, parse_shape
from .timing import Timing, _check_counts, bf16_supported, cpu_model, machine_info, synchronizer, time_call

__all__ = ["Backend", "MatmulDtype", "peak_gflops", "matmul_inputs", "MatmulRow", "MatmulReport",
    "bench_matmul"]

TUTORIAL_SHAPE = (1, 6400, 5000)  # x = (1, 6400), y = (6400, 5000) in the tutorial


class Backend(Choice):
    NUMPY = "numpy"
    CPU = "cpu"
    CUDA = "cuda"
    MPS = "mps"


class MatmulDtype(Choice):
    FLOAT32 = "float32"
    FLOAT64 = "float64"
    BFLOAT16 = "bfloat16"
    FLOAT16 = "float16"


_DTYPE_ALIASES = {"fp32": "float32", "float": "float32", "fp64": "float64", "double": "float64",
                  "bf16": "bfloat16", "fp16": "float16", "half": "float16"}
_TORCH_DTYPES = {"float32": torch.float32, "float64": torch.float64,
                 "bfloat16": torch.bfloat16, "float16": torch.float16}
_NUMPY_DTYPES = {"float32": np.float32, "float64": np.float64, "float16": np.float16}  # no bfloat16
# Largest error of a result, relative to max |exact result|, that still counts as the right product.
_TOLERANCE = {"float64": 1e-10, "float32": 1e-4, "bfloat16": 1e-2, "float16": 1e-2}


def _dtype(value: object) -> MatmulDtype:
    text = str(value).strip().lower()
    if text.startswith("torch."):
        text = text[len("torch."):]
    return parse(MatmulDtype, _DTYPE_ALIASES.get(text, text), name="dtype")


def peak_gflops(dtype: str = "float32", size: int = 2048, *, device: str = "cpu",
                repeats: int = 5, warmup: int = 1) -> float:
    """This machine's large-matmul ceiling: GFLOP/s of a square ``size x size`` product.

    A training benchmark divides its own GFLOP/s by this to report the share of the ceiling.
    Raises ``UsageError`` for bfloat16 where ``bf16_supported(device)`` is false.
    """
    dt = _dtype(dtype)
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise UsageError(f"size must be a positive integer, got {size!r}")
    if dt is MatmulDtype.BFLOAT16 and not bf16_supported(device):
        raise UsageError(f"bfloat16 matmul has no native support on {device!r} here; measure float32 instead")
    gen = torch.Generator().manual_seed(0)
    a = torch.rand(size, size, generator=gen).to(device=device, dtype=_TORCH_DTYPES[dt.value])
    b = torch.rand(size, size, generator=gen).to(device=device, dtype=_TORCH_DTYPES[dt.value])
    timing = time_call(lambda: a @ b, device=device, repeats=repeats, warmup=warmup)
    return 2 * size**3 / timing.median / 1e9


# --------------------------------------------------------------------------- the benchmark


@dataclass
class MatmulRow:
    """The careful timing of ``(M, K) @ (K, N)`` on one backend in one dtype. Times in seconds."""

    device: str                   # numpy, cpu, cuda, mps
    dtype: str
    status: str                   # ok, absent (no such device here), unsupported (dtype), mismatch (wrong result)
    reason: str = ""              # why a row is not ok
    device_name: str = ""
    median_s: float | None = None
    min_s: float | None = None
    max_s: float | None = None
    q1_s: float | None = None     # quartiles of the samples; IQR = q3_s - q1_s
    q3_s: float | None = None
    samples: int = 0
    number: int = 0               # calls averaged in each sample
    first_call_s: float | None = None   # one synchronised call before warm-up
    gflops: float | None = None   # 2*M*K*N / median
    gbps: float | None = None     # (bytes of x, y and the result) / median
    copy_s: float | None = None   # host -> device copy of x and y (accelerators only), median
    copy_gbps: float | None = None
    launch_s: float | None = None  # accelerators: a warm call returns after this, before the work is done
    max_rel_error: float | None = None  # max |result - exact| / max |exact|


@dataclass
class MatmulReport:
    shape: tuple[int, int, int]   # (M, K, N)
    dtype: str
    repeats: int
    warmup: int
    seed: int
    flops: int                    # 2*M*K*N
    bytes: int                    # (M*K + K*N + M*N) * itemsize of dtype
    rows: list[MatmulRow]
    naive: list[NaiveTiming]
    reference: list[MatmulRow] = field(default_factory=list)  # numpy float64/float32 to explain dtype
    explanation: list[str] = field(default_factory=list)
    machine: dict[str, Any] = field(default_factory=dict)
    # The CPU's kernels and bf16 support (devices.cpu_capability), and the torch CPU row in the
    # other of float32 / bfloat16, so that both dtypes' GFLOP/s stand side by side.
    capability: str = ""
    other_dtype: list[MatmulRow] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def find(self, device: str, dtype: str | None = None) -> MatmulRow | None:
        """The careful row for ``device`` (in ``dtype``, by default the report's), if measured."""
        dtype = dtype or self.dtype
        rows = [*self.rows, *self.reference, *self.other_dtype]
        return next((r for r in rows if r.device == device and r.dtype == dtype), None)


def _device_name(device: str) -> str:
    if device == "cuda":
        return torch.cuda.get_device_name()
    if device == "mps":
        return "Apple MPS"
    return cpu_model()


def matmul_inputs(shape: str | Sequence[int], dtype: str = "float32", *,
                  seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The benchmark's inputs: uniform [0, 1) float64 from ``seed``, rounded to ``dtype``, on the CPU.

    Every backend gets these same numbers (numpy as a view of them), so all compute one product.
    """
    m, k, n = parse_shape(shape)
    rng = np.random.default_rng(seed)
    x64, y64 = rng.random((m, k)), rng.random((k, n))
    tdt = _TORCH_DTYPES[_dtype(dtype).value]
    return torch.from_numpy(x64).to(tdt), torch.from_numpy(y64).to(tdt)


def _careful_row(device: str, dtype: str, seed: int, shape: tuple[int, int, int], exact: np.ndarray,
                 repeats: int, warmup: int) -> MatmulRow:
    """Time ``x @ y`` on ``device`` in ``dtype``; ``exact`` is the float64 product of the rounded inputs."""
    reason = _absence(device)
    if reason:
        return MatmulRow(device, dtype, "absent", reason)
    if device == "numpy" and dtype not in _NUMPY_DTYPES:
        return MatmulRow(device, dtype, "unsupported", f"numpy has no {dtype} type")
    hx, hy = matmul_inputs(shape, dtype, seed=seed)
    exact_max = float(np.abs(exact).max()) or 1.0
    row = MatmulRow(device, dtype, "ok", device_name=_device_name(device))
    if device == "numpy":
        a, b = hx.numpy(), hy.numpy()
        fn = lambda: np.matmul(a, b)  # noqa: E731
    else:
        sync = synchronizer(device)
        if device in naive.ACCELERATORS:
            copy = time_call(lambda: (hx.to(device), hy.to(device)), device=device,
                             repeats=max(3, min(repeats, 10)), warmup=1)
            row.copy_s = copy.median
            row.copy_gbps = (hx.numel() + hy.numel()) * hx.element_size() / copy.median / 1e9
        a, b = hx.to(device), hy.to(device)
        sync()
        fn = lambda: a @ b  # noqa: E731
    sync = synchronizer(device)
    t0 = time.perf_counter()
    result = fn()
    sync()
    row.first_call_s = time.perf_counter() - t0
    got = result.float().cpu().numpy() if isinstance(result, torch.Tensor) else result
    row.max_rel_error = float(np.abs(got.astype(np.float64) - exact).max()) / exact_max
    if not row.max_rel_error <= _TOLERANCE[dtype]:
        row.status = "mismatch"
        row.reason = (f"result differs from the exact product by {row.max_rel_error:.2g} of its largest value "
                      f"(tolerance {_TOLERANCE[dtype]:g} for {dtype})")
    timing = time_call(fn, device=device, repeats=repeats, warmup=warmup)
    row.median_s, row.min_s, row.max_s = timing.median, timing.min, timing.max
    row.q1_s, row.q3_s = timing.quartiles
    row.samples, row.number = len(timing.samples), timing.number
    m, k, n = shape
    row.gflops = 2 * m * k * n / timing.median / 1e9
    row.gbps = (m * k + k * n + m * n) * hx.element_size() / timing.median / 1e9
    if device in naive.ACCELERATORS:
        launches = []
        for _ in range(max(3, min(repeats, 10))):
            t0 = time.perf_counter()
            fn()
            launches.append(time.perf_counter() - t0)
            sync()
        row.launch_s = statistics.median(launches)
    return row


def bench_matmul(shape: str | Sequence[int] = TUTORIAL_SHAPE, *, dtype: str = "float32",
                 devices: str | Sequence[str] = ("numpy", "cpu", "cuda", "mps"),
                 repeats: int = 20, warmup: int = 3, seed: int = 0,
                 progress: Callable[[str], None] | None = None) -> MatmulReport:
    """Time ``(M, K) @ (K, N)`` on numpy, torch CPU, CUDA and MPS, carefully and the tutorial's way.

    Args:
        shape: ``(M, K, N)`` or ``"MxKxN"``; the default is the tutorial's (1, 6400) @ (6400, 5000).
        dtype: float32, float64, bfloat16 or float16, used on every backend (numpy has no bfloat16).
        devices: backends to time; those absent here get a row with status "absent" and the reason.
        repeats: samples per backend; warmup: untimed calls before them.
        progress: called with a short message before each step (the CLI shows it on stderr).

    Returns:
        A ``MatmulReport``: careful ``rows`` (median, min, max, quartiles, GFLOP/s, GB/s, copy
        time), the tutorial's ``naive`` timings, numpy ``reference`` rows in float64/float32, the
        torch CPU row in the other of float32/bfloat16 (``other_dtype``), the CPU's
        ``capability`` (its kernels and whether it runs bf16 natively), and an ``explanation`` (sentences built from these numbers) of what the naive timing measured.

    Example:
        >>> report = bench_matmul("64x128x96", repeats=5)
        >>> report.find("cpu").gflops  # doctest: +SKIP
    """
    m, k, n = parse_shape(shape)
    dt = _dtype(dtype).value
    if isinstance(devices, str):
        devices = [d for d in devices.split(",") if d.strip()]
    if any(str(d).strip().lower() == "gpu" for d in devices):
        raise UsageError("unknown device 'gpu'; choose from numpy, cpu, cuda, mps "
                         "(a GPU is 'cuda' on NVIDIA and AMD, 'mps' on Apple silicon)")
    chosen = list(dict.fromkeys(parse(Backend, d, name="device").value for d in devices))
    if not chosen:
        raise UsageError("devices is empty; name one or more of: " + ", ".join(Backend.values()))
    _check_counts(repeats, warmup)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise UsageError(f"seed must be an integer, got {seed!r}")
    say = progress or (lambda _msg: None)

    # The tutorial's timing goes first, so that its first calls are as cold as in the tutorial.
    say("running the tutorial's single-shot timing")
    naive = naive_timings((m, k, n), chosen, seed=seed)

    exact_cache: dict[str, np.ndarray] = {}

    def measure(device: str, dtype_: str) -> MatmulRow:
        if dtype_ not in exact_cache:  # float64 product of the inputs rounded to dtype_
            xr, yr = (v.double().numpy() for v in matmul_inputs((m, k, n), dtype_, seed=seed))
            exact_cache[dtype_] = xr @ yr
        say(f"timing {device} {dtype_}")
        return _careful_row(device, dtype_, seed, (m, k, n), exact_cache[dtype_], repeats, warmup)

    rows = [measure(d, dt) for d in chosen]
    reference = []
    if "numpy" in chosen:  # numpy float64 vs float32 is what the tutorial's numbers compare
        reference = [measure("numpy", d) for d in ("float64", "float32") if d != dt]
    other = {"float32": "bfloat16", "bfloat16": "float32"}.get(dt)
    other_rows = [measure("cpu", other)] if other and "cpu" in chosen else []
    itemsize = torch.empty((), dtype=_TORCH_DTYPES[dt]).element_size()
    report = MatmulReport((m, k, n), dt, repeats, warmup, seed, 2 * m * k * n,
                          (m * k + k * n + m * n) * itemsize, rows, naive, reference, machine=machine_info(),
                          capability=cpu_capability().describe(), other_dtype=other_rows)
    report.explanation = explain(report)
    return report


# --------------------------------------------------------------------------- the explanation


