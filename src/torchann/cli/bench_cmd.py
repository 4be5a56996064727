"""``torchann bench ...``: benchmarks. ``bench matmul`` is the tutorial's §1.2 timing done right;
``bench serve`` loads a model server (``torchann.server.loadgen``)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from ._app import app, stderr_console

bench_app = typer.Typer(
    help="Measure this machine: matmul on numpy, torch CPU, CUDA and MPS; a model server under load.",
    no_args_is_help=True,
)
app.add_typer(bench_app, name="bench", short_help="Time matmul (numpy, CPU, CUDA, MPS) or a model server.")


def _ms(seconds: Optional[float]) -> str:
    """Milliseconds to three significant digits, keeping trailing zeros (12.0, 6.53, 0.0179)."""
    return "-" if seconds is None else f"{seconds * 1e3:#.3g}".rstrip(".")


@bench_app.command("matmul")
def matmul(
    shape: Annotated[str, typer.Option(
        "--shape", help="MxKxN: times (M, K) @ (K, N). The tutorial's is 1x6400x5000.")] = "1x6400x5000",
    dtype: Annotated[str, typer.Option(
        "--dtype", help="float32, float64, bfloat16 or float16, the same on every backend.")] = "float32",
    devices: Annotated[str, typer.Option(
        "--devices", help="Comma-separated backends among numpy, cpu, cuda, mps; absent ones are reported.")
    ] = "numpy,cpu,cuda,mps",
    repeats: Annotated[int, typer.Option("--repeats", min=1, help="Timed samples per backend.")] = 20,
    warmup: Annotated[int, typer.Option("--warmup", min=0, help="Untimed calls before the samples.")] = 3,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the random inputs.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole report as JSON on stdout.")] = False,
) -> None:
    """Time one matrix product carefully (warm-up, synchronisation, medians) beside the tutorial's way."""
    import json

    from ..bench.matmul import bench_matmul, parse_shape

    parse_shape(shape)  # fail on a bad value before anything slow is imported or run
    err = stderr_console()
    with err.status("starting") as status:
        report = bench_matmul(shape, dtype=dtype, devices=devices, repeats=repeats, warmup=warmup, seed=seed,
                              progress=lambda msg: status.update(msg))
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
        return
    _render(report)


def _render(report) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    m, k, n = report.shape
    accel = any(r.copy_s is not None for r in report.rows)
    table = Table(title=f"({m}, {k}) @ ({k}, {n}): {report.flops / 1e9:.3g} GFLOP, "
                        f"{report.bytes / 1e6:.3g} MB in {report.dtype}",
                  box=box.SIMPLE_HEAD, padding=(0, 1), pad_edge=False)
    names = ["device", "dtype", "median ms", "min-max ms", "GFLOP/s", "GB/s",
             *(["copy ms"] if accel else []), "naive ms"]
    for name in names:
        table.add_column(name, justify="left" if name in ("device", "dtype") else "right", no_wrap=True,
                         min_width=8 if name == "dtype" else None)
    naive = {t.device: t for t in report.naive}
    order = ("numpy", "cpu", "cuda", "mps")
    rows = sorted([*report.rows, *report.reference, *report.other_dtype], key=lambda r: order.index(r.device))
    notes, placed = [], set()
    for row in rows:
        t, cell = naive.get(row.device), ""
        # the naive reading goes on the row of its own dtype (numpy: float64), else on the device's first row
        if t is not None and row.device not in placed and (
                t.dtype == row.dtype or not any(r.device == row.device and r.dtype == t.dtype for r in rows)):
            placed.add(row.device)
            cell = "-" if t.seconds is None else _ms(t.seconds) + ("" if t.dtype == row.dtype else f" ({t.dtype})")
        if row.status != "ok":
            notes.append(f"{row.device} {row.dtype} {row.status}: {row.reason}")
        if row.median_s is None:
            table.add_row(row.device, row.dtype, row.status, *["-"] * (len(names) - 4), cell)
            continue
        table.add_row(
            row.device if row.status == "ok" else f"{row.device} ({row.status})", row.dtype, _ms(row.median_s),
            f"{_ms(row.min_s)}-{_ms(row.max_s)}", f"{row.gflops:.3g}", f"{row.gbps:.3g}",
            *([_ms(row.copy_s)] if accel else []), cell)
    out = Console(soft_wrap=True, highlight=False)
    if not out.is_terminal:  # a file or a pipe: do not squeeze the table into 80 columns
        out = Console(soft_wrap=True, highlight=False, width=120)
    out.print(table, soft_wrap=False)
    mach = report.machine
    notes.append(f"CPU: {mach.get('cpu')}, {mach.get('cpu_count')} cores, torch {mach.get('torch')} with "
                 f"{mach.get('torch_threads')} threads, numpy {mach.get('numpy')}")
    notes.append(f"CPU capability: {report.capability}")
    notes.append(f"median of {report.repeats} samples after {report.warmup} warm-up calls; naive = the tutorial's "
                 f"time.time() around one call (numpy float64, torch float32), no warm-up, no synchronisation")
    for note in notes:
        out.print(note, markup=False)
    out.print()
    for i, sentence in enumerate(report.explanation, 1):
        out.print(f"{i}. {sentence}", markup=False)


