"""Tables from CSV / TSV / Parquet / NumPy files and built-in datasets.

A :class:`Table` holds columns exactly as read: numbers as float64 (missing -> NaN), text as
an object array of ``str`` (missing -> ``None``), booleans as ``bool`` (an object array when
some are missing). Nothing is fitted here; encoding and scaling live in ``preprocess.py``.

Rows are numbered from 1 in every message, counting data rows only (the header is not a row).
``split_indices`` (seeded train/validation rows) is re-exported from ``splits.py``.
"""

from __future__ import annotations

import csv
import difflib
import io
import math
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .errors import DataError
from .splits import split_indices

__all__ = ["Table", "load_table", "split_indices", "FORMATS"]

#: File name endings that ``load_table`` reads (text formats may also end in .gz/.bz2/.zst).
FORMATS = (".csv", ".tsv", ".tab", ".txt", ".parquet", ".pq", ".npy", ".npz")
_TEXT = {".csv": None, ".txt": None, ".tsv": "\t", ".tab": "\t"}  # None: delimiter sniffed
_COMPRESSED = (".gz", ".bz2", ".zst", ".lz4")
_DELIMITERS = (",", ";", "\t", "|")
Key = str | int


def _names_hint(names: Sequence[str], wanted: object) -> str:
    shown = ", ".join(names[:20]) + (f", ... ({len(names) - 20} more)" if len(names) > 20 else "")
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
    """

    columns: dict[str, np.ndarray]
    source: str = "<arrays>"
    targets: list[str] = field(default_factory=list)
    features: list[str] | None = None
    row_numbers: np.ndarray | None = None
    skipped: dict[str, str] = field(default_factory=dict)

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

    def kind(self, name: str) -> str:
        """``"numeric"``, ``"bool"`` or ``"text"`` for column ``name``."""
        col = self.columns[name]
        if col.dtype == np.float64:
            return "numeric"
        if col.dtype == bool or all(isinstance(v, (bool, np.bool_)) for v in col if v is not None):
            return "bool"
        return "text"

    def take(self, indices: Any) -> Table:
        """A table of the rows ``indices`` (e.g. from :func:`split_indices`); row numbers kept."""
        idx = np.asarray(indices, dtype=np.int64)
        rows = (self.row_numbers if self.row_numbers is not None else np.arange(1, self.n_rows + 1))[idx]
        cols = {name: col[idx] for name, col in self.columns.items()}
        return Table(cols, self.source, list(self.targets), self.features, rows, dict(self.skipped))

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
            return Table(self.columns, self.source, list(targets), None, self.row_numbers, dict(self.skipped))
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
        return Table(cols, self.source, list(targets), feats, self.row_numbers, dict(self.skipped))

    def __repr__(self) -> str:
        return f"Table({self.source!r}, {self.n_rows} rows, columns={self.names}, targets={self.targets})"


def _as_list(value: Any) -> list:
    if isinstance(value, (str, int)):
        return [value]
    return list(value)


def _as_column(name: str, values: Any, source: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise DataError(f"{source}: column {name!r} has shape {arr.shape}; a column must be 1-D (one value per row)")
    if arr.dtype.kind in "fiu":
        return arr.astype(np.float64)
    if arr.dtype.kind == "b":
        return arr.astype(bool)
    if arr.dtype.kind in "US":
        return np.array([v.decode() if isinstance(v, bytes) else str(v) for v in arr.tolist()], dtype=object)
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


# ----------------------------------------------------------------------------------------- files


def load_table(path: str | PathLike, *, target: Key | Sequence[Key] | None = None,
               features: Sequence[Key] | None = None) -> Table:
    """Read a table from CSV / TSV / Parquet / ``.npy`` / ``.npz``, or a built-in dataset by name.

    Args:
        path: a file, or a dataset name such as ``"moons"`` or ``"sklearn:iris"`` (see
            ``torchann.datasets.dataset_names()``) when no file of that name exists.
        target: target column name(s) or positions (``"x3"``, ``"-1"``); built-in datasets and
            ``.npz`` files with an array ``y`` default to their own target.
        features: feature columns; None means every column that is not a target.

    Missing values are not an error here; ``Preprocessor`` handles them.
    """
    p = Path(path)
    if not p.exists():
        from . import datasets

        if datasets.is_dataset_name(str(path)):
            return datasets.load_dataset(str(path)).select(target, features)
        close = difflib.get_close_matches(str(path), datasets.dataset_names(), n=1)
        hint = f"; did you mean the built-in dataset {close[0]!r}?" if close else "; check the path"
        raise DataError(f"file not found: {path}{hint}")
    if p.is_dir():
        raise DataError(f"{p} is a folder; give a data file ({', '.join(FORMATS)}) or a dataset name")
    name = p.name.lower()
    for ending in _COMPRESSED:  # data.csv.gz reads as data.csv; pyarrow decompresses it
        name = name.removesuffix(ending)
    suffix = Path(name).suffix
    if suffix in _TEXT:
        table = _read_text(p, _TEXT[suffix])
    elif suffix in (".parquet", ".pq"):
        table = _read_parquet(p)
    elif suffix == ".npy":
        table = _read_npy(p)
    elif suffix == ".npz":
        table = _read_npz(p)
    else:
        raise DataError(f"{p}: unknown file type {suffix or '(no extension)'!r}; use one of {', '.join(FORMATS)}")
    if table.n_rows == 0:
        shown = ", ".join(n if n.isprintable() else repr(n) for n in table.names[:10])
        raise DataError(f"{p}: the file has columns ({shown}) but no data rows; add at least one row")
    return table.select(target, features)


def _sniff(path: Path) -> str:
    import pyarrow as pa

    with pa.input_stream(str(path), compression="detect") as f:
        head = f.read(65536).decode("utf-8", errors="replace").lstrip("\ufeff")
    first = head.splitlines()[0] if head else ""
    counts = {d: first.count(d) for d in _DELIMITERS}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] > 0 else ","


def _read_text(path: Path, delimiter: str | None) -> Table:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty; a table needs a header line and at least one data row")
    delimiter = delimiter or _sniff(path)
    try:
        arrow = pacsv.read_csv(
            str(path),
            parse_options=pacsv.ParseOptions(delimiter=delimiter),
            convert_options=pacsv.ConvertOptions(strings_can_be_null=True),
        )
    except pa.ArrowInvalid as err:
        msg = str(err)
        if "Empty CSV file" in msg:
            raise DataError(f"{path}: the file is empty; a table needs a header line and a data row") from None
        if "Expected" in msg and "columns" in msg:
            raise DataError(_ragged_message(path, delimiter)) from None
        raise DataError(f"{path}: cannot read as delimited text ({msg.splitlines()[0]}); check the file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: cannot read the file ({err})") from None
    return _from_arrow(arrow, str(path), check_text=True)


def _ragged_message(path: Path, delimiter: str) -> str:
    """pyarrow names the bad row's text but not its number: find it with the csv module."""
    import pyarrow as pa

    with pa.input_stream(str(path), compression="detect") as f:
        text = io.TextIOWrapper(io.BytesIO(f.read()), encoding="utf-8", errors="replace", newline="")
        reader = csv.reader(text, delimiter=delimiter)
        width, row = None, 0
        for record in reader:
            if not record:
                continue  # pyarrow skips blank lines too
            if width is None:
                width = len(record)
                continue
            row += 1
            if len(record) != width:
                return (
                    f"{path}: row {row} (line {reader.line_num}) has {len(record)} fields but the header has {width} "
                    f"columns; fix that row (quote values that contain {delimiter!r})"
                )
    return f"{path}: rows have different numbers of fields; every row needs one value per header column"


