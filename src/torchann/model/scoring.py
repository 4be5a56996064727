"""Scoring a table file of any size: read it in chunks, predict each chunk, write each chunk.

``score_file(model, "big.parquet", "preds.parquet")`` never holds the file: it reads a chunk of
rows (Parquet with ``ParquetFile.iter_batches``, CSV/TSV with ``pyarrow.csv.open_csv``), turns it
into a ``Table`` the way ``load_table`` would, asks ``Model.predictions`` for its answers and
appends them to the output (``ParquetWriter``, or Arrow's CSV writer, or JSON lines). Memory
holds about one chunk of input and one of output. Rows keep their order.

The output format follows the output's name: ``.parquet``/``.pq``, ``.csv``, ``.tsv``,
``.jsonl``/``.ndjson``. It is written under a temporary name and renamed at the end, so an error
midway leaves no file (and the old one, if any, untouched). ``keep`` columns are copied from
the input batch as they are (an integer id stays an integer).

Rows are numbered from 1 in the whole file, so an error in the third chunk names the row of
the file, as ``torchann predict`` does on a table read whole. ``row_groups`` scores a run of a
Parquet file's row groups alone (one partition of a Dask job, ``torchann.dask``): its rows keep
their numbers in the file, so their answers equal those of the whole file's scoring, bit for bit.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import IO, Any, Iterator, Sequence

import numpy as np

from ..data.readers import table_from_arrow
from ..data.table import Table
from ..core.errors import DataError, UsageError

__all__ = ["score_file", "read_chunks", "output_format", "DEFAULT_CHUNK_ROWS", "STREAMED"]

DEFAULT_CHUNK_ROWS = 65_536
PARQUET_BUFFER_BYTES = 8 << 20  # Parquet is read through a buffer this large, not pre-buffered
CSV_BLOCK_BYTES = 16 << 20  # CSV column types are inferred from the first block this large
STREAMED = (".csv", ".tsv", ".tab", ".txt", ".parquet", ".pq")
_OUT = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl",
        ".ndjson": "jsonl"}


def output_format(path: str | os.PathLike) -> str:
    """``"parquet"``, ``"tsv"`` or ``"jsonl"`` from the output's name; ``"csv"`` for any other name."""
    return _OUT.get(Path(path).suffix.lower(), "csv")


def score_file(model: Any, data: str | os.PathLike, out: str | os.PathLike | None = None, *,
               keep: Sequence[str] = (), proba: bool = False, chunk_rows: int = DEFAULT_CHUNK_ROWS,
               stream: IO[bytes] | None = None, fmt: str | None = None, std: bool = False,
               row_groups: Sequence[int] | None = None, strict: bool = False) -> int:
    """Predict every row of the file ``data`` chunk by chunk; return the number of rows.

    Args:
        model: a ``torchann.Model``.
        data: a CSV/TSV (optionally compressed) or Parquet file.
        out: the file to write; its name gives the format. ``None``: write to ``stream``.
        keep: input columns copied first into the output (identifiers).
        proba: add one ``p(<class>)`` column per class (classification).
        chunk_rows: rows read, predicted and written at a time.
        stream: a binary stream written when ``out`` is None (CSV unless ``fmt`` says otherwise).
        std: add the ensemble members' spread (``Model.predictions(std=True)``).
        row_groups: a Parquet file's consecutive row groups to score, alone (``None``: all rows).
        strict: a category never seen in training is an error naming the column, value and row.
    """
    if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, int) or chunk_rows < 1:
        raise UsageError(f"chunk_rows must be a positive integer, got {chunk_rows!r}")
    if out is None and stream is None:
        raise UsageError("give a file to write (out=) or a stream")
    fmt = fmt or (output_format(out) if out is not None else "csv")
    chunks = read_chunks(data, _wanted(model, keep), chunk_rows=chunk_rows, types=_feature_types(model, keep),
                         row_groups=row_groups)
    if out is None:
        return _write(model, chunks, stream, fmt, keep, proba, std, strict)
    from ..core.files import atomic_path

    with atomic_path(out) as tmp:
        with open(tmp, "wb") as handle:
            rows = _write(model, chunks, handle, fmt, keep, proba, std, strict)
    return rows


