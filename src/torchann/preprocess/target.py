"""The target side of preprocessing: which task a target means, when it is learnt as
``log1p(y)``, balanced class weights, and the checks a target column passes."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..core.choices import Task
from ..core.errors import DataError, UsageError
from ..data.table import Key, Table
from .checks import MAX_MAGNITUDE, numeric_column

__all__ = ["infer_task", "target_columns", "wants_log", "class_weights", "target_numbers", "no_missing_target",
           "MAX_CLASSES", "LOG_TARGET_SKEW"]

MAX_CLASSES = 20  # integer targets with more distinct values than this are treated as regression


LOG_TARGET_SKEW = 2.0  # a positive regression target more skewed than this is learnt as log1p(y)


def infer_task(table: Table, target: Key | Sequence[Key] | None = None) -> Task:
    """Classification or regression for ``target`` (default: the table's targets); see the module doc."""
    if not isinstance(table, Table):
        raise UsageError(f"infer_task needs a torchann Table (from load_table), got {type(table).__name__}")
    names = target_columns(table, target)
    if len(names) > 1:
        return Task.REGRESSION
    col = table.columns[names[0]]
    if col.dtype != np.float64:
        return Task.CLASSIFICATION
    values = col[~np.isnan(col)]
    if values.size == 0 or not np.all(np.isfinite(values)) or not np.all(values == np.round(values)):
        return Task.REGRESSION
    n_distinct = np.unique(values).size
    if 2 <= n_distinct <= MAX_CLASSES and 2 * n_distinct <= values.size:
        return Task.CLASSIFICATION
    return Task.REGRESSION


def target_columns(table: Table, target: Key | Sequence[Key] | None) -> list[str]:
    if target is None:
        if not table.targets:
            raise DataError(f"{table.source}: no target column given; name one with target= (--target); "
                            f"columns are: {', '.join(table.names[:20])}")
        return list(table.targets)
    keys = [target] if isinstance(target, (str, int)) else list(target)
    return [table.column_name(k, role="target") for k in keys]


def wants_log(y: np.ndarray) -> bool:
    """A positive target whose skewness is above ``LOG_TARGET_SKEW`` and shrinks under log1p."""
    if y.size < 3 or np.min(y) < 0:
        return False
    return _skew(y) > LOG_TARGET_SKEW and abs(_skew(np.log1p(y))) < _skew(y)


def _skew(y: np.ndarray) -> float:
    top = float(np.max(np.abs(y))) if y.size else 0.0
    if top > MAX_MAGNITUDE:  # skewness does not change with scale; this keeps np.std's squares finite
        y = y / top
    sd = float(np.std(y))
    return 0.0 if sd == 0 else float(np.mean(((y - np.mean(y)) / sd) ** 3))


def class_weights(codes: np.ndarray, n_classes: int) -> np.ndarray:
    """Balanced class weights, ``n / (n_classes * count_c)`` (scikit-learn's ``"balanced"``);
    a class absent from ``codes`` gets weight 0."""
    counts = np.bincount(np.asarray(codes, dtype=np.int64), minlength=n_classes).astype(np.float64)
    with np.errstate(divide="ignore"):
        w = np.where(counts > 0, counts.sum() / (n_classes * counts), 0.0)
    return w


def target_numbers(table: Table, name: str) -> np.ndarray:
    col = table.columns[name]
    if col.dtype != np.float64:
        raise DataError(f"{table.source}: target {name!r} holds {table.kind(name)} values, not numbers; "
                        f"use task='classification' (--task classification)")
    return numeric_column(table, name)


def no_missing_target(table: Table, name: str, miss: np.ndarray, idx: np.ndarray) -> None:
    if miss.any():
        i = int(idx[int(np.argmax(miss))])
        raise DataError(f"{table.source}: target {name!r} is missing in row {table.row(i)} "
                        f"({int(miss.sum())} missing in all); drop rows without a target, or pass "
                        f"drop_missing_target=True (--drop-missing-target) to leave them out")
