"""``torchann import``: turn a tutorial-style ``.pth`` state dict into a model directory.

The ``.pth`` file is read with ``torch.load(weights_only=True)``: tensors only, no code. A
whole pickled model is refused unless ``--trust-pickle`` says the file is the user's own.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from ._app import app, parse_ints, stderr_console


@app.command("import", short_help="Turn a PyTorch .pth state dict into a model directory.")
def import_cmd(
    weights: Annotated[Path, typer.Argument(
        help="A file written by torch.save(model.state_dict(), PATH) (.pth/.pt), or a .safetensors file.",
        show_default=False)],
    out: Annotated[Path, typer.Option(
        "--out", help="The model directory to create (spec.json + weights.safetensors).", show_default=False)],
    spec: Annotated[Optional[Path], typer.Option(
        "--spec", help="The architecture: a ModelSpec JSON file or a model directory's spec.json.")] = None,
    hidden: Annotated[Optional[str], typer.Option(
        "--hidden", help="Hidden layer sizes such as 8 or 64,32 [default: read from the weights' shapes].")] = None,
    activation: Annotated[Optional[str], typer.Option(
        "--activation", help="Activation after each hidden layer; a state dict does not record it. "
                             "[default: relu]")] = None,
    trust_pickle: Annotated[bool, typer.Option(
        "--trust-pickle", help="Also accept a whole pickled model (torch.save(model, PATH)). Unpickling runs "
                               "code from the file: use only for files you wrote yourself.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the imported spec and key mapping as JSON.")] = False,
) -> None:
    """Convert a PyTorch state dict (e.g. the tutorial's model_weights.pth) into a model directory."""
    from ..core.errors import UsageError

    if spec is not None and (hidden is not None or activation is not None):
        raise UsageError("give either --spec or --hidden/--activation, not both: the spec file already holds them")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UsageError(f"--out {out} already exists and is not empty; choose a new directory so nothing is overwritten")
    hidden_sizes = parse_ints(hidden, option="--hidden") if hidden is not None else None
    if hidden is not None and not hidden_sizes:
        raise UsageError("--hidden expects comma-separated integers such as '8,8', got an empty value")

    from ..model import directory as modeldir
    from ..model.pth import convert_state_dict, parse_activation, read_spec_file, read_state_dict

    act = parse_activation(activation) if activation is not None else None
    model_spec = read_spec_file(spec) if spec is not None else None
    if trust_pickle:
        stderr_console().print(f"[yellow]warning:[/] unpickling {weights} runs any code it holds (--trust-pickle)")
    state = read_state_dict(weights, trust_pickle=trust_pickle)
    model, mapping = convert_state_dict(state, model_spec, hidden=hidden_sizes, activation=act, source=str(weights))
    modeldir.save(model, out, extra={"imported_from": weights.name})

    assumed = model_spec is None and act is None
    sizes = "-".join(map(str, model.spec.sizes))
    n_params = sum(p.numel() for p in model.parameters())
    if as_json:
        typer.echo(json.dumps({
            "out": str(out), "spec": model.spec.to_dict(), "parameters": n_params,
            "mapping": mapping, "activation_assumed": assumed,
        }, indent=2))
    console = stderr_console()
    if assumed:
        console.print("note: a state dict does not record the activation; assumed relu (pass --activation if the "
                      "model used another)")
    console.print(f"imported {weights} ({sizes}, {model.spec.activation.value}, {n_params} parameters) into {out}")
