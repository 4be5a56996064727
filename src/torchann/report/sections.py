"""The run report's sections as HTML strings, drawn from ``gather``'s plain data: the training
curves, the model inside (layers, parameters, weights, hidden layers) and the result (scores,
confusion matrix or predicted-vs-true, permutation importance)."""

from __future__ import annotations

from html import escape
from typing import Any, Sequence

from ..render.html import Raw, chart_box, curve_marks, num, summary_table, table
from ..render.svg import histogram, scatter

__all__ = ["curves_section", "model_section", "result_section"]


def curves_section(curves: dict[str, Any]) -> str:
    marks = curve_marks(curves)
    boxes = [chart_box(c["name"], curves["epochs"], c["series"], marks=marks) for c in curves["charts"]]
    note = ""
    if curves.get("best_epoch"):
        note = (f'<p class="note">The dashed line marks the best epoch ({curves["best_epoch"]}), whose weights were '
                f'kept{"; training stopped early" if curves.get("stopped_early") else ""}.</p>')
    body = f'<div class="grid">{"".join(boxes)}</div>' if boxes else '<p class="note">No epochs recorded.</p>'
    return f'<section id="training"><h2>Training</h2>{note}{body}</section>'


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
                 Raw(f'{a["dead_units"]} ({a["dead_fraction"]:.0%}) <span class="meter neg" style="width:'
                      f'{60 * a["dead_fraction"]:.0f}px"></span>')] for a in acts["layers"]]
        dead = ("a unit is dead when its output is 0 for every row: it passes nothing on and gets no gradient"
                if acts["activation"] == "relu" else f"{acts['activation']} units cannot be dead in the ReLU sense")
        parts.append(f"<h3>Hidden layers on {acts['rows']} {acts['split']} rows</h3>"
                     + table(["layer", "units", "mean", "std", "dead units"], rows, cls="activations",
                             text_columns=(0, 4))
                     + f'<p class="note">Statistics of each hidden layer\'s output ({escape(acts["activation"])}); '
                       f"{escape(dead)}.</p>")
    return "".join(parts) + "</section>"


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
             Raw(f'<span class="meter{" neg" if c["drop"] < 0 else ""}" style="width:{160 * abs(c["drop"]) / top:.0f}'
                  f'px"></span>')] for c in imp["columns"]]
    return (f"<h3>Which features matter</h3><p class=\"note\">Permutation importance on {imp['rows']} {imp['split']} "
            f"rows: how much {imp['metric']} (now {num(imp['base'])}) drops when one column's values are shuffled "
            f"across rows, averaged over {imp['repeats']} shuffles.</p>"
            + table(["column", f"{imp['metric']} drop", "spread", ""], rows, cls="importance", text_columns=(0, 3)))
