"""``predict(dataframe, run)``: a model's answers for a Dask dataframe, as a Dask dataframe.

Partition ``i`` is scored by a task that holds the pandas partition, the ``ModelRef`` and the
number of rows before it in the dataframe, never the network: the worker loads the model once
(``loader.worker_model``) and scores the partition with ``first_row`` set, so each row's answer
is bit for bit the one ``torchann.load(run).predict`` gives it in the whole table.
"""

from __future__ import annotations

import os
import secrets
from typing import Any, Sequence

import numpy as np

from .extra import require
from .internals import DataError, UsageError, quiet_range
from .loader import ModelRef, worker_model

__all__ = ["predict", "output_meta"]


def predict(dataframe: Any, run: str | os.PathLike, *, keep: Sequence[str] = (), proba: bool = False) -> Any:
    """The answers of the model directory ``run`` for the rows of ``dataframe``, lazily.

    Args:
        dataframe: a ``dask.dataframe.DataFrame`` holding the model's feature columns.
        run: a model directory that every worker reads at this same path.
        keep: columns of ``dataframe`` copied first into the result (identifiers).
        proba: add one ``p(<class>)`` column per class (classification).

    Returns:
        A Dask dataframe with the partitions and index of ``dataframe``: the ``keep`` columns,
        one column per target, then the probabilities. To number the rows, this counts each
        partition's rows first (``dataframe.map_partitions(len).compute()``: the input is read
        once more).

    Example:
        >>> import dask.dataframe as dd
        >>> preds = torchann.dask.predict(dd.read_parquet("data/"), "runs/price", keep=["id"])
        >>> preds.to_parquet("preds/")
    """
    dask, _ = require("torchann.dask.predict")
    import dask.dataframe as dd
    from ..api.model import load

    if not isinstance(dataframe, dd.DataFrame):
        raise UsageError(f"torchann.dask.predict takes a dask.dataframe.DataFrame, got {type(dataframe).__name__}; "
                         f"for a pandas frame call torchann.load(run).predict")
    model = load(run)
    keep = [str(k) for k in keep]
    columns = [str(c) for c in dataframe.columns]
    wanted = [*keep, *([] if model.bare else model.feature_names)]
    missing = [c for c in wanted if c not in columns]
    if missing:
        raise DataError(f"the dataframe has no column {', '.join(repr(m) for m in missing)} (a feature of the model "
                        f"or a keep column); columns present: {', '.join(columns[:20])}")
    if proba and model.task != "classification":
        raise UsageError(f"proba needs a classifier, but {run} predicts {', '.join(model.target_names)} as numbers "
                         f"(regression); leave out proba")
    ref = ModelRef.of(model.path if model.path is not None else run)
    meta = output_meta(model, dataframe._meta, keep, proba)
    lengths = [int(n) for n in dataframe.map_partitions(len).compute()]
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(int).tolist()
    token = secrets.token_hex(6)
    scored = [dask.delayed(score_partition, pure=False)(part, ref, i, start, keep, proba,
                                                        dask_key_name=f"torchann-predict-{token}-{i:05d}")
              for i, (part, start) in enumerate(zip(dataframe.to_delayed(), starts))]
    divisions = dataframe.divisions if dataframe.known_divisions else None
    return dd.from_delayed(scored, meta=meta, divisions=divisions, verify_meta=False)


def score_partition(frame: Any, ref: ModelRef, number: int, first_row: int, keep: Sequence[str],
                    proba: bool) -> Any:
    """One pandas partition scored on a worker: the answers, with the partition's index."""
    import pandas as pd

    model = worker_model(ref)
    if len(frame) == 0:
        return output_meta(model, frame, keep, proba)
    table = model.table(frame)
    table.source = f"dataframe partition {number}"
    table.row_numbers = np.arange(first_row + 1, first_row + len(frame) + 1)  # messages name the whole frame's row
    with quiet_range():
        answers = model.predictions(table, proba=proba, first_row=first_row)
    return _frame(model, {k: frame[k].to_numpy() for k in keep}, answers, frame.index, frame[list(keep)].dtypes,
                  pd)


def output_meta(model: Any, meta: Any, keep: Sequence[str], proba: bool) -> Any:
    """An empty pandas frame with the result's columns and dtypes."""
    import pandas as pd

    answers: dict[str, np.ndarray] = {}
    if model.task == "classification":
        answers[model.target_names[0]] = _labels(model)[:0]
        if proba:
            answers.update({f"p({c})": np.zeros(0) for c in model.classes or []})
    else:
        answers.update({t: np.zeros(0) for t in model.target_names})
    kept = {k: meta[k].to_numpy()[:0] for k in keep}
    return _frame(model, kept, answers, meta.index[:0], meta[list(keep)].dtypes, pd)


def _labels(model: Any) -> np.ndarray:
    """The class labels as the model answers them (object for text, else numpy's own dtype)."""
    classes = model.classes or []
    return np.array(classes, dtype=object if model.preprocessor.class_kind == "str" else None)


def _frame(model: Any, kept: dict[str, Any], answers: dict[str, np.ndarray], index: Any, kept_dtypes: Any,
           pd: Any) -> Any:
    columns: dict[str, Any] = {k: pd.Series(v, index=index, dtype=kept_dtypes[k]) for k, v in kept.items()}
    labels = _labels(model) if model.task == "classification" else None
    for name, values in answers.items():
        if labels is not None and name == model.target_names[0]:
            columns[name] = pd.Series(values, index=index, dtype=labels.dtype)
        else:
            columns[name] = pd.Series(values, index=index, dtype=np.float64)
    return pd.DataFrame(columns, index=index)