def _read_parquet(path: Path) -> Table:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        arrow = pq.read_table(str(path))
    except (pa.ArrowException, OSError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise DataError(f"{path}: cannot read as Parquet ({first}); is it a Parquet file?") from None
    return _from_arrow(arrow, str(path), check_text=False)


def _from_arrow(arrow: Any, source: str, *, check_text: bool) -> Table:
    import pyarrow as pa

    names = [n if n != "" else f"unnamed_{i}" for i, n in enumerate(arrow.column_names)]
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup is not None:
        raise DataError(f"{source}: column name {dup!r} appears more than once; give each column its own name")
    columns: dict[str, np.ndarray] = {}
    skipped: dict[str, str] = {}
    for name, col in zip(names, arrow.columns):
        t = col.type
        if pa.types.is_dictionary(t):
            col = col.cast(t.value_type)
            t = col.type
        if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t) or pa.types.is_null(t):
            columns[name] = col.cast(pa.float64()).to_numpy().astype(np.float64, copy=False)
        elif pa.types.is_boolean(t):
            arr = col.to_numpy(zero_copy_only=False)
            columns[name] = arr.astype(bool) if col.null_count == 0 else arr.astype(object)
        elif pa.types.is_string(t) or pa.types.is_large_string(t) or getattr(pa.types, "is_string_view", bool)(t):
            if check_text:
                _check_numeric_text(source, name, col)
            columns[name] = col.to_numpy(zero_copy_only=False).astype(object)
        elif check_text and (pa.types.is_binary(t) or pa.types.is_large_binary(t)):
            raise DataError(f"{source}: column {name!r} holds text that is not UTF-8; save the file as UTF-8")
        else:
            skipped[name] = f"its type {t} is not supported (use numbers, text or true/false)"
    return Table(columns, source, skipped=skipped)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _check_numeric_text(source: str, name: str, col: Any) -> None:
    """A text column whose values are mostly numbers holds a typo: report its first bad cell."""
    import pyarrow as pa
    import pyarrow.compute as pc

    counts = pc.value_counts(col)
    values, n = counts.field("values").to_pylist(), counts.field("counts").to_pylist()
    bad = [v for v in values if v is not None and not _is_number(v)]
    numeric_rows = sum(c for v, c in zip(values, n) if v is not None and v not in bad)
    text_rows = sum(c for v, c in zip(values, n) if v in bad)
    if text_rows == 0 or numeric_rows < text_rows:
        return
    first = int(np.argmax(pc.is_in(col, value_set=pa.array(bad)).to_numpy(zero_copy_only=False)))
    value = col[first].as_py()
    raise DataError(
        f"{source}: column {name!r} holds numbers, but row {first + 1} holds {value!r}; correct that value "
        f"or leave the cell empty to mark it missing"
    )


