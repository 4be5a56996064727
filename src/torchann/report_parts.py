"""Pieces of the run report: tables, chart boxes and sections, as HTML strings.

``report_html.render_page`` puts them on one page; the notebook views (``summary_html``,
``history_html``, ``model_html``) reuse them, without script, inside a ``div.torchann``.
"""

from __future__ import annotations

import json
from html import escape
from typing import Any, Sequence

from .report_svg import COLOURS, histogram, line_chart, scatter

__all__ = ["STYLE", "num", "table", "facts_list", "features_table", "curves_section", "model_section",
           "result_section", "summary_table", "chart_box"]

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
        return f'<{tag}{" class=text" if i in text_columns else ""}>{v if isinstance(v, _Raw) else num(v)}</{tag}>'

    head = "".join(cell("th", i, h) for i, h in enumerate(header))
    body = "".join("<tr>" + "".join(cell("td", i, v) for i, v in enumerate(r)) + "</tr>" for r in rows)
    tail = "".join("<tr>" + "".join(cell("th", i, v) for i, v in enumerate(r)) + "</tr>" for r in foot)
    return (f'<div class="scroll"><table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody>'
            f'{"<tfoot>" + tail + "</tfoot>" if tail else ""}</table></div>')


class _Raw(str):
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


def curves_section(curves: dict[str, Any]) -> str:
    marks = curve_marks(curves)
    boxes = [chart_box(c["name"], curves["epochs"], c["series"], marks=marks) for c in curves["charts"]]
    note = ""
    if curves.get("best_epoch"):
        note = (f'<p class="note">The dashed line marks the best epoch ({curves["best_epoch"]}), whose weights were '
                f'kept{"; training stopped early" if curves.get("stopped_early") else ""}.</p>')
    body = f'<div class="grid">{"".join(boxes)}</div>' if boxes else '<p class="note">No epochs recorded.</p>'
    return f'<section id="training"><h2>Training</h2>{note}{body}</section>'


# -- the model --------------------------------------------------------------------------------


def summary_table(summary: dict[str, Any]) -> str:
    """``torchann summary``'s table (``Summary.to_dict()``), totals in the footer."""
    rows = [[r["label"], str(r["output_shape"][0] if len(r["output_shape"]) == 1 else r["output_shape"]),
             r["params"]] for r in summary["rows"]]
    foot = [["Total params", "", _Raw(f'<span id="summary-total">{summary["total_params"]:,}</span>')],
            ["Trainable params", "", _Raw(f'<span id="summary-trainable">{summary["trainable_params"]:,}</span>')],
            ["Non-trainable params", "", summary["non_trainable_params"]],
            ["Estimated total size (MB)", "", f"{summary['total_size_mb']:.2f}"]]
    return table(["Layer (type)", "Output Shape", "Param #"], rows, cls="summary", foot=foot)


def model_section(inside: dict[str, Any]) -> str:
    params = inside["parameters"]
    prow = [[p["name"], "x".join(map(str, p["shape"])), p["count"], p["mean"], p["std"], p["min"], p["max"]]
            for p in params["parameters"]]
    parts = ['<section id="model"><h2>The model</h2>', f"<p>{escape(inside['architecture'])}</p>",
             "<h3>Layers</h3>", summary_table(inside["summary"]), "<h3>Parameters</h3>",
             table(["name", "shape", "count", "mean", "std", "min", "max"], prow, cls="parameters", text_columns=(0, 1),
                   foot=[["total", "", params["total"], "", "", "", ""]])]
    if inside["histograms"]:
        boxes = "".join(f'<div class="chartbox"><h4>{escape(h["name"])} ({"x".join(map(str, h["shape"]))}): mean '
                        f'{num(h["mean"])}, std {num(h["std"])}</h4>{histogram(h["counts"], h["edges"], xlabel="weight")}'
                        f"</div>" for h in inside["histograms"])
        parts.append(f'<h3>Weights</h3><div class="grid weights">{boxes}</div>')
    acts = inside.get("activations")
    if acts:
        rows = [[a["layer"], a["units"], a["mean"], a["std"],
                 _Raw(f'{a["dead_units"]} ({a["dead_fraction"]:.0%}) <span class="meter neg" style="width:'
                      f'{60 * a["dead_fraction"]:.0f}px"></span>')] for a in acts["layers"]]
        dead = ("a unit is dead when its output is 0 for every row: it passes nothing on and gets no gradient"
                if acts["activation"] == "relu" else f"{acts['activation']} units cannot be dead in the ReLU sense")
        parts.append(f"<h3>Hidden layers on {acts['rows']} {acts['split']} rows</h3>"
                     + table(["layer", "units", "mean", "std", "dead units"], rows, cls="activations",
                             text_columns=(0, 4))
                     + f'<p class="note">Statistics of each hidden layer\'s output ({escape(acts["activation"])}); '
                       f"{escape(dead)}.</p>")
    return "".join(parts) + "</section>"


