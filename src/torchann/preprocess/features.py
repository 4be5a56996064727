"""How one input column becomes model inputs: fitted on training rows, applied to any table.

Kinds of input column and what each becomes:

* ``numeric``: one input, ``(x - mean) / std`` (``scaling="standard"``) or the quantile map of
  :mod:`encoders` (``scaling="quantile"``). A missing number gets the fill value (training
  mean, median or 0, before scaling); when training rows had missing values there is a second
  input, 1 where the value was missing (the indicator). With ``ple_bins``, the scaled value is
  followed by the column's piecewise-linear encoding over its training quantile bins
  (:func:`encoders.ple_encode`, one input per bin), computed from the filled raw value.
* ``date``: text that parses as dates with one format: year, month, weekday and days since
  1970, each standardised; missing or unreadable dates are filled with the training means and
  flagged by an indicator input when training rows had any.
* ``categorical``: one-hot, one input per category. A missing value has its own input when
  training rows had missing values. A column with more than ``MAX_ONE_HOT`` distinct values
  keeps those seen at least ``MIN_COUNT`` times in the training rows (at most ``MAX_ONE_HOT``,
  most frequent first) and sends the rest to one ``other`` input; if none is that frequent the
  column looks like an identifier and is left out, with the reason recorded.
* A numeric column of whole numbers, nearly all distinct, that runs in row order (a row or
  order number), has 7 digits or more in every row (a parcel or account number), or covers at
  least half the whole numbers of its range (the row numbers of a shuffled table) is an
  identifier too and is left out, with the reason recorded, unless it was named as a feature
  or every feature would be left out (``np.arange(100)`` alone is a feature, not an id).
* A category not seen in training (at predict time) sets no input of its column: the
  ``unseen`` code. It is counted and reported, or refused with ``strict=True``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.choices import FillMissing, Scaling
from ..data.columns import coerce, label_kind
from ..data.table import Table
from .checks import check_magnitude, missing_error, numeric_column
from .encoders import (DATE_PARTS, apply_quantile_map, date_format, date_parts, fit_ple_bins, fit_quantile_map,
                       n_knots, ple_encode)
from ..core.errors import DataError

__all__ = ["Feature", "fit_feature", "identifier_reason", "periodic_inputs", "MAX_ONE_HOT", "MIN_COUNT"]

QUANTILE_MIN_DISTINCT = 20  # fewer distinct numbers are standardised instead of mapped to quantile scores
MAX_ONE_HOT = 100  # a text column with more distinct values keeps only its frequent ones
MIN_COUNT = 5  # ... those seen at least this many times in the training rows
ID_MIN_ROWS = 20  # a numeric identifier needs this many training values to be told from a measurement
ID_DISTINCT = 0.99  # ... nearly all of them distinct whole numbers
ID_DIGITS = 7  # ... in row order, or each of at least this many digits,
ID_COVER = 0.5  # ... or covering at least this share of the whole numbers between the smallest and largest


@dataclass
class Feature:
    """How one input column becomes model inputs (see the module doc)."""

    name: str
    kind: str  # "numeric" (1 input), "date" (4 inputs) or "categorical" (one input per category)
    mean: float = 0.0  # numeric: subtracted (training mean, or 0 when not scaling or with a quantile map)
    std: float = 1.0  # numeric: divided by (training std, 1 for a constant column or when not scaling)
    fill: float | None = None  # numeric: value for a missing entry (None: missing is an error)
    categories: list | None = None  # categorical: sorted known values
    label_kind: str | None = None  # categorical: "str", "int", "float" or "bool"
    knots: list | None = None  # numeric, quantile map: increasing training quantiles
    scores: list | None = None  # numeric, quantile map: the normal score of each knot
    indicator: bool | None = None  # numeric / date: an extra input, 1 where the value was missing
    missing_slot: bool | None = None  # categorical: an extra input for a missing value
    other: bool | None = None  # categorical: an extra input for rare categories left out of ``categories``
    date_format: str | None = None  # date: the strptime format of the column
    date_mean: list | None = None  # date: training mean of year, month, weekday, day (missing dates get it)
    date_std: list | None = None  # date: training std of the same parts
    low: float | None = None  # numeric: the smallest training value (for the out-of-range fact)
    high: float | None = None  # numeric: the largest training value
    bins: list | None = None  # numeric: increasing edges of the piecewise-linear encoding's bins

    @property
    def training_range(self) -> tuple[float, float] | None:
        """Numeric: the smallest and largest training values; a model saved before they were
        stored has them only as the ends of its quantile map, else None."""
        if self.kind != "numeric":
            return None
        if self.low is not None and self.high is not None:
            return self.low, self.high
        if self.knots:
            return float(self.knots[0]), float(self.knots[-1])
        return None

    def widen_range(self, x: np.ndarray) -> None:
        """Numeric: take the values ``x`` into the training range (``train`` gives it the
        validation rows too, so that predicting the table trained on warns of nothing)."""
        observed = x[~np.isnan(x)]
        if self.kind == "numeric" and self.low is not None and self.high is not None and observed.size:
            self.low, self.high = min(self.low, float(observed.min())), max(self.high, float(observed.max()))

    def outside_range(self, x: np.ndarray) -> np.ndarray | None:
        """Numeric: the mask of observed values below or above the training range (None: unknown)."""
        span = self.training_range
        if span is None:
            return None
        with np.errstate(invalid="ignore"):
            return (x < span[0]) | (x > span[1])

    @property
    def width(self) -> int:
        extra = int(bool(self.indicator))
        if self.kind == "numeric":
            return 1 + self.n_bins + extra
        if self.kind == "date":
            return len(DATE_PARTS) + extra
        return len(self.categories or []) + int(bool(self.missing_slot)) + int(bool(self.other))

    @property
    def n_bins(self) -> int:
        """Numeric: inputs of the piecewise-linear encoding (0 without one)."""
        return len(self.bins) - 1 if self.bins else 0

    @property
    def input_names(self) -> list[str]:
        if self.kind == "categorical":
            names = [f"{self.name}={c}" for c in self.categories or []]
            names += [f"{self.name}=<other>"] if self.other else []
            names += [f"{self.name}=<missing>"] if self.missing_slot else []
            return names
        if self.kind == "numeric":
            names = [self.name] + [f"{self.name}.bin{t}" for t in range(1, self.n_bins + 1)]
        else:
            names = [f"{self.name}.{p}" for p in DATE_PARTS]
        return names + ([f"{self.name}.missing"] if self.indicator else [])

    def derived(self, key: str, make: Any) -> Any:
        """A value computed from the stored fields once (arrays of the knots, a category lookup),
        kept beside them; not a field, so never saved. Fields are set at fit or load and not changed."""
        cache = self.__dict__.setdefault("_derived", {})
        if key not in cache:
            cache[key] = make()
        return cache[key]

    def encode_numbers(self, x: np.ndarray) -> np.ndarray:
        """Numeric: float64 values (NaN missing) -> ``(n, width)`` inputs; missing must be fillable."""
        miss = np.isnan(x)
        x = np.where(miss, self.fill if self.fill is not None else 0.0, x)
        if self.knots is not None:
            knots, scores = self.derived("quantile map", lambda: (np.asarray(self.knots, dtype=np.float64),
                                                                  np.asarray(self.scores or [], dtype=np.float64)))
            z = np.interp(x, knots, scores)  # apply_quantile_map, with the stored lists made arrays once
        else:
            z = (x - self.mean) / self.std
        parts = [z[:, None]]
        if self.bins:
            parts.append(ple_encode(x, self.bins))
        if self.indicator:
            parts.append(miss.astype(np.float64)[:, None])
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)

    def encode_dates(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Date: text values -> ``(n, width)`` inputs, and the rows that were missing or unreadable."""
        parts, miss = date_parts(values.tolist(), self.date_format or "")
        mean, std = np.asarray(self.date_mean), np.asarray(self.date_std)
        parts = np.where(np.isnan(parts), mean, parts)
        z = (parts - mean) / std
        return (np.concatenate([z, miss[:, None].astype(np.float64)], axis=1) if self.indicator else z), miss