def _read_npy(path: Path) -> Table:
    arr = _np_load(path)
    if arr.dtype.names:  # structured array: one column per field
        return Table.from_columns({n: arr[n] for n in arr.dtype.names}, source=str(path))
    if arr.ndim != 2:
        raise DataError(f"{path}: the array has shape {arr.shape}; a .npy table must be 2-D (rows, columns)")
    return Table.from_columns({f"x{j}": arr[:, j] for j in range(arr.shape[1])}, source=str(path))


def _read_npz(path: Path) -> Table:
    arrays = _np_load(path)
    columns: dict[str, np.ndarray] = {}
    targets: list[str] = []
    lengths: dict[str, int] = {}
    with arrays:
        for key in arrays.files:
            a = _np_array(path, arrays, key)
            if a.ndim not in (1, 2):
                raise DataError(
                    f"{path}: array {key!r} has shape {a.shape}; use 1-D (one column) or 2-D (rows, columns)"
                )
            lengths[key] = len(a)
            names = [key] if a.ndim == 1 or a.shape[1] == 1 else [f"{key}{j}" for j in range(a.shape[1])]
            for j, n in enumerate(names):
                if n in columns:
                    raise DataError(f"{path}: column name {n!r} comes from two arrays; rename one array")
                columns[n] = a if a.ndim == 1 else a[:, j]
            if key == "y":
                targets = names
    if len(set(lengths.values())) > 1:
        raise DataError(
            f"{path}: arrays have different numbers of rows {lengths}; every array needs one row per sample"
        )
    if not columns:
        raise DataError(f"{path}: the file holds no arrays; save arrays 'x' and 'y' with numpy.savez")
    return Table.from_columns(columns, source=str(path), targets=targets)


def _np_load(path: Path) -> Any:
    try:
        return np.load(str(path), allow_pickle=False)
    except ValueError as err:
        if "allow_pickle" in str(err):
            raise DataError(
                f"{path}: the array holds Python objects; save numbers or fixed-width text (no pickle)"
            ) from None
        raise DataError(f"{path}: cannot read as a NumPy file ({err})") from None
    except (OSError, EOFError) as err:
        raise DataError(f"{path}: cannot read as a NumPy file ({err or 'empty file'})") from None


def _np_array(path: Path, arrays: Any, key: str) -> np.ndarray:
    try:
        return arrays[key]
    except ValueError as err:
        if "allow_pickle" in str(err):
            raise DataError(f"{path}: array {key!r} holds Python objects; save numbers or fixed-width text") from None
        raise DataError(f"{path}: cannot read array {key!r} ({err})") from None
