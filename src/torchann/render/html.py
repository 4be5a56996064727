"""HTML pieces as strings: the style, tables, chart boxes, a history's curves as series.

The run report (``torchann.report``) builds its page from them; the notebook views
(``_repr_html_`` of ``Summary``, ``History`` and ``Model``) reuse them, without script, inside
a ``fragment``. Everything here takes plain data (numbers, strings, dicts), never a model.
"""

from __future__ import annotations

import json
from html import escape
from typing import Any, Sequence

import numpy as np

from .svg import COLOURS, line_chart
from ..core.options import EPOCH_FACTS

__all__ = ["STYLE", "num", "table", "facts_list", "features_table", "summary_table", "chart_box",
           "curve_marks", "history_curves", "fragment"]

STYLE = """
.torchann{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#222;max-width:1100px;margin:0 auto}
body{margin:0;background:#fafafa}
main.torchann{padding:0 16px 48px}
nav{position:sticky;top:0;background:#263238;padding:6px 16px;z-index:2}
nav a{color:#eceff1;margin-right:16px;text-decoration:none;font:600 14px system-ui,sans-serif}
.torchann h1{font-size:22px;margin:16px 0 4px}
.torchann h2{font-size:18px;border-bottom:2px solid #cfd8dc;padding-bottom:3px;margin-top:28px}
.torchann h3{font-size:15px;margin:18px 0 6px}
.torchann .headline{font-size:16px;margin:4px 0}
.torchann table{border-collapse:collapse;margin:4px 0 8px;font-size:13px;background:#fff}
.torchann th,.torchann td{border:1px solid #dde3e6;padding:3px 8px;text-align:right;vertical-align:top}
.torchann th{background:#eef2f4}
.torchann td.text,.torchann th.text{text-align:left}
.torchann .scroll{overflow-x:auto;max-width:100%}
.torchann dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:6px 0}
.torchann dt{font-weight:600;color:#455a64}.torchann dd{margin:0;overflow-wrap:anywhere}
.torchann .grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(320px,1fr));gap:12px}
.torchann .chartbox{background:#fff;border:1px solid #dde3e6;border-radius:6px;padding:8px}
.torchann .chartbox h4{margin:0 0 4px;font-size:14px}
.torchann svg.chart{width:100%;height:auto;display:block;font:12px system-ui,sans-serif}
.torchann svg .frame{fill:none;stroke:#90a4ae}
.torchann svg .grid{stroke:#eceff1}
.torchann svg .series{fill:none;stroke-width:2}
.torchann svg .mark{stroke:#555;stroke-dasharray:4 3}
.torchann svg .marktext{fill:#555}
.torchann svg .cursor{stroke:#999}
.torchann svg .bar{fill:#5c8fbf}
.torchann svg .dot{fill:#1f77b4;fill-opacity:.55}
.torchann .chartbox .log-view{display:none}
.torchann .chartbox.log .log-view{display:block}.torchann .chartbox.log .lin-view{display:none}
.torchann .legend button{border:1px solid #b0bec5;background:#fff;border-radius:12px;padding:1px 9px;
 margin:0 4px 4px 0;cursor:pointer;font-size:12px}
.torchann .legend button.off{opacity:.4;text-decoration:line-through}
.torchann .legend i{display:inline-block;width:10px;height:3px;margin-right:5px;vertical-align:middle}
.torchann .tip{font:12px ui-monospace,monospace;color:#37474f;min-height:1.4em}
.torchann .note{color:#607d8b}
.torchann .mono,.torchann pre{font:12px ui-monospace,monospace;overflow-wrap:anywhere}
.torchann .meter{display:inline-block;height:10px;background:#5c8fbf;vertical-align:middle}
.torchann .meter.neg{background:#d62728}
@media (max-width:600px){.torchann .grid{grid-template-columns:1fr}.torchann table{font-size:12px}}
"""


