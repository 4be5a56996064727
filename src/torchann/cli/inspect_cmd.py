"""``torchann summary`` / ``activations`` / ``inspect``: look inside a saved network.

Tables are the commands' data, so they go to stdout; messages go to stderr.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ._app import app, parse_ints, stderr_console
from .progress import metrics_text

_MODEL_ARG = typer.Argument(help="A model directory (spec.json + weights.safetensors).", show_default=False)


@app.command("summary", short_help="Layer table: output shapes, parameters, sizes in MB.")
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
    from ..inspect.layers import summary
    from ..inspect.summary import default_input_size

    net, spec = _model_and_spec(model)
    shape = tuple(parse_ints(input_size, option="--input-size")) if input_size is not None else default_input_size(spec)
    # Shapes and counts do not depend on the values: the pass runs on the meta device, so a spec
    # declaring a 46000-wide layer or an --input-size of 10^12 allocates nothing.
    result = summary(net, input_size=shape, depth=depth, batch_size=batch_size)
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
    else:
        typer.echo(str(result), nl=False)


@app.command("activations", short_help="Record each layer's output for some inputs.")
def activations_cmd(
    model_dir: Annotated[Path, _MODEL_ARG],
    out: Annotated[Optional[Path], typer.Option(
        "--out", help="Where to write: .npz (one array per layer) or .csv (columns LAYER:INDEX). Required.",
        show_default=False)] = None,
    data: Annotated[Optional[Path], typer.Option(
        "--data", help="A table of input rows (the model's feature columns are picked by name).")] = None,
    rows: Annotated[Optional[list[str]], typer.Option(
        "--input", help="One input row such as 10,11; repeat for more rows.")] = None,
    layers: Annotated[Optional[list[str]], typer.Option(
        "--layer", help="Layer name such as act1 (repeat for more); default: every layer.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print what was written as JSON on stdout.")] = False,
) -> None:
    """Record each layer's output for some inputs (forward hooks; the model is not changed)."""
    from ..core.errors import UsageError

    if out is None:
        raise UsageError("activations needs --out FILE.npz (one array per layer) or --out FILE.csv")
    suffix = out.suffix.lower()
    if suffix not in (".npz", ".csv"):
        raise UsageError(f"--out {out}: unknown file type {suffix or '(none)'!r}; use a name ending in .npz or .csv")
    if (data is None) == (not rows):
        raise UsageError("give exactly one of --data FILE.csv or --input '10,11' (repeat --input for more rows)")

    import torch

    from ..inspect.layers import activations
    from ..api.model import load
    from .predict_cmd import input_table

    model = load(model_dir)
    source = data if data is not None else input_table(model, rows or [])
    x = model.encode(source)  # raw rows, encoded as in training
    dtype = next(model.network.parameters()).dtype
    acts = activations(model.network, torch.as_tensor(x, dtype=dtype), layers=layers or None)
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


@app.command("inspect", short_help="Features, encodings, task, training and parameters.")
def inspect_cmd(
    model_dir: Annotated[Path, _MODEL_ARG],
    as_json: Annotated[bool, typer.Option("--json", help="Print everything as JSON on stdout.")] = False,
) -> None:
    """What the model reads and how (features, kinds, encodings), what it predicts, how training
    went (best epoch, final metrics), the network in words and a table of its parameters."""
    from ..inspect.layers import parameters_table
    from ..api.model import load

    model = load(model_dir)
    facts = model.describe()
    table = parameters_table(model.network)
    if as_json:
        typer.echo(json.dumps({**facts, **table.to_dict()}, indent=2, default=str))
        return
    typer.echo(render_facts(facts))
    typer.echo(str(table), nl=False)


def render_facts(facts: dict[str, Any]) -> str:
    """``Model.describe()`` as lines of text for the terminal."""
    lines = [f"model      {facts['path'] or '(in memory)'}",
             f"task       {facts['task']}: predicts {', '.join(map(str, facts['targets']))}"]
    if facts["classes"] is not None:
        shown = ", ".join(map(str, facts["classes"][:20]))
        lines.append(f"classes    {len(facts['classes'])}: {shown}")
    feats = facts["features"]
    lines.append(f"features   {len(feats)} column(s) -> {facts['inputs']} network input(s)")
    width = max((len(str(f["name"])) for f in feats), default=4)
    lines += [feature_line(f, width) for f in feats]
    for name, why in facts.get("left_out", {}).items():
        lines.append(f"  {name} left out: {why}")
    lines.append(f"network    {facts['network']}")
    t = facts["training"]
    if t["epochs"]:
        lines.append(f"training   {t['epochs']} epoch(s), {t['seconds']:.1f} s; last epoch: {metrics_text(t['final'])}")
        if t.get("best_epoch"):
            how = "stopped early" if t["stopped_early"] else "ran every epoch"
            shown = metrics_text(t.get("best", {}))
            lines.append(f"           {how}; weights of the best epoch {t['best_epoch']} kept: {shown}")
        rows = [f"{k} {t[k]}" for k in ("train_rows", "val_rows", "batch_size", "seed", "device") if k in t]
        if rows:
            lines.append(f"           {', '.join(rows)}")
    return "\n".join(lines)


def feature_line(f: dict[str, Any], width: int) -> str:
    """One feature row of ``Model.describe()`` (or of ``train``'s column plan) as a line:
    name, kind, inputs, encoding and the fill of a missing number."""
    fill = "" if f["fill"] is None else f", missing -> {f['fill']:.6g}"
    return f"  {str(f['name']):<{width}}  {f['kind']:<11} {f['inputs']:>3} input(s)  {f['encoding']}{fill}"


# -- helpers ----------------------------------------------------------------------------------

def _model_and_spec(path: Path) -> tuple[Any, Any]:
    """The network on the meta device (shapes without values) and its spec. A model directory
    is loaded first, so that its files are checked; a JSON file's spec is built on meta directly."""
    import torch

    from ..core.errors import ModelFileError
    from ..model.pth import read_spec_file
    from ..api.model import load

    if path.is_dir():
        model = load(path)
        return model.network.to("meta"), model.spec
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model directory or spec.json file")
    spec = read_spec_file(path)  # strict JSON: a bare ModelSpec or a model directory's spec.json
    with torch.device("meta"):
        return spec.build(), spec


def _write_arrays(out: Path, arrays: dict) -> None:
    import io

    import numpy as np

    from ..core.files import atomic_write_bytes, atomic_write_text

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
