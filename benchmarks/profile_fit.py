"""Where a training step's time goes: torch.profiler over the hand loop and over fit's step.

    python benchmarks/profile_fit.py --batch-size 32 --steps 300
    python benchmarks/profile_fit.py --batch-size 1024 --steps 60 --precision bf16

For each way of stepping it prints a table of microseconds per step: the profiler's self time
in groups of operators (matmuls, the optimiser kernel, elementwise kernels, views, the autograd
engine) and the rest of the wall time (Python between the operators). The wall time is the
fastest of three unprofiled passes. The model and data are the throughput benchmark's (32-256-256-1,
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

from torchann.training.optim import make_optimizer
from torchann.training.steps import AutogradStep, make_train_step


GROUPS = {
    "matmul (mm, addmm)": ("aten::mm", "aten::addmm"),
    "optimiser kernel (fused Adam, step count)": ("aten::_fused_adam_", "aten::_foreach_add_", "aten::item"),
    "elementwise (ReLU and its backward, loss, sums, casts, copies)": (
        "aten::relu", "aten::relu_", "aten::clamp_min", "aten::clamp_min_", "aten::threshold_backward",
        "aten::mse_loss", "aten::mse_loss_backward",
        "aten::sum", "aten::add_", "aten::copy_", "aten::_to_copy", "aten::to", "aten::mean", "aten::div_",
        "aten::sub", "aten::mul", "aten::fill_", "aten::zero_", "aten::zeros_like", "aten::ones_like",
        "aten::pow", "aten::index_select", "aten::_foreach_copy_"),
    "tensor views and allocation (t, slice, empty, ...)": (
        "aten::t", "aten::transpose", "aten::as_strided", "aten::slice", "aten::expand", "aten::view",
        "aten::empty", "aten::empty_strided", "aten::empty_like", "aten::resolve_conj", "aten::resolve_neg",
        "aten::detach", "detach", "aten::alias", "aten::reshape", "aten::_reshape_alias", "aten::select"),
    "autograd engine and optimiser bookkeeping": ("autograd", "Backward", "AccumulateGrad", "Optimizer."),
    "other operators": (),
}


def group_of(key: str) -> str:
    for group, names in GROUPS.items():
        if key in names or any(key.startswith(n) or n in key for n in names if not n.startswith("aten::")):
            return group
    return "other operators"


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
    parser.add_argument("--rows", type=int, default=0, help="also list this many operators per variant")
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
    compute_dtype = torch.bfloat16 if bf16 else torch.float32
    step = AutogradStep(model, nn.MSELoss(), opt, compute_dtype=compute_dtype)
    variants["fit's general step (autograd + direct Adam)"] = lambda xb, yb: step(xb, yb)[0]
    model = make()
    opt = make_optimizer("adam", model.parameters(), lr=1e-3, device=cpu)
    mlp = make_train_step(model, model, nn.MSELoss(), opt, compute_dtype=compute_dtype)
    variants[f"fit's {type(mlp).__name__} (written-out backward + direct Adam)"] = lambda xb, yb: mlp(xb, yb)[0]

    summary = []
    for name, fn in variants.items():
        for i in range(0, min(n, 20) * bs, bs):  # warm-up
            fn(x[i : i + bs], y[i : i + bs])
        walls = []
        for _ in range(3):  # noise on a shared machine only adds time: keep the fastest pass
            t0 = time.perf_counter()
            for i in range(0, n * bs, bs):
                fn(x[i : i + bs], y[i : i + bs])
            walls.append((time.perf_counter() - t0) / n)
        wall = min(walls)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for i in range(0, n * bs, bs):
                fn(x[i : i + bs], y[i : i + bs])
        events = prof.key_averages()
        groups = {group: 0.0 for group in GROUPS}
        for e in events:
            groups[group_of(e.key)] += e.self_cpu_time_total / n
        groups["Python and the rest (wall - profiled)"] = max(0.0, wall * 1e6 - sum(groups.values()))
        summary.append((name, wall * 1e6, groups))
        if args.rows:
            print(f"\n== {name}: batch {bs}, {args.precision}, {wall * 1e6:.0f} us/step")
            print(events.table(sort_by="self_cpu_time_total", row_limit=args.rows, max_name_column_width=40))
    print(f"\nus per step, batch {bs}, {args.precision} (torch.profiler self time per group; {n} steps)\n")
    print("| group | " + " | ".join(name for name, _, _ in summary) + " |")
    print("|---|" + "---:|" * len(summary))
    for group in [*GROUPS, "Python and the rest (wall - profiled)"]:
        print(f"| {group} | " + " | ".join(f"{g[group]:.0f}" for _, _, g in summary) + " |")
    print("| **wall time per step** | " + " | ".join(f"**{w:.0f}**" for _, w, _ in summary) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