def num(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return escape(str(v))
    return f"{v:,}" if isinstance(v, int) else f"{v:.4g}"


def table(header: Sequence[str], rows: Sequence[Sequence[Any]], *, cls: str = "", text_columns: Sequence[int] = (0,),
          foot: Sequence[Sequence[Any]] = ()) -> str:
    def cell(tag: str, i: int, v: Any) -> str:
        return f'<{tag}{" class=text" if i in text_columns else ""}>{v if isinstance(v, Raw) else num(v)}</{tag}>'

    head = "".join(cell("th", i, h) for i, h in enumerate(header))
    body = "".join("<tr>" + "".join(cell("td", i, v) for i, v in enumerate(r)) + "</tr>" for r in rows)
    tail = "".join("<tr>" + "".join(cell("th", i, v) for i, v in enumerate(r)) + "</tr>" for r in foot)
    return (f'<div class="scroll"><table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody>'
            f'{"<tfoot>" + tail + "</tfoot>" if tail else ""}</table></div>')


class Raw(str):
    """HTML that ``table`` puts in a cell as it is."""


def facts_list(facts: Sequence[tuple[str, Any]]) -> str:
    items = "".join(f"<dt>{escape(k)}</dt><dd>{num(v)}</dd>" for k, v in facts if v not in (None, ""))
    return f'<dl class="facts">{items}</dl>'


def features_table(features: Sequence[dict[str, Any]]) -> str:
    rows = [[f["name"], f["kind"], f["inputs"], f["encoding"], "not allowed" if f.get("fill") is None and f["kind"] ==
             "numeric" else (f"{f['fill']:.6g}" if isinstance(f.get("fill"), float) else "-")] for f in features]
    return table(["column", "kind", "inputs", "encoding", "missing filled with"], rows, cls="features",
                 text_columns=(0, 1, 3, 4))


# -- curves -----------------------------------------------------------------------------------


def chart_box(title: str, epochs: Sequence[float], series: dict[str, Sequence[float | None]], *,
              marks: Sequence[tuple[float, str]] = (), interactive: bool = True, xlabel: str = "epoch") -> str:
    """A line chart with its legend, a log-scale switch and a hover read-out."""
    axis = "lr" if title == "learning rate" else title
    linear = line_chart(epochs, series, ylabel=axis, marks=marks, xlabel=xlabel)
    positive = any(v is not None and v > 0 for s in series.values() for v in s)
    log = line_chart(epochs, series, ylabel=f"{axis} (log)", marks=marks, log=True, xlabel=xlabel) if positive else ""
    legend = "".join(
        f'<button type="button" data-toggle="{escape(name)}" aria-pressed="true">'
        f'<i style="background:{COLOURS[i % len(COLOURS)]}"></i>{escape(name)}</button>'
        for i, name in enumerate(series))
    if not interactive:
        return f'<div class="chartbox"><h4>{escape(title)}</h4>{linear}</div>'
    switch = '<label><input type="checkbox" class="logscale"> log scale</label>' if log else ""
    values = escape(json.dumps({"epochs": list(epochs), "series": series}, allow_nan=False))
    hint = "point at the chart for values; click a name to hide it"
    return (f'<div class="chartbox" data-values="{values}"><h4>{escape(title)}</h4>'
            f'<div class="legend">{legend}{switch}</div><div class="lin-view">{linear}</div>'
            f'<div class="log-view">{log}</div><div class="tip" data-hint="{hint}">{hint}</div></div>')


def curve_marks(curves: dict[str, Any]) -> list[tuple[float, str]]:
    marks = []
    if curves.get("best_epoch"):
        marks.append((curves["best_epoch"], f"best epoch {curves['best_epoch']}"))
    if curves.get("stopped_early") and curves["epochs"]:
        marks.append((curves["epochs"][-1], "early stop"))
    return marks


# -- the model --------------------------------------------------------------------------------


def summary_table(summary: dict[str, Any]) -> str:
    """``torchann summary``'s table (``Summary.to_dict()``), totals in the footer."""
    rows = [[r["label"], str(r["output_shape"][0] if len(r["output_shape"]) == 1 else r["output_shape"]),
             r["params"]] for r in summary["rows"]]
    foot = [["Total params", "", Raw(f'<span id="summary-total">{summary["total_params"]:,}</span>')],
            ["Trainable params", "", Raw(f'<span id="summary-trainable">{summary["trainable_params"]:,}</span>')],
            ["Non-trainable params", "", summary["non_trainable_params"]],
            ["Estimated total size (MB)", "", f"{summary['total_size_mb']:.2f}"]]
    return table(["Layer (type)", "Output Shape", "Param #"], rows, cls="summary", foot=foot)


# -- the result -------------------------------------------------------------------------------


def history_curves(records: Sequence[dict[str, Any]], info: dict[str, Any]) -> dict[str, Any]:
    """Series per chart from a training history's per-epoch ``records``: ``loss`` and each
    metric (training and validation), and ``lr``; ``info`` gives the best epoch."""
    epochs = [r.get("epoch", i + 1) for i, r in enumerate(records)]
    keys = list(dict.fromkeys(k for r in records for k in r if k not in EPOCH_FACTS or k == "lr"))
    charts: list[dict[str, Any]] = []
    for key in [k for k in keys if not k.startswith("val_") and k != "lr"]:
        series = {"training": _values(records, key)}
        if f"val_{key}" in keys:
            series["validation"] = _values(records, f"val_{key}")
        charts.append({"name": key, "series": series})
    for key in [k for k in keys if k.startswith("val_") and k.removeprefix("val_") not in keys]:
        charts.append({"name": key, "series": {"validation": _values(records, key)}})
    if "lr" in keys:
        charts.append({"name": "learning rate", "series": {"lr": _values(records, "lr")}})
    return {"epochs": epochs, "charts": charts, "best_epoch": info.get("best_epoch"),
            "stopped_early": bool(info.get("stopped_early"))}


def _values(records: Sequence[dict[str, Any]], key: str) -> list[float | None]:
    out = []
    for r in records:
        v = r.get(key)
        out.append(float(v) if isinstance(v, (int, float)) and np.isfinite(v) else None)
    return out


def fragment(body: str) -> str:
    """``body`` inside a styled ``div.torchann``: how a notebook shows torchann's objects."""
    return f'<div class="torchann"><style>{STYLE}</style>{body}</div>'
