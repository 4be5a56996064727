"""``torchann predict`` and ``torchann evaluate``: a saved model answers, or is scored."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ._app import app, stderr_console

_RUN = typer.Argument(help="A model directory written by train, demo or save.", show_default=False)
_TABLE = typer.Argument(help="The table, as with --data (either one).", show_default=False, metavar="DATA")


def _one_table(positional: Optional[Path], option: Optional[Path]) -> Optional[Path]:
    """The table given after the model directory or as ``--data``, not both."""
    from ..core.errors import UsageError

    if positional is not None and option is not None and positional != option:
        raise UsageError(f"two tables given, {positional} and --data {option}; give one")
    return positional if positional is not None else option


@app.command("predict", short_help="Answers of a saved model for new rows.")
def predict_cmd(
    model_dir: Annotated[Path, _RUN],
    table: Annotated[Optional[Path], _TABLE] = None,
    rows: Annotated[Optional[list[str]], typer.Option(
        "--input", "-i", help="One input row such as 10,11 (features in training order); repeat for more rows.")] = None,
    data: Annotated[Optional[Path], typer.Option(
        "--data", help="A table; the model's feature columns are picked by name, others ignored.")] = None,
    keep: Annotated[Optional[str], typer.Option(
        "--keep", help="Columns of --data to copy into the output first (identifiers), comma-separated.")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Write the CSV here instead of stdout.")] = None,
    proba: Annotated[bool, typer.Option("--proba", help="Add one probability column per class "
                                                        "(classification).")] = False,
    std: Annotated[bool, typer.Option("--std", help="Add the spread of the model's networks: std(<target>) for "
                                                    "regression, disagreement for classes (a model of several "
                                                    "networks, as train makes for smaller tables, or a tuned "
                                                    "ensemble).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print predictions as JSON instead of CSV.")] = False,
    strict: Annotated[bool, typer.Option("--strict", help="Refuse categories never seen in training (exit 2, naming "
                                                          "the column, values and rows) instead of counting them "
                                                          "in a warning.")] = False,
    cluster: Annotated[Optional[str], typer.Option(
        "--cluster", help="Score on Dask: tcp://HOST:8786 (a running scheduler) or local[:N] (N worker processes "
                          "here). --data may then be a glob or a folder; --out is a folder of Parquet parts "
                          "(pip install 'torchann[dask]').", show_default=False)] = None,
    partition_rows: Annotated[Optional[int], typer.Option(
        "--partition-rows", min=1, help="With --cluster: Parquet files are cut at row groups into partitions of "
                                        "about this many rows (default 1048576).", show_default=False)] = None,
) -> None:
    """Predict with a saved model; CSV with one column named after each target, on stdout or --out."""
    from ..core.errors import UsageError
    from ..api.model import load

    data = _one_table(table, data)
    if (rows is None) == (data is None):
        raise UsageError("give either a table (torchann predict RUN new.csv, or --data FILE) or --input ROW "
                         "(repeatable)")
    keep_names = [k.strip() for k in keep.split(",") if k.strip()] if keep else []
    if keep_names and data is None:
        raise UsageError("--keep copies columns of --data; it needs --data FILE")
    if cluster is not None or partition_rows is not None:
        if strict:
            raise UsageError("--strict is not available with --cluster; score the file here, or leave out --strict")
        _on_cluster(model_dir, data, out, cluster, keep_names, proba, as_json, partition_rows)
        return
    model = load(model_dir)
    if proba and model.task != "classification":
        raise UsageError(f"--proba needs a classifier, but {model_dir} predicts {', '.join(model.target_names)} as "
                         f"numbers (regression); leave out --proba")
    if std and model.members < 2:
        raise UsageError(f"--std shows how a model's networks disagree, but {model_dir} is one network; leave out "
                         f"--std, or train several (train --networks 4) or tune with ensembling")
    if data is not None and not as_json and _streams(data):
        _score_file(model, data, out, keep_names, proba, std, strict)
        return
    source = data if data is not None else input_table(model, rows or [])
    columns = model.predictions(source, proba=proba, keep=keep_names, std=std, strict=strict)
    if as_json:
        text = json.dumps({k: [_plain(v) for v in col] for k, col in columns.items()}) + "\n"
    else:
        text = _csv(columns)
    if out is None:
        sys.stdout.write(text)
    else:
        from ..core.files import atomic_write_text

        atomic_write_text(out, text)
        stderr_console().print(f"wrote {len(next(iter(columns.values())))} predictions to {out}", highlight=False)


@app.command("evaluate", short_help="Score a saved model on a labelled table.")
def evaluate_cmd(
    model_dir: Annotated[Path, _RUN],
    table: Annotated[Optional[Path], _TABLE] = None,
    data: Annotated[Optional[Path], typer.Option("--data", help="A labelled table: the feature columns and the "
                                                 "target.", show_default=False)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the metrics as JSON on stdout.")] = False,
) -> None:
    """Score a saved model on a labelled table: r2, mse, mae, or accuracy, log loss, auc."""
    from ..api.model import load
    from ..core.errors import UsageError

    data = _one_table(table, data)
    if data is None:
        raise UsageError("give the labelled table: torchann evaluate RUN test.csv (or --data FILE)")
    model = load(model_dir)
    scores = model.evaluate(data)
    if as_json:
        typer.echo(json.dumps({"model": str(model_dir), "data": str(data), "task": model.task, **scores}, indent=2))
        return
    typer.echo(f"{model.task} on {scores['rows']} rows of {data}")
    for name, value in scores.items():
        if name != "rows":
            typer.echo(f"  {name:<18} {value:.6g}")


def input_table(model: Any, rows: list[str]) -> Any:
    """``--input 10,11`` rows as a table with the model's feature names, checked for width."""
    from ..core.errors import UsageError
    from ..data.table_input import as_table

    names = model.feature_names
    values = [[v.strip() for v in r.split(",")] for r in rows]
    bad = next((r for r in values if len(r) != len(names)), None)
    if bad is not None:
        raise UsageError(f"--input rows need {len(names)} values ({', '.join(names)}), got {len(bad)}")
    if model.bare:  # a network without a table: every input is a number
        for text, row in zip(rows, values):
            try:
                [float(v) for v in row]
            except ValueError:
                raise UsageError(f"--input expects comma-separated numbers such as '10,11', got {text!r}") from None
    return as_table(values, names=names, source="--input")


