"""``torchann summary`` / ``activations`` / ``inspect``: look inside a saved network.

Tables are the commands' data, so they go to stdout; messages go to stderr.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ._app import app, parse_floats, parse_ints, stderr_console

_MODEL_ARG = typer.Argument(help="A model directory (spec.json + weights.safetensors).", show_default=False)


@app.command("summary")
def summary_cmd(
    model: Annotated[Path, typer.Argument(
        help="A model directory, its spec.json, or a bare ModelSpec JSON file.", show_default=False)],
    input_size: Annotated[Optional[str], typer.Option(
        "--input-size", help="One sample's shape without the batch dimension, e.g. 1,2 "
                             "[default: 1,IN_FEATURES as in the tutorial; IN_FEATURES for batch-norm models]")] = None,
    depth: Annotated[Optional[int], typer.Option(
        "--depth", min=0, help="Show modules down to this depth; deeper ones fold into their container.")] = None,
    batch_size: Annotated[int, typer.Option(
        "--batch-size", help="Batch size shown in the shapes and used for the MB estimates; -1 = per sample.")] = -1,
    as_json: Annotated[bool, typer.Option("--json", help="Print rows, totals and sizes as JSON on stdout.")] = False,
) -> None:
    """The torchsummary table: layers, output shapes, parameter counts and sizes in MB."""
    from ..inspect import summary

    net, spec = _model_and_spec(model)
    if input_size is not None:
        shape = tuple(parse_ints(input_size, option="--input-size"))
    elif str(spec.norm) == "batch":  # BatchNorm1d reads dim 1 as features: no extra axis
        shape = (spec.in_features,)
    else:
        shape = (1, spec.in_features)
    result = summary(net, input_size=shape, depth=depth, batch_size=batch_size)
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
    else:
        typer.echo(str(result), nl=False)


@app.command("activations")
def activations_cmd(
    model_dir: Annotated[Path, _MODEL_ARG],
    out: Annotated[Path, typer.Option(
        "--out", help="Where to write: .npz (one array per layer) or .csv (columns LAYER:INDEX).",
        show_default=False)],
    data: Annotated[Optional[Path], typer.Option(
        "--data", help="CSV file of input rows (the model's feature columns, or all numeric columns).")] = None,
    rows: Annotated[Optional[list[str]], typer.Option(
        "--input", help="One input row such as 10,11; repeat for more rows.")] = None,
    layers: Annotated[Optional[list[str]], typer.Option(
        "--layer", help="Layer name such as act1 (repeat for more); default: every layer.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print what was written as JSON on stdout.")] = False,
) -> None:
    """Record each layer's output for some inputs (forward hooks; the model is not changed)."""
    from ..errors import UsageError

    suffix = out.suffix.lower()
    if suffix not in (".npz", ".csv"):
        raise UsageError(f"--out {out}: unknown file type {suffix or '(none)'!r}; use a name ending in .npz or .csv")
    if (data is None) == (not rows):
        raise UsageError("give exactly one of --data FILE.csv or --input '10,11' (repeat --input for more rows)")

    import numpy as np
    import torch

    from ..inspect import activations
    from ..modeldir import read_model_dir

    loaded = read_model_dir(model_dir)
    pre = _preprocessor(loaded.extra)
    if pre is not None:  # a model trained on a table: inputs are raw feature values, encoded as in training
        x = _preprocessed_inputs(pre, data, rows)
    elif data is not None:
        x = _read_csv_inputs(data, _feature_names(loaded.extra), loaded.spec.in_features)
    else:
        x = np.asarray(_input_rows(rows or [], loaded.spec.in_features), dtype=np.float32)
    dtype = next(loaded.model.parameters()).dtype
    acts = activations(loaded.model, torch.as_tensor(x, dtype=dtype), layers=layers or None)
    arrays = {}
    for name, value in acts.items():
        if not isinstance(value, torch.Tensor):
            raise UsageError(f"layer {name!r} returns {type(value).__name__}, not one tensor; choose another --layer")
        arrays[name] = value.detach().cpu().numpy().reshape(len(x), -1)
    _write_arrays(out, arrays)
    report = {"out": str(out), "rows": int(len(x)), "layers": {k: int(v.shape[1]) for k, v in arrays.items()}}
    if as_json:
        typer.echo(json.dumps(report, indent=2))
    else:
        stderr_console().print(f"wrote {len(x)} row(s) x {len(arrays)} layer(s) to {out}", highlight=False)


@app.command("inspect")
def inspect_cmd(
    model_dir: Annotated[Path, _MODEL_ARG],
    as_json: Annotated[bool, typer.Option("--json", help="Print the spec and every parameter as JSON on stdout.")] = False,
) -> None:
    """The network in words and a table of its parameters (shape, count, mean, std, min, max)."""
    from ..inspect import describe_spec, parameters_table
    from ..modeldir import read_model_dir

    loaded = read_model_dir(model_dir)
    table = parameters_table(loaded.model)
    words = describe_spec(loaded.spec)
    if as_json:
        typer.echo(json.dumps(
            {"path": str(model_dir), "description": words, "spec": loaded.spec.to_dict(), **table.to_dict()},
            indent=2,
        ))
    else:
        typer.echo(words)
        typer.echo(str(table), nl=False)


