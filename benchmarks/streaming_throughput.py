"""Training from a file larger than memory: peak resident memory and samples/s against in-memory.

    python benchmarks/streaming_throughput.py --dir /tmp/stream --gb 4      # makes the files, measures, deletes
    python benchmarks/streaming_throughput.py --dir /tmp/stream --gb 0.2 --rounds 1   # a quick check

It writes one ``.npy`` file of ``--gb`` GB (rows of 32 float32 features and one target column:
the throughput benchmark's task), a Parquet copy of its first rows, and a smaller ``.npy``
slice that fits in memory. Then it runs each measurement in a fresh process under
``/usr/bin/time -v``, which reports the peak resident set size:

- ``stream-all``: one epoch of ``fit`` over the whole big file (``NpyBatches``), after the
  file's pages were dropped from the page cache (``posix_fadvise DONTNEED``), so it reads from disk;
- ``stream`` / ``memory`` / ``parquet``: one epoch over the slice, streamed from the ``.npy`` or
  the Parquet file, or loaded into memory first and trained as tensors. The three alternate
  in turn, ``--rounds`` times.

The model is 32-256-256-1, MSE, Adam lr 1e-3, batch 1024, 2 threads. Load time is part of the
in-memory run's wall time but not of its samples/s (which counts the epoch only, as fit's
history reports it). The files are deleted at the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
FEATURES = 32


def make_npy(path: Path, rows: int, *, seed: int = 0, block: int = 1_000_000) -> None:
    """Rows of [x (32 features), y], written block by block: memory stays at one block."""
    import torch

    sys.path.insert(0, str(HERE))
    from train_throughput import regression_data, regression_target

    header = np.lib.format.open_memmap  # writes the .npy header; data is filled block by block
    out = header(path, mode="w+", dtype=np.float32, shape=(rows, FEATURES + 1))
    stats = None
    for i, start in enumerate(range(0, rows, block)):
        n = min(block, rows - start)
        x, y = regression_data(n, FEATURES, seed=seed * 100_003 + i, stats=stats)
        if stats is None:  # every block is standardised like the first: one task over the whole file
            raw = regression_target(x)
            stats = (float(raw.mean()), float(raw.std()))
        out[start : start + n] = torch.cat([x, y], 1).numpy()
        out.flush()
    del out


def make_parquet(src: Path, dst: Path, rows: int, row_group: int = 131_072) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    data = np.load(src, mmap_mode="r")[:rows]
    names = [f"x{i}" for i in range(FEATURES)] + ["y"]
    with pq.ParquetWriter(dst, pa.schema([(n, pa.float32()) for n in names])) as writer:
        for start in range(0, rows, row_group):
            block = np.asarray(data[start : start + row_group])
            writer.write_table(pa.table({n: block[:, j] for j, n in enumerate(names)}))


def drop_cache(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def train_once(mode: str, path: str) -> dict:
    """One epoch in this process; returns samples/s of the epoch and the wall time of everything."""
    import torch

    import torchann
    from torchann.batching.stream_files import NpyBatches, ParquetBatches

    started = time.perf_counter()
    torch.set_num_threads(2)
    torch.manual_seed(0)
    model = torchann.mlp(FEATURES, [256, 256], 1)
    if mode == "memory":
        data = torch.from_numpy(np.load(path))
        x, y = data[:, :FEATURES], data[:, FEATURES:]
        source, rows = (x, y), len(data)
    elif mode == "parquet":
        batches = ParquetBatches(path, target="y")
        source, rows = (batches, None), batches.rows
    else:
        batches = NpyBatches(path, target=-1)
        source, rows = (batches, None), batches.rows
    history = torchann.fit(model, *source, epochs=1, batch_size=1024, lr=1e-3, seed=0, device="cpu")
    epoch_s = history.records[0]["seconds"]
    return {"mode": mode, "rows": rows, "samples_per_s": rows / epoch_s, "epoch_s": epoch_s,
            "wall_s": time.perf_counter() - started, "loss": history.final_loss}


def measured(mode: str, path: Path) -> dict:
    """Run ``train_once`` in a child under /usr/bin/time -v; add its peak RSS in MB."""
    cmd = ["/usr/bin/time", "-v", sys.executable, str(Path(__file__).resolve()), "--child", mode, str(path)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    peak_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr).group(1))
    result["peak_rss_mb"] = peak_kb / 1024
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, default=Path("/tmp/torchann-streaming"))
    parser.add_argument("--gb", type=float, default=4.0, help="size of the big .npy file")
    parser.add_argument("--slice-rows", type=int, default=2_000_000, help="rows of the in-memory comparison")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the files")
    parser.add_argument("--child", nargs=2, metavar=("MODE", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(train_once(*args.child)))
        return 0
    if not Path("/usr/bin/time").exists():
        raise SystemExit("/usr/bin/time is missing (apt-get install time); it measures the peak memory")

    args.dir.mkdir(parents=True, exist_ok=True)
    big, small, parquet = args.dir / "big.npy", args.dir / "slice.npy", args.dir / "slice.parquet"
    rows = int(args.gb * 1e9 / ((FEATURES + 1) * 4))
    free = shutil.disk_usage(args.dir).free
    need = rows * (FEATURES + 1) * 4 + 2 * args.slice_rows * (FEATURES + 1) * 4
    if need > 0.8 * free:
        raise SystemExit(f"{need / 1e9:.1f} GB needed in {args.dir}, only {free / 1e9:.1f} GB free; lower --gb")
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    try:
        t0 = time.perf_counter()
        make_npy(big, rows)
        slice_rows = min(args.slice_rows, rows)
        np.save(small, np.load(big, mmap_mode="r")[:slice_rows])
        make_parquet(big, parquet, slice_rows)
        log(f"wrote {big.stat().st_size / 1e9:.2f} GB ({rows:,} rows) and a {slice_rows:,}-row slice "
            f"in {time.perf_counter() - t0:.0f} s; load {os.getloadavg()[0]:.2f}")
        results: dict[str, list[dict]] = {"stream-all": [], "stream": [], "memory": [], "parquet": []}
        for r in range(args.rounds):
            for mode, path in (("stream", small), ("memory", small), ("parquet", parquet)):
                res = measured(mode, path)
                results[mode].append(res)
                log(f"round {r + 1} {mode:>8}: {res['samples_per_s']:,.0f} samples/s, peak RSS "
                    f"{res['peak_rss_mb']:,.0f} MB, loss {res['loss']:.4f}, load {os.getloadavg()[0]:.2f}")
        drop_cache(big)
        res = measured("stream-all", big)
        results["stream-all"].append(res)
        log(f"stream-all: {res['samples_per_s']:,.0f} samples/s over {rows:,} rows, peak RSS "
            f"{res['peak_rss_mb']:,.0f} MB, wall {res['wall_s']:.0f} s, loss {res['loss']:.4f}")
    finally:
        if not args.keep:
            for p in (big, small, parquet):
                p.unlink(missing_ok=True)

    print(f"File: {big.stat().st_size / 1e9 if big.exists() else rows * (FEATURES + 1) * 4 / 1e9:.2f} GB "
          f"({rows:,} rows x {FEATURES + 1} float32 columns); slice: {slice_rows:,} rows.\n")
    print("| run | rows | samples/s (median) | min-max | peak RSS MB (max) | final loss |")
    print("|---|---:|---:|---:|---:|---:|")
    for mode, runs in results.items():
        rates = [r["samples_per_s"] for r in runs]
        print(f"| {mode} | {runs[0]['rows']:,} | {statistics.median(rates):,.0f} | {min(rates):,.0f}-{max(rates):,.0f} "
              f"| {max(r['peak_rss_mb'] for r in runs):,.0f} | {statistics.median(r['loss'] for r in runs):.4f} |")
    memory = [r["samples_per_s"] for r in results["memory"]]
    print()
    for mode in ("stream", "parquet"):  # paired: each round's streamed run against that round's in-memory run
        ratios = [r["samples_per_s"] / m for r, m in zip(results[mode], memory)]
        print(f"{mode} / memory, median of rounds: {statistics.median(ratios):.2f}x "
              f"({', '.join(f'{q:.2f}' for q in ratios)})  ")
    whole = results["stream-all"][0]["samples_per_s"] / statistics.median(memory)
    print(f"stream-all (from disk) / median in-memory: {whole:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
