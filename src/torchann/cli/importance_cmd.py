"""``torchann importance``: permutation importance of a saved model's columns on a labelled table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ._app import app
from .predict_cmd import _RUN


@app.command("importance", short_help="Permutation importance: the score's drop when each column is shuffled.")
def importance_cmd(
    model_dir: Annotated[Path, _RUN],
    data: Annotated[Path, typer.Option("--data", help="A labelled table: the feature columns and the target.",
                                       show_default=False)],
    repeats: Annotated[int, typer.Option("--repeats", "-n", min=1, help="Shuffles per column.")] = 5,  # model.importance.DEFAULT_REPEATS
    seed: Annotated[int, typer.Option("--seed", min=0, max=2**32 - 1,
                                      help="Seed of the shuffles (scikit-learn's for the same random_state).")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the importances as JSON on stdout.")] = False,
) -> None:
    """Shuffle each feature column across the rows of --data and report the mean drop in score
    (r2, or accuracy) and its std over the shuffles, largest first."""
    from ..api.model import load

    model = load(model_dir)
    found = model.importance(data, repeats=repeats, seed=seed)
    if as_json:
        typer.echo(json.dumps({"model": str(model_dir), "data": str(data), "task": model.task, **found.to_dict()},
                              indent=2))
        return
    from .tables import print_table

    rows = [[c.column, f"{c.drop:.4g}", f"{c.spread:.4g}"] for c in found.columns]
    print_table(f"permutation importance of {model_dir} on {found.rows} rows of {data}",
                ["column", f"drop in {found.metric}", "std"], rows,
                notes=[f"{found.metric} unshuffled: {found.base:.6g}; {found.repeats} shuffles per column, "
                       f"seed {found.seed}"])