@bench_app.command("serve")
def serve_bench(
    model_dir: Annotated[str, typer.Argument(help="A model directory; a server for it is started on 127.0.0.1.",
                                             show_default=False)],
    url: Annotated[Optional[str], typer.Option(
        "--url", help="Load this running scoring URL instead (e.g. http://127.0.0.1:8080/invocations).")] = None,
    concurrency: Annotated[int, typer.Option("--concurrency", "-c", min=1, help="Clients sending at once.")] = 1,
    duration: Annotated[float, typer.Option("--duration", min=0.1, help="Seconds measured per run.")] = 5.0,
    warmup: Annotated[float, typer.Option("--warmup", min=0.0, help="Seconds sent before measuring.")] = 1.0,
    rows: Annotated[int, typer.Option("--rows", min=1, help="Rows per request.")] = 1,
    data: Annotated[Optional[str], typer.Option(
        "--data", help="Take the request's rows from this table [default: rows inside the training ranges].")] = None,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Server processes (the started server).")] = 1,
    max_wait_ms: Annotated[Optional[float], typer.Option("--max-wait-ms", min=0.0,
                                                         help="The started server's --max-wait-ms.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")] = False,
) -> None:
    """Load a model server with concurrent clients: requests/s, rows/s, p50/p95/p99 latency, errors."""
    import json
    import sys

    from ..api.model import load
    from ..server.loadgen import LocalServer, invocation_body, run_load, sample_rows
    from ..bench.timing import cpu_model

    model = load(model_dir)
    if data is not None:
        table = model.table(data)
        n = table.n_rows
        records = [{f: _plain(table.columns[f][i % n]) for f in model.feature_names} for i in range(rows)]
    else:
        records = sample_rows(model, rows)
    body = invocation_body(records)
    if url is None:
        command = [sys.executable, "-m", "torchann", "serve", str(model_dir), "--port", "{port}", "--quiet",
                   "--workers", str(workers), "--max-body-mb", str(max(16.0, 2 * len(body) / 1e6))]
        if max_wait_ms is not None:
            command += ["--max-wait-ms", str(max_wait_ms)]
        with LocalServer(command) as server:
            result = run_load(server.url + "/invocations", body, rows=rows, concurrency=concurrency,
                              duration=duration, warmup=warmup)
    else:
        result = run_load(url, body, rows=rows, concurrency=concurrency, duration=duration, warmup=warmup)
    if as_json:
        typer.echo(json.dumps({**result.to_dict(), "cpu": cpu_model()}, indent=2))
        return
    typer.echo(result.line())
    if result.errors:
        typer.echo(f"statuses: {result.statuses}")
    stderr_console().print(f"CPU: {cpu_model()}; the load generator shares this machine's cores", highlight=False)


def _plain(value):
    return value.item() if hasattr(value, "item") else value