def _wanted(model: Any, keep: Sequence[str]) -> list[str] | None:
    """Columns to read: the features and the kept ones (None for a bare network: every column)."""
    if model.bare:
        return None
    return list(dict.fromkeys([*keep, *model.feature_names]))


def _feature_types(model: Any, keep: Sequence[str] = ()) -> dict[str, Any]:
    """Arrow types for the feature columns of a CSV, so that no chunk infers another type. A
    kept column is copied as the file has it (an id of whole numbers stays whole), so its type
    is inferred as for any kept column; the model reads it as numbers all the same."""
    import pyarrow as pa

    if model.bare:
        return {}
    def text(f: Any) -> bool:  # read as the file writes it: categories of words, and dates
        return f.kind == "date" or (f.kind == "categorical" and f.label_kind in ("str", "bool"))

    return {f.name: pa.string() if text(f) else pa.float64() for f in model.preprocessor.features
            if f.name not in set(keep)}


# ------------------------------------------------------------------------------------ reading


def read_chunks(path: str | os.PathLike, columns: list[str] | None, *, chunk_rows: int = DEFAULT_CHUNK_ROWS,
                types: dict[str, Any] | None = None,
                row_groups: Sequence[int] | None = None) -> Iterator[tuple[Any, Table]]:
    """``(arrow batch, Table)`` for each run of ``chunk_rows`` rows of a CSV/TSV or Parquet file.

    ``columns``: the columns to read; a missing one is left out (``Model.predictions`` then says
    which feature is missing). The tables' row numbers count from the file's first data row.
    ``row_groups``: only these consecutive row groups of a Parquet file (numbered from 0).
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"file not found: {path}; check the path" if not p.exists() else
                        f"{path} is not a file; give a CSV, TSV or Parquet file")
    name = p.name.lower()
    for ending in (".gz", ".bz2", ".zst", ".lz4"):
        name = name.removesuffix(ending)
    suffix = Path(name).suffix
    if row_groups is not None:
        groups = list(row_groups)
        if suffix not in (".parquet", ".pq"):
            raise UsageError(f"{p}: row_groups needs a Parquet file")
        if not groups or groups != list(range(groups[0], groups[0] + len(groups))) or groups[0] < 0:
            raise UsageError(f"row_groups must be consecutive row group numbers such as [2, 3], got {row_groups!r}")
        row_groups = groups
    start = 0
    if suffix in (".parquet", ".pq"):
        if row_groups is not None:
            start = _row_group_start(p, row_groups)
        batches = _parquet_batches(p, columns, chunk_rows, row_groups)
    elif suffix in (".csv", ".tsv", ".tab", ".txt"):
        batches = _csv_batches(p, columns, chunk_rows, "\t" if suffix in (".tsv", ".tab") else None, types)
    else:
        raise DataError(f"{p}: cannot stream {suffix or 'a file without extension'}; give a CSV, TSV or "
                        f"Parquet file")
    return _tables(batches, str(p), start)


def _tables(batches: Iterator[Any], source: str, start: int = 0) -> Iterator[tuple[Any, Table]]:
    """Each batch as a ``Table`` whose rows are numbered from ``start + 1`` on."""
    import pyarrow as pa

    seen = False
    for batch in batches:
        if batch.num_rows == 0:
            continue
        seen = True
        table = table_from_arrow(pa.Table.from_batches([batch]), source, check_text=False)
        table.row_numbers = np.arange(start + 1, start + batch.num_rows + 1)
        start += batch.num_rows
        yield batch, table
        pa.default_memory_pool().release_unused()  # Arrow keeps freed blocks otherwise
    if not seen:
        raise DataError(f"{source}: the file has no data rows; add at least one row")


def _row_group_start(path: Path, row_groups: list[int]) -> int:
    """The number of rows before ``row_groups[0]``: where the run starts in the file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        meta = pq.read_metadata(str(path))
    except (pa.ArrowException, OSError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise DataError(f"{path}: cannot read as Parquet ({first}); is it a Parquet file?") from None
    if row_groups[-1] >= meta.num_row_groups:
        raise DataError(f"{path}: has {meta.num_row_groups} row group(s), not {row_groups[-1] + 1}; "
                        f"was the file rewritten while it was scored?")
    return sum(meta.row_group(i).num_rows for i in range(row_groups[0]))


def _parquet_batches(path: Path, columns: list[str] | None, chunk_rows: int,
                     row_groups: list[int] | None = None) -> Iterator[Any]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        # pre_buffer (the default) keeps every column chunk it has read cached until the reader
        # closes: memory grew by a row group's size for each row group read (0.8 GB after 8
        # row groups of 1M rows, 3.2 GB over a 3 GB file). A buffered stream reads as fast here.
        reader = pq.ParquetFile(str(path), pre_buffer=False, buffer_size=PARQUET_BUFFER_BYTES)
        present = set(reader.schema_arrow.names)
        wanted = None if columns is None else [c for c in columns if c in present]
        yield from reader.iter_batches(batch_size=chunk_rows, columns=wanted, row_groups=row_groups)
    except (pa.ArrowException, OSError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise DataError(f"{path}: cannot read as Parquet ({first}); is it a Parquet file?") from None


def _csv_batches(path: Path, columns: list[str] | None, chunk_rows: int, delimiter: str | None,
                 types: dict[str, Any] | None) -> Iterator[Any]:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    from ..data.readers import _sniff, csv_error

    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty; a table needs a header line and at least one data row")
    delimiter = delimiter or _sniff(path)
    parse = pacsv.ParseOptions(delimiter=delimiter)
    names: list[str] = []  # the file's columns, once its header is read
    try:
        with pacsv.open_csv(str(path), parse_options=parse, read_options=pacsv.ReadOptions(block_size=1 << 20)) as head:
            names = head.schema.names
        wanted = None if columns is None else [c for c in columns if c in names]
        reader = pacsv.open_csv(
            str(path), parse_options=parse, read_options=pacsv.ReadOptions(block_size=CSV_BLOCK_BYTES),
            convert_options=pacsv.ConvertOptions(strings_can_be_null=True, include_columns=wanted,
                                                 column_types={k: v for k, v in (types or {}).items() if k in names}),
        )
        pending: list[Any] = []
        rows = 0
        for batch in reader:  # CSV blocks are bytes, not rows: cut and join them into chunk_rows
            while batch.num_rows:
                take = batch.slice(0, chunk_rows - rows)
                pending.append(take)
                rows += take.num_rows
                batch = batch.slice(take.num_rows)
                if rows == chunk_rows:
                    yield _joined(pending)
                    pending, rows = [], 0
        if pending:
            yield _joined(pending)
    except pa.ArrowInvalid as err:
        raise _text_in_numbers(path, delimiter, str(err), names, types or {}) or \
            csv_error(path, delimiter, str(err), streamed=True) from None
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: cannot read the file ({err})") from None


def _text_in_numbers(path: Path, delimiter: str, msg: str, names: list[str], types: dict[str, Any]) -> Any:
    """pyarrow's conversion error (a column counted from 0, no row) as the error a table read
    whole gives: the column's name, the row and the word (None: not such an error)."""
    import pyarrow as pa

    from ..data.readers import numeric_text_error
    from ..data.text_cells import conversion_column, first_text_cell
    from ..preprocess.checks import numeric_column

    name = conversion_column(msg, names) if "conversion error" in msg else None
    found = None if name is None else first_text_cell(path, delimiter, name)
    if found is None:
        return None
    row, value, mostly_numbers = found
    if mostly_numbers or types.get(name) != pa.float64():
        return numeric_text_error(str(path), name, row, value)
    try:  # a numeric feature of mostly words: what Model.predict says of the column read as text
        numeric_column(Table({name: np.array([value], dtype=object)}, str(path), row_numbers=np.array([row])), name)
    except DataError as err:
        return err
    return None


def _joined(batches: list[Any]) -> Any:
    import pyarrow as pa

    if len(batches) == 1:
        return batches[0]
    return pa.Table.from_batches(batches).combine_chunks().to_batches()[0]


# ------------------------------------------------------------------------------------ writing


def _write(model: Any, chunks: Iterator[tuple[Any, Table]], handle: IO[bytes], fmt: str, keep: Sequence[str],
           proba: bool, std: bool = False, strict: bool = False) -> int:
    sink = None
    rows = 0
    try:
        for batch, table in chunks:
            missing = [k for k in keep if k not in batch.schema.names]
            if missing:
                raise DataError(f"{table.source}: no column {missing[0]!r} to keep; columns are: "
                                f"{', '.join(table.names[:20])}")
            # the row's place in the file: the same answers as the file scored whole
            answers = model.predictions(table, proba=proba, first_row=int(table.row_numbers[0]) - 1, std=std,
                                        strict=strict)
            arrow = _arrow_chunk(model, batch, keep, answers)
            if sink is None:
                sink = _sink(fmt, handle, arrow.schema)
            sink.write(arrow)
            rows += arrow.num_rows
    finally:
        if sink is not None:
            sink.close()
    return rows


def _arrow_chunk(model: Any, batch: Any, keep: Sequence[str], answers: dict[str, np.ndarray]) -> Any:
    """The output chunk: kept columns as read, then the answers with fixed types."""
    import pyarrow as pa

    arrays = [batch.column(k) for k in keep]
    names = list(keep)
    label_type = {"str": pa.string(), "int": pa.int64(), "float": pa.float64(), "bool": pa.bool_()}
    kind = model.preprocessor.class_kind if model.task == "classification" else "float"
    targets = set(model.target_names)
    for name, values in answers.items():
        t = label_type.get(kind or "str", pa.string()) if name in targets else pa.float64()
        arrays.append(pa.array(values.tolist() if values.dtype == object else values, type=t))
        names.append(name)
    return pa.Table.from_arrays(arrays, names=names)


class _ParquetSink:
    def __init__(self, handle: IO[bytes], schema: Any) -> None:
        import pyarrow.parquet as pq

        self.writer = pq.ParquetWriter(handle, schema)

    def write(self, table: Any) -> None:
        self.writer.write_table(table)

    def close(self) -> None:
        self.writer.close()


class _CsvSink:
    """Python's csv module: quotes only where a value needs them, floats as ``repr`` (shortest
    round trip), missing as an empty field; the format ``torchann predict`` prints."""

    def __init__(self, handle: IO[bytes], schema: Any, delimiter: str) -> None:
        import csv

        self.text = io.TextIOWrapper(handle, encoding="utf-8", newline="", write_through=False)
        self.writer = csv.writer(self.text, delimiter=delimiter, lineterminator="\n")
        self.writer.writerow(schema.names)

    def write(self, table: Any) -> None:
        self.writer.writerows(zip(*(table.column(i).to_pylist() for i in range(table.num_columns))))

    def close(self) -> None:
        self.text.flush()
        self.text.detach()  # the caller closes the underlying stream


class _JsonlSink:
    def __init__(self, handle: IO[bytes], schema: Any) -> None:
        self.handle = handle

    def write(self, table: Any) -> None:
        columns = table.to_pydict()
        names = list(columns)
        lines = (json.dumps({n: None if isinstance(v, float) and v != v else v for n, v in zip(names, row)})
                 for row in zip(*columns.values()))
        self.handle.write(("\n".join(lines) + "\n").encode("utf-8"))

    def close(self) -> None:
        self.handle.flush()


def _sink(fmt: str, handle: IO[bytes], schema: Any) -> Any:
    if fmt == "parquet":
        return _ParquetSink(handle, schema)
    if fmt in ("csv", "tsv"):
        return _CsvSink(handle, schema, "," if fmt == "csv" else "\t")
    if fmt == "jsonl":
        return _JsonlSink(handle, schema)
    raise UsageError(f"unknown output format {fmt!r}; use parquet, csv, tsv or jsonl")