def _stats(values: np.ndarray) -> tuple[float, float]:
    mean = float(np.mean(values))
    std = float(np.std(values))
    # a constant column (up to rounding in the mean) is left unscaled rather than divided by ~0
    if std == 0.0 or std <= 10 * np.finfo(np.float64).eps * max(1.0, abs(mean)):
        std = 1.0
    return mean, std


def _mapped(observed: np.ndarray, quantile: bool) -> bool:
    """Whether a scaled column takes the quantile map rather than its mean and std.

    A column of few distinct values (counts, codes, pixel levels) keeps its spacing: quantile
    scores would stretch its rare levels apart (measured on digits: 0.956 against 0.970)."""
    return quantile and np.unique(observed).size > QUANTILE_MIN_DISTINCT


def fit_numeric(name: str, x: np.ndarray, *, scale: bool, quantile: bool, fill: str | None,
                ple_bins: int = 0, ple_min_distinct: int = 0) -> Feature:
    """``x``: the training rows' values (NaN missing); ``fill``: mean, median, zero or None;
    ``ple_bins``: quantile bins of a piecewise-linear encoding (0: none), for a column of more
    than ``ple_min_distinct`` distinct values."""
    miss = np.isnan(x)
    observed = x[~miss]
    value = None if fill is None else {"mean": float(np.mean(observed)), "median": float(np.median(observed)),
                                       "zero": 0.0}[fill]
    feature = Feature(name, "numeric", fill=value, indicator=True if miss.any() else None,
                      low=float(np.min(observed)), high=float(np.max(observed)))
    if scale and _mapped(observed, quantile):
        feature.knots, feature.scores = fit_quantile_map(observed, n_knots(observed.size))
    elif scale:
        feature.mean, feature.std = _stats(observed)
    if ple_bins and (not ple_min_distinct or np.unique(observed).size > ple_min_distinct):
        feature.bins = fit_ple_bins(observed, ple_bins)
    return feature


