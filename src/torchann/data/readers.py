"""File readers: CSV / TSV / Parquet / ``.npy`` / ``.npz`` files (and dataset names) to a :class:`Table`.

Every reader checks before it reads: the path must be a regular file (a named pipe would
block forever), and a NumPy file's header must describe no more bytes than the file holds,
so a small file claiming a huge array is refused before anything is allocated
(:mod:`.numpy_files`). A
``;``-separated text file whose numbers use decimal commas (``1,5``) is read as numbers, and
the table's ``notes`` say so.
"""

from __future__ import annotations

import csv
import difflib
import io
from os import PathLike
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from . import datasets
from .columns import shown_name
from .dates import dates_as_text
from .numpy_files import read_npy, read_npz
from .table import Key, Table
from ..core.checks import check_path
from .text_cells import is_number
from ..core.errors import DataError
from ..core.files import check_regular_file

__all__ = ["load_table", "table_from_arrow", "check_numeric_text", "numeric_text_error", "FORMATS"]

#: File name endings that ``load_table`` reads (text formats may also end in .gz/.bz2/.zst).
FORMATS = (".csv", ".tsv", ".tab", ".txt", ".parquet", ".pq", ".npy", ".npz")
_TEXT = {".csv": None, ".txt": None, ".tsv": "\t", ".tab": "\t"}  # None: delimiter sniffed
_COMPRESSED = (".gz", ".bz2", ".zst", ".lz4")
_DELIMITERS = (",", ";", "\t", "|")


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
    p = check_path("path", path, what="a data file's path or a dataset name")
    if not p.exists():
        if datasets.is_dataset_name(str(path)):
            return datasets.load_dataset(str(path)).select(target, features)
        close = difflib.get_close_matches(str(path), datasets.dataset_names(), n=1)
        hint = f"; did you mean the built-in dataset {close[0]!r}?" if close else "; check the path"
        raise DataError(f"file not found: {path}{hint}")
    if p.is_dir():
        raise DataError(f"{p} is a folder; give a data file ({', '.join(FORMATS)}) or a dataset name")
    check_regular_file(p, what=f"data file ({', '.join(FORMATS)})", error=DataError)
    name = p.name.lower()
    for ending in _COMPRESSED:  # data.csv.gz reads as data.csv; pyarrow decompresses it
        name = name.removesuffix(ending)
    suffix = Path(name).suffix
    if suffix in _TEXT:
        table = _read_text(p, _TEXT[suffix])
    elif suffix in (".parquet", ".pq"):
        table = _read_parquet(p)
    elif suffix == ".npy":
        table = read_npy(p)
    elif suffix == ".npz":
        table = read_npz(p)
    else:
        raise DataError(f"{p}: unknown file type {suffix or '(no extension)'!r}; use one of {', '.join(FORMATS)}")
    if table.n_rows == 0:
        shown = ", ".join(shown_name(n) for n in table.names[:10])
        raise DataError(f"{p}: the file has columns ({shown}) but no data rows; add at least one row")
    return table.select(target, features)


def _sniff(path: Path) -> str:
    import pyarrow as pa

    try:
        with pa.input_stream(str(path), compression="detect") as f:
            head = f.read(65536).decode("utf-8", errors="replace").lstrip("\ufeff")
    except (OSError, pa.ArrowException) as err:  # a .gz that is not gzip (the OSError escaped before)
        raise DataError(f"{path}: cannot read the file ({str(err)[:160]}); is it compressed as its name says?") from None
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
        raise csv_error(path, delimiter, str(err)) from None
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: cannot read the file ({err})") from None
    notes: list[str] = []
    if delimiter != ",":
        arrow, converted = _decimal_commas(arrow)
        if converted:
            shown = ", ".join(shown_name(n) for n in converted[:10]) + (", ..." if len(converted) > 10 else "")
            notes.append(f"{path}: read {delimiter!r} as the column separator and ',' as the decimal mark in "
                         f"column(s) {shown}")
    table = table_from_arrow(arrow, str(path), check_text=True)
    table.notes.extend(notes)
    return table


# A number written with a decimal comma, as spreadsheets in much of Europe save it: "1,5",
# "-0,25", ",5", "1.234,5" (dots grouping thousands), "2" (no fraction). A column is read as
# numbers only when every value matches and at least one has the comma.
_DECIMAL_COMMA = r"^[+-]?(\d{1,3}(\.\d{3})+|\d*),\d+([eE][+-]?\d+)?$|^[+-]?\d+$"


