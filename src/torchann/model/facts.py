"""``Model.describe()``: the facts a user needs to trust a trained model, as plain data.

Which raw columns it reads and how each became network inputs (why 6 columns make 10 inputs),
what it predicts, the preprocessing, the architecture, and how training went (epochs, the best
epoch, an early stop, the final metrics).
"""

from __future__ import annotations

from html import escape
from typing import Any

__all__ = ["describe", "feature_rows", "preprocessor_rows", "column_plan", "when_missing", "training_facts",
           "model_html"]

_FILLS = {"mean": "the training mean", "median": "the training median", "zero": "zero"}


def when_missing(feature: Any, fill_missing: Any) -> str:
    """What the model does with a missing value of ``feature``, in words, from the same stored
    facts that encode it (``Preprocessor.transform_x``): refused without ``fill_missing``; a
    number filled with the training fill, a date part with the training mean (plus the
    indicator input when training rows had missing values); a category sets its own
    ``<missing>`` input when training rows had missing values, else no input of its column."""
    if fill_missing is None:
        return "refused: the model was trained with fill_missing=None"
    flag = f"; input {feature.name}.missing set to 1" if feature.indicator else ""
    if feature.kind == "numeric":
        how = _FILLS.get(str(fill_missing), str(fill_missing))
        return f"filled with {how} ({feature.fill:.6g}){flag}"
    if feature.kind == "date":
        return f"filled with the training means of year, month, weekday and day{flag}"
    if feature.missing_slot:
        return f"sets its own input {feature.name}=<missing>"
    return (f"sets no input of {feature.name} (all {feature.width} zero): training rows had no missing value, so "
            f"there is no <missing> input")


def feature_rows(model: Any) -> list[dict[str, Any]]:
    """One row per raw feature column: name, kind, number of inputs, encoding, missing-value fill,
    and what a missing value does (``when_missing``)."""
    return preprocessor_rows(model.preprocessor)


def column_plan(preprocessor: Any, skipped: dict[str, str] | None = None) -> dict[str, Any]:
    """How a fitted preprocessor reads the table, before training: the task and targets, one
    row per feature column (:func:`feature_rows`'s, without the raw ``details``), the network
    inputs they make, and the columns left out with why (``skipped``: those the reader could
    not use; the preprocessor's own ``dropped``: identifiers)."""
    return {
        "task": str(preprocessor.task), "targets": list(preprocessor.target_names),
        "features": [{k: v for k, v in r.items() if k != "details"} for r in preprocessor_rows(preprocessor)],
        "inputs": preprocessor.in_features,
        "dropped": {**(skipped or {}), **preprocessor.dropped},
    }


def preprocessor_rows(preprocessor: Any) -> list[dict[str, Any]]:
    """:func:`feature_rows` of a fitted ``Preprocessor`` (a model's, or one ``train`` just fitted)."""
    rows = []
    for f in preprocessor.features:
        record = {k: getattr(f, k) for k in f.__dataclass_fields__}
        kind = record.get("kind")
        if kind == "numeric" and record.get("knots"):
            encoding = f"quantile scores over {len(record['knots'])} training quantiles"
        elif kind == "numeric":
            scaled = record.get("std", 1.0) != 1.0 or record.get("mean", 0.0) != 0.0
            encoding = (f"standardised (mean {record['mean']:.6g}, std {record['std']:.6g})" if scaled
                        else "as is")
        elif kind == "date":
            encoding = f"date ({record.get('date_format')}) as year, month, weekday, day, standardised"
        else:
            cats = record.get("categories") or []
            shown = ", ".join(str(c) for c in cats[:6]) + (f", ... ({len(cats) - 6} more)" if len(cats) > 6 else "")
            encoding = f"one-hot over {len(cats)} categor{'y' if len(cats) == 1 else 'ies'} ({shown})"
            if record.get("other"):
                encoding += " + one input for rare or unseen values"
            if record.get("missing_slot"):
                encoding += " + one for a missing value"
        if record.get("indicator"):
            encoding += " + a missing-value indicator"
        rows.append({
            "name": f.name, "kind": kind, "inputs": f.width, "encoding": encoding,
            "fill": record.get("fill"), "when_missing": when_missing(f, preprocessor.fill_missing),
            "details": {k: v for k, v in record.items() if k not in ("name",)},
        })
    return rows


def training_facts(model: Any) -> dict[str, Any]:
    """Epochs run, best epoch, early stop, final metrics and run facts from the history."""
    history = model.history
    info = dict(history.info)
    final = history.records[-1] if len(history) else {}
    facts: dict[str, Any] = {
        "epochs": len(history),
        "best_epoch": info.get("best_epoch"),
        "stopped_early": bool(info.get("stopped_early", False)),
        "final": {k: v for k, v in final.items() if k not in ("epoch", "seconds")},
        "seconds": float(sum(r.get("seconds", 0.0) for r in history.records)),
    }
    best = info.get("best_epoch")
    if best and 0 < best <= len(history):
        facts["best"] = {k: v for k, v in history.records[best - 1].items() if k not in ("seconds",)}
    for key in ("rows", "train_rows", "val_rows", "batch_size", "seed", "device", "precision"):
        if key in info:
            facts[key] = info[key]
    return facts


def describe(model: Any) -> dict[str, Any]:
    from ..inspect.layers import describe_spec

    pre = model.preprocessor
    return {
        "path": None if model.path is None else str(model.path),
        "task": model.task,
        "targets": model.target_names,
        "classes": model.classes,
        "features": feature_rows(model),
        "inputs": pre.in_features,
        "left_out": dict(pre.dropped),  # columns left out of the features (identifiers) -> why
        "preprocessing": {
            "scale": pre.scale,
            "fill_missing": None if pre.fill_missing is None else str(pre.fill_missing),
            "target_mean": pre.target_mean, "target_std": pre.target_std,
        },
        "network": describe_spec(model.spec),
        "spec": model.spec.to_dict(),
        "training": training_facts(model),
    }


def model_html(model: Any) -> str:
    """A compact view of ``model`` for a notebook: what it predicts from what, its layers, and
    its curves."""
    from ..inspect.layers import describe_spec
    from ..render.html import features_table, fragment, summary_table

    head = (f"<p><b>torchann.Model</b>: {escape(model.task)} of {escape(', '.join(model.target_names))}; "
            f"{escape(describe_spec(model.spec))}"
            f"{'; saved in ' + escape(str(model.path)) if model.path is not None else ''}</p>")
    curves = model.history._repr_html_() if len(model.history) else ""
    return fragment(head + features_table(feature_rows(model)) + summary_table(model.summary().to_dict())) + curves
