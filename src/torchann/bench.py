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

from .choices import Choice, parse
from .devices import cpu_capability
from .errors import UsageError
from .timing import Timing, _check_counts, bf16_supported, cpu_model, machine_info, synchronizer, time_call

__all__ = [
    "Backend", "MatmulDtype", "Timing", "time_call", "peak_gflops", "bf16_supported",
    "parse_shape", "matmul_inputs", "MatmulRow", "NaiveTiming", "MatmulReport", "bench_matmul", "naive_timings",
]

TUTORIAL_SHAPE = (1, 6400, 5000)  # x = (1, 6400), y = (6400, 5000) in the tutorial
ACCELERATORS = ("cuda", "mps")


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
class NaiveTiming:
    """The tutorial's timing: ``time.time()`` around one call, no warm-up, no synchronisation."""

    device: str
    dtype: str                    # numpy: float64 (np.random.random), torch: float32 (torch.rand)
    status: str                   # ok or absent
    reason: str = ""
    seconds: float | None = None  # what the tutorial prints
    done_s: float | None = None   # accelerators: from the start until the result was ready
    setup_s: float | None = None  # accelerators: x.to(device), y.to(device), untimed in the tutorial


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


def _device_name(device: str) -> str:
    if device == "cuda":
        return torch.cuda.get_device_name()
    if device == "mps":
        return "Apple MPS"
    return cpu_model()


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
        if device in ACCELERATORS:
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
    if device in ACCELERATORS:
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

def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3g} ms"


