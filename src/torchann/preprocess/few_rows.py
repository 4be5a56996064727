"""A few rows at a time: the inputs of one served request or one small ``predict`` call,
computed value by value.

``Preprocessor.transform_x_facts`` works column by column with numpy, about a dozen array
operations a column; on one row each costs more than the arithmetic it does, so a row of ten
columns spends most of its time in numpy's per-call overhead. :func:`encode_few` gives the same
inputs bit for bit (the same float64 operations in the same order, the same float32 rounding)
and the same facts for tables of at most ``FEW_ROWS`` rows, with Python's scalars.

It handles numbers (with their piecewise-linear encoding, ``ple_encode``'s arithmetic on Python's
floats) and text categories in the column types a table holds for them. Anything
else (a date column, a value that is not a number, a missing value with nothing to fill it, an
unseen category under ``strict``) returns None, and the column-wise path answers, errors
included: there is one place that words them.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..data.table import Table
from .facts import FILLED, OUT_OF_RANGE, UNSEEN, InputFacts

__all__ = ["FEW_ROWS", "encode_few"]

FLOAT32_MAX = float(np.finfo(np.float32).max)
FEW_ROWS = 8  # at most this many rows go value by value; more are cheaper column by column


def encode_few(pre: Any, table: Table, *, strict: bool = False) -> tuple[np.ndarray, InputFacts] | None:
    """``pre.transform_x_facts(table)``'s ``(inputs, facts)`` for a table of at most
    ``FEW_ROWS`` rows, or None where the column-wise path must answer."""
    n = table.n_rows
    if n > FEW_ROWS or n == 0:
        return None
    out = np.zeros((n, pre.in_features), dtype=np.float32)
    facts = InputFacts(n)
    j = 0
    for f in pre.features:
        col = table.columns.get(f.name)
        if col is None:
            return None
        if f.kind == "numeric":
            if not _numbers(f, col.tolist() if col.dtype.kind in "fiu" else None, out, j, facts):
                return None
        elif f.kind == "categorical":
            if f.label_kind != "str":
                return None
            if col.dtype == object:
                values = col.tolist()
            elif col.dtype.kind == "f" and np.isnan(col).all():  # only missing values, read as numbers
                values = [None] * n
            else:
                return None
            if not _categories(pre, f, values, out, j, facts, strict):
                return None
        else:  # dates: parsed column-wise
            return None
        j += f.width
    return out, facts


def _numbers(f: Any, values: list | None, out: np.ndarray, j: int, facts: InputFacts) -> bool:
    if values is None:
        return False
    span = f.training_range
    quantile = f.knots is not None
    if quantile:
        knots, scores = f.derived("quantile map", lambda: (np.asarray(f.knots, dtype=np.float64),
                                                           np.asarray(f.scores or [], dtype=np.float64)))
    steps = f.derived("ple steps", lambda: _ple_steps(f.bins)) if f.bins else None
    missing, outside = [], []
    for i, v in enumerate(values):
        x = float(v)
        if math.isnan(x):
            if f.fill is None:
                return False
            missing.append(i)
            x = f.fill
        elif math.isinf(x):
            return False
        elif span is not None and (x < span[0] or x > span[1]):
            outside.append(i)
        z = np.interp(x, knots, scores) if quantile else (x - f.mean) / f.std
        if abs(z) > FLOAT32_MAX:  # beyond float32 once scaled: the column-wise check words it
            return False
        out[i, j] = z
        if steps is not None:  # the piecewise-linear inputs after the value
            out[i, j + 1 : j + 1 + f.n_bins] = _ple_row(x, steps)
    if f.indicator:
        for i in missing:
            out[i, j + 1 + f.n_bins] = 1.0
    _record(facts, OUT_OF_RANGE, f.name, outside)
    _record(facts, FILLED, f.name, missing)
    return True


def _ple_steps(bins: list) -> tuple[list[float], list[float]]:
    """The bins' left edges and widths as ``ple_encode`` computes them (float64), as floats."""
    edges = np.asarray(bins, dtype=np.float64)
    return edges[:-1].tolist(), np.diff(edges).tolist()


def _ple_row(x: float, steps: tuple[list[float], list[float]]) -> list[float]:
    """``ple_encode`` of one value with Python's floats (the same IEEE float64 operations):
    ``(x - left) / width``, clipped to 0 below except the first and to 1 above except the last.
    The comparisons keep the value where numpy's ``maximum`` and ``minimum`` keep it, -0.0 too."""
    left, width = steps
    last = len(left) - 1
    row = []
    for t, (a, w) in enumerate(zip(left, width)):
        v = (x - a) / w
        if t and v < 0.0:
            v = 0.0
        if t < last and v > 1.0:
            v = 1.0
        row.append(v)
    return row


def _categories(pre: Any, f: Any, values: list, out: np.ndarray, j: int, facts: InputFacts, strict: bool) -> bool:
    lookup = f.derived("lookup", lambda: {v: i for i, v in enumerate(f.categories or [])})
    pooled = len(f.categories or [])
    missing, unseen = [], []
    for i, v in enumerate(values):
        if v is None or (isinstance(v, float) and math.isnan(v)):
            if pre.fill_missing is None:
                return False
            missing.append(i)
            if f.missing_slot:
                out[i, j + f.width - 1] = 1.0
            continue
        code = lookup.get(v, -1)
        if code < 0:
            if f.other:  # rare categories were pooled in training: a new one is one more of them
                code = pooled
            elif strict:
                return False
            else:
                unseen.append(i)
                continue
        out[i, j + code] = 1.0
    _record(facts, UNSEEN, f.name, unseen)
    _record(facts, FILLED, f.name, missing)
    return True


def _record(facts: InputFacts, kind: str, column: str, rows: list[int]) -> None:
    if rows:
        facts.kinds[kind][column] = np.asarray(rows, dtype=np.int64)
