"""What the run report shows, as plain data: the run, its curves, the model inside, the result.

``gather(model, rows)`` returns a dict of numbers, strings and lists (no tensors), which
``report_html.py`` draws. ``rows`` (a :class:`RunRows`) holds the table the model was trained
on and which rows trained and which were held out; without it the report shows what the model
directory alone knows (run facts, curves, layers and weights).

Sizes are capped so that writing a report after every ``train`` stays quick: scores use at
most ``SCORE_ROWS`` rows of each split, activations ``ACTIVATION_ROWS`` rows, permutation
importance ``IMPORTANCE_ROWS`` validation rows; every cap taken is stated in the data.
"""

from __future__ import annotations

import platform
import sys
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import numpy as np

from ..data.run_rows import RunRows
from ..render.html import history_curves

if TYPE_CHECKING:  # pragma: no cover
    from ..data.table import Table
    from ..model.base import BaseModel

__all__ = ["gather", "SCORE_ROWS", "ACTIVATION_ROWS", "IMPORTANCE_ROWS", "HISTOGRAM_BINS"]

SCORE_ROWS = 20000  # rows scored per split
ACTIVATION_ROWS = 512  # rows pushed through the network for activation statistics
IMPORTANCE_ROWS = 1000  # validation rows shuffled for permutation importance
IMPORTANCE_REPEATS = 3  # shuffles per column, averaged
SCATTER_POINTS = 400  # points in the predicted-vs-true plot
HISTOGRAM_BINS = 30


def gather(model: "BaseModel", rows: RunRows | None = None) -> dict[str, Any]:
    """Everything the report shows; see the module docstring."""
    from ..model.facts import feature_rows
    from .trials import trials_data

    data: dict[str, Any] = {
        "run": _run(model, rows),
        "features": [{k: v for k, v in r.items() if k != "details"} for r in feature_rows(model)],
        "curves": history_curves(model.history.records, model.history.info),
        "model": _inside(model),
        "result": None,
        "search": trials_data(model.history.info),  # a tuned model's trials (report_trials)
    }
    if rows is not None:
        data["missing"] = _missing(data["features"], rows.table)
        data["model"]["activations"] = _activation_stats(model, rows)
        data["result"] = _result(model, rows)
    return data


# -- the run ----------------------------------------------------------------------------------


def _run(model: "BaseModel", rows: RunRows | None) -> dict[str, Any]:
    import torch

    from ..core.version import __version__

    info = model.history.info
    options = info.get("options") or {}
    facts: dict[str, Any] = {
        "data": info.get("source") or (rows.table.source if rows is not None else None),
        "rows": None if rows is None else int(rows.table.n_rows),
        "train_rows": info.get("train_rows"), "val_rows": info.get("val_rows"),
        "targets": model.target_names, "task": model.task, "classes": model.classes,
        "seed": options.get("seed", info.get("seed")), "device": info.get("device"),
        "precision": info.get("precision"), "batch_size": info.get("batch_size"),
        "epochs": len(model.history), "best_epoch": info.get("best_epoch"),
        "stopped_early": bool(info.get("stopped_early")), "trained_at": info.get("trained_at"),
        "seconds": float(sum(r.get("seconds", 0.0) for r in model.history.records)),
        "options": {k: v for k, v in options.items() if v is not None},
        "skipped": dict(info.get("skipped") or (rows.table.skipped if rows is not None else {}) or {}),
        "versions": {"torchann": __version__, "torch": str(info.get("torch") or torch.__version__),
                     "numpy": np.__version__, "python": sys.version.split()[0]},
        "machine": f"{platform.system()} {platform.machine()}, {platform.processor() or 'cpu'}",
        "report_written": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "path": None if model.path is None else str(model.path),
    }
    if info.get("networks"):  # several networks answer together; the curves are the first one's
        facts["networks"] = info["networks"]
    if "starts_final_loss" in info:
        facts["starts_final_loss"] = info["starts_final_loss"]
        facts["kept_start"] = info.get("start")
    return facts


def _missing(features: list[dict[str, Any]], table: "Table") -> list[dict[str, Any]]:
    """Per feature column with missing values: how many, and what the model does with them (the
    features table's own ``when_missing`` fact, so the two tables never disagree)."""
    out = []
    for f in features:
        col = table.columns.get(f["name"])
        if col is None:
            continue
        count = int(np.isnan(col).sum()) if col.dtype == np.float64 else int(sum(v is None for v in col))
        if count:
            out.append({"column": f["name"], "missing": count, "filled_with": f["when_missing"]})
    return out


# -- curves -----------------------------------------------------------------------------------


# -- inside the model -------------------------------------------------------------------------


def _inside(model: "BaseModel") -> dict[str, Any]:
    from ..inspect.layers import describe_spec, parameters_table

    params = parameters_table(model.network)
    histograms = []
    for name, p in model.network.named_parameters():
        if p.ndim < 2:  # biases and norm scales: listed in the table, not drawn
            continue
        values = p.detach().float().cpu().numpy().ravel()
        counts, edges = np.histogram(values, bins=HISTOGRAM_BINS)
        histograms.append({"name": name, "shape": list(p.shape), "counts": counts.tolist(),
                           "edges": edges.tolist(), "mean": float(values.mean()), "std": float(values.std())})
    return {"architecture": describe_spec(model.spec), "summary": model.summary().to_dict(),
            "parameters": params.to_dict(), "histograms": histograms, "activations": None}


