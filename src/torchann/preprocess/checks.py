"""The checks one column's values pass on their way in, each error naming the column, the
row and the fix: numbers that are numbers, missing values, categories that are known."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..core.errors import DataError
from ..data.columns import coerce, numeric_values
from ..data.table import Table

__all__ = ["shown_values", "numeric_column", "missing_error", "category_codes", "unseen_message", "check_magnitude", "check_scaled",
           "MAX_MAGNITUDE"]

# Numbers standardised by their mean and std must stay below this in magnitude: their squares
# (the variance, a regression loss in the target's units) then stay far inside float64 for any
# number of rows. Beyond it, np.std overflows to inf ("overflow encountered in square").
MAX_MAGNITUDE = 1e100

def shown_values(values: Sequence[Any], limit: int = 20) -> str:
    text = ", ".join(repr(v) for v in values[:limit])
    return text + (f", ... ({len(values) - limit} more)" if len(values) > limit else "")


def numeric_column(table: Table, name: str) -> np.ndarray:
    """Column ``name`` as float64 (NaN = missing); infinite values and text raise ``DataError``."""
    x, bad = numeric_values(table.columns[name])
    if bad is not None:
        raise DataError(f"{table.source}: column {name!r} should hold numbers, but row {table.row(bad)} holds "
                        f"{table.columns[name][bad]!r}; correct that value or leave it empty")
    inf = np.isinf(x)
    if inf.any():
        i = int(np.argmax(inf))
        raise DataError(f"{table.source}: column {name!r} row {table.row(i)} is {x[i]}; replace infinite values")
    return x


def missing_error(table: Table, name: str, miss: np.ndarray) -> None:
    i = int(np.argmax(miss))
    raise DataError(f"{table.source}: column {name!r} has a missing value in row {table.row(i)} ({int(miss.sum())} "
                    f"missing in all); pass fill_missing='mean'|'median'|'zero' (--fill-missing mean|median|zero) "
                    f"or drop those rows")


def category_codes(table: Table, name: str, col: np.ndarray, known: list, kind: str,
           what: str = "category", strict: bool = True, lookup: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Index of each row's value in ``known`` (-1 for an unknown value, which raises when
    ``strict``) and the missing mask; a value of the wrong type always raises. ``lookup``:
    ``known``'s value -> index, when the caller keeps one."""
    values, miss, invalid = coerce(col, kind)
    lookup = {v: i for i, v in enumerate(known)} if lookup is None else lookup
    codes = np.zeros(len(col), dtype=np.int64)
    present = np.flatnonzero(~miss & ~invalid)
    if present.size and values.dtype == object:  # text: a dict lookup per row beats sorting objects
        get = lookup.get
        codes[present] = np.fromiter((get(v, -1) for v in values[present].tolist()), np.int64, present.size)
    elif present.size:
        uniq, inv = np.unique(values[present], return_inverse=True)
        mapped = np.array([lookup.get(u, -1) for u in uniq.tolist()], dtype=np.int64)
        codes[present] = mapped[inv.ravel()]
    bad = np.flatnonzero(invalid)
    if bad.size:
        i = int(bad[0])
        raise DataError(f"{table.source}: column {name!r} row {table.row(i)} holds {col[i]!r}, an unknown {what}; "
                        f"known: {shown_values(known)}")
    if strict:
        unseen = np.flatnonzero(~miss & (codes < 0))
        if unseen.size:
            raise DataError(unseen_message(table, name, col, unseen, known, what))
    return codes, miss


def unseen_message(table: Table, name: str, col: np.ndarray, rows: np.ndarray, known: list, what: str,
                   limit: int = 5) -> str:
    """One line naming the column, each value never seen in training with its first row, and the fix."""
    first: dict[Any, list[int]] = {}
    for i in rows.tolist():
        first.setdefault(col[i], [i, 0])[1] += 1
    shown = [f"{v!r} (row {table.row(i)}" + (f", {k} rows in all)" if k > 1 else ")")
             for v, (i, k) in list(first.items())[:limit]]
    more = f", ... ({len(first) - limit} more)" if len(first) > limit else ""
    plural = {"category": "categories", "class": "classes"}.get(what, f"{what}s")
    what_s = f"{len(first)} {plural}" if len(first) > 1 else f"a {what}"
    fix = ("correct those values" if what == "class" else
           "correct those values, or leave out strict=True (--strict) to let them set no input of their column")
    return (f"{table.source}: column {name!r} holds {what_s} never seen in training: {', '.join(shown)}{more}; "
            f"known: {shown_values(known)}; {fix}")


def check_magnitude(table: Table, name: str, values: np.ndarray, idx: np.ndarray, *, role: str, fix: str,
                    shown: np.ndarray | None = None) -> None:
    """Refuse a column whose (finite) training values reach ``MAX_MAGNITUDE``, naming the row and value.

    ``values`` are the training rows' numbers (``idx`` their rows in ``table``), NaN for missing;
    ``shown`` the values to quote (the raw ones, when ``values`` were transformed)."""
    with np.errstate(invalid="ignore"):
        big = np.abs(values) >= MAX_MAGNITUDE
    if not big.any():
        return
    i = int(np.argmax(big))
    value = (values if shown is None else shown)[i]
    raise DataError(f"{table.source}: {role} {name!r} row {table.row(int(idx[i]))} holds {value:g}, too large to "
                    f"standardise (beyond ±{MAX_MAGNITUDE:g}, its square overflows float64); {fix}")


_FLOAT32_MAX = float(np.finfo(np.float32).max)


def check_scaled(table: Table, name: str, raw: np.ndarray, scaled: np.ndarray, *, role: str) -> np.ndarray:
    """``scaled`` (float64, one value per row), refused when a value leaves float32's range: a row
    far outside the training rows (fitted without it) would otherwise become inf."""
    with np.errstate(invalid="ignore"):
        big = np.abs(scaled) > _FLOAT32_MAX
    if big.ndim > 1:
        big = big.any(axis=1)
    if big.any():
        i = int(np.argmax(big))
        raise DataError(f"{table.source}: {role} {name!r} row {table.row(i)} holds {raw[i]:g}, which scaled by the "
                        f"training rows' mean and std leaves float32's range (±3.4e38); divide the column by a power "
                        f"of ten, or drop that row")
    return scaled