# -- helpers ----------------------------------------------------------------------------------

def _model_and_spec(path: Path) -> tuple[Any, Any]:
    """A model directory loads with its weights; a JSON file builds a fresh net from its spec
    (parameter counts and shapes do not depend on the weights)."""
    from ..errors import ModelFileError
    from ..modeldir import read_model_dir
    from ..spec import ModelSpec

    if path.is_dir():
        loaded = read_model_dir(path)
        return loaded.model, loaded.spec
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model directory or spec.json file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ModelFileError(f"{path}: not UTF-8 text; give a model directory or a spec.json file") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError:
        document = None
    if isinstance(document, dict) and "format" in document and "model" in document:
        spec = ModelSpec.from_dict(document["model"], source=str(path))  # a model directory's spec.json
    else:
        spec = ModelSpec.from_json(text, source=str(path))  # a bare ModelSpec
    return spec.build(), spec


def _input_rows(rows: list[str], width: int) -> list[list[float]]:
    from ..errors import UsageError

    table = [parse_floats(r, option="--input") for r in rows]
    for i, r in enumerate(table, start=1):
        if len(r) != width:
            raise UsageError(
                f"--input number {i} has {len(r)} value(s) ({rows[i - 1]!r}) but the model takes "
                f"{width}; give {width} comma-separated numbers"
            )
    return table


def _preprocessor(extra: dict[str, Any]):
    """The fitted encoding/scaling stored beside the model, if the data layer stored one."""
    from ..preprocess import FORMAT, Preprocessor

    for value in extra.values():
        if isinstance(value, dict) and value.get("format") == FORMAT:
            return Preprocessor.from_dict(value)
    return None


def _preprocessed_inputs(pre, data: Path | None, rows: list[str] | None):
    from ..data import Table, load_table
    from ..errors import UsageError

    if data is not None:
        return pre.transform_x(load_table(data))
    if any(f.kind != "numeric" for f in pre.features):
        raise UsageError(
            f"the model has categorical features ({', '.join(f.name for f in pre.features if f.kind != 'numeric')}); "
            "give the rows as a file with --data"
        )
    values = _input_rows(rows or [], len(pre.features))
    columns = {f.name: [r[j] for r in values] for j, f in enumerate(pre.features)}
    return pre.transform_x(Table.from_columns(columns, source="--input"))


def _feature_names(extra: dict[str, Any]) -> list[str] | None:
    """Feature names recorded by the data layer, wherever it keeps them."""
    for holder in (extra, extra.get("data"), extra.get("schema")):
        if isinstance(holder, dict):
            for key in ("features", "feature_names"):
                names = holder.get(key)
                if isinstance(names, list) and names and all(isinstance(n, str) for n in names):
                    return names
    return None


def _read_csv_inputs(path: Path, features: list[str] | None, width: int):
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    from pyarrow import csv as pacsv

    from ..errors import DataError

    try:
        table = pacsv.read_csv(path)
    except FileNotFoundError:
        raise DataError(f"--data {path}: no such file") from None
    except (pa.ArrowInvalid, OSError) as err:
        raise DataError(f"--data {path}: not a readable CSV file ({str(err).splitlines()[0]})") from None
    numeric = [
        name for name, col in zip(table.column_names, table.columns)
        if pa.types.is_integer(col.type) or pa.types.is_floating(col.type)
    ]
    if features and all(f in table.column_names for f in features):
        names = features
        bad = [f for f in features if f not in numeric]
        if bad:
            raise DataError(f"--data {path}: feature column(s) {', '.join(bad)} are not numeric; fix the file")
    else:
        names = numeric
    if len(names) != width:
        given = ", ".join(names) or "none"
        expect = f" ({', '.join(features)})" if features else ""
        raise DataError(
            f"--data {path}: the model expects {width} input column(s){expect}, the file has "
            f"{len(names)} numeric column(s) ({given}); give a CSV with exactly the model's input columns"
        )
    for name in names:
        nulls = table.column(name).null_count
        if nulls:
            first = int(pc.index(pc.is_null(table.column(name)), True).as_py()) + 1
            raise DataError(f"--data {path}: column {name!r} has {nulls} missing value(s), first at row {first}; "
                            "fill or drop them")
    columns = [table.column(n).to_numpy().astype(np.float64) for n in names]
    return np.stack(columns, axis=1) if columns else np.zeros((table.num_rows, 0))


def _write_arrays(out: Path, arrays: dict) -> None:
    import io

    import numpy as np

    from ..files import atomic_write_bytes, atomic_write_text

    if out.suffix.lower() == ".npz":
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        atomic_write_bytes(out, buffer.getvalue())
        return
    header = [f"{name}:{j}" for name, a in arrays.items() for j in range(a.shape[1])]
    matrix = np.concatenate(list(arrays.values()), axis=1) if arrays else np.zeros((0, 0))
    buffer = io.StringIO()
    buffer.write(",".join(header) + "\n")
    # 9 significant digits reproduce every float32 exactly.
    np.savetxt(buffer, matrix, fmt="%.9g", delimiter=",")
    atomic_write_text(out, buffer.getvalue())
