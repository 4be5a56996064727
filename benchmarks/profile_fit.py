"""Where a training step's time goes: torch.profiler over the hand loop and over fit's step.

    python benchmarks/profile_fit.py --batch-size 32 --steps 300
    python benchmarks/profile_fit.py --batch-size 1024 --steps 60 --precision bf16

For each way of stepping it prints the wall time per step, the time the profiler saw inside
ATen operators per step (the rest is Python and dispatch between them), and the operators
that take the most time. The model and data are the throughput benchmark's (32-256-256-1,
MSE, Adam lr 1e-3, 2 threads).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))

from train_throughput import model_factory, regression_data  # noqa: E402

from torchann.optim import make_optimizer  # noqa: E402
from torchann.steps import AutogradStep, make_train_step  # noqa: E402


def hand_step(model, opt, loss_fn, autocast):
    def step(xb, yb):
        opt.zero_grad(set_to_none=True)
        with autocast:
            loss = loss_fn(model(xb), yb)
        loss.backward()
        opt.step()
        return loss

    return step


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--rows", type=int, default=20, help="operators listed per variant")
    args = parser.parse_args()
    torch.set_num_threads(2)
    bs, n = args.batch_size, args.steps
    x, y = regression_data(bs * n)
    make, _ = model_factory((32, 256, 256, 1))
    bf16 = args.precision == "bf16"
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)
    cpu = torch.device("cpu")

    variants = {}
    model = make()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
    variants["hand loop (autograd + Adam.step)"] = hand_step(model, opt, nn.MSELoss(), autocast)
    model = make()
    opt = make_optimizer("adam", model.parameters(), lr=1e-3, device=cpu)
    step = AutogradStep(model, nn.MSELoss(), opt, autocast=autocast)
    variants["fit's general step (autograd + direct Adam)"] = lambda xb, yb: step(xb, yb)[0]
    model = make()
    opt = make_optimizer("adam", model.parameters(), lr=1e-3, device=cpu)
    mlp = make_train_step(model, model, nn.MSELoss(), opt, autocast=autocast, bf16=bf16)
    variants[f"fit's {type(mlp).__name__} (written-out backward + direct Adam)"] = lambda xb, yb: mlp(xb, yb)[0]

    for name, fn in variants.items():
        for i in range(0, min(n, 20) * bs, bs):  # warm-up
            fn(x[i : i + bs], y[i : i + bs])
        t0 = time.perf_counter()
        for i in range(0, n * bs, bs):
            fn(x[i : i + bs], y[i : i + bs])
        wall = (time.perf_counter() - t0) / n
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for i in range(0, n * bs, bs):
                fn(x[i : i + bs], y[i : i + bs])
        events = prof.key_averages()
        # Self time of the top-level ATen operators: time in kernels and their dispatch.
        aten = sum(e.self_cpu_time_total for e in events if e.key.startswith("aten::")) / n
        print(f"\n== {name}: batch {bs}, {args.precision}, {wall * 1e6:.0f} us/step wall, "
              f"{aten:.0f} us/step self time in aten operators, {len(events)} distinct operators")
        print(events.table(sort_by="self_cpu_time_total", row_limit=args.rows, max_name_column_width=40))
    return 0


if __name__ == "__main__":
    sys.exit(main())
