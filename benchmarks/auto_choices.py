"""fit's automatic choices against every fixed one: threads and precision, quiet and beside a busy process.

    python benchmarks/auto_choices.py all                # both tables, quiet and busy (about 10 minutes)
    python benchmarks/auto_choices.py threads            # auto vs threads=1 vs threads=2, quiet and busy
    python benchmarks/auto_choices.py precision          # auto vs fp32 vs bf16, quiet and busy
    python benchmarks/auto_choices.py all --quick        # a smoke check, about a minute

Each workload trains one epoch of a fixed number of rows with every variant in turn, round
after round (the first round is a warm-up and is not counted; the order of the variants turns
by one each round, so no variant always runs after the slow one). The "busy" condition starts
one competing process that spins on one core for the whole table (``python -c "while True:
pass"``), as a second user of the machine would.

Threads: ``auto`` is ``threads=None``, fit's default, whose choice is timed once and then
cached; ``auto, timed`` clears that cache before each of its fits, so it pays for the timing
every time (a new process's first fit of a shape); ``1`` and ``2`` are fixed counts. The
ratio is auto's time over the best fixed count's time in the same round, median of rounds:
1.00 means auto chose as well as the best fixed count.

Precision: ``auto``, ``fp32`` and ``bf16`` train the same network from the same weights with
fit's thread count; the ratios are auto's time over fp32's and over the best of fp32 and bf16
in the same round (median of rounds).

The numbers depend on the machine and on what else runs on it: report the CPU, its flags and
the load average with them (the script prints all three, the load average beside each row).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from typing import Any, Callable

import torch

import torchann
from torchann.bench.timing import cpu_model
from torchann.runtime import threads as thread_choice
from torchann.runtime.devices import BF16_GAIN, BF16_MIN_FLOPS, PRECISION_TIMES, cpu_capability
from torchann.runtime.threads import FLOPS_PER_THREAD, MEASURE_MIN_FLOPS, allowed_cores, step_flops

# name: (layer sizes, batch size, optimizer, lr, rows of the epoch)
THREAD_WORKLOADS = {
    "tiny 2-8-1, batch 2 (the tutorial's)": ((2, 8, 1), 2, "sgd", 1e-3, 2_000),
    "32-256-256-1, batch 32": ((32, 256, 256, 1), 32, "adam", 1e-3, 20_000),
    "64-256-256-10, batch 32 (torchann train on digits)": ((64, 256, 256, 10), 32, "adam", 1e-3, 20_000),
    "64-64-64-10, batch 32": ((64, 64, 64, 10), 32, "adam", 1e-3, 20_000),
    "32-256-256-1, batch 1024": ((32, 256, 256, 1), 1024, "adam", 1e-3, 100_000),
    "64-256-256-10, batch 1024": ((64, 256, 256, 10), 1024, "adam", 1e-3, 100_000),
}
PRECISION_WORKLOADS = {
    "32-256-256-1, batch 32": ((32, 256, 256, 1), 32, "adam", 1e-3, 20_000),
    "64-256-256-10, batch 32": ((64, 256, 256, 10), 32, "adam", 1e-3, 20_000),
    "32-256-256-1, batch 1024": ((32, 256, 256, 1), 1024, "adam", 1e-3, 20_000),
    "64-256-256-10, batch 1024": ((64, 256, 256, 10), 1024, "adam", 1e-3, 20_000),
}


def data(sizes: tuple[int, ...], rows: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(rows, sizes[0], generator=gen)
    y = torch.sin(x[:, :1] * 2) + 0.1 * x.sum(1, keepdim=True)
    return x, y.repeat(1, sizes[-1])


def train_seconds(sizes, x, y, *, batch, optimizer="adam", lr=1e-3, **options: Any) -> tuple[float, dict]:
    torch.manual_seed(0)
    model = torchann.mlp(sizes[0], list(sizes[1:-1]), sizes[-1])
    t0 = time.perf_counter()
    history = torchann.fit(model, x, y, epochs=1, batch_size=batch, optimizer=optimizer, lr=lr, seed=0,
                           device="cpu", **options)
    return time.perf_counter() - t0, history.info


def competitor() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


# label -> (fit options, what to do before each fit)
Variant = tuple[dict[str, Any], Callable[[], None]]


def nothing() -> None:
    pass


THREAD_VARIANTS: dict[str, Variant] = {
    "auto": ({"threads": None}, nothing),
    "auto, timed": ({"threads": None}, thread_choice.THREAD_TIMES.clear),
    "1": ({"threads": 1}, nothing),
    "2": ({"threads": 2}, nothing),
}
PRECISION_VARIANTS: dict[str, Variant] = {
    "auto": ({"precision": "auto"}, nothing),
    "fp32": ({"precision": "fp32"}, nothing),
    "bf16": ({"precision": "bf16"}, nothing),
}


def compare(workloads: dict, variants: dict[str, Variant], rounds: int, busy: bool, scale: float, log,
            **common: Any) -> list[dict[str, Any]]:
    """Seconds per variant per counted round, and what auto picked, for each workload."""
    out = []
    rival = competitor() if busy else None
    try:
        if rival is not None:
            time.sleep(0.5)  # let it reach the core
        for name, (sizes, batch, opt, lr, rows) in workloads.items():
            x, y = data(sizes, max(batch, int(rows * scale)))
            times: dict[str, list[float]] = {v: [] for v in variants}
            picked: dict[str, set] = {v: set() for v in variants}
            labels = list(variants)
            for r in range(rounds + 1):
                order = labels[r % len(labels):] + labels[:r % len(labels)]
                for label in order:
                    options, before = variants[label]
                    before()
                    seconds, info = train_seconds(sizes, x, y, batch=batch, optimizer=opt, lr=lr,
                                                  **{**common, **options})
                    picked[label].add((info.get("threads"), info["precision"]))
                    if r:
                        times[label].append(seconds)
                if r:
                    log(f"  {'busy' if busy else 'quiet'} {name}: round {r} "
                        + " ".join(f"{k}={v[-1]:.3f}s" for k, v in times.items()))
            model = torchann.mlp(sizes[0], list(sizes[1:-1]), sizes[-1])
            out.append({"workload": name, "condition": "busy" if busy else "quiet", "rows": len(x),
                        "mflop_per_step": step_flops(model, batch) / 1e6, "times": times, "picked": picked,
                        "load": load()})
    finally:
        if rival is not None:
            rival.kill()
            rival.wait()
    return out


def ratio(times: dict[str, list[float]], auto: str, against: tuple[str, ...]) -> float:
    """Median over rounds of auto's time over the best of ``against`` in the same round."""
    return statistics.median(times[auto][i] / min(times[a][i] for a in against) for i in range(len(times[auto])))


