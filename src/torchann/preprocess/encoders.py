"""Elementwise encodings of one column, fitted on training rows, stored as plain numbers.

* A quantile map: a numeric column through the piecewise-linear curve that sends its
  training quantiles to the matching quantiles of a standard normal distribution
  (``np.interp``; values past the ends are clipped to the end scores). Skewed columns,
  heavy tails and outliers come out on one scale, as the quantile transformation that
  Gorishniy et al. (NeurIPS 2021, 2022) use before their MLPs. Each knot is a training
  quantile; tied quantiles (a column with few distinct values) share one knot whose score is
  the mean of theirs, so a 0/1 column maps to two scores.
* Dates: text such as ``2013-01-01``, ``2013-01-01T06:00:00Z`` or ``Mar-2018`` as four
  numbers (year, month, weekday, days since 1970-01-01), parsed with one format per column
  found on the training rows.

* A piecewise-linear encoding (PLE, Gorishniy, Rubachev, Babenko, NeurIPS 2022): a numeric
  column cut at its training quantiles ``b_0 < b_1 < ... < b_T`` into ``T`` bins becomes ``T``
  inputs, ``e_t = clip((x - b_{t-1}) / (b_t - b_{t-1}), 0, 1)``, except that the first is not
  clipped below and the last not clipped above (so values past the training range still
  move an input). A value in bin ``t`` reads ``1, ..., 1, fraction, 0, ..., 0``: the network
  gets a step per bin that a first linear layer can weigh, as a tree splits on thresholds.

All three are formulas an exporter can write out: ``interp`` is a piecewise-linear map, and the
date parts are computed from the text before the network sees them.
"""

from __future__ import annotations

import datetime as _dt
from statistics import NormalDist
from typing import Any, Sequence

import numpy as np

__all__ = ["fit_quantile_map", "apply_quantile_map", "fit_ple_bins", "ple_encode", "ple_bounds", "date_format", "date_parts", "DATE_PARTS"]

TAIL = 1e-3  # the outermost knots map to the normal quantiles of 0.001 and 0.999 (about -3.09, 3.09)
DATE_PARTS = ("year", "month", "weekday", "day")  # "day": days since 1970-01-01
_FORMATS = ("%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%SZ", "%Y/%m/%d",
            "%d/%m/%Y", "%m/%d/%Y", "%b-%Y", "%b %Y", "%Y-%m", "%d-%b-%Y", "%d %b %Y", "%B %Y", "%B %d, %Y")


def n_knots(n_rows: int) -> int:
    """Knots for a quantile map fitted on ``n_rows`` values: a knot per ~30 rows, 10 to 128."""
    return int(min(128, max(10, n_rows // 30)))


def fit_quantile_map(values: np.ndarray, knots: int) -> tuple[list[float], list[float]]:
    """Knots (increasing training quantiles) and their normal scores for the observed ``values``.

    With ``knots`` levels ``p_i = i / (knots - 1)``, knot ``i`` is the training quantile at
    ``p_i`` (linear interpolation) and its score is ``Phi^-1(clip(p_i, TAIL, 1 - TAIL))``;
    equal quantiles merge into one knot with the mean score. A constant column gets one
    knot with score 0.
    """
    x = np.asarray(values, dtype=np.float64)
    levels = np.linspace(0.0, 1.0, max(2, int(knots)))
    qs = np.quantile(x, levels)
    inv = NormalDist().inv_cdf
    scores = np.array([inv(float(p)) for p in np.clip(levels, TAIL, 1.0 - TAIL)])
    uniq, groups = np.unique(qs, return_inverse=True)
    merged = np.bincount(groups, weights=scores) / np.bincount(groups)
    if uniq.size == 1:
        merged = np.zeros(1)
    return [float(v) for v in uniq], [float(v) for v in merged]


def apply_quantile_map(x: np.ndarray, knots: Sequence[float], scores: Sequence[float]) -> np.ndarray:
    """``x`` through the piecewise-linear map; values outside the knots get the end scores."""
    return np.interp(np.asarray(x, dtype=np.float64), np.asarray(knots), np.asarray(scores))


def _parse(text: str, fmt: str) -> _dt.datetime | None:
    try:
        return _dt.datetime.strptime(text.strip(), fmt)
    except ValueError:
        return None


def date_format(values: Sequence[Any], *, sample: int = 200) -> str | None:
    """The one format (``strptime`` style) that parses every distinct text value, or None.

    Only text with a digit and at most 40 characters is tried, from the first ``sample``
    distinct values; a column of plain numbers or of words is not a date.
    """
    distinct = [v for v in dict.fromkeys(values) if isinstance(v, str)][:sample]
    if not distinct or any(len(v) > 40 or not any(c.isdigit() for c in v) for v in distinct):
        return None
    for fmt in _FORMATS:
        if all(_parse(v, fmt) is not None for v in distinct):
            return fmt
    return None


def date_parts(values: Sequence[Any], fmt: str) -> tuple[np.ndarray, np.ndarray]:
    """``(n, 4)`` float64 year, month, weekday (Monday 0), days since 1970-01-01, and the
    mask of rows that are missing or do not parse (their parts are NaN)."""
    values = list(values)
    out = np.full((len(values), len(DATE_PARTS)), np.nan)
    cache: dict[str, tuple[float, ...] | None] = {}
    epoch = _dt.datetime(1970, 1, 1)
    for i, v in enumerate(values):
        if not isinstance(v, str):
            continue
        if v not in cache:
            d = _parse(v, fmt)
            cache[v] = None if d is None else (d.year, d.month, d.weekday(), (d - epoch).total_seconds() / 86400.0)
        parts = cache[v]
        if parts is not None:
            out[i] = parts
    return out, np.isnan(out[:, 0])


def fit_ple_bins(observed: np.ndarray, n_bins: int) -> list[float] | None:
    """The bin edges of a piecewise-linear encoding: the distinct training quantiles (observed
    values, numpy's ``method="lower"``) at
    ``0, 1/n_bins, ..., 1`` (tied quantiles merge, so a column of few values gets fewer bins).
    None when fewer than two bins remain: one bin is the scaled value again."""
    if n_bins < 2 or observed.size == 0:
        return None
    edges = np.unique(np.quantile(observed.astype(np.float64), np.linspace(0.0, 1.0, n_bins + 1), method="lower"))
    return [float(v) for v in edges] if edges.size >= 3 else None


def ple_bounds(n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """The clip bounds of each of ``n_bins`` encoded inputs: ``[-inf, 0, ..., 0]`` and ``[1, ..., 1, inf]``."""
    low = np.zeros(n_bins)
    low[0] = -np.inf
    high = np.ones(n_bins)
    high[-1] = np.inf
    return low, high


def ple_encode(x: np.ndarray, bins: Sequence[float]) -> np.ndarray:
    """``(n,)`` float64 values -> ``(n, T)`` piecewise-linear encoding for edges ``bins`` (``T + 1``
    increasing numbers); see the module docstring. NaN stays NaN."""
    edges = np.asarray(bins, dtype=np.float64)
    left, width = edges[:-1], np.diff(edges)
    low, high = ple_bounds(left.size)
    return np.minimum(np.maximum((x[:, None] - left) / width, low), high)
