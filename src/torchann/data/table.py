"""The :class:`Table`: named columns exactly as read, and nothing fitted.

A table holds numbers as float64 (missing -> NaN), text as an object array of ``str``
(missing -> ``None``), booleans as ``bool`` (an object array when some are missing); each
column's kind is a :class:`~torchann.columns.ColumnKind`. Files become tables in
``readers.py`` (``load_table``), built-in data in ``datasets.py``; encoding and scaling live
in ``preprocess.py``.

Rows are numbered from 1 in every message, counting data rows only (the header is not a row).
``split_indices`` (seeded train/validation rows) is re-exported from ``splits.py``.
"""

from __future__ import annotations

import datetime
import difflib
import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from .columns import ColumnKind, column_kind, shown_name
from .dates import is_date_values, numpy_dates_as_text
from ..core.errors import DataError
from .splits import split_indices

__all__ = ["Table", "Key"]

Key = str | int


def _names_hint(names: Sequence[str], wanted: object) -> str:
    listed = [shown_name(n) for n in names[:20]]
    shown = ", ".join(listed) + (f", ... ({len(names) - 20} more)" if len(names) > 20 else "")
    close = difflib.get_close_matches(str(wanted), list(names), n=1)
    return f"columns are: {shown}" + (f". Did you mean {close[0]!r}?" if close else "")