def _on_cluster(model_dir: Path, data: Optional[Path], out: Optional[Path], cluster: Optional[str],
                keep: list[str], proba: bool, as_json: bool, partition_rows: Optional[int]) -> None:
    """``--cluster``: the files scored on Dask into a folder of Parquet parts (``torchann.dask``)."""
    from ..core.errors import UsageError

    if cluster is None:
        raise UsageError("--partition-rows cuts the input for --cluster; give --cluster tcp://HOST:8786 or local:N")
    if data is None:
        raise UsageError("--cluster scores files: give --data FILE, FOLDER or a pattern such as 'data/*.parquet'")
    if out is None:
        raise UsageError("--cluster writes a folder of Parquet parts: give --out FOLDER")
    if as_json:
        raise UsageError("--cluster writes Parquet parts to --out; leave out --json")
    from ..dask import score_files
    from ..dask.cluster import parse_cluster
    from ..dask.inputs import DEFAULT_PARTITION_ROWS

    spec = parse_cluster(cluster)  # a typo in --cluster is reported before the model is read
    result = score_files(model_dir, data, out, cluster=spec, keep=keep, proba=proba,
                         partition_rows=partition_rows or DEFAULT_PARTITION_ROWS)
    stderr_console().print(f"wrote {result.rows} predictions of {len(result.files)} file(s) in {result.parts} "
                           f"part(s) to {result.out} ({result.workers} Dask worker(s) at {spec})",
                           highlight=False, soft_wrap=True)


def _streams(data: Path) -> bool:
    from ..model.scoring import STREAMED

    name = data.name.lower()
    for ending in (".gz", ".bz2", ".zst", ".lz4"):
        name = name.removesuffix(ending)
    return data.is_file() and Path(name).suffix in STREAMED


def _score_file(model: Any, data: Path, out: Optional[Path], keep: list[str], proba: bool, std: bool,
                strict: bool) -> None:
    """A CSV/TSV/Parquet file is scored in chunks: any size, in bounded memory (``torchann.model.scoring``)."""
    from ..model.scoring import score_file

    if out is None:
        sys.stdout.flush()
        score_file(model, data, keep=keep, proba=proba, stream=sys.stdout.buffer, std=std, strict=strict)
        sys.stdout.buffer.flush()
        return
    rows = score_file(model, data, out, keep=keep, proba=proba, std=std, strict=strict)
    stderr_console().print(f"wrote {rows} predictions to {out}", highlight=False, soft_wrap=True)


def _plain(value: Any) -> Any:
    if value is None:
        return None
    return value.item() if hasattr(value, "item") else value


def _csv(columns: dict[str, Any]) -> str:
    import csv
    import io

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in zip(*columns.values()):
        writer.writerow(["" if v is None else repr(float(v)) if isinstance(v, float) else _plain(v) for v in row])
    return buf.getvalue()
