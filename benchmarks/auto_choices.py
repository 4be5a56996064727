"""fit's automatic choices against fixed ones: threads (quiet and beside a busy process) and precision.

    python benchmarks/auto_choices.py threads            # default vs threads=1 vs threads=2, quiet and busy
    python benchmarks/auto_choices.py precision          # fp32 vs bf16 vs auto over layer widths and batches
    python benchmarks/auto_choices.py threads --quick    # a smoke check, well under a minute

Threads: each workload trains for a fixed number of rows with ``threads=None`` (fit decides),
``threads=1`` and ``threads=2``, in turn, round after round (the first round is a warm-up). The
"busy" condition starts one competing process that spins on one core for the whole table
(``python -c "while True: pass"``), as a second user of the machine would. A row reports the
median seconds per epoch and, per round, the default's time over the best fixed count's time
in that round (median of rounds): 1.00 means the default chose as well as the best fixed count.

Precision: fp32, bf16 and auto train the same network from the same weights, interleaved;
the ratio is bf16's samples/s over fp32's in the same round (median of rounds), and the share
of the measured matmul ceiling of each dtype (``peak_gflops``) is given beside each rate.

The numbers depend on the machine and on what else runs on it: report the CPU, its flags and
the load average with them (the script prints all three).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from typing import Any

import torch

import torchann
from torchann.bench.matmul import peak_gflops
from torchann.runtime.devices import BF16_MIN_FLOPS, cpu_capability
from torchann.runtime.threads import FLOPS_PER_THREAD, allowed_cores, step_flops
from torchann.bench.timing import cpu_model

# name: (layer sizes, batch size, optimizer, lr)
THREAD_WORKLOADS = {
    "tiny 2-8-1, batch 2 (the tutorial's)": ((2, 8, 1), 2, "sgd", 1e-3),
    "32-256-256-1, batch 32": ((32, 256, 256, 1), 32, "adam", 1e-3),
    "64-256-256-10, batch 32 (torchann train on digits)": ((64, 256, 256, 10), 32, "adam", 1e-3),
    "32-256-256-1, batch 256": ((32, 256, 256, 1), 256, "adam", 1e-3),
    "32-256-256-1, batch 1024": ((32, 256, 256, 1), 1024, "adam", 1e-3),
}
PRECISION_WORKLOADS = {
    "32-64-64-1, batch 256": ((32, 64, 64, 1), 256),
    "32-256-256-1, batch 32": ((32, 256, 256, 1), 32),
    "32-256-256-1, batch 256": ((32, 256, 256, 1), 256),
    "32-256-256-1, batch 1024": ((32, 256, 256, 1), 1024),
    "32-1024-1024-1, batch 1024": ((32, 1024, 1024, 1), 1024),
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


def threads_table(rows_for: dict[str, int], rounds: int, busy: bool, ceiling: float, log) -> list[dict[str, Any]]:
    variants = {"default": None, "1": 1, "2": 2}
    out = []
    rival = competitor() if busy else None
    try:
        if rival is not None:
            time.sleep(0.5)  # let it reach the core
        for name, (sizes, batch, opt, lr) in THREAD_WORKLOADS.items():
            x, y = data(sizes, rows_for[name])
            times: dict[str, list[float]] = {v: [] for v in variants}
            chosen = []
            for r in range(rounds + 1):
                for label, n in variants.items():
                    seconds, info = train_seconds(sizes, x, y, batch=batch, optimizer=opt, lr=lr, threads=n,
                                                  precision="fp32")
                    if label == "default":
                        chosen.append(info["threads"])
                    if r:
                        times[label].append(seconds)
                log(f"  {'busy' if busy else 'quiet'} {name}: round {r} " +
                    " ".join(f"{k}={v[-1]:.3f}s" for k, v in times.items() if v and r))
            ratio = statistics.median(times["default"][i] / min(times["1"][i], times["2"][i]) for i in range(rounds))
            model = torchann.mlp(sizes[0], list(sizes[1:-1]), sizes[-1])
            flops = step_flops(model, batch) * -(-rows_for[name] // batch)  # the epoch's steps
            out.append({
                "workload": name, "condition": "busy" if busy else "quiet", "rows": rows_for[name],
                "mflop_per_step": step_flops(model, batch) / 1e6,
                "share_default": flops / statistics.median(times["default"]) / 1e9 / ceiling,
                "chosen": sorted(set(chosen)), **{f"s_{k}": statistics.median(v) for k, v in times.items()},
                "default_over_best": ratio,
            })
    finally:
        if rival is not None:
            rival.kill()
            rival.wait()
    return out


def measured_ceilings(log) -> dict[str, float | None]:
    """fp32 and (where native) bf16 GFLOP/s of a 2048 x 2048 matmul, the best of three medians:
    on a shared machine one median can fall well below the ceiling."""
    ceilings = {"fp32": max(peak_gflops("float32", size=2048, repeats=3) for _ in range(3)),
                "bf16": max(peak_gflops("bfloat16", size=2048, repeats=3) for _ in range(3))
                if cpu_capability().native_bf16 else None}
    log(f"  ceilings GFLOP/s: {ceilings}")
    return ceilings


def precision_table(rows: int, rounds: int, log) -> list[dict[str, Any]]:
    ceilings = measured_ceilings(log)
    out = []
    for name, (sizes, batch) in PRECISION_WORKLOADS.items():
        x, y = data(sizes, rows)
        times: dict[str, list[float]] = {"fp32": [], "bf16": [], "auto": []}
        picked = None
        for r in range(rounds + 1):
            for p in times:
                seconds, info = train_seconds(sizes, x, y, batch=batch, precision=p)
                if p == "auto":
                    picked = info["precision"]
                if r:
                    times[p].append(seconds)
        model = torchann.mlp(sizes[0], list(sizes[1:-1]), sizes[-1])
        flops = step_flops(model, batch)
        gflops = {p: rows / batch * flops / statistics.median(v) / 1e9 for p, v in times.items()}
        row = {
            "workload": name, "mflop_per_step": flops / 1e6, "auto_picked": picked,
            **{f"gflops_{p}": g for p, g in gflops.items()},
            "share_fp32": gflops["fp32"] / ceilings["fp32"],
            "share_bf16": gflops["bf16"] / ceilings["bf16"] if ceilings["bf16"] else None,
            "bf16_over_fp32": statistics.median(a / b for a, b in zip(times["fp32"], times["bf16"])),
            "auto_over_best": statistics.median(a / min(b, c) for a, b, c in zip(times["auto"], times["fp32"],
                                                                                 times["bf16"])),
        }
        log(f"  {name}: {row}")
        out.append(row)
    return out


def header() -> list[str]:
    return [
        f"CPU: {cpu_model()}, {allowed_cores()} usable cores; {cpu_capability().describe()}; torch {torch.__version__}",
        f"load average at start: {' '.join(f'{v:.2f}' for v in os.getloadavg())}; "
        f"FLOPS_PER_THREAD={FLOPS_PER_THREAD:.0e}, BF16_MIN_FLOPS={BF16_MIN_FLOPS:.0e}",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("part", choices=["threads", "precision"])
    parser.add_argument("--quick", action="store_true", help="fewer rows and one counted round")
    parser.add_argument("--rounds", type=int, default=None, help="counted rounds (default 3, 1 with --quick)")
    parser.add_argument("--conditions", default="quiet,busy", help="threads: quiet, busy or both")
    parser.add_argument("--scale", type=float, default=None, help="fraction of the default rows (0.1 with --quick)")
    args = parser.parse_args(argv)
    rounds = args.rounds or (1 if args.quick else 3)
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    lines = header()
    if args.part == "threads":
        scale = args.scale or (0.1 if args.quick else 1.0)
        rows_for = {name: int(scale * (2_000 if b == 2 else 20_000 if b == 32 else 100_000))
                    for name, (_, b, _, _) in THREAD_WORKLOADS.items()}
        ceiling = measured_ceilings(log)["fp32"]  # measured before the busy process starts
        lines.append(f"fp32 ceiling: {ceiling:.0f} GFLOP/s (2048 x 2048 matmul, best of three medians, quiet)")
        results = []
        for condition in args.conditions.split(","):
            results += threads_table(rows_for, rounds, condition == "busy", ceiling, log)
        lines += ["", "| workload | MFLOP/step | condition | default picked | default s | 1 thread s | 2 threads s "
                      "| default / best fixed | default's share of the fp32 ceiling |",
                  "|---|---:|---|---:|---:|---:|---:|---:|---:|"]
        for r in results:
            lines.append(f"| {r['workload']} | {r['mflop_per_step']:.2f} | {r['condition']} | "
                         f"{','.join(map(str, r['chosen']))} | {r['s_default']:.3f} | {r['s_1']:.3f} | "
                         f"{r['s_2']:.3f} | {r['default_over_best']:.2f} | {r['share_default']:.1%} |")
    else:
        results = precision_table(int((args.scale or (0.1 if args.quick else 1.0)) * 50_000), rounds, log)
        lines += ["", "| workload | MFLOP/step | fp32 GFLOP/s (share of fp32 ceiling) | bf16 GFLOP/s (share of bf16 "
                      "ceiling) | bf16 / fp32 speed | auto picked | auto / best time |",
                  "|---|---:|---:|---:|---:|---|---:|"]
        for r in results:
            bf16_share = "-" if r["share_bf16"] is None else f"{r['share_bf16']:.1%}"
            lines.append(f"| {r['workload']} | {r['mflop_per_step']:.1f} | {r['gflops_fp32']:.1f} "
                         f"({r['share_fp32']:.1%}) | {r['gflops_bf16']:.1f} ({bf16_share}) | "
                         f"{r['bf16_over_fp32']:.2f}x | {r['auto_picked']} | {r['auto_over_best']:.2f} |")
    lines.append(f"\nload average at end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}; "
                 f"{rounds} counted round(s) after a warm-up round")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
