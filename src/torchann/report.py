"""The run report: one HTML file that shows a training run without the terminal.

``report_html(model)`` returns the page; ``Model.save`` writes it as ``report.html`` beside
the weights, and ``torchann report RUN`` writes it again later. The page shows the run (data,
features and their encodings, skipped columns, missing values, seed, versions, machine), the
training curves, the model inside (layers, parameters, weight histograms, hidden-layer
statistics) and the result (scores, confusion matrix or predicted-vs-true, permutation
importance). The last two parts need the rows the model was trained on: ``train`` keeps them
on the model it returns; later they are read again from the file recorded in the history.

``summary_html``, ``history_html`` and ``model_html`` are the notebook views
(``_repr_html_``) of ``Summary``, ``History`` and ``Model``, drawn by the same code.
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .report_data import RunRows, gather

if TYPE_CHECKING:  # pragma: no cover
    from .history import History
    from .model import Model
    from .model_summary import Summary

__all__ = ["report_html", "write_report", "run_rows", "RunRows", "REPORT_FILE", "summary_html", "history_html",
           "model_html"]

REPORT_FILE = "report.html"
DATASET_PREFIX = "dataset "  # how a built-in dataset names its source ("dataset sklearn:iris")


def report_html(model: "Model", data: Any = None) -> str:
    """The report page for ``model``.

    Args:
        data: the rows to score and look inside with: a ``RunRows`` (what ``train`` keeps), or
            any table ``train`` accepts (all its rows are scored as held-out rows). ``None``
            uses the rows ``train`` kept, else re-reads the training file recorded in the
            history and splits it as training did, else leaves out the parts that need rows.
    """
    from .report_html import render_page

    rows = data if isinstance(data, RunRows) else run_rows(model, data)
    return render_page(gather(model, rows))


def write_report(model: "Model", path: str | Path, data: Any = None) -> Path:
    """Write ``report_html(model, data)`` to ``path`` (atomically) and return the path."""
    from .files import atomic_write_text

    path = Path(path)
    atomic_write_text(path, report_html(model, data))
    return path


def run_rows(model: "Model", data: Any = None) -> RunRows | None:
    """The rows behind ``model``: ``data`` when given, else those ``train`` kept, else the file
    named in ``history.info["source"]`` split again with the recorded seed and fraction."""
    from .errors import TorchannError
    from .table_input import as_table

    if data is None:
        kept = getattr(model, "_run_rows", None)
        if isinstance(kept, RunRows):
            return kept
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
        from .splits import split_indices

        labels = table.columns[model.target_names[0]] if model.task == "classification" else None
        train, val = split_indices(table.n_rows, float(split), seed=int(seed), stratify=labels)
        return RunRows(table, train, val)
    return RunRows(table, np.arange(table.n_rows))


# -- notebook views ---------------------------------------------------------------------------


def _fragment(body: str) -> str:
    from .report_parts import STYLE

    return f'<div class="torchann"><style>{STYLE}</style>{body}</div>'


def summary_html(summary: "Summary") -> str:
    """``Summary``'s table as HTML, totals in the footer."""
    from .report_parts import summary_table

    return _fragment(summary_table(summary.to_dict()))


def history_html(history: "History") -> str:
    """The curves of ``history`` (loss and each metric, training and validation), as HTML."""
    from .report_parts import chart_box, curve_marks, num

    class _Bare:  # report_data's curves read only model.history
        def __init__(self, h: "History") -> None:
            self.history = h

    from .report_data import _curves

    curves = _curves(_Bare(history))  # type: ignore[arg-type]
    if not curves["epochs"]:
        return _fragment('<p class="note">History: no epochs yet.</p>')
    last = history.records[-1]
    shown = ", ".join(f"{escape(k)} {num(v)}" for k, v in last.items() if isinstance(v, float) and k != "seconds")
    boxes = "".join(chart_box(c["name"], curves["epochs"], c["series"], marks=curve_marks(curves), interactive=False)
                    for c in curves["charts"])
    return _fragment(f"<p><b>History</b>: {len(history)} epochs; last: {shown}</p><div class=\"grid\">{boxes}</div>")


def model_html(model: "Model") -> str:
    """A compact view of ``model``: what it predicts from what, its layers, and its curves."""
    from .report_parts import features_table, summary_table

    from .inspect import describe_spec
    from .model_facts import feature_rows

    head = (f"<p><b>torchann.Model</b>: {escape(model.task)} of {escape(', '.join(model.target_names))}; "
            f"{escape(describe_spec(model.spec))}"
            f"{'; saved in ' + escape(str(model.path)) if model.path is not None else ''}</p>")
    curves = history_html(model.history) if len(model.history) else ""
    return _fragment(head + features_table(feature_rows(model)) + summary_table(model.summary().to_dict())) + curves
