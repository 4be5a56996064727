"""The run report's page: one self-contained HTML file drawn from ``report_data.gather``.

Everything is inline (style, the small script, the SVG charts); a Content-Security-Policy
meta tag forbids the page to load anything, so it opens from disk with no network. The page
is one column on a phone and a grid of charts on a laptop. The same pieces give the notebook
views (``_repr_html_``) of ``Summary``, ``History`` and ``Model`` (``report_parts.py``).
"""

from __future__ import annotations

import json
from html import escape
from typing import Any

from ..render.html import STYLE, facts_list, features_table, num, table
from .sections import curves_section, model_section, result_section
from .trials import trials_section

__all__ = ["render_page", "CSP"]

CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:"

SCRIPT = """
(function () {
  function nearest(list, v) {
    var best = 0;
    for (var i = 1; i < list.length; i++) if (Math.abs(list[i] - v) < Math.abs(list[best] - v)) best = i;
    return best;
  }
  document.querySelectorAll('.chartbox').forEach(function (box) {
    var data = JSON.parse(box.getAttribute('data-values'));
    var tip = box.querySelector('.tip');
    box.querySelectorAll('svg.line').forEach(function (svg) {
      var cursor = svg.querySelector('.cursor');
      svg.addEventListener('pointermove', function (ev) {
        var m = svg.getScreenCTM();
        if (!m) return;
        var pt = svg.createSVGPoint();
        pt.x = ev.clientX; pt.y = ev.clientY;
        var p = pt.matrixTransform(m.inverse());
        var x0 = +svg.dataset.x0, x1 = +svg.dataset.x1, e0 = +svg.dataset.e0, e1 = +svg.dataset.e1;
        var i = nearest(data.epochs, e0 + (p.x - x0) / (x1 - x0) * (e1 - e0));
        var x = x0 + (data.epochs[i] - e0) / (e1 - e0) * (x1 - x0);
        cursor.setAttribute('x1', x); cursor.setAttribute('x2', x);
        cursor.setAttribute('visibility', 'visible');
        var parts = ['epoch ' + data.epochs[i]];
        Object.keys(data.series).forEach(function (name) {
          var v = data.series[name][i];
          if (!box.querySelector('[data-toggle="' + name + '"]').classList.contains('off') && v !== null)
            parts.push(name + ' ' + Number(v).toPrecision(4));
        });
        tip.textContent = parts.join('  \\u00b7  ');
      });
      svg.addEventListener('pointerleave', function () {
        cursor.setAttribute('visibility', 'hidden');
        tip.textContent = tip.getAttribute('data-hint');
      });
    });
    box.querySelectorAll('[data-toggle]').forEach(function (button) {
      button.addEventListener('click', function () {
        var name = button.getAttribute('data-toggle');
        var off = button.classList.toggle('off');
        button.setAttribute('aria-pressed', off ? 'false' : 'true');
        box.querySelectorAll('path[data-series="' + name + '"]').forEach(function (path) {
          path.style.display = off ? 'none' : '';
        });
      });
    });
    var log = box.querySelector('input.logscale');
    if (log) log.addEventListener('change', function () { box.classList.toggle('log', log.checked); });
  });
  document.body.setAttribute('data-ready', '1');
})();
"""


def render_page(data: dict[str, Any]) -> str:
    """The whole report page for ``data`` (from ``report_data.gather``)."""
    run = data["run"]
    title = f"torchann run: {', '.join(run['targets'])} from {run['data'] or 'arrays'}"
    sections = [_header(data), _run_section(data), curves_section(data["curves"]),
                model_section(data["model"]), result_section(data.get("result"), run),
                trials_section(data.get("search"))]
    parts = ("run", "training", "model", "result") + (("search",) if data.get("search") else ())
    nav = "".join(f'<a href="#{s}">{s}</a>' for s in parts)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head>"
        f'<body><nav>{nav}</nav><main class="torchann">{"".join(sections)}</main>'
        f"<script>{SCRIPT}</script></body></html>\n"
    )


def _header(data: dict[str, Any]) -> str:
    run = data["run"]
    result = data.get("result") or {}
    splits = result.get("splits") or {}
    headline = ""
    key = next((n for n in splits if n != "training"), "training" if "training" in splits else None)
    if key:
        scores = splits[key]["scores"]
        main = "accuracy" if "accuracy" in scores else "r2"
        headline = (f'<p class="headline">{escape(main)} on the {key} rows: '
                    f'<b id="headline-score">{num(scores[main])}</b></p>')
    stop = ""
    if run.get("best_epoch"):
        how = "stopped early" if run["stopped_early"] else "ran every epoch"
        stop = f", {how}, kept epoch {run['best_epoch']}"
    return (f"<header><h1>{escape(run['task'])}: predicting {escape(', '.join(run['targets']))}</h1>"
            f"<p>{escape(str(run['data'] or 'arrays'))} &middot; {run['epochs']} epochs{escape(stop)} &middot; "
            f"{escape(data['model']['architecture'])}</p>{headline}</header>")


def _run_section(data: dict[str, Any]) -> str:
    run = data["run"]
    rows = run.get("rows")
    counts = (f"{run['train_rows']} training, {run['val_rows']} validation"
              if run.get("train_rows") is not None else None)
    facts = [
        ("data", run.get("data")), ("rows", f"{rows} ({counts})" if rows and counts else (rows or counts)),
        ("target", ", ".join(run["targets"])), ("task", run["task"]),
        ("classes", ", ".join(map(str, run["classes"])) if run.get("classes") else None),
        ("seed", run.get("seed")), ("device", run.get("device")), ("precision", run.get("precision")),
        ("batch size", run.get("batch_size")), ("training time", f"{run['seconds']:.2f} s"),
        ("trained", run.get("trained_at")), ("report written", run.get("report_written")),
        ("machine", run.get("machine")), ("versions", ", ".join(f"{k} {v}" for k, v in run["versions"].items())),
        ("folder", run.get("path")),
    ]
    if run.get("networks"):
        nets = run["networks"]
        kept = ", ".join(f"{n['best_epoch']} ({num(n['loss'])})" if n.get("loss") is not None else str(n["best_epoch"])
                         for n in nets)
        facts.append(("networks", f"{len(nets)} networks answer together, seeds {nets[0]['seed']}-{nets[-1]['seed']}; "
                                  f"kept epochs (loss) {kept}; the curves below are network 1's"))
    if run.get("starts_final_loss"):
        finals = ", ".join(num(v) for v in run["starts_final_loss"])
        facts.append(("starts", f"{len(run['starts_final_loss'])} starts, final losses {finals}; "
                                f"kept start {run.get('kept_start')}"))
    parts = ['<section id="run"><h2>The run</h2>', facts_list(facts), "<h3>Features</h3>",
             features_table(data["features"])]
    skipped = run.get("skipped") or {}
    if skipped:
        parts.append("<h3>Skipped columns</h3>" + table(["column", "why"], [[k, v] for k, v in skipped.items()],
                                                        cls="skipped"))
    missing = data.get("missing")
    if missing:
        parts.append("<h3>Missing values</h3>" + table(
            ["column", "missing", "what the model does"],
            [[m["column"], m["missing"], m["filled_with"]] for m in missing], text_columns=(0, 2)))
    elif missing is not None:
        parts.append('<p class="note">No feature value was missing.</p>')
    if run.get("options"):
        opts = ", ".join(f"{k}={json.dumps(v)}" for k, v in sorted(run["options"].items()))
        parts.append(f'<details><summary>All options</summary><p class="mono">{escape(opts)}</p></details>')
    return "".join(parts) + "</section>"
