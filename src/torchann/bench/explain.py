"""Why the tutorial's matmul timing misled, said in sentences drawn from a measured
``MatmulReport``: the dtype, the warm-up, the missing synchronisation, the copies."""

from __future__ import annotations

import time
from typing import Any

from . import naive as naive_timing

__all__ = ["explain"]

def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3g} ms"


def explain(report: Any) -> list[str]:
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
    for dev in naive_timing.ACCELERATORS:
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