def _decimal_commas(arrow: Any) -> tuple[Any, list[str]]:
    """Text columns that hold decimal-comma numbers, converted to float64; and their names."""
    import pyarrow as pa
    import pyarrow.compute as pc

    converted = []
    for i, name in enumerate(arrow.column_names):
        col = arrow.column(i)
        if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)) or col.null_count == len(col):
            continue
        text = pc.utf8_trim_whitespace(col)
        if not pc.all(pc.match_substring_regex(text, _DECIMAL_COMMA)).as_py():
            continue
        if not pc.any(pc.match_substring(text, ",")).as_py():
            continue
        plain = pc.replace_substring(pc.replace_substring(text, ".", ""), ",", ".")
        arrow = arrow.set_column(i, name, pc.cast(plain, pa.float64()))
        converted.append(name)
    return arrow, converted


def csv_error(path: Path, delimiter: str, msg: str, *, streamed: bool = False) -> DataError:
    """The one-line error for pyarrow's complaint ``msg`` about a delimited text file (``streamed``:
    read block by block, where a column's type is fixed by the first block)."""
    if "Empty CSV file" in msg:
        return DataError(f"{path}: the file is empty; a table needs a header line and a data row")
    if "Expected" in msg and "columns" in msg:
        return DataError(_ragged_message(path, delimiter))
    if streamed and "conversion error" in msg:
        return DataError(f"{path}: a column changes type partway through the file ({msg.splitlines()[0]}); "
                         f"correct that value, or score the file whole")
    return DataError(f"{path}: cannot read as delimited text ({msg.splitlines()[0]}); check the file")


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
    return table_from_arrow(arrow, str(path), check_text=False)


def table_from_arrow(arrow: Any, source: str, *, check_text: bool = False) -> Table:
    """A :class:`Table` from a pyarrow table (a pandas frame goes through ``pa.Table.from_pandas``).

    ``check_text``: a text column whose values are mostly numbers is a typo to report (for
    text files, where every column arrives as text first).
    """
    import pyarrow as pa

    try:
        names = [n if n != "" else f"unnamed_{i}" for i, n in enumerate(arrow.column_names)]
    except UnicodeDecodeError:  # a header line that is not UTF-8 (the error escaped before)
        raise DataError(f"{source}: the column names are not UTF-8 text; save the file as UTF-8") from None
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
        if pa.types.is_date(t) or pa.types.is_timestamp(t):
            col, t = dates_as_text(col), pa.string()  # the date features read ISO text
        if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t) or pa.types.is_null(t):
            # safe=False: an integer past 2**53 rounds to the nearest float64 (the safe cast raised ArrowInvalid)
            columns[name] = col.cast(pa.float64(), safe=False).to_numpy().astype(np.float64, copy=False)
        elif pa.types.is_boolean(t):
            arr = col.to_numpy(zero_copy_only=False)
            columns[name] = arr.astype(bool) if col.null_count == 0 else arr.astype(object)
        elif pa.types.is_string(t) or pa.types.is_large_string(t) or getattr(pa.types, "is_string_view", bool)(t):
            try:
                if check_text:
                    check_numeric_text(source, name, col)
                columns[name] = col.to_numpy(zero_copy_only=False).astype(object)
            except pa.ArrowException:  # bytes that are not UTF-8 in a string column (Parquet does not check)
                raise DataError(f"{source}: column {name!r} holds text that is not UTF-8; save the file "
                                f"as UTF-8") from None
        elif check_text and (pa.types.is_binary(t) or pa.types.is_large_binary(t)):
            raise DataError(f"{source}: column {name!r} holds text that is not UTF-8; save the file as UTF-8")
        else:
            skipped[name] = f"its type {t} is not supported (use numbers, text or true/false)"
    return Table(columns, source, skipped=skipped)


def check_numeric_text(source: str, name: str, col: Any) -> None:
    """A text column whose values are mostly numbers holds a typo: report its first bad cell."""
    import pyarrow as pa
    import pyarrow.compute as pc

    counts = pc.value_counts(col)
    values, n = counts.field("values").to_pylist(), counts.field("counts").to_pylist()
    bad = [v for v in values if v is not None and not is_number(v)]
    numeric_rows = sum(c for v, c in zip(values, n) if v is not None and v not in bad)
    text_rows = sum(c for v, c in zip(values, n) if v in bad)
    if text_rows == 0 or numeric_rows < text_rows:
        return
    first = int(np.argmax(pc.is_in(col, value_set=pa.array(bad)).to_numpy(zero_copy_only=False)))
    raise numeric_text_error(source, name, first + 1, col[first].as_py())


def numeric_text_error(source: str, name: str, row: int, value: Any) -> DataError:
    """The error for a word (``value``, in data row ``row``) in a column of numbers."""
    return DataError(f"{source}: column {name!r} holds numbers, but row {row} holds {value!r}; correct that value "
                     f"or leave the cell empty to mark it missing")
