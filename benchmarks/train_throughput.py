"""Training throughput: torchann.fit beside the tutorial's loop, a hand loop, skorch, Lightning, scikit-learn.

    python benchmarks/train_throughput.py                 # the full run (several minutes)
    python benchmarks/train_throughput.py --quick         # a smoke check, under a minute
    python benchmarks/train_throughput.py --update-doc docs/benchmarks.md --json runs/throughput.json

The task is fixed: 200,000 x 32 float32 rows with a fixed nonlinear target (standardised, so
predicting the mean gives a loss of 1.0); a 32-256-256-1 ReLU MLP; MSE; Adam with lr 1e-3;
one epoch; batch sizes 32 and 1024; torch set to 2 threads for every row (``torchann.fit`` with
its defaults then chooses its own count, never more, from the step's work and the cores other
processes leave free, and puts 2 back after; see src/torchann/threads.py). The tiny table is the tutorial's own case:
2-8-1, batch 2, plain SGD with lr 0.001, on pairs of numbers whose target is their sum.

The variants run in turn, round after round (A B C ... A B C ...). The first round is a warm-up
and is not counted. Each row reports the median of the counted rounds with its min and max.
The final loss is the MSE over the whole training set after the epoch, computed the same way
for every row and not timed. The share of the ceiling is samples/s x 6 x parameters (forward and
backward FLOPs per sample), divided by this machine's large-matmul GFLOP/s (``peak_gflops`` of a
4096 x 4096 product, the best of three medians; the bf16 row is divided by the bf16 ceiling).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib.util
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import peers  # noqa: E402  (benchmarks/peers.py)

import torchann  # noqa: E402
from torchann.bench.timing import bf16_supported, machine_info
from torchann.bench.matmul import peak_gflops

THREADS = 2
MAIN_VARIANTS = ["tutorial", "tensordataset", "hand", "torchann", "torchann-fp32", "torchann-bf16", "skorch", "lightning", "sklearn"]
TINY_VARIANTS = ["tutorial", "hand", "torchann", "skorch", "lightning", "sklearn"]
# The packages each peer needs (the ``bench`` extra); rows whose package is missing are skipped.
NEEDS = {"skorch": "skorch", "lightning": "lightning", "sklearn": "sklearn"}
DOC_BEGIN, DOC_END = "<!-- train_throughput:begin -->", "<!-- train_throughput:end -->"


def regression_target(x: torch.Tensor) -> torch.Tensor:
    """y = sin(2 x.a) + (x.b)^2 / 2 + tanh(x.c) x_0 with a, b, c fixed unit vectors (not standardised)."""
    gen = torch.Generator().manual_seed(2024)  # the task: the same vectors for every seed and size
    a, b, c = (v / v.norm() for v in torch.randn(3, x.shape[1], generator=gen))
    return torch.sin(2 * (x @ a)) + 0.5 * (x @ b) ** 2 + torch.tanh(x @ c) * x[:, 0]


def regression_data(rows: int, features: int = 32, seed: int = 0, stats: tuple[float, float] | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """x ~ N(0, 1) from ``seed``; y = regression_target(x), standardised (by ``stats`` = (mean, std) if given)."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, features, generator=gen)
    y = regression_target(x)
    mean, std = stats if stats is not None else (float(y.mean()), float(y.std()))
    return x.contiguous(), ((y - mean) / std)[:, None].contiguous()


