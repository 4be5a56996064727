"""What dropout adds to a training step: torch's nn.Dropout against torchann's Dropout.

    python benchmarks/dropout_cost.py                 # 512x256 activations, 1 thread
    python benchmarks/dropout_cost.py --rows 1024 --width 512 --threads 2

Times forward + backward of ``Linear(width, width) -> ReLU`` alone and followed by each dropout
(p=0.1), in fp32 and under bf16 autocast, interleaved round after round; prints the median
microseconds per step and what each dropout adds, with the CPU and its flags.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from torchann.runtime.devices import cpu_capability
from torchann.network.dropout import Dropout
from torchann.bench.timing import cpu_model


def _time(fn, steps: int) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - start) / steps * 1e6


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=512)
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=200)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x = torch.randn(args.rows, args.width, requires_grad=True)
    layer = nn.Linear(args.width, args.width)
    variants = {"none": nn.Identity(), "nn.Dropout": nn.Dropout(0.1), "torchann Dropout": Dropout(0.1)}
    print(f"CPU: {cpu_model()} ({cpu_capability().describe()}); torch {torch.__version__}, {args.threads} thread(s); "
          f"{args.rows}x{args.width} activations, p=0.1")
    for dtype in (torch.float32, torch.bfloat16):
        times: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(args.rounds):
            for name, drop in variants.items():
                def step() -> None:
                    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
                        out = drop(torch.relu(layer(x)))
                    out.float().sum().backward()
                times[name].append(_time(step, args.steps))
        base = statistics.median(times["none"])
        print(f"\n{str(dtype).replace('torch.', '')}: µs per forward + backward (median of {args.rounds} rounds)")
        for name, values in times.items():
            med = statistics.median(values)
            extra = "" if name == "none" else f"   dropout adds {med - base:7.1f} µs"
            print(f"  {name:18s} {med:8.1f}{extra}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
