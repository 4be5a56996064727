"""Columns: what kind of values one holds, their missing masks, and their labels.

A column is a 1-D array as a :class:`~torchann.data.Table` holds it: float64 (NaN missing),
bool, or object (``str`` or ``bool`` values, ``None`` missing).

Two vocabularies, each declared once here and used from reading to encoding:

* :class:`ColumnKind`, what a column holds as read: ``numeric``, ``text`` or ``bool``
  (``Table.kind``). Numeric columns are scaled; text and bool columns are encoded as
  categories (``Feature.kind`` ``"categorical"`` in ``preprocess.py``).
* :class:`LabelKind`, the type of a class label or category: ``str``, ``int``, ``float`` or
  ``bool``. A column read from another file may hold the same labels in another type (``3.0``
  for ``3``, ``"true"`` for ``True``), and :func:`coerce` maps them onto the kind the model was
  fitted with.
"""

from __future__ import annotations

import math

import numpy as np

from ..core.choices import Choice

__all__ = ["ColumnKind", "LabelKind", "column_kind", "missing_mask", "numeric_values", "label_kind", "coerce",
           "shown_name"]


class ColumnKind(Choice):
    """What a column holds as read."""

    NUMERIC = "numeric"  # float64, NaN missing: scaled as a number
    TEXT = "text"  # str, None missing: one-hot categories
    BOOL = "bool"  # true/false: one-hot categories

    __hash__ = str.__hash__  # equal to its value, so it must hash like it (sets, dict keys)


class LabelKind(Choice):
    """The type of a class label or category value."""

    STR = "str"
    INT = "int"
    FLOAT = "float"
    BOOL = "bool"

    __hash__ = str.__hash__


def column_kind(col: np.ndarray) -> ColumnKind:
    """The :class:`ColumnKind` of a table column."""
    if col.dtype.kind in "fiu":
        return ColumnKind.NUMERIC
    if col.dtype == bool or all(isinstance(v, (bool, np.bool_)) for v in col.tolist() if v is not None):
        return ColumnKind.BOOL
    return ColumnKind.TEXT


def shown_name(name: object) -> str:
    """A column or feature name as messages show it: as is when printable, else escaped
    (``'a\\x1b[31m'``), so a name read from a file cannot send control codes to a terminal."""
    text = str(name)
    return text if text.isprintable() else repr(text)

_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}


def _is_missing(v: object) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def missing_mask(col: np.ndarray) -> np.ndarray:
    if col.dtype.kind == "f":
        return np.isnan(col)
    if col.dtype.kind in "biu":
        return np.zeros(len(col), dtype=bool)
    # elementwise on object arrays: None, or NaN (the one value not equal to itself)
    return np.asarray((col == None) | (col != col), dtype=bool)  # noqa: E711


def numeric_values(col: np.ndarray) -> tuple[np.ndarray, int | None]:
    """The column as float64 (NaN = missing) and the index of the first value that is not a number."""
    if col.dtype.kind in "fbiu":
        return col.astype(np.float64, copy=False), None
    out = np.empty(len(col), dtype=np.float64)
    for i, v in enumerate(col.tolist()):
        if _is_missing(v):
            out[i] = np.nan
            continue
        try:
            out[i] = float(v)
        except (TypeError, ValueError):
            return out, i
    return out, None


def label_kind(col: np.ndarray) -> LabelKind:
    """The :class:`LabelKind` a column holds: bool, int (integral numbers), float or str."""
    if col.dtype == bool:
        return LabelKind.BOOL
    if col.dtype.kind == "f":
        x = col[~np.isnan(col)]
        return LabelKind.INT if np.all(np.isfinite(x)) and np.all(x == np.round(x)) else LabelKind.FLOAT
    values = col[~missing_mask(col)].tolist()
    return LabelKind.BOOL if values and all(isinstance(v, (bool, np.bool_)) for v in values) else LabelKind.STR


def _number_text(v: float) -> str:
    return str(int(v)) if math.isfinite(v) and v == round(v) else repr(float(v))


def coerce(col: np.ndarray, kind: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(values, missing, invalid)``: the column as labels of ``kind``.

    ``values`` is int64 / float64 / bool / object-of-str; entries where ``missing`` or
    ``invalid`` (a value that cannot be a label of this kind) is set hold a placeholder.
    """
    n = len(col)
    missing = missing_mask(col)
    invalid = np.zeros(n, dtype=bool)
    if kind in ("int", "float"):
        if col.dtype.kind in "fbiu":
            x = np.where(missing, 0.0, col.astype(np.float64))
        else:
            x = np.zeros(n, dtype=np.float64)
            for i, v in enumerate(col.tolist()):
                try:
                    x[i] = 0.0 if missing[i] else float(v)
                except (TypeError, ValueError):
                    invalid[i] = True
        if kind == "float":
            return x, missing, invalid
        integral = np.isfinite(x) & (x == np.round(x))
        invalid |= ~missing & ~integral
        return np.where(integral, x, 0.0).astype(np.int64), missing, invalid
    if kind == "bool":
        if col.dtype == bool:
            return col, missing, invalid
        out = np.zeros(n, dtype=bool)
        for i, v in enumerate(col.tolist()):
            if missing[i]:
                continue
            text = str(_number_text(v) if isinstance(v, float) else v).strip().lower()
            if text in _TRUE or text in _FALSE:
                out[i] = text in _TRUE
            else:
                invalid[i] = True
        return out, missing, invalid
    if col.dtype == object:
        return col, missing, invalid  # text already (``Table`` columns hold one type each)
    texts = [("" if m else _number_text(v) if col.dtype.kind == "f" else str(v)) for v, m in zip(col.tolist(), missing)]
    return np.array(texts, dtype=object), missing, invalid