def _activation_stats(model: "BaseModel", rows: RunRows) -> dict[str, Any] | None:
    """Per hidden layer, on a sample of rows: mean, std, and the fraction of units that are
    zero for every row (dead ReLU units) - what §2.3 of the tutorial looks at by hand."""
    from ..inspect.layers import activations

    table = rows.split("validation") or rows.split("training")
    if table is None or table.n_rows == 0:
        return None
    sample = _sample(table.n_rows, ACTIVATION_ROWS)
    x = model.preprocessor.transform_x(table.take(sample))
    names = [n for n in model.network._modules if n.startswith("act")]  # noqa: SLF001 - an MLP's layer names
    if not names:
        return None
    outs = activations(model.network, x, layers=names)
    layers = []
    for name in names:
        a = outs[name].float().cpu().numpy()
        dead = np.all(a <= 0, axis=0) if str(model.spec.activation) == "relu" else np.zeros(a.shape[1], bool)
        layers.append({"layer": name, "units": int(a.shape[1]), "mean": float(a.mean()), "std": float(a.std()),
                       "dead_fraction": float(dead.mean()), "dead_units": int(dead.sum()),
                       "unit_means": a.mean(axis=0).tolist()})
    return {"rows": int(len(sample)), "split": rows.held_out if rows.split("validation") is not None else "training",
            "activation": str(model.spec.activation), "layers": layers}


def _sample(n: int, cap: int) -> np.ndarray:
    if n <= cap:
        return np.arange(n)
    return np.sort(np.random.default_rng(0).choice(n, size=cap, replace=False))


# -- the result -------------------------------------------------------------------------------


def _result(model: "BaseModel", rows: RunRows) -> dict[str, Any]:
    from ..model.scores import classification_scores, regression_scores

    pre = model.preprocessor
    out: dict[str, Any] = {"splits": {}, "classes": model.classes}
    held = None
    for name in ("training", "validation"):
        table = rows.split(name)
        if table is None or table.n_rows == 0:
            continue
        full = int(table.n_rows)
        sample = _sample(full, SCORE_ROWS)
        table = table.take(sample) if len(sample) < full else table
        x = pre.transform_x(table)
        raw = _forward(model, x)
        if pre.task.value == "classification":
            codes = pre.transform_y(table)
            proba = pre.proba(raw)
            scores = classification_scores(codes, proba)
            entry = {"rows": full, "scores": scores, **_confusion(codes, proba.argmax(1), len(proba[0]))}
        else:
            truth = np.stack([np.asarray(table.columns[t], dtype=np.float64) for t in pre.target_names], axis=1)
            pred = pre.inverse_y(raw).reshape(len(truth), -1)
            scores = regression_scores(truth, pred)
            pick = _sample(len(truth), SCATTER_POINTS)
            entry = {"rows": full, "scores": scores, "truth": truth[pick, 0].tolist(),
                     "pred": pred[pick, 0].tolist()}
        entry["scored"] = int(len(sample))
        shown = rows.held_out if name == "validation" else name
        out["splits"][shown] = entry
        held = (shown, table, x)
    if held is not None:
        out["importance"] = _importance(model, *held)
    return out


def _forward(model: "BaseModel", x: np.ndarray) -> Any:
    """The network's outputs for inputs already checked by the preprocessor (no second check)."""
    import torch

    net = model.network
    first = next(net.parameters())
    with torch.no_grad():
        chunks = [net(torch.from_numpy(x[i:i + 65536]).to(first.device, first.dtype)) for i in range(0, len(x), 65536)]
    return torch.cat(chunks).float().cpu() if chunks else torch.zeros(0)


def _confusion(codes: np.ndarray, predicted: np.ndarray, n: int) -> dict[str, Any]:
    matrix = np.zeros((n, n), dtype=np.int64)
    np.add.at(matrix, (codes, predicted), 1)
    tp = np.diag(matrix).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(matrix.sum(0) > 0, tp / matrix.sum(0), np.nan)
        recall = np.where(matrix.sum(1) > 0, tp / matrix.sum(1), np.nan)
    return {"confusion": matrix.tolist(),
            "precision": [None if np.isnan(v) else float(v) for v in precision],
            "recall": [None if np.isnan(v) else float(v) for v in recall],
            "support": matrix.sum(1).tolist()}


def _importance(model: "BaseModel", split: str, table: "Table", x: np.ndarray) -> dict[str, Any]:
    """Permutation importance by original column on a sample of the held-out rows
    (``model.importance``: a column's whole one-hot block is shuffled together)."""
    from ..model.importance import input_importance

    sample = _sample(len(x), IMPORTANCE_ROWS)
    found = input_importance(model, x[sample], table.take(sample), repeats=IMPORTANCE_REPEATS, seed=0)
    return {"metric": found.metric, "base": found.base, "split": split, "rows": found.rows,
            "repeats": found.repeats, "columns": [{"column": c.column, "drop": c.drop, "spread": c.spread}
                                                  for c in found.columns]}