def tiny_data(rows: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The tutorial's task (§2.1): two numbers in [0, 10), the target is their sum."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(rows, 2, generator=gen) * 10
    return x, x.sum(1, keepdim=True)


def model_factory(sizes: tuple[int, ...], seed: int = 0):
    """Every torch variant starts from the same initial weights."""
    torch.manual_seed(seed)
    reference = torchann.mlp(sizes[0], list(sizes[1:-1]), sizes[-1])
    state = {k: v.clone() for k, v in reference.state_dict().items()}

    def make():
        model = torchann.mlp(sizes[0], list(sizes[1:-1]), sizes[-1])
        model.load_state_dict(state)
        return model

    return make, sum(p.numel() for p in reference.parameters())


def ceiling(dtype: str, quick: bool) -> float:
    """The best of three medians of a 4096 x 4096 matmul (2048 reaches only about half the rate here)."""
    tries = 1 if quick else 3
    return max(peak_gflops(dtype, size=2048 if quick else 4096, repeats=3) for _ in range(tries))


def full_mse(predict, x: torch.Tensor, y: torch.Tensor, chunk: int = 65536) -> float:
    total = 0.0
    for i in range(0, len(x), chunk):
        total += float(((predict(x[i : i + chunk]) - y[i : i + chunk]) ** 2).sum())
    return total / y.numel()


def run_table(variants, make_model, x, y, *, batch_size, optimizer, lr, rounds, seed=0, log=print):
    """{variant: [(seconds, steps, loss), ...]} over the counted rounds (round 0 is the warm-up)."""
    results: dict[str, list[tuple[float, int, float, str]]] = {v: [] for v in variants}
    for r in range(rounds + 1):
        for name in variants:
            torch.set_num_threads(THREADS)
            run = peers.VARIANTS[name][1](make_model, x, y, batch_size=batch_size, optimizer=optimizer, lr=lr,
                                          seed=seed + r)
            loss = full_mse(run.predict, x, y)
            if torch.get_num_threads() != THREADS:
                raise RuntimeError(f"{name} changed the torch thread count to {torch.get_num_threads()}")
            tag = "warm-up" if r == 0 else f"round {r}"
            log(f"  batch {batch_size:>4} {tag:>8} {name:>14}: {len(x) / run.seconds:>10,.0f} samples/s, "
                f"{run.seconds / run.steps * 1e6:>8.1f} us/step, loss {loss:.4f}")
            if r:
                results[name].append((run.seconds, run.steps, loss, run.precision))
    return results


def summarise(results, rows: int, flops_per_sample: float, ceilings: dict[str, float | None]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, samples in results.items():
        rates = [rows / s for s, _, _, _ in samples]
        per_step = [s / n * 1e6 for s, n, _, _ in samples]
        precision = samples[0][3]  # what the row trained in (fit's precision="auto" records its choice)
        ceiling = ceilings.get("bfloat16" if precision == "bf16" else "float32")
        rate = statistics.median(rates)
        out[name] = {
            "label": peers.VARIANTS[name][0],
            "samples_per_s": rate, "samples_per_s_min": min(rates), "samples_per_s_max": max(rates),
            "us_per_step": statistics.median(per_step), "us_per_step_min": min(per_step),
            "us_per_step_max": max(per_step),
            "loss": statistics.median(l for _, _, l, _ in samples), "precision": precision,
            "ceiling_share": None if not ceiling else rate * flops_per_sample / (ceiling * 1e9),
            "rounds": len(samples), "rates": rates,
        }
    ref = out.get("torchann")
    for row in out.values():
        row["torchann_ratio"] = None if ref is None else paired_ratio(ref, row)
    return out


def paired_ratio(a: dict[str, Any], b: dict[str, Any]) -> float:
    """Median over rounds of a's samples/s over b's in the same round.

    Both ran within seconds of each other, so a change in the machine's load between rounds
    cancels out; the ratio of the two medians would mix rounds with different loads.
    """
    return statistics.median(x / y for x, y in zip(a["rates"], b["rates"]))


def startup_seconds(repeats: int = 7) -> dict[str, float]:
    """Median wall time of ``torchann --help`` (and of a bare interpreter) in fresh processes."""
    script = Path(sys.executable).parent / "torchann"
    command = [str(script), "--help"] if script.exists() else [sys.executable, "-m", "torchann", "--help"]

    def median_of(cmd: list[str]) -> tuple[float, float, float]:
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
            times.append(time.perf_counter() - t0)
        return statistics.median(times), min(times), max(times)

    help_ = median_of(command)
    bare = median_of([sys.executable, "-c", "pass"])
    return {"help_median_s": help_[0], "help_min_s": help_[1], "help_max_s": help_[2],
            "python_median_s": bare[0], "repeats": repeats}


def targets(main: dict[int, dict], tiny: dict, startup: dict | None) -> list[tuple[str, str, bool | None]]:
    """(target, measured, met) for each of the project's speed targets whose rows were run."""
    rows = []

    def check(label, table, a, b, goal, *, inverse=False):
        if a in table and b in table:
            r = paired_ratio(table[a], table[b])
            r = 1 / r if inverse else r  # us per step: the inverse of the speed ratio
            rows.append((label, f"{r:.2f}x", r <= goal if inverse else r >= goal))

    t = main.get(1024, {})
    check("batch 1024: fit >= 2.7x tutorial loop", t, "torchann", "tutorial", 2.7)
    check("batch 1024: fit >= 0.95x hand loop", t, "torchann", "hand", 0.95)
    check("batch 1024: fit bf16 >= 5x tutorial loop", t, "torchann-bf16", "tutorial", 5)
    fp32 = "torchann-fp32" if "torchann-fp32" in t else "torchann"
    if "torchann-bf16" in t and fp32 in t:
        rel = abs(t["torchann-bf16"]["loss"] / t[fp32]["loss"] - 1)
        rows.append(("batch 1024: bf16 loss within 5% of fp32", f"{rel:.1%}", rel <= 0.05))
    check("batch 32: fit >= 2x tutorial loop", main.get(32, {}), "torchann", "tutorial", 2)
    check("tiny 2-8-1, batch 2: fit <= 0.5x tutorial's us/step", tiny or {}, "torchann", "tutorial", 0.5,
          inverse=True)
    if startup:
        s = startup["help_median_s"]
        rows.append(("torchann --help <= 0.3 s", f"{s:.3f} s", s <= 0.3))
    return rows


def render(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        f"Command: `{report['command']}`  ",
        f"Date: {report['date']}; duration {report['duration_s']:.0f} s; "
        f"{report['rounds']} counted round(s) after one warm-up round.  ",
        f"Machine: {m['cpu']}, {m['cpu_count']} cores, torch {m['torch']} ({m['torch_threads']} threads), "
        f"Python {m['python']}; bf16 matmul support: {report['bf16_supported']}.  ",
        f"Load average (1 min) at start {report['load_start'][0]:.2f}, at end {report['load_end'][0]:.2f}.  ",
        f"Ceiling ({report['ceiling_note']}): " + ", ".join(
            f"{k} {v:.0f} GFLOP/s" for k, v in report["ceilings"].items() if v) + ".",
        "",
    ]
    for bs, table in report["main"].items():
        lines += [
            f"**32-256-256-1, batch {bs}, {report['rows']:,} rows, one epoch, Adam lr 1e-3** "
            f"({report['flops_per_sample'] / 1e3:.0f} kFLOP per sample)",
            "",
            "| variant | samples/s (median) | min-max | torchann / row (median of rounds) | final loss | share of ceiling |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for row in table.values():
            share = "-" if row["ceiling_share"] is None else f"{row['ceiling_share']:.1%}"
            if row.get("precision") == "bf16" and row["ceiling_share"] is not None:
                share += " of bf16"
            lines.append(
                f"| {row['label']} | {row['samples_per_s']:,.0f} | {row['samples_per_s_min']:,.0f}-"
                f"{row['samples_per_s_max']:,.0f} | {row['torchann_ratio']:.2f}x | {row['loss']:.4f} | {share} |"
            )
        lines.append("")
    if report["tiny"]:
        lines += [
            f"**The tutorial's tiny case: 2-8-1, batch 2, SGD lr 0.001, {report['tiny_rows']:,} rows "
            f"({report['tiny_rows'] // 2:,} steps)**",
            "",
            "| variant | us per step (median) | min-max | torchann / row (speed, median of rounds) | final loss |",
            "|---|---:|---:|---:|---:|",
        ]
        for row in report["tiny"].values():
            lines.append(
                f"| {row['label']} | {row['us_per_step']:.1f} | {row['us_per_step_min']:.1f}-"
                f"{row['us_per_step_max']:.1f} | {row['torchann_ratio']:.2f}x | {row['loss']:.4f} |"
            )
        lines.append("")
    if report["startup"]:
        s = report["startup"]
        lines += [
            f"`torchann --help`: median {s['help_median_s']:.3f} s (min {s['help_min_s']:.3f}, max "
            f"{s['help_max_s']:.3f}) over {s['repeats']} fresh processes; a bare `python -c pass` takes "
            f"{s['python_median_s']:.3f} s.",
            "",
        ]
    lines += ["| target | measured | met |", "|---|---:|:---:|"]
    for name, value, met in report["targets"]:
        lines.append(f"| {name} | {value} | {'yes' if met else 'no'} |")
    return "\n".join(lines) + "\n"


def update_doc(path: Path, text: str) -> None:
    from torchann.core.files import atomic_write_text

    doc = path.read_text(encoding="utf-8")
    if DOC_BEGIN not in doc or DOC_END not in doc:
        raise SystemExit(f"{path} has no {DOC_BEGIN} ... {DOC_END} section to replace")
    head, rest = doc.split(DOC_BEGIN, 1)
    _, tail = rest.split(DOC_END, 1)
    atomic_write_text(path, f"{head}{DOC_BEGIN}\n{text}{DOC_END}{tail}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10,000 rows, one counted round: a smoke check")
    parser.add_argument("--rounds", type=int, default=None, help="counted rounds (default 3; 1 with --quick)")
    parser.add_argument("--rows", type=int, default=None, help="rows of the main data (default 200,000)")
    parser.add_argument("--batch-sizes", default="1024,32")
    parser.add_argument("--variants", default=",".join(MAIN_VARIANTS))
    parser.add_argument("--no-tiny", action="store_true")
    parser.add_argument("--no-startup", action="store_true")
    parser.add_argument("--json", type=Path, help="write the whole report as JSON here")
    parser.add_argument("--update-doc", type=Path, help="replace the results section of this Markdown file")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    torch.set_num_threads(THREADS)
    rows = args.rows or (10_000 if args.quick else 200_000)
    rounds = args.rounds or (1 if args.quick else 3)
    tiny_rows = 200 if args.quick else 4_000
    variants = [v for v in args.variants.split(",") if v]
    missing = [v for v in variants if v in NEEDS and importlib.util.find_spec(NEEDS[v]) is None]
    if missing:
        print(f"skipping {', '.join(missing)}: not installed; for every row: pip install -e '.[bench]' "
              f"-c constraints.txt", file=sys.stderr, flush=True)
        variants = [v for v in variants if v not in missing]
    have_bf16 = bf16_supported("cpu")
    if not have_bf16:
        variants = [v for v in variants if v != "torchann-bf16"]
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731

    load_start = os.getloadavg()
    ceilings = {"float32": ceiling("float32", args.quick), "bfloat16": ceiling("bfloat16", args.quick) if have_bf16 else None}
    log(f"ceilings: {ceilings}; load {load_start}")

    x, y = regression_data(rows)
    make, params = model_factory((32, 256, 256, 1))
    main_tables = {}
    for bs in (int(b) for b in args.batch_sizes.split(",")):
        results = run_table(variants, make, x, y, batch_size=bs, optimizer="adam", lr=1e-3, rounds=rounds, log=log)
        main_tables[bs] = summarise(results, rows, 6 * params, ceilings)

    tiny = {}
    if not args.no_tiny:
        tx, ty = tiny_data(tiny_rows)
        tiny_make, tiny_params = model_factory((2, 8, 1))
        tiny_variants = [v for v in TINY_VARIANTS if v in variants or v == "torchann"]
        results = run_table(tiny_variants, tiny_make, tx, ty, batch_size=2, optimizer="sgd", lr=1e-3,
                            rounds=rounds, log=log)
        tiny = summarise(results, tiny_rows, 6 * tiny_params, ceilings)

    startup = None if args.no_startup else startup_seconds(3 if args.quick else 9)
    report = {
        "command": " ".join(["python", "benchmarks/train_throughput.py", *map(shlex.quote, sys.argv[1:])]),
        "date": _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "machine": machine_info(), "bf16_supported": have_bf16, "ceilings": ceilings,
        "rows": rows, "tiny_rows": tiny_rows, "rounds": rounds, "flops_per_sample": 6 * params,
        "main": main_tables, "tiny": tiny, "startup": startup, "ceiling_note": "2048x2048 matmul, one median (--quick)" if args.quick else "4096x4096 matmul, best of 3 medians",
        "load_start": load_start, "load_end": os.getloadavg(),
    }
    report["targets"] = targets(main_tables, tiny, startup)
    report["duration_s"] = time.perf_counter() - started
    text = render(report)
    print(text)
    log(f"duration {report['duration_s']:.0f} s")
    if args.json:
        from torchann.core.files import atomic_write_text

        args.json.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.json, json.dumps(report, indent=2, default=str) + "\n")
    if args.update_doc:
        update_doc(args.update_doc, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