def fit_date(name: str, values: np.ndarray, fmt: str, *, scale: bool) -> Feature:
    """``values``: the training rows' text; missing or unreadable dates get the parts' means."""
    parts, miss = date_parts(values.tolist(), fmt)
    seen = parts[~miss]
    stats = [_stats(seen[:, j]) for j in range(seen.shape[1])]
    return Feature(name, "date", date_format=fmt, date_mean=[m for m, _ in stats],
                   date_std=[s if scale else 1.0 for _, s in stats], indicator=True if miss.any() else None)


def fit_categorical(name: str, col: np.ndarray, idx: np.ndarray) -> tuple[Feature | None, str | None]:
    """A one-hot feature from column ``col`` (training rows ``idx``), or ``(None, reason)`` for an identifier.

    Categories come from every row of ``col`` (a category seen only in validation rows still
    gets an input) unless the column has more than ``MAX_ONE_HOT`` of them.
    """
    kind = label_kind(col)
    values, miss, _ = coerce(col, kind)
    feature = Feature(name, "categorical", label_kind=kind, missing_slot=True if miss[idx].any() else None)
    every = values[~miss].tolist()
    distinct = set(every)
    if len(distinct) <= MAX_ONE_HOT:
        feature.categories = sorted(distinct)
        return feature, None
    train = values[idx][~miss[idx]].tolist()
    uniq, counts = np.unique(np.asarray(train, dtype=object if kind == "str" else None), return_counts=True)
    order = np.argsort(-counts, kind="stable")
    kept = [uniq[i] for i in order if counts[i] >= MIN_COUNT][:MAX_ONE_HOT]
    if not kept:
        return None, (f"{len(distinct)} distinct values in {len(col)} rows, none seen {MIN_COUNT} times in the "
                      f"training rows: an identifier")
    feature.categories = sorted(v.item() if hasattr(v, "item") else v for v in kept)
    feature.other = True
    return feature, None


