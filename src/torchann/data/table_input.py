"""What a user may hand to ``train``, ``Model.predict`` or ``Model.evaluate``, as a ``Table``.

Accepted: a path or built-in dataset name, a ``Table``, a pandas or pyarrow frame, a dict of
columns, or rows of numbers (a 2-D array, tensor or nested list) in feature order.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np

from .readers import check_numeric_text, load_table, table_from_arrow
from .table import Table
from ..core.errors import DataError, UsageError

__all__ = ["as_table"]


def as_table(data: Any, *, names: Sequence[str] | None = None, source: str = "<rows>") -> Table:
    """``data`` as a ``Table``; rows of numbers get the column ``names`` in order."""
    if isinstance(data, Table):
        return data
    if isinstance(data, (str, os.PathLike)):
        return load_table(data)
    if isinstance(data, dict):
        return Table.from_columns(data, source="<dict of columns>")
    if _is_arrow_table(data):
        return table_from_arrow(data, "<pyarrow table>", check_text=False)
    if _is_pandas_frame(data):
        return _frame_table(data)
    return _rows_table(data, names, source)


def _frame_table(frame: Any) -> Table:
    """A pandas frame through Arrow; an object column Arrow cannot type (numbers with a word
    among them) is read as text, as a CSV file would be, and a mostly numeric one is reported
    at its first word, as ``load_table`` reports it."""
    import pyarrow as pa

    source = "<DataFrame>"
    try:
        return table_from_arrow(pa.Table.from_pandas(frame, preserve_index=False), source, check_text=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        pass
    arrays, mixed = [], []
    for name in frame.columns:
        column = frame[name]
        try:
            arrays.append(pa.array(column, from_pandas=True))
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            missing = column.isna().to_numpy()
            arrays.append(pa.array([None if m else str(v) for v, m in zip(column.tolist(), missing)], pa.string()))
            mixed.append(str(name))
    arrow = pa.Table.from_arrays(arrays, names=[str(n) for n in frame.columns])
    for name in mixed:
        check_numeric_text(source, name, arrow.column(name))
    return table_from_arrow(arrow, source, check_text=False)


def _is_arrow_table(data: Any) -> bool:
    module = type(data).__module__
    return module.startswith("pyarrow") and hasattr(data, "column_names") and hasattr(data, "columns")


def _is_pandas_frame(data: Any) -> bool:
    return type(data).__module__.startswith("pandas") and hasattr(data, "columns") and hasattr(data, "iloc")


def _rows_table(data: Any, names: Sequence[str] | None, source: str) -> Table:
    if hasattr(data, "detach"):  # a torch tensor
        data = data.detach().cpu().numpy()
    try:
        arr = np.asarray(data, dtype=object)
    except ValueError:
        raise DataError(f"{source}: rows have different lengths; every row needs one value per feature") from None
    if arr.ndim == 1 and arr.size and not isinstance(arr[0], (list, tuple, np.ndarray)):
        arr = arr.reshape(1, -1)  # one row given flat
    if arr.ndim != 2:
        raise DataError(
            f"{source}: expected rows of values (2-D, rows x features), got shape {arr.shape}; pass a table, "
            f"a dict of columns, or a list of rows such as [[10, 11]]"
        )
    if names is None:
        raise UsageError(f"{source}: rows of numbers need column names; pass a table or a dict of columns")
    if arr.shape[1] != len(names):
        raise DataError(
            f"{source}: rows have {arr.shape[1]} value(s) but the model takes {len(names)} feature(s) "
            f"({', '.join(names[:20])}); give the values in that order"
        )
    columns = {}
    for j, name in enumerate(names):
        column = arr[:, j]
        try:
            column = column.astype(np.float64)
        except (TypeError, ValueError):
            pass  # text stays text
        columns[name] = column
    return Table.from_columns(columns, source=source)
