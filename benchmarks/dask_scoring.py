"""Scoring one Parquet file on 1, 2 and 4 Dask worker processes against single-process ``torchann predict``.

    python benchmarks/dask_scoring.py --dir /tmp/dask-bench                  # 4M rows, 3 rounds
    python benchmarks/dask_scoring.py --dir /tmp/dask-bench --rows 500000 --rounds 1   # a quick look

It trains a model with torchann's default network (256-256, on rows of the house-price table of
``scoring_throughput.py``: 8 numbers, 2 of them with missing values, 2 text categories and an
integer id), writes ``--rows`` such rows to one Parquet file (262,144-row row groups) and, in
each round, in turn:

- ``single``: ``torchann predict RUN --data big.parquet --keep id --out single.parquet`` in a
  fresh process (its wall time: start, load, read, score, write), with torch's default threads;
- ``single-1t``: the same with ``OMP_NUM_THREADS=1``: one core's worth, the per-core baseline;
- ``dask-N`` for N = 1, 2, 4: ``torchann.dask.score_files(RUN, big.parquet, OUT, client=...)`` on
  a fresh ``torchann.dask.connect("local:N")`` cluster of N single-threaded worker processes,
  started and warmed up first and the only one alive (the job's time only: planning, tasks, the folder put in place; the
  workers have already imported torchann);
- ``cli-local-N``: ``torchann predict ... --cluster local:N`` in a fresh process, so the
  cluster's start (N worker processes importing torch) is inside the time.

Every output is compared with ``single``'s, value for value (float bits). It prints one table
(median wall seconds and rows/s of the rounds, the ratio to ``single``, and the CPU seconds the
scoring processes used: for ``dask-N`` the workers' user + system time during the job, for the
commands that of the process and the workers it started, start-up included; CPU time stays
meaningful on a machine that other work shares), the input and output
bytes per row, and the peak resident memory of a worker, and writes them as JSON with
``--json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from scoring_throughput import rows_table  # noqa: E402  (the same rows as the scoring benchmark)

ROW_GROUP = 1 << 18
PARTITION_ROWS = 1 << 18  # one partition per row group: enough partitions for 4 workers
WORKERS = (1, 2, 4)


def make_file(path: Path, rows: int) -> None:
    import pyarrow.parquet as pq

    with pq.ParquetWriter(path, rows_table(1, 0).schema) as writer:
        for start in range(0, rows, ROW_GROUP):
            n = min(ROW_GROUP, rows - start)
            writer.write_table(rows_table(n, seed=start // ROW_GROUP + 1, start=start), row_group_size=ROW_GROUP)


def train_model(run: Path) -> None:
    import torchann

    torchann.train(rows_table(20_000, seed=999).drop(["id"]), target="price", epochs=2, fill_missing="mean",
                   seed=0).save(run)


def timed(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """Wall seconds, and CPU seconds (user + system) of the process and the children it waited for."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    err = proc.stderr.read().decode() if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {err.strip()[-800:]}")
    return seconds, usage.ru_utime + usage.ru_stime


def read_bits(path: Path) -> dict[str, list]:
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    out = {}
    for name in table.column_names:
        col = table.column(name).to_numpy()
        out[name] = col.view(np.int64).tolist() if col.dtype == np.float64 else col.tolist()
    return out


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def dask_job(workers: int, run: Path, big: Path, out: Path) -> tuple[float, float, float]:
    """One ``score_files`` job on a fresh, warmed-up ``local:N`` cluster (the one ``--cluster
    local:N`` starts, and the only one alive): wall seconds, the workers' CPU seconds during the
    job, and a worker's peak RSS (MB)."""
    from torchann.dask.cluster import connect
    from torchann.dask.jobs import score_files

    with connect(f"local:{workers}") as client:
        client.run(lambda: __import__("torchann.dask.parts"))  # what a warm cluster has done already
        before = sum(client.run(_cpu_seconds).values())
        start = time.perf_counter()
        score_files(run, big, out, client=client, keep=["id"], partition_rows=PARTITION_ROWS)
        seconds = time.perf_counter() - start
        cpu = sum(client.run(_cpu_seconds).values()) - before
        peak = max(client.run(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024).values())
    return seconds, cpu, peak