def identifier_reason(x: np.ndarray) -> str | None:
    """Why a numeric column's training values ``x`` (NaN missing, in row order) look like an
    identifier rather than a measurement, or None. Whole numbers, nearly all distinct, and
    either in row order (a row or order number), of ``ID_DIGITS`` digits or more each (a parcel
    id), or covering most whole numbers of their range (row numbers after a shuffle: n values drawn
    at random from a range are 99% distinct only when the range is about 50n wide or more).
    Scaled into the network they would only let it memorise rows."""
    seen = x[~np.isnan(x)]
    if seen.size < ID_MIN_ROWS or not np.all(seen == np.round(seen)):
        return None
    distinct = np.unique(seen).size
    if distinct < ID_DISTINCT * seen.size:
        return None
    steps = np.diff(seen)
    if np.all(steps >= 0) or np.all(steps <= 0):
        what = "in row order: a row or record number"
    elif np.min(np.abs(seen)) >= 10.0 ** (ID_DIGITS - 1):
        what = f"each of {ID_DIGITS} digits or more: an identifier"
    elif distinct >= ID_COVER * (seen.max() - seen.min() + 1):  # random measurements this distinct spread wider
        what = (f"covering {distinct / (seen.max() - seen.min() + 1):.0%} of the whole numbers from "
                f"{seen.min():.0f} to {seen.max():.0f}: the row numbers of a shuffled table")
    else:
        return None
    return (f"{distinct} distinct whole numbers in {seen.size} training rows, {what}; name it in features "
            f"(--features) to keep it")


def is_date_column(col: np.ndarray, idx: np.ndarray) -> str | None:
    """The date format of a text column (judged on its training rows), or None."""
    if col.dtype != object or label_kind(col) != "str":
        return None
    return date_format(col[idx].tolist())


def fit_feature(table: Table, name: str, idx: np.ndarray, scale: bool, fill: FillMissing | None,
                 categorical: bool, scaling: Scaling, ple_bins: int = 0, ple_min_distinct: int = 0,
                 named: bool = False) -> tuple[Feature | None, str | None]:
    """A fitted feature for column ``name``, or ``(None, why)`` when it is left out; ``named``:
    the user named the column as a feature, so it is never left out as a numeric identifier."""
    col = table.columns[name]
    if col.dtype == np.float64 and not categorical:
        x = numeric_column(table, name)[idx]
        miss = np.isnan(x)
        if miss.all():
            raise DataError(f"{table.source}: feature column {name!r} has no values in the training rows; "
                            f"leave it out of the features")
        why = None if named else identifier_reason(x)
        if why is not None:
            return None, why
        if miss.any() and fill is None:
            missing_error(table.take(idx), name, miss)
        quantile = scaling is Scaling.QUANTILE
        if (scale and not _mapped(x[~miss], quantile)) or (fill is FillMissing.MEAN and miss.any()):
            check_magnitude(table, name, x, idx, role="column",
                            fix="divide the column by a power of ten, or use --scaling quantile (scaling='quantile')")
        return fit_numeric(name, x, scale=scale, quantile=quantile,
                           fill=None if fill is None else fill.value, ple_bins=ple_bins,
                           ple_min_distinct=ple_min_distinct), None
    if not categorical:
        fmt = is_date_column(col, idx)
        if fmt is not None:
            miss = np.asarray([v is None for v in col[idx].tolist()])
            if miss.any() and fill is None:
                missing_error(table.take(idx), name, miss)
            return fit_date(name, col[idx], fmt, scale=scale), None
    values, miss, _ = coerce(col, label_kind(col))
    if miss[idx].any() and fill is None:
        missing_error(table.take(idx), name, miss[idx])
    return fit_categorical(name, col, idx)


def periodic_inputs(features: list[Feature], table: Table, rows: np.ndarray,
                    limit: int | None = None) -> tuple[int, ...]:
    """The model inputs a periodic embedding takes, for ``features`` laid out in order: the
    scaled value of each numeric column with at least 3 distinct values in ``rows`` of ``table``
    (two-valued ones are flags), and every date part; none when there are more than ``limit``."""
    found, at = [], 0
    for feature in features:
        if feature.kind == "numeric":
            values = numeric_column(table, feature.name)[rows]
            if np.unique(values[~np.isnan(values)]).size >= 3:
                found.append(at)
        elif feature.kind == "date":
            found.extend(range(at, at + len(DATE_PARTS)))
        at += feature.width
    return () if limit is not None and len(found) > limit else tuple(found)