def _table(results: list[dict[str, Any]], head: str, align: str, row) -> list[str]:
    """A markdown table, one line per result: the workload's columns, ``row``'s, the load."""
    lines = [f"| workload | MFLOP/step | condition | {head} | load average after |", f"|---|---:|---|{align}|---|"]
    for r in results:
        med = {k: statistics.median(v) for k, v in r["times"].items()}
        lines.append(f"| {r['workload']} | {r['mflop_per_step']:.2f} | {r['condition']} | {row(r, r['times'], med)} | "
                     f"{r['load']} |")
    return lines


def thread_lines(results: list[dict[str, Any]]) -> list[str]:
    def row(r, t, med) -> str:
        chosen = ",".join(str(n) for n in sorted({th for th, _ in r["picked"]["auto"]}))
        return (f"{chosen} | {med['auto']:.3f} | {med['auto, timed']:.3f} | {med['1']:.3f} | {med['2']:.3f} | "
                f"{ratio(t, 'auto', ('1', '2')):.2f} | {ratio(t, 'auto, timed', ('1', '2')):.2f}")

    return _table(results, "auto picked | auto s | auto, timed s | 1 thread s | 2 threads s | auto / best fixed "
                           "| auto, timed / best fixed", "---:|---:|---:|---:|---:|---:|---:", row)


def precision_lines(results: list[dict[str, Any]]) -> list[str]:
    def row(r, t, med) -> str:
        chosen = ",".join(sorted({p for _, p in r["picked"]["auto"]}))
        speed = statistics.median(a / b for a, b in zip(t["fp32"], t["bf16"]))
        return (f"{chosen} | {med['auto']:.3f} | {med['fp32']:.3f} | {med['bf16']:.3f} | {speed:.2f}x | "
                f"{ratio(t, 'auto', ('fp32',)):.2f} | {ratio(t, 'auto', ('fp32', 'bf16')):.2f}")

    return _table(results, "auto picked | auto s | fp32 s | bf16 s | bf16 / fp32 speed | auto / fp32 "
                           "| auto / best of fp32, bf16", "---|---:|---:|---:|---:|---:|---:", row)


def header() -> list[str]:
    return [
        f"CPU: {cpu_model()}, {allowed_cores()} usable cores; {cpu_capability().describe()}; torch {torch.__version__}",
        f"FLOPS_PER_THREAD={FLOPS_PER_THREAD:.0e}, MEASURE_MIN_FLOPS={MEASURE_MIN_FLOPS:.0e}, "
        f"BF16_MIN_FLOPS={BF16_MIN_FLOPS:.0e}, BF16_GAIN={BF16_GAIN}",
        f"load average at start: {load()}",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("part", choices=["threads", "precision", "all"])
    parser.add_argument("--quick", action="store_true", help="a tenth of the rows and one counted round")
    parser.add_argument("--rounds", type=int, default=None, help="counted rounds (default 5, 1 with --quick)")
    parser.add_argument("--conditions", default="quiet,busy", help="quiet, busy or both")
    parser.add_argument("--scale", type=float, default=None, help="fraction of the default rows (0.1 with --quick)")
    parser.add_argument("--only", default="", help="only the workloads whose name contains this text")
    args = parser.parse_args(argv)
    pick = lambda table: {k: v for k, v in table.items() if args.only in k}  # noqa: E731
    rounds = args.rounds or (1 if args.quick else 5)
    scale = args.scale or (0.1 if args.quick else 1.0)
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    conditions = [c == "busy" for c in args.conditions.split(",")]
    lines = header()
    if args.part in ("threads", "all"):
        results = []
        for busy in conditions:
            results += compare(pick(THREAD_WORKLOADS), THREAD_VARIANTS, rounds, busy, scale, log, precision="fp32")
        lines += ["", "Threads (precision fp32):", ""] + thread_lines(results)
    if args.part in ("precision", "all"):
        results = []
        for busy in conditions:
            PRECISION_TIMES.clear()
            results += compare(pick(PRECISION_WORKLOADS), PRECISION_VARIANTS, rounds, busy, scale, log)
        lines += ["", "Precision (threads chosen by fit):", ""] + precision_lines(results)
    lines.append(f"\nload average at end: {load()}; {rounds} counted round(s) after a warm-up round, "
                 f"rows scaled by {scale}")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
