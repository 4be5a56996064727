"""The input partitions of a file job: which files a pattern names, and how they are cut.

A CSV/TSV file is one partition (its rows cannot be found without reading it). A Parquet
file is cut at its row groups into runs of about ``partition_rows`` rows, read from the
file's footer here, on the client. Every partition knows the number, in its file, of its first
row: scored alone, its rows get the answers that scoring the whole file gives them.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from .internals import DataError, UsageError, sniff_delimiter

__all__ = ["Piece", "input_files", "plan", "PARQUET", "DELIMITED", "DEFAULT_PARTITION_ROWS"]

DEFAULT_PARTITION_ROWS = 1 << 20  # about a second of one core's work on a small network (docs/distributed.md)
PARQUET = (".parquet", ".pq")
DELIMITED = (".csv", ".tsv", ".tab", ".txt")
_COMPRESSED = (".gz", ".bz2", ".zst", ".lz4")


@dataclass(frozen=True)
class Piece:
    """One input partition.

    Attributes:
        path: the file (absolute), the same on every worker.
        row_groups: a Parquet file's consecutive row groups; ``None``: the whole file.
        first_row: rows of the file before this partition (0 for a whole file).
        rows: the partition's rows; ``None`` for a CSV file until it is read.
    """

    path: str
    row_groups: tuple[int, ...] | None = None
    first_row: int = 0
    rows: int | None = None

    def __str__(self) -> str:
        if self.row_groups is None:
            return self.path
        return f"{self.path} (rows {self.first_row + 1}-{self.first_row + (self.rows or 0)})"


def _suffix(path: Path) -> str:
    name = path.name.lower()
    for ending in _COMPRESSED:
        name = name.removesuffix(ending)
    return Path(name).suffix


def input_files(pattern: str | os.PathLike) -> list[Path]:
    """The files ``pattern`` names, sorted: a file, a folder (its CSV/TSV/Parquet files, leaving
    out names that start with ``.`` or ``_``) or a glob (``data/*.parquet``, ``data/**/*.csv``)."""
    text = os.fspath(pattern)
    if not text.strip():
        raise UsageError("--data is empty; give a file, a folder or a pattern such as 'data/*.parquet'")
    path = Path(text).expanduser()
    if glob.has_magic(text):
        found = [Path(p) for p in glob.glob(os.path.expanduser(text), recursive=True)]
        files = sorted(p for p in found if not p.is_dir())
    elif path.is_dir():
        files = sorted(p for p in path.iterdir() if p.name[:1] not in "._" and _suffix(p) in PARQUET + DELIMITED)
        if not files:
            raise DataError(f"{path}: the folder holds no CSV, TSV or Parquet file; give a folder of data files "
                            f"or a pattern such as '{path}/*.parquet'")
    elif path.exists():
        files = [path]
    else:
        raise DataError(f"file not found: {text}; check the path")
    if not files:
        raise DataError(f"no file matches {text!r}; check the pattern (it is read on this machine and must name "
                        f"the same files on every worker)")
    for p in files:
        if not p.is_file():
            raise DataError(f"{p} is not a regular file; give CSV, TSV or Parquet files")
        if _suffix(p) not in PARQUET + DELIMITED:
            raise DataError(f"{p}: cannot score {_suffix(p) or 'a file without extension'} on a cluster; give "
                            f"CSV, TSV or Parquet files")
    return [p.absolute() for p in files]


def plan(files: Sequence[Path], columns: Sequence[str], *, partition_rows: int = DEFAULT_PARTITION_ROWS) -> list[Piece]:
    """The partitions of ``files`` in order; each file must hold every name in ``columns``."""
    if isinstance(partition_rows, bool) or not isinstance(partition_rows, int) or partition_rows < 1:
        raise UsageError(f"partition_rows must be a positive integer, got {partition_rows!r}")
    pieces: list[Piece] = []
    for path in files:
        if _suffix(path) in PARQUET:
            pieces += _parquet_pieces(path, columns, partition_rows)
        else:
            _check_header(path, columns)
            pieces.append(Piece(str(path)))
    return pieces


def _parquet_pieces(path: Path, columns: Sequence[str], partition_rows: int) -> list[Piece]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        meta = pq.read_metadata(str(path))
        names = meta.schema.to_arrow_schema().names
    except (pa.ArrowException, OSError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise DataError(f"{path}: cannot read as Parquet ({first}); is it a Parquet file?") from None
    _check_columns(path, names, columns)
    if meta.num_rows == 0:
        raise DataError(f"{path}: the file has no data rows; add at least one row or leave the file out")
    pieces, groups, start, rows = [], [], 0, 0
    for i in range(meta.num_row_groups):
        n = meta.row_group(i).num_rows
        if groups and rows + n > partition_rows:
            pieces.append(Piece(str(path), tuple(groups), start, rows))
            groups, start, rows = [], start + rows, 0
        groups.append(i)
        rows += n
    pieces.append(Piece(str(path), tuple(groups), start, rows))
    return [p for p in pieces if p.rows]


def _check_header(path: Path, columns: Sequence[str]) -> None:
    """The column names of a delimited file, from its first block, against ``columns``."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    try:
        delimiter = "\t" if _suffix(path) in (".tsv", ".tab") else sniff_delimiter(path)
        with pacsv.open_csv(str(path), parse_options=pacsv.ParseOptions(delimiter=delimiter),
                            read_options=pacsv.ReadOptions(block_size=1 << 16)) as head:
            names = head.schema.names
    except (pa.ArrowInvalid, OSError, UnicodeDecodeError):
        return  # the worker that reads it names the problem (torchann's own CSV messages)
    _check_columns(path, names, columns)


def _check_columns(path: Path, names: Sequence[str], columns: Sequence[str]) -> None:
    present = set(names)
    missing = [c for c in columns if c not in present]
    if missing:
        shown = ", ".join(list(names)[:20]) + (", ..." if len(names) > 20 else "")
        raise DataError(f"{path}: no column {', '.join(repr(m) for m in missing)} (a feature of the model or a "
                        f"--keep column); columns present: {shown}")
