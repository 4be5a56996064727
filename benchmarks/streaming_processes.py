"""Streaming a file larger than memory with several processes: peak memory per process and rows/s.

    python benchmarks/streaming_processes.py --gb 3 --nproc 2     # writes /tmp/torchann-dist/big.npy, measures, deletes
    python benchmarks/streaming_processes.py --gb 0.2 --nproc 2   # a quick check

It writes one ``.npy`` of ``--gb`` GB (32 float32 features and a target column, the
throughput benchmark's task), drops its pages from the page cache, and trains one epoch over
it with ``--nproc`` processes under torch's launcher (gloo, CPU), then with one process, each
run in fresh processes. Both runs take the same steps: a global batch of 32,768 rows and
``--lanes`` lanes (default: one per process), so their losses agree. Every process reports its
own peak resident set size (``VmHWM`` of ``/proc/self/status``: the high-water mark of this
program's own memory; ``getrusage``'s ``ru_maxrss`` would also carry the resident size of the
process it was forked from) and the bytes it read during training (``rchar`` of
``/proc/self/io``, from disk or page cache alike). The network is small (32-16-1) so that the
epoch measures reading and sharding rather than the matmuls; the file is deleted at the end
unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
FEATURES = 32
GLOBAL_BATCH = 32768
LANES = int(os.environ.get("TORCHANN_BENCH_LANES", "2"))


def peak_rss_mb() -> float:
    """This program's peak resident memory: VmHWM, else ru_maxrss (which fork can inflate)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bytes_read() -> int:
    """Bytes this process has read through system calls (``rchar`` of ``/proc/self/io``), from
    the disk or the page cache alike: what the process asked for, whatever served it."""
    try:
        for line in Path("/proc/self/io").read_text().splitlines():
            if line.startswith("rchar:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def child(path: str, out: str) -> None:
    import torch

    import torchann
    from torchann.training import distributed

    with distributed.session(device="cpu") as world:
        torch.manual_seed(0)
        model = torchann.mlp(FEATURES, [16], 1)
        source = torchann.NpyBatches(path, target=-1, lanes=LANES)
        read_before = bytes_read()
        started = time.perf_counter()
        history = torchann.fit(model, source, epochs=1, global_batch_size=GLOBAL_BATCH,
                               batch_size=GLOBAL_BATCH // world.size, lr=1e-3, seed=0, device="cpu", precision="fp32")
        seconds = time.perf_counter() - started
        report = {"rank": world.rank, "world": world.size, "rows": source.rows, "seconds": seconds,
                  "threads": history.info.get("threads"), "loss": history.final_loss,
                  "peak_rss_mb": peak_rss_mb(), "read_gb": (bytes_read() - read_before) / 1e9}
    Path(out, f"rank{world.rank}-of-{world.size}.json").write_text(json.dumps(report))


def _mb(ranks: list[dict]) -> str:
    return ", ".join(f"{r['peak_rss_mb']:.0f}" for r in ranks)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, default=Path("/tmp/torchann-dist"))
    parser.add_argument("--gb", type=float, default=3.0)
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--lanes", type=int, help="lanes of the epoch's order (default: --nproc)")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--child", nargs=2, metavar=("PATH", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return 0

    sys.path.insert(0, str(HERE))
    from streaming_throughput import drop_cache, make_npy

    from torchann.training import distributed

    os.environ["TORCHANN_BENCH_LANES"] = str(args.lanes or args.nproc)  # the children's lanes: the same order in both runs
    args.dir.mkdir(parents=True, exist_ok=True)
    big = args.dir / "big.npy"
    rows = int(args.gb * 1e9 / ((FEATURES + 1) * 4))
    if rows * (FEATURES + 1) * 4 > 0.8 * shutil.disk_usage(args.dir).free:
        raise SystemExit(f"not enough free space in {args.dir} for {args.gb} GB; lower --gb")
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    results = {}
    try:
        t0 = time.perf_counter()
        make_npy(big, rows)
        log(f"wrote {big.stat().st_size / 1e9:.2f} GB ({rows:,} rows) in {time.perf_counter() - t0:.0f} s")
        for procs in (args.nproc, 1):
            drop_cache(big)
            t0 = time.perf_counter()
            argv = [str(Path(__file__).resolve()), "--child", str(big), str(args.dir)]
            if procs > 1:
                code = distributed.launch_local(procs, argv, module=None, timeout=3600)
            else:
                import subprocess

                code = subprocess.run([sys.executable, *argv]).returncode
            if code:
                raise SystemExit(f"the {procs}-process run exited with {code}")
            wall = time.perf_counter() - t0
            ranks = [json.loads((args.dir / f"rank{r}-of-{procs}.json").read_text()) for r in range(procs)]
            results[procs] = {"wall_s": wall, "ranks": ranks}
            log(f"{procs} process(es): {wall:.0f} s wall, peak RSS per process "
                f"{_mb(ranks)} MB, load {os.getloadavg()[0]:.2f}")
    finally:
        if not args.keep:
            big.unlink(missing_ok=True)
            for p in args.dir.glob("rank*-of-*.json"):
                p.unlink()

    print(f"File: {rows * (FEATURES + 1) * 4 / 1e9:.2f} GB ({rows:,} rows x {FEATURES + 1} float32 columns), "
          f"read from disk (page cache dropped before each run); load average {os.getloadavg()[0]:.2f}.\n")
    print(f"Global batch {GLOBAL_BATCH:,} rows, lanes {os.environ['TORCHANN_BENCH_LANES']}: both runs take the same steps.\n")
    print("| processes | wall s (launch + epoch) | epoch s (slowest rank) | rows/s | peak RSS MB per process "
          "| GB read per process | loss |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for procs, res in results.items():
        epoch = max(r["seconds"] for r in res["ranks"])
        read = ", ".join(f"{r['read_gb']:.2f}" for r in res["ranks"])
        print(f"| {procs} | {res['wall_s']:.0f} | {epoch:.0f} | {rows / epoch:,.0f} | "
              f"{_mb(res['ranks'])} | {read} | {res['ranks'][0]['loss']:.6f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
