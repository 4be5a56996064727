"""The report's search section, for a model that ``torchann.tune`` made: the objective of each
trial and the best so far, each parameter's importance, the trials themselves, and which of
them make the ensemble. It reads ``history.info["tune"]`` (plain JSON in ``spec.json``).
"""

from __future__ import annotations

from html import escape
from typing import Any

from ..render.html import Raw, chart_box, facts_list, table

__all__ = ["trials_data", "trials_section"]


def trials_data(info: dict[str, Any]) -> dict[str, Any] | None:
    """What the section shows, from ``history.info``; None for a model that was not tuned."""
    tune = info.get("tune")
    if not isinstance(tune, dict) or not isinstance(tune.get("trials"), list):
        return None
    rows = sorted((t for t in tune["trials"] if isinstance(t, dict)), key=lambda t: t.get("number", 0))
    numbers, values, best, so_far = [], [], [], None
    for t in rows:
        v = t.get("value") if t.get("state") == "complete" else None
        if v is not None:
            so_far = v if so_far is None else min(so_far, v)
        numbers.append(float(t.get("number", 0)))
        values.append(v)
        best.append(so_far)
    return {**tune, "trials": rows, "numbers": numbers, "values": values, "best_so_far": best}


def trials_section(data: dict[str, Any] | None) -> str:
    """The ``#search`` section's HTML ("" when the model was not tuned)."""
    if data is None:
        return ""
    weights = {m["trial"]: m["weight"] for m in data.get("members", [])}
    chosen = data.get("chosen")
    what = (f"an ensemble of {len(weights)} trials, chosen greedily on the validation answers"
            if chosen == "ensemble" else f"trial {data.get('best_trial')} alone")
    ensemble = data.get("ensemble") or {}
    facts = [("study", data.get("study")), ("storage", data.get("storage")), ("sampler", data.get("sampler")),
             ("pruner", data.get("pruner")), ("objective", f"validation {data.get('metric')}, lower is better"),
             ("trials", len(data["trials"])), ("best trial", f"{data.get('best_trial')}: {data.get('best_value')}"),
             ("ensemble", ensemble.get("value", "not tried")), ("kept", what)]
    chart = chart_box("objective by trial", data["numbers"],
                      {"objective": data["values"], "best so far": data["best_so_far"]}, xlabel="trial")
    importance = data.get("importance") or {}
    imp_rows = [[name, f"{share:.3f}", _bar(share)] for name, share in importance.items()]
    imp = (table(["parameter", "importance", ""], imp_rows, cls="importance", text_columns=(0, 2))
           if imp_rows else '<p class="note">Parameter importance needs at least 3 complete trials.</p>')
    names = sorted({k for t in data["trials"] for k in (t.get("params") or {})})
    trial_rows = [[t.get("number"), t.get("state"), _num(t.get("value")), t.get("epochs"),
                   *(_num((t.get("params") or {}).get(k)) for k in names),
                   f"{weights[t['number']]:.3f}" if t.get("number") in weights else ""] for t in data["trials"]]
    trials = table(["trial", "state", "objective", "epochs", *names, "weight in the model"], trial_rows,
                   cls="trials", text_columns=(1,))
    notes = "".join(f'<p class="note">{escape(str(n))}</p>' for n in data.get("notes") or [])
    return (f'<section id="search"><h2>The search</h2>{facts_list(facts)}<div class="grid">{chart}</div>'
            f"<h3>Parameter importance</h3>{imp}<h3>Trials</h3>{trials}{notes}</section>")


def _num(v: Any) -> str:
    if v is None:
        return ""
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _bar(share: float) -> Any:
    return Raw(f'<span class="bar" style="display:inline-block;height:0.8em;width:{max(share, 0) * 12:.2f}em;'
                f'background:#4c78a8"></span>')