def cpu_line() -> str:
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    except OSError:
        return "unknown CPU"
    model = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("Model name")), "?")
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("Flags")), [])
    wanted = sorted(f for f in flags if f.startswith(("avx", "amx")))
    return f"{model}, {os.cpu_count()} cores, flags: {' '.join(wanted) or 'no avx'}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--rows", type=int, default=4_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="leave the files in --dir")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args()

    args.dir.mkdir(parents=True, exist_ok=True)
    big, run = args.dir / "big.parquet", args.dir / "run"
    try:
        make_file(big, args.rows)
        train_model(run)
        cli = [sys.executable, "-m", "torchann", "predict", str(run), "--data", str(big), "--keep", "id"]
        times: dict[str, list[float]] = {}
        cpus: dict[str, list[float]] = {}
        peaks: dict[str, float] = {}
        expected = None
        load_before = os.getloadavg()
        for r in range(args.rounds):
            for name in ["single", "single-1t", *[f"dask-{n}" for n in WORKERS], *[f"cli-local-{n}" for n in WORKERS]]:
                out = args.dir / name if not name.startswith("single") else args.dir / f"{name}.parquet"
                if out.is_dir():
                    shutil.rmtree(out)
                out.unlink(missing_ok=True)
                if name.startswith("single"):
                    env = dict(os.environ)
                    env.pop("OMP_NUM_THREADS", None)
                    if name == "single-1t":
                        env["OMP_NUM_THREADS"] = "1"
                    seconds, cpu = timed(cli + ["--out", str(out)], env)
                elif name.startswith("dask-"):
                    seconds, cpu, peaks[name] = dask_job(int(name.split("-")[1]), run, big, out)
                else:  # CPU: the command's and its local workers' (children it waited for), start-up included
                    seconds, cpu = timed(cli + ["--out", str(out), "--cluster", f"local:{name.rsplit('-', 1)[1]}",
                                                "--partition-rows", str(PARTITION_ROWS)])
                times.setdefault(name, []).append(seconds)
                cpus.setdefault(name, []).append(cpu)
                got = read_bits(out)
                if expected is None:
                    expected = got
                if got != expected:
                    raise SystemExit(f"{name}: the predictions differ from single-process torchann predict")
                print(f"round {r + 1} {name}: {seconds:.2f} s, {cpu:.2f} CPU s", file=sys.stderr)
        single = statistics.median(times["single"])
        table = {}
        for name, t in times.items():
            wall, cpu = statistics.median(t), statistics.median(cpus[name])
            table[name] = {"seconds": wall, "rows_per_s": args.rows / wall, "vs_single": single / wall,
                           "cpu_seconds": cpu, "rows_per_cpu_s": args.rows / cpu if cpu else None, "rounds": t,
                           "cpu_rounds": cpus[name]}
        out_bytes = sum(p.stat().st_size for p in (args.dir / "dask-2").glob("part-*.parquet"))
        facts = {"cpu": cpu_line(), "rows": args.rows, "rounds": args.rounds,
                 "load_average_before_after": [load_before[0], os.getloadavg()[0]],
                 "input_bytes_per_row": big.stat().st_size / args.rows, "output_bytes_per_row": out_bytes / args.rows,
                 "worker_peak_mb": peaks, "partitions": -(-args.rows // PARTITION_ROWS),
                 "identical_to_single": True, "results": table}
        print(f"\n{facts['cpu']}; {args.rows:,} rows, {facts['partitions']} partitions, median of {args.rounds}; "
              f"1-minute load average {load_before[0]:.1f} before, {os.getloadavg()[0]:.1f} after")
        print("| run | seconds | rows/s | vs single | CPU seconds | rows per CPU second |\n|---|---:|---:|---:|---:|---:|")
        for name, row in table.items():
            per_cpu = f"{row['rows_per_cpu_s']:,.0f}"
            print(f"| {name} | {row['seconds']:.2f} | {row['rows_per_s']:,.0f} | {row['vs_single']:.2f}x | "
                  f"{row['cpu_seconds']:.1f} | {per_cpu} |")
        print(f"input {facts['input_bytes_per_row']:.1f} B/row (Parquet), output {facts['output_bytes_per_row']:.1f} "
              f"B/row; worker peak RSS {', '.join(f'{k}: {v:.0f} MB' for k, v in peaks.items())}")
        if args.json:
            args.json.write_text(json.dumps(facts, indent=1) + "\n")
    finally:
        if not args.keep:
            shutil.rmtree(args.dir, ignore_errors=True)


if __name__ == "__main__":
    main()
