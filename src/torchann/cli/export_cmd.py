"""``torchann export``: a saved model as one ONNX file that answers from raw columns."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ._app import app, stderr_console


@app.command("export")
def export_cmd(
    model_dir: Annotated[Path, typer.Argument(help="A model directory written by train, demo or save.",
                                              show_default=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="The file to write, such as model.onnx.",
                                      show_default=False)],
    fmt: Annotated[str, typer.Option("--format", help="The file format; onnx is the one there is.")] = "onnx",
    network_only: Annotated[bool, typer.Option(
        "--network-only", help="The network alone: it takes the preprocessed float32 matrix, not raw columns.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace the file already at --out "
                                                                "(as train --overwrite replaces a run).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the graph's inputs and outputs as JSON.")] = False,
) -> None:
    """Export a saved model to ONNX, with its preprocessing (filling, scaling, one-hot) and answers inside."""
    from ..core.errors import UsageError

    if fmt.strip().lower() != "onnx":
        raise UsageError(f"unknown --format {fmt!r}; choose onnx")
    if out.is_file() and not overwrite:  # like train --out: what is there stays unless asked
        raise UsageError(f"{out} already exists; pass --overwrite to replace it, or choose another --out")
    from ..api.model import load
    from ..export.onnx import export_onnx, graph_signature

    model = load(model_dir)
    path = export_onnx(model, out, network_only=network_only)
    signature = graph_signature(path)
    if as_json:
        typer.echo(json.dumps({"model": str(model_dir), "out": str(path), "bytes": path.stat().st_size,
                               "network_only": network_only, **signature}, indent=2))
    inputs = ", ".join(f"{i['name']} ({i['type']})" for i in signature["inputs"][:8])
    more = f", ... ({len(signature['inputs']) - 8} more)" if len(signature["inputs"]) > 8 else ""
    outputs = ", ".join(o["name"] for o in signature["outputs"])
    stderr_console().print(f"wrote {path} ({path.stat().st_size:,} bytes): inputs {inputs}{more} -> {outputs}",
                           highlight=False, soft_wrap=True)
