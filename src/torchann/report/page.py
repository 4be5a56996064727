"""The run report: one HTML file that shows a training run without the terminal.

``report_html(model)`` returns the page; ``Model.save`` writes it as ``report.html`` beside
the weights, and ``torchann report RUN`` writes it again later. The page shows the run (data,
features and their encodings, skipped columns, missing values, seed, versions, machine), the
training curves, the model inside (layers, parameters, weight histograms, hidden-layer
statistics) and the result (scores, confusion matrix or predicted-vs-true, permutation
importance). The last two parts need the rows the model was trained on: ``train`` keeps them
on the model it returns (``model.rows``); later they are read again from the file recorded in the history.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..data.run_rows import RunRows
from .gather import gather

if TYPE_CHECKING:  # pragma: no cover
    from ..model.base import BaseModel

__all__ = ["report_html", "write_report", "run_rows", "REPORT_FILE"]

REPORT_FILE = "report.html"
DATASET_PREFIX = "dataset "  # how a built-in dataset names its source ("dataset sklearn:iris")


def report_html(model: "BaseModel", data: Any = None) -> str:
    """The report page for ``model``.

    Args:
        data: the rows to score and look inside with: a ``RunRows`` (what ``train`` keeps), or
            any table ``train`` accepts (all its rows are scored as held-out rows). ``None``
            uses the rows ``train`` kept, else re-reads the training file recorded in the
            history and splits it as training did, else leaves out the parts that need rows.
    """
    from .layout import render_page

    rows = data if isinstance(data, RunRows) else run_rows(model, data)
    return render_page(gather(model, rows))


def write_report(model: "BaseModel", path: str | Path, data: Any = None) -> Path:
    """Write ``report_html(model, data)`` to ``path`` (atomically) and return the path."""
    from ..core.files import atomic_write_text

    path = Path(path)
    atomic_write_text(path, report_html(model, data))
    return path


def run_rows(model: "BaseModel", data: Any = None) -> RunRows | None:
    """The rows behind ``model``: ``data`` when given, else those ``train`` kept, else the file
    named in ``history.info["source"]`` split again with the recorded seed and fraction."""
    from ..core.errors import TorchannError
    from ..data.table_input import as_table

    if data is None:
        if isinstance(model.rows, RunRows):
            return model.rows
    if model.bare:
        return None
    info = model.history.info
    source = data if data is not None else info.get("source")
    if source is None or (isinstance(source, str) and source.startswith("<")):
        return None
    if isinstance(source, str) and source.startswith(DATASET_PREFIX):  # a built-in dataset's source name
        source = source[len(DATASET_PREFIX):]
    try:
        table = as_table(source, names=model.feature_names)
        table = table.select(model.target_names, features=model.feature_names)
    except TorchannError:
        if data is not None:
            raise
        return None  # the training file moved or changed: show what the model directory knows
    if data is not None:
        return RunRows(table, np.arange(0), val_table=table, held_out="given")
    options = info.get("options") or {}
    split, seed = options.get("val_split"), options.get("seed")
    if split and seed is not None and info.get("val_rows") and table.n_rows == info.get("train_rows", 0) + \
            info.get("val_rows", 0):
        from ..data.splits import split_indices

        labels = table.columns[model.target_names[0]] if model.task == "classification" else None
        train, val = split_indices(table.n_rows, float(split), seed=int(seed), stratify=labels)
        return RunRows(table, train, val)
    return RunRows(table, np.arange(table.n_rows))



