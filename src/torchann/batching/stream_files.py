"""The files a streamed epoch reads: ``.npy`` arrays read with plain reads (no memory map) and
Parquet files read by row group, each as chunks of rows for :class:`StreamingBatches`."""

from __future__ import annotations

import mmap
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..core.errors import DataError, UsageError
from .streaming import DEFAULT_CHUNK_ROWS, StreamingBatches

__all__ = ["NpyBatches", "ParquetBatches"]

class NpyBatches(StreamingBatches):
    """Batches streamed from a 2-D ``.npy`` file (``np.save`` format, C order).

    Args:
        x: path of a (rows, columns) ``.npy`` file.
        y: path of a (rows,) or (rows, k) ``.npy`` file of targets; or leave it out and
            name the target column(s) of ``x`` with ``target``.
        target: index or indices of target columns inside ``x`` (e.g. ``-1``); the other
            columns are the features.
        chunk_rows: rows read at a time; memory holds about three chunks per lane.
        lanes: stretches of the epoch's order each batch draws from (default: one per
            ``torchrun`` process, 1 alone).
        batch_size, shuffle, seed, device: as for ``TensorBatches``; ``fit`` sets them.
    """

    def __init__(self, x: str | os.PathLike, y: str | os.PathLike | None = None, *,
                 target: int | Sequence[int] | None = None, chunk_rows: int = DEFAULT_CHUNK_ROWS, **options: Any):
        super().__init__(**options)
        if (y is None) == (target is None):
            raise UsageError("give the targets either as a second .npy file (y=...) or as column(s) of x (target=...)")
        self.source = str(x)
        self._x = _NpyFile(x)
        self._y = None if y is None else _NpyFile(y)
        columns = self._x.shape[1] if len(self._x.shape) == 2 else 0
        if len(self._x.shape) != 2:
            raise DataError(f"{x}: features must be a 2-D array (rows x columns), got shape {self._x.shape}")
        if target is not None:
            wanted = [target] if isinstance(target, int) else list(target)
            try:
                self._target_cols = sorted({range(columns)[t] for t in wanted})
            except (IndexError, TypeError):
                raise UsageError(f"target {target!r} is not a column index of {x}, which has {columns} columns") from None
            self._feature_cols = [c for c in range(columns) if c not in self._target_cols]
            if not self._feature_cols:
                raise UsageError(f"target {target!r} leaves no feature columns in {x}")
            self.targets = len(self._target_cols)
        else:
            assert self._y is not None
            if self._y.shape[0] != self._x.shape[0] or len(self._y.shape) not in (1, 2):
                raise DataError(f"{y} has shape {self._y.shape}; it needs one target row for each of the "
                                f"{self._x.shape[0]} rows of {x}")
            self._target_cols, self._feature_cols = [], list(range(columns))
            self.targets = 1 if len(self._y.shape) == 1 else self._y.shape[1]
        self.rows, self.features = self._x.shape[0], len(self._feature_cols)
        self.chunks = _ranges(self.rows, _check_chunk_rows(chunk_rows))
        self._contiguous_features = self._feature_cols == list(range(self.features))

    def _read(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        block = self._x.read(start, stop)
        if self._y is not None:
            return block, self._y.read(start, stop)
        x = block[:, : self.features] if self._contiguous_features else block[:, self._feature_cols]
        return x, block[:, self._target_cols]


class _NpyFile:
    """Rows of a C-order ``.npy`` file read with ``pread``: no memory map, no whole-file read."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        try:
            header = np.load(self.path, mmap_mode="r")  # parses the header; touches no data page
        except (OSError, ValueError) as err:
            raise DataError(f"cannot read {path} as a .npy file ({err}); write it with numpy.save") from None
        if not isinstance(header, np.memmap):
            raise DataError(f"{path} is not a plain .npy array file; write it with numpy.save")
        if header.dtype.kind not in "fiub" or header.dtype.hasobject:
            raise DataError(f"{path} holds {header.dtype} values; streaming needs numbers")
        if header.ndim == 2 and not header.flags.c_contiguous:
            raise DataError(f"{path} is stored in Fortran order; save it with numpy.save(path, numpy.ascontiguousarray(a))")
        self.shape, self.dtype, self.offset = tuple(header.shape), header.dtype, int(header.offset)
        self.row_bytes = int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize
        del header

    def read(self, start: int, stop: int) -> np.ndarray:
        out = _empty((stop - start, *self.shape[1:]), self.dtype)
        view = memoryview(out.reshape(-1).view(np.uint8))
        done, position = 0, self.offset + start * self.row_bytes
        with open(self.path, "rb", buffering=0) as f:
            while done < len(view):
                n = os.preadv(f.fileno(), [view[done:]], position + done) if hasattr(os, "preadv") else \
                    _seek_read(f, view[done:], position + done)
                if n <= 0:
                    raise DataError(f"{self.path} ended early: expected {self.shape[0]} rows; the file is truncated")
                done += n
        return out


def _seek_read(f: Any, view: memoryview, position: int) -> int:
    f.seek(position)
    return f.readinto(view)


class ParquetBatches(StreamingBatches):
    """Batches streamed from a Parquet file, whole row groups at a time.

    Args:
        path: the Parquet file.
        target: the target column name(s).
        features: the feature columns (default: every other column); all must be numeric.
        chunk_rows: row groups are read together until they hold at least this many rows.
        lanes, batch_size, shuffle, seed, device: as for ``NpyBatches``.
    """

    def __init__(self, path: str | os.PathLike, *, target: str | Sequence[str], features: Sequence[str] | None = None,
                 chunk_rows: int = DEFAULT_CHUNK_ROWS, **options: Any):
        import pyarrow.parquet as pq

        super().__init__(**options)
        self.source = str(path)
        try:
            self._file = pq.ParquetFile(path)
        except (OSError, ValueError) as err:
            raise DataError(f"cannot read {path} as Parquet ({err})") from None
        names = list(self._file.schema_arrow.names)
        self._target_cols = [target] if isinstance(target, str) else list(target)
        self._feature_cols = list(features) if features is not None else [n for n in names if n not in self._target_cols]
        missing = [c for c in self._target_cols + self._feature_cols if c not in names]
        if missing:
            raise UsageError(f"{path} has no column(s) {missing}; its columns are {names}")
        for name in self._target_cols + self._feature_cols:
            kind = self._file.schema_arrow.field(name).type
            if not (_pa_numeric(kind)):
                raise DataError(f"{path}: column {name!r} is {kind}, not numeric; encode it first "
                                f"(torchann.load_table and Preprocessor do this for tables that fit in memory)")
        self.rows = self._file.metadata.num_rows
        self.features, self.targets = len(self._feature_cols), len(self._target_cols)
        # Chunks are runs of whole row groups: (start row, stop row) plus the groups they hold.
        limit = _check_chunk_rows(chunk_rows)
        self.chunks, self._groups = [], []
        start, groups, size = 0, [], 0
        for g in range(self._file.metadata.num_row_groups):
            groups.append(g)
            size += self._file.metadata.row_group(g).num_rows
            if size >= limit:
                self.chunks.append((start, start + size))
                self._groups.append(groups)
                start, groups, size = start + size, [], 0
        if groups:
            self.chunks.append((start, start + size))
            self._groups.append(groups)

    def _read(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        groups = self._groups[self.chunks.index((start, stop))]
        table = self._file.read_row_groups(groups, columns=self._feature_cols + self._target_cols, use_threads=False)
        x = _empty((stop - start, self.features), np.float32)
        for j, name in enumerate(self._feature_cols):
            x[:, j] = _column(table, name)
        y = np.stack([_column(table, name) for name in self._target_cols], axis=1)
        del table
        _release_arrow_memory()
        return x, y


def _release_arrow_memory() -> None:
    import pyarrow as pa

    pa.default_memory_pool().release_unused()  # Arrow's allocator keeps freed blocks otherwise


def _column(table: Any, name: str) -> np.ndarray:
    column = table.column(name)
    if column.null_count:  # nulls become NaN, which the chunk check then reports with its row
        column = column.cast("double")
    return column.to_numpy()


def _pa_numeric(kind: Any) -> bool:
    import pyarrow.types as pt

    return pt.is_integer(kind) or pt.is_floating(kind) or pt.is_boolean(kind)


def _empty(shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """An array in its own anonymous memory map, unmapped as soon as nothing refers to it.

    Chunk-sized arrays from ``np.empty`` come from malloc, which keeps freed blocks of this size
    for reuse: over an epoch the process grew by several hundred MB that way. A mapping of its
    own goes back to the system when the chunk's last batch is dropped.
    """
    dtype = np.dtype(dtype)
    size = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if size < 1 << 20:
        return np.empty(shape, dtype=dtype)
    memory = mmap.mmap(-1, size)
    if hasattr(memory, "madvise") and hasattr(mmap, "MADV_HUGEPAGE"):
        memory.madvise(mmap.MADV_HUGEPAGE)  # 2 MB pages: a few page faults per chunk, not thousands
    return np.frombuffer(memory, dtype=dtype).reshape(shape)


def _check_chunk_rows(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UsageError(f"chunk_rows must be a positive integer, got {value!r}")
    return value


def _ranges(rows: int, size: int) -> list[tuple[int, int]]:
    return [(s, min(s + size, rows)) for s in range(0, rows, size)]
