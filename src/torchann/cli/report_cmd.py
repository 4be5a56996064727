"""``torchann report RUN``: write the run's HTML report (again), e.g. after the data moved."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ._app import app, stderr_console


@app.command("report")
def report_cmd(
    run: Annotated[Path, typer.Argument(help="A run folder written by `torchann train`.", show_default=False)],
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="HTML file to write. [default: RUN/report.html]")]
    = None,
    data: Annotated[Optional[str], typer.Option("--data", help="Score and look inside with this labelled table "
                                                               "instead of the training file the run recorded.")]
    = None,
) -> None:
    """Write one self-contained HTML page that shows the run: data, curves, model, result."""
    from ..api.model import load
    from ..report.page import REPORT_FILE, write_report

    model = load(run)
    path = write_report(model, out if out is not None else run / REPORT_FILE, data)
    size = path.stat().st_size
    stderr_console().print(f"wrote {path} ({size / 1024:.0f} KB); open it in a browser", highlight=False)