@dataclass(eq=False)
class Table:
    """Columns as read from a file or dataset; nothing fitted.

    Attributes:
        columns: column name -> 1-D array (float64, bool, or object of str/bool with None).
        source: the file path or dataset name, used in error messages.
        targets: the target column(s) chosen at load time (a built-in dataset's default).
        features: feature columns chosen at load time; None means every non-target column.
        row_numbers: 1-based row numbers in the source (set by :meth:`take`); None = 1..n.
        skipped: columns left out because their type is unsupported -> the reason.
        notes: how the source was read where it was not plain (a ';'-separated file with
            decimal commas): one sentence each, for the caller to show.
    """

    columns: dict[str, np.ndarray]
    source: str = "<arrays>"
    targets: list[str] = field(default_factory=list)
    features: list[str] | None = None
    row_numbers: np.ndarray | None = None
    skipped: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        lengths = {name: len(col) for name, col in self.columns.items()}
        if len(set(lengths.values())) > 1:
            raise DataError(
                f"{self.source}: columns differ in length ({lengths}); every column needs one value per row"
            )

    @classmethod
    def from_columns(cls, columns: dict[str, Any], *, source: str = "<arrays>", targets: Sequence[str] = ()) -> Table:
        """Build a table from 1-D arrays or lists, normalising dtypes as ``load_table`` does."""
        cols = {str(name): _as_column(str(name), values, source) for name, values in columns.items()}
        return cls(cols, source=source, targets=list(targets))

    @property
    def n_rows(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    @property
    def names(self) -> list[str]:
        return list(self.columns)

    @property
    def feature_names(self) -> list[str]:
        """The chosen features, or every column that is not a target."""
        if self.features is not None:
            return list(self.features)
        return [n for n in self.columns if n not in self.targets]

    def row(self, i: int) -> int:
        """The 1-based source row number of row ``i`` of this table."""
        return int(self.row_numbers[i]) if self.row_numbers is not None else int(i) + 1

    def kind(self, name: str) -> ColumnKind:
        """What column ``name`` holds: ``ColumnKind.NUMERIC``, ``BOOL`` or ``TEXT``."""
        return column_kind(self.columns[name])

    def take(self, indices: Any) -> Table:
        """A table of the rows ``indices`` (e.g. from :func:`split_indices`); row numbers kept."""
        idx = np.asarray(indices, dtype=np.int64)
        rows = (self.row_numbers if self.row_numbers is not None else np.arange(1, self.n_rows + 1))[idx]
        cols = {name: col[idx] for name, col in self.columns.items()}
        return Table(cols, self.source, list(self.targets), self.features, rows, dict(self.skipped),
                     list(self.notes))

    def column_name(self, key: Key, *, role: str = "column") -> str:
        """Resolve a column name or position (``3``, ``"-1"``) to its name, or raise ``DataError``."""
        if isinstance(key, str) and key in self.columns:
            return key
        if key in self.skipped:
            raise DataError(f"{self.source}: {role} column {key!r} cannot be used: {self.skipped[key]}")
        try:
            pos = int(key)
        except (TypeError, ValueError):
            pos = None
        names = self.names
        if pos is not None and -len(names) <= pos < len(names):
            return names[pos]
        option = {"target": " (--target)", "feature": " (--features)"}.get(role, "")
        raise DataError(f"{self.source}: no {role} column {key!r}{option}; {_names_hint(names, key)}")

    def select(self, target: Key | Sequence[Key] | None = None, features: Sequence[Key] | None = None) -> Table:
        """Choose target and feature columns by name or position; unknown names raise ``DataError``.

        ``target=None`` keeps the table's default targets. When ``features`` is given, only the
        chosen columns are kept.
        """
        targets = self.targets if target is None else [self.column_name(k, role="target") for k in _as_list(target)]
        if features is None:
            return Table(self.columns, self.source, list(targets), None, self.row_numbers, dict(self.skipped),
                         list(self.notes))
        feats = [self.column_name(k, role="feature") for k in _as_list(features)]
        both = [n for n in feats if n in targets]
        if both:
            raise DataError(
                f"{self.source}: column {both[0]!r} is chosen as both target and feature; drop it from the features"
            )
        if len(set(feats)) < len(feats):
            dup = next(n for n in feats if feats.count(n) > 1)
            raise DataError(f"{self.source}: feature column {dup!r} is listed twice; list each feature once")
        keep = set(feats) | set(targets)
        cols = {n: c for n, c in self.columns.items() if n in keep}
        return Table(cols, self.source, list(targets), feats, self.row_numbers, dict(self.skipped),
                     list(self.notes))

    def __repr__(self) -> str:
        return f"Table({self.source!r}, {self.n_rows} rows, columns={self.names}, targets={self.targets})"


def _as_list(value: Any) -> list:
    if isinstance(value, (str, int)):
        return [value]
    return list(value)


def _text(name: str, value: Any, row: int, source: str) -> str:
    if not isinstance(value, bytes):
        return str(value)
    try:
        return value.decode()
    except UnicodeDecodeError:  # a fixed-width bytes column (numpy 'S') that is not UTF-8 text
        raise DataError(f"{source}: column {name!r} row {row + 1} holds bytes that are not UTF-8 text "
                        f"({value[:20]!r}); save text as UTF-8") from None


def _as_column(name: str, values: Any, source: str) -> np.ndarray:
    if isinstance(values, (list, tuple)) and values and all(type(v) is str for v in values):
        # Text and nothing else (a JSON request's text column): what the checks below would
        # make of it, without numpy's fixed-width copy and a call per value (0.2 ms a column
        # of 1,000 values instead of 0.01).
        return np.array(values, dtype=object)
    if isinstance(values, (list, tuple)) and values and all(type(v) is float for v in values):
        return np.array(values, dtype=np.float64)  # numbers and nothing else (a JSON request's): as below, at once
    try:
        arr = np.asarray(values)
    except ValueError:  # rows of unequal nesting, e.g. [1.5, [], 2.0] (numpy's ValueError escaped before)
        raise DataError(f"{source}: column {name!r} holds lists or objects among its values; give one number "
                        f"or text per row") from None
    if arr.ndim != 1:
        raise DataError(f"{source}: column {name!r} has shape {arr.shape}; a column must be 1-D (one value per row)")
    if is_date_values(arr):
        try:
            return numpy_dates_as_text(arr)
        except (TypeError, ValueError, OverflowError, ImportError):  # dates mixed with other values
            pass  # the checks below name the first value that is not like the others
    if arr.dtype.kind in "fiu":
        return arr.astype(np.float64)
    if arr.dtype.kind == "b":
        return arr.astype(bool)
    if arr.dtype.kind in "US":
        return np.array([_text(name, v, i, source) for i, v in enumerate(arr.tolist())], dtype=object)
    if arr.dtype.kind != "O":
        raise DataError(f"{source}: column {name!r} has unsupported type {arr.dtype}; convert it to numbers or text")
    kinds: dict[str, int] = {}
    for i, v in enumerate(arr.tolist()):
        if v is None or (isinstance(v, float) and math.isnan(v)):
            continue
        if isinstance(v, (bool, np.bool_)):
            kinds.setdefault("true/false", i)
        elif isinstance(v, (int, float, np.number)):
            kinds.setdefault("numbers", i)
        elif isinstance(v, str):
            kinds.setdefault("text", i)
        elif isinstance(v, datetime.date):
            kinds.setdefault("dates", i)
        else:
            raise DataError(f"{source}: column {name!r} row {i + 1} holds a {type(v).__name__}; use numbers or text")
    if len(kinds) > 1:
        (k1, r1), (k2, r2) = sorted(kinds.items(), key=lambda kv: kv[1])[:2]
        raise DataError(
            f"{source}: column {name!r} mixes {k1} (row {r1 + 1}) and {k2} (row {r2 + 1}); make the column one type"
        )
    missing = [v is None or (isinstance(v, float) and math.isnan(v)) for v in arr.tolist()]
    if "numbers" in kinds or not kinds:  # an all-missing column reads as numbers, as in a CSV file
        return np.array([np.nan if m else float(v) for v, m in zip(arr.tolist(), missing)], dtype=np.float64)
    if "true/false" in kinds and not any(missing):
        return arr.astype(bool)
    cast = bool if "true/false" in kinds else str
    return np.array([None if m else cast(v) for v, m in zip(arr.tolist(), missing)], dtype=object)

