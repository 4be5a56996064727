"""``torchann demo``: the tutorial's add-two-numbers network, end to end, in seconds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ._app import app, stderr_console


@app.command("demo", short_help="Train the tutorial's add-two-numbers network and try it.")
def demo_cmd(
    out: Annotated[Path, typer.Option("--out", help="Run folder to write.")] = Path("runs/demo"),
    seed: Annotated[int, typer.Option("--seed", help="Random seed; every seed gives a working model.")] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or summary.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON on stdout.")] = False,
) -> None:
    """Train the tutorial's 2-8-1 ReLU network to add two numbers, save it, and predict unseen pairs."""
    from ..api.demo import DEMO_QUERIES, DEMO_STARTS, train_demo
    from ..inspect.layers import summary
    from ..network.spec import ModelSpec
    from .progress import StartsProgress, display_for

    console = stderr_console()
    if not quiet:
        console.print(
            "Training a 2-8-1 ReLU network (MSE, SGD with momentum) on the tutorial's four pairs "
            f"(1,2)->3 ... (7,8)->15, {DEMO_STARTS} starts, keeping the best, then asking it sums it never saw."
        )
        console.print(str(summary(ModelSpec(2, (8,), 1).build(), input_size=(1, 2))), end="")
    with StartsProgress(display_for(console, enabled=not quiet, min_interval_s=1.0), DEMO_STARTS) as bar:
        model = train_demo(seed, progress=bar)
    history = model.history
    finals = history.info["starts_final_loss"]
    preds = model.predict(DEMO_QUERIES).tolist()
    rows = [{"a": a, "b": b, "true_sum": a + b, "predicted": p} for (a, b), p in zip(DEMO_QUERIES, preds)]
    model.save(out)
    if as_json:
        typer.echo(json.dumps({"final_loss": history.final_loss, "starts_final_loss": finals,
                               "predictions": rows, "out": str(out)}, indent=2))
        return
    from rich.table import Table

    table = Table(title="Unseen pairs")
    for col in ("a", "b", "true sum", "predicted"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(f"{r['a']:g}", f"{r['b']:g}", f"{r['true_sum']:g}", f"{r['predicted']:.3f}")
    console.print(f"kept start {history.info['start']} of {DEMO_STARTS}: final training loss {history.final_loss:.3g} "
                  f"(starts: {', '.join(f'{v:.3g}' for v in finals)})", highlight=False)
    from rich.console import Console

    Console().print(table)
    console.print(f"wrote {out}/ (spec.json, weights.safetensors, history.jsonl, loss.png, report.html); "
                  f"try: torchann predict {out} --input 10,11")