# -- the result -------------------------------------------------------------------------------


def result_section(result: dict[str, Any] | None, run: dict[str, Any]) -> str:
    if not result or not result.get("splits"):
        return ('<section id="result"><h2>The result</h2><p class="note">The data the model was trained on was not '
                "available when this report was written, so scores, confusion matrix and feature importance are "
                "left out; run <code>torchann report RUN --data FILE</code> to add them.</p></section>")
    splits = result["splits"]
    names = list(splits)
    metrics = list(dict.fromkeys(k for s in splits.values() for k in s["scores"]))
    rows = [[m, *(splits[n]["scores"].get(m) for n in names)] for m in metrics]
    rows.append(["rows", *(splits[n]["rows"] for n in names)])
    parts = ['<section id="result"><h2>The result</h2>', table(["metric", *names], rows, cls="scores")]
    capped = [n for n in names if splits[n].get("scored", splits[n]["rows"]) < splits[n]["rows"]]
    if capped:
        parts.append(f'<p class="note">Scored on a sample of {splits[capped[0]]["scored"]:,} rows per split.</p>')
    key = next((n for n in names if n != "training"), "training")  # the held-out rows when there are some
    split = splits[key]
    if "confusion" in split:
        parts.append(_confusion_html(split, result["classes"] or [], key))
    elif "truth" in split:
        target = run["targets"][0]
        truth, pred = split["truth"], split["pred"]
        resid = [p - t for p, t in zip(pred, truth)]
        parts.append(f'<h3>Predicted against true ({escape(key)} rows)</h3><div class="grid">'
                     f'<div class="chartbox"><h4>predicted vs true {escape(target)}</h4>'
                     f'{scatter(truth, pred, xlabel="true", ylabel="predicted", diagonal=True)}</div>'
                     f'<div class="chartbox"><h4>residual (predicted - true)</h4>'
                     f'{scatter(pred, resid, xlabel="predicted", ylabel="residual", zero_line=True)}</div></div>')
    if result.get("importance"):
        parts.append(_importance_html(result["importance"]))
    return "".join(parts) + "</section>"


def _confusion_html(split: dict[str, Any], classes: Sequence[Any], key: str) -> str:
    matrix = split["confusion"]
    top = max((v for r in matrix for v in r), default=0) or 1
    head = "".join(f"<th>{escape(str(c))}</th>" for c in classes)
    body = ""
    for c, row, p, r, n in zip(classes, matrix, split["precision"], split["recall"], split["support"]):
        cells = "".join(f'<td class="count" style="background:rgba(31,119,180,{0.08 + 0.6 * v / top:.2f})">{v}</td>'
                        for v in row)
        body += f"<tr><th class=text>{escape(str(c))}</th>{cells}<td>{num(p)}</td><td>{num(r)}</td><td>{n}</td></tr>"
    return (f"<h3>Confusion matrix ({escape(key)} rows)</h3><p class=\"note\">Rows are the true class, columns the "
            f"predicted class.</p><div class=\"scroll\"><table class=\"confusion\"><thead><tr><th class=text>true \\ "
            f"predicted</th>{head}<th>precision</th><th>recall</th><th>rows</th></tr></thead><tbody>{body}</tbody>"
            f"</table></div>")


def _importance_html(imp: dict[str, Any]) -> str:
    top = max((abs(c["drop"]) for c in imp["columns"]), default=0) or 1
    rows = [[c["column"], c["drop"], c["spread"],
             _Raw(f'<span class="meter{" neg" if c["drop"] < 0 else ""}" style="width:{160 * abs(c["drop"]) / top:.0f}'
                  f'px"></span>')] for c in imp["columns"]]
    return (f"<h3>Which features matter</h3><p class=\"note\">Permutation importance on {imp['rows']} {imp['split']} "
            f"rows: how much {imp['metric']} (now {num(imp['base'])}) drops when one column's values are shuffled "
            f"across rows, averaged over {imp['repeats']} shuffles.</p>"
            + table(["column", f"{imp['metric']} drop", "spread", ""], rows, cls="importance", text_columns=(0, 3)))
