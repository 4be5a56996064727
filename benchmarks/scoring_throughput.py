"""Scoring a file larger than memory: rows/s and peak resident memory, streamed against read whole.

    python benchmarks/scoring_throughput.py --dir /tmp/score --gb 3.5        # makes the files, measures, deletes
    python benchmarks/scoring_throughput.py --dir /tmp/score --gb 0.2        # a quick check

It trains a small model on rows of a house-price table (8 numbers, 2 of them with missing
values, 2 text categories, an integer id), writes a Parquet file of ``--gb`` GB of such rows
(1,048,576-row row groups) and a slice of it (``--slice`` of the rows). Each measurement runs
in a fresh process and reports its peak resident set size (``os.wait4``'s ``ru_maxrss``):

- ``stream-all``: ``torchann predict RUN --data big.parquet --keep id --out preds.parquet`` on the
  whole file, after its pages were dropped from the page cache, so it reads from disk;
- ``stream`` / ``whole``: the same command on the slice, and the slice read whole first
  (``Model.predictions(path)``, then ``pyarrow.parquet.write_table``), in turn, ``--rounds`` times.

The slice is what the whole-file read can hold here: on the big file it would need several
times the file's size in memory. The files are deleted at the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

NUMBERS = [f"x{i}" for i in range(8)]
ROW_GROUP = 1 << 20


def rows_table(n: int, seed: int, start: int = 0):
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, len(NUMBERS)))
    colour = rng.choice(np.array(["blue", "green", "red", "white"]), n)
    town = rng.choice(np.array([f"town{i:02d}" for i in range(30)]), n)
    price = x @ np.linspace(-2, 2, len(NUMBERS)) + 3 * (colour == "red") + (town == "town07") + rng.normal(0, 0.3, n)
    columns = {"id": pa.array(np.arange(start, start + n), pa.int64())}
    for j, name in enumerate(NUMBERS):
        values = x[:, j]
        if j < 2:
            values = np.where(rng.random(n) < 0.05, np.nan, values)
        columns[name] = pa.array(values, from_pandas=True)
    columns.update({"colour": pa.array(colour), "town": pa.array(town), "price": pa.array(price)})
    return pa.table(columns)


def make_files(folder: Path, gb: float, slice_fraction: float) -> tuple[Path, Path, int]:
    import pyarrow.parquet as pq

    big, part = folder / "big.parquet", folder / "slice.parquet"
    target = gb * 1e9
    rows = 0
    with pq.ParquetWriter(big, rows_table(1, 0).schema) as writer:
        while not big.exists() or big.stat().st_size < target:
            writer.write_table(rows_table(ROW_GROUP, seed=rows // ROW_GROUP + 1, start=rows), row_group_size=ROW_GROUP)
            rows += ROW_GROUP
    keep = max(ROW_GROUP, int(rows * slice_fraction) // ROW_GROUP * ROW_GROUP)
    reader = pq.ParquetFile(big)
    with pq.ParquetWriter(part, reader.schema_arrow) as writer:
        for i in range(keep // ROW_GROUP):
            writer.write_table(reader.read_row_group(i), row_group_size=ROW_GROUP)
    return big, part, rows


def train_model(run: Path) -> None:
    import torchann

    model = torchann.train(rows_table(20_000, seed=999).drop(["id"]), target="price", hidden=[64, 32], epochs=5,
                           fill_missing="mean", seed=0)
    model.save(run)


def drop_cache(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


WHOLE = """
import sys, pyarrow as pa, pyarrow.parquet as pq, torchann
model = torchann.load(sys.argv[1])
columns = model.predictions(sys.argv[2], keep=["id"])
pq.write_table(pa.table(columns), sys.argv[3])
"""


def measure(argv: list[str]) -> dict:
    """Wall seconds and peak RSS (MB) of one fresh process."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    err = proc.stderr.read().decode() if proc.stderr else ""
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}): {err.strip()[-500:]}")
    return {"seconds": seconds, "peak_mb": usage.ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--gb", type=float, default=3.5)
    parser.add_argument("--slice", type=float, default=0.1, help="fraction of the rows in the slice")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--keep", action="store_true", help="leave the files in --dir")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    torchann_cli = [sys.executable, "-m", "torchann"]
    try:
        t = time.perf_counter()
        big, part, rows = make_files(args.dir, args.gb, args.slice)
        print(f"wrote {big} ({big.stat().st_size / 1e9:.2f} GB, {rows:,} rows) and {part} "
              f"({part.stat().st_size / 1e9:.2f} GB) in {time.perf_counter() - t:.0f} s", file=sys.stderr)
        run = args.dir / "run"
        train_model(run)
        slice_rows = ROW_GROUP * max(1, int(rows * args.slice) // ROW_GROUP)
        results: dict[str, list[dict]] = {"stream": [], "whole": []}
        for r in range(args.rounds):
            for name in ("stream", "whole"):
                out = args.dir / f"{name}.parquet"
                argv = (torchann_cli + ["predict", str(run), "--data", str(part), "--keep", "id", "--out", str(out)]
                        if name == "stream" else [sys.executable, "-c", WHOLE, str(run), str(part), str(out)])
                results[name].append(measure(argv))
                print(f"round {r + 1} {name}: {results[name][-1]}", file=sys.stderr)
        import pyarrow.parquet as pq

        streamed, whole = pq.read_table(args.dir / "stream.parquet"), pq.read_table(args.dir / "whole.parquet")
        same = (streamed.column("price").equals(whole.column("price"))  # the whole read keeps ids as float64
                and streamed.column("id").to_numpy().astype(np.float64).tolist() == whole.column("id").to_pylist())
        drop_cache(big)
        full = measure(torchann_cli + ["predict", str(run), "--data", str(big), "--keep", "id", "--out",
                                       str(args.dir / "all.parquet")])
        out_rows = pq.ParquetFile(args.dir / "all.parquet").metadata.num_rows
        print(f"stream-all: {full}", file=sys.stderr)
    finally:
        if not args.keep:
            shutil.rmtree(args.dir, ignore_errors=True)

    def row(name: str, n: int, runs: list[dict], size: float) -> str:
        sec = statistics.median(r["seconds"] for r in runs)
        peak = max(r["peak_mb"] for r in runs)
        return f"| {name} | {n:,} | {size:.2f} | {sec:.1f} | {n / sec:,.0f} | {size * 1e3 / sec:.0f} | {peak:,.0f} |"

    part_gb, rows_gb = slice_rows / rows * args.gb, args.gb
    print("| run | rows | file GB | seconds | rows/s | MB/s | peak RSS MB |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    print(row("stream, whole file (from disk)", rows, [full], rows_gb))
    print(row("stream, slice", slice_rows, results["stream"], part_gb))
    print(row("read whole first, slice", slice_rows, results["whole"], part_gb))
    print(f"\nslice: streamed output equals the whole-file output: {same}; whole file: {out_rows:,} of {rows:,} "
          f"rows written")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "slice_rows": slice_rows, "gb": args.gb, "full": full,
                                         **results, "same": same}, indent=2))


if __name__ == "__main__":
    main()