def explain(report: MatmulReport) -> list[str]:
    """Sentences, built from the report's numbers, on why the tutorial's timing misleads."""
    out: list[str] = []
    naive = {t.device: t for t in report.naive}
    ok = lambda r: r is not None and r.status != "absent" and r.median_s is not None  # noqa: E731
    np64, np32, cpu32 = (report.find(d, t) for d, t in (("numpy", "float64"), ("numpy", "float32"), ("cpu", "float32")))
    if ok(np64) and ok(np32):
        ratio = np64.median_s / np32.median_s
        verdict = ("the dtype alone is enough to explain the tutorial's 'torch CPU 2x faster than numpy'"
                   if ratio >= 1.5 else f"on this machine the dtype alone makes a {ratio:.2g}x difference")
        tutorial_pair = (f" The tutorial's pair, numpy float64 against torch CPU float32, is {_ms(np64.median_s)} "
                         f"against {_ms(cpu32.median_s)} ({np64.median_s / cpu32.median_s:.2g}x)." if ok(cpu32) else "")
        out.append(f"The tutorial's numpy arrays come from np.random.random and are float64 (8 bytes a number), "
                   f"while torch.rand makes float32 (4 bytes). Timed carefully here, numpy takes "
                   f"{_ms(np64.median_s)} in float64 and {_ms(np32.median_s)} in float32 ({ratio:.2g}x): "
                   f"{verdict}.{tutorial_pair}")
    npr, cpu = report.find("numpy"), report.find("cpu")
    if ok(npr) and ok(cpu):
        fast, slow = sorted([npr, cpu], key=lambda r: r.median_s)
        out.append(f"With the same dtype ({report.dtype}) numpy takes {_ms(npr.median_s)} and torch CPU "
                   f"{_ms(cpu.median_s)}: {fast.device} is {slow.median_s / fast.median_s:.2g}x faster; both call "
                   f"an optimised BLAS (numpy: {report.machine.get('numpy_blas')}, torch: "
                   f"{report.machine.get('torch_blas')}).")
    m, k, n = report.shape
    intensity = report.flops / report.bytes
    measured = [r for r in report.rows if ok(r)]
    if measured:
        best_bw, best_fl = max(measured, key=lambda r: r.gbps), max(measured, key=lambda r: r.gflops)
        what = (f"it is limited by memory bandwidth, not arithmetic, so GB/s is the number to compare (best here "
                f"{best_bw.gbps:.3g} GB/s on {best_bw.device}) and a smaller dtype is faster because it moves "
                f"fewer bytes" if intensity < 10 else
                f"it is limited by arithmetic, so GFLOP/s is the number to compare (best here "
                f"{best_fl.gflops:.3g} GFLOP/s on {best_fl.device})")
        out.append(f"({m}, {k}) @ ({k}, {n}) does {report.flops / 1e9:.3g} GFLOP on {report.bytes / 1e6:.3g} MB "
                   f"in {report.dtype}, {intensity:.2g} flop per byte: {what}.")
    for dev in ("numpy", "cpu"):
        t, row = naive.get(dev), report.find(dev, naive[dev].dtype if dev in naive else None)
        if t is None or t.status != "ok" or not ok(row):
            continue
        if t.seconds > row.max_s:
            where = ("above every warm sample: it carried one-off costs (thread start-up, first touch of fresh "
                     "memory, cold caches)")
        elif t.seconds < row.min_s:
            where = "below every warm sample: a single reading is one draw from a noisy spread and can land anywhere"
        else:
            where = "inside the spread of the warm samples: one reading cannot say where in that spread it fell"
        out.append(f"The tutorial's single time.time() reading of {'numpy' if dev == 'numpy' else 'torch CPU'} "
                   f"({t.dtype}) gave {_ms(t.seconds)}; {row.samples} warm samples have median {_ms(row.median_s)} "
                   f"and range {_ms(row.min_s)} to {_ms(row.max_s)}, so the reading lies {where}.")
    out.append(f"The tutorial's printed times all lie within 5 us of whole milliseconds (4, 8, 9, 20, 21 ms), "
               f"the mark of a clock that ticks once a millisecond, coarse for a product of a few ms; here "
               f"time.time() resolves {time.get_clock_info('time').resolution:.0e} s and the careful timing "
               f"uses time.perf_counter (CUDA events on CUDA).")
    for dev in ACCELERATORS:
        t, row = naive.get(dev), report.find(dev)
        if t is None or row is None:
            continue
        if t.status != "ok" or not ok(row):
            if dev == "cuda":
                out.append(f"CUDA is absent here: {row.reason}. So this is stated, not measured: the first CUDA "
                           f"call pays for creating the CUDA context and starting cuBLAS, which can take longer "
                           f"than the product itself, and a CUDA call returns as soon as its kernel is queued, so "
                           f"time.time() around x @ y without torch.cuda.synchronize() measures start-up plus a "
                           f"launch, not the product: that is what the tutorial's 20 ms 'GPU' reading measured.")
            continue
        out.append(f"On {dev} ({row.device_name}) the tutorial's unsynchronised reading gave {_ms(t.seconds)}, but "
                   f"the result was ready only {_ms(t.done_s)} after the call started; moving x and y there first "
                   f"(which starts the device) took {_ms(t.setup_s)}; the warm synchronised median is "
                   f"{_ms(row.median_s)}, so the first call paid {_ms(max(t.done_s - row.median_s, 0.0))} "
                   f"of start-up.")
        out.append(f"A warm {dev} call returns after {_ms(row.launch_s)}, before its work is done "
                   f"({_ms(row.median_s)}): without synchronisation a timer measures the launch, not the product.")
        out.append(f"Copying x and y from the host to {dev} takes {_ms(row.copy_s)} ({row.copy_gbps:.3g} GB/s), "
                   f"{row.copy_s / row.median_s:.2g}x the product itself: for one product of this size the "
                   f"accelerator pays off only if the data already lives there.")
    load, cores = report.machine.get("load_average_1min"), report.machine.get("cpu_count") or 1
    if load is not None and load > 0.25 * cores:
        out.append(f"Other work shared the CPU during this run (1-minute load average {load:.2f} on {cores} cores): "
                   f"CPU timings are noisier than on an idle machine, which a single reading cannot show but the "
                   f"min-max range does.")
    if measured:
        order = ", ".join(f"{r.device} {_ms(r.median_s)}" for r in sorted(measured, key=lambda r: r.median_s))
        out.append(f"So the tutorial's 'torch.cpu > np > torch.gpu' compared float64 with float32 and device "
                   f"start-up with warm CPU code. With one dtype ({report.dtype}) and warm, synchronised, repeated "
                   f"timing the order here, fastest first by median, is: {order}.")
    return out
