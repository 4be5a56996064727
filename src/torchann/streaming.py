"""Training data larger than memory: batches streamed from .npy or Parquet files in chunks.

An epoch reads the file in large chunks (131,072 rows by default) in a shuffled chunk order,
shuffles the rows inside each chunk, and slices batches from them. A background thread reads
the next chunk while the current one trains. Memory holds about three chunks at a time, never
the file. The file is read with plain reads, not a memory map: a mapped file's pages would
count as this process's memory as soon as training touched them.

The order is a pure function of ``(seed, epoch)`` (and the lanes below), as in
``TensorBatches``. A resumed run therefore sees the same batches. Batches run across chunk
boundaries, so every batch but the epoch's last has ``batch_size`` rows, and with one lane
``shuffle=False`` gives exactly the batches of the in-memory path.

Shuffling has two levels: the order of the chunks, then the rows inside each chunk. Rows that
sit in the same chunk of the file stay in the same stretch of the epoch. Shuffle a file that is
sorted (by target, by time) once on disk, or give it smaller chunks, or more lanes.

Lanes (``streaming_shards.py``): the epoch can draw every batch from ``lanes`` consecutive
stretches of that order at once, a share of the batch from each. One lane (the default in one
process) is the order above. Under ``torchrun`` the default is one lane per process, and each
rank then reads only the chunks of its own stretch, about 1/N of the file. The order depends on
the seed, the epoch, the chunks and the lanes, never on the number of processes: N processes
train on exactly the rows of one process with an N-times larger batch and the same ``lanes``.
Set ``lanes`` yourself to keep one order whatever the number of processes. Each lane holds its
own chunk in memory, so one process with several lanes holds several chunks.

Example:
    >>> batches = torchann.NpyBatches("train.npy", target=-1)   # last column is y
    >>> torchann.fit(model, batches, epochs=3, batch_size=1024, seed=0)   # fit sets these options
"""

from __future__ import annotations

import copy
import ctypes
import functools
import math
import mmap
import os
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from .batches import Batch
from .errors import DataError, UsageError

__all__ = ["StreamingBatches", "NpyBatches", "ParquetBatches"]

DEFAULT_CHUNK_ROWS = 131_072


class StreamingBatches:
    """Batches read chunk by chunk from a file; the interface of ``TensorBatches``.

    Subclasses set ``rows``, ``features``, ``targets`` (target columns, 1 for class indices) and
    ``chunks`` (row ranges ``(start, stop)`` that cover the file in order), and implement
    ``_read(start, stop) -> (x, y)`` as numpy arrays.
    """

    rows: int
    features: int
    targets: int
    chunks: list[tuple[int, int]]
    source: str

    def __init__(self, *, batch_size: int = 32, shuffle: bool = True, seed: int = 0,
                 device: str | torch.device = "cpu", classes: int | None = None,
                 rank: int = 0, world_size: int = 1, global_batch_size: int | None = None,
                 lanes: int | None = None) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise UsageError(f"batch_size must be a positive integer, got {batch_size!r}")
        if lanes is not None and (isinstance(lanes, bool) or not isinstance(lanes, int) or lanes < 1):
            raise UsageError(f"lanes must be a positive integer (or None: one per process), got {lanes!r}")
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, int(seed)
        self.device = torch.device(device)
        self.classes = classes  # targets are class indices in [0, classes) (cross-entropy)
        self.rank, self.world_size = rank, world_size  # this process's place under torchrun
        self.global_batch = global_batch_size or batch_size * world_size  # rows per step over all ranks
        self._lanes = lanes  # None: one lane per process

    _OPTIONS = ("batch_size", "shuffle", "seed", "device", "classes", "rank", "world_size", "global_batch_size",
                "lanes")

    def configured(self, **options: Any) -> "StreamingBatches":
        """A copy with other ``batch_size``, ``shuffle``, ``seed``, ``device``, ``classes``,
        ``lanes``, or place in a distributed job (``rank``, ``world_size``, ``global_batch_size``)."""
        unknown = set(options) - set(self._OPTIONS)
        if unknown:
            raise UsageError(f"unknown streaming option(s) {sorted(unknown)}")
        other = copy.copy(self)
        StreamingBatches.__init__(other, **{**self._options(), **options})
        return other

    def _options(self) -> dict[str, Any]:
        return {"batch_size": self.batch_size, "shuffle": self.shuffle, "seed": self.seed,
                "device": self.device, "classes": self.classes, "rank": self.rank,
                "world_size": self.world_size,
                "global_batch_size": self.global_batch if self.world_size > 1 else None, "lanes": self._lanes}

    def for_fit(self, model: torch.nn.Module, loss: Any, *, batch_size: int, shuffle: bool, seed: int,
                device: torch.device, world: Any, global_batch_size: int | None = None) -> "StreamingBatches":
        """Checked against ``model`` and configured with ``fit``'s options (what ``fit`` calls)."""
        classes = self.check_for(model, loss, world)
        global_batch = global_batch_size or batch_size * world.size
        if world.is_distributed and global_batch < world.size:
            raise UsageError(f"the global batch of {global_batch} rows is smaller than the {world.size} processes; "
                             f"use a global batch of at least {world.size}")
        lanes = self._lanes or world.size
        if lanes > global_batch:
            raise UsageError(f"lanes={lanes} is more than the global batch of {global_batch} rows; "
                             f"use at most {global_batch} lanes or a larger batch")
        return self.configured(batch_size=batch_size, shuffle=shuffle, seed=seed, device=device, classes=classes,
                               rank=world.rank, world_size=world.size,
                               global_batch_size=global_batch if world.is_distributed else None)

    @property
    def lanes(self) -> int:
        """Stretches of the epoch's order each global batch draws from."""
        return self._lanes or self.world_size

    def check_for(self, model: torch.nn.Module, loss: Any, world: Any) -> int | None:
        """Check the file against ``model``, ``loss`` and the job; the class count for cross-entropy."""
        from .choices import Loss
        from .data_tensors import check_input_width, output_width

        if world.is_distributed and self.rows < world.size:
            raise UsageError(f"{self.source}: {self.rows} rows cannot be shared by {world.size} processes; "
                             f"use fewer processes")
        check_input_width(model, self.features, what=f"training data {self.source}")
        width = output_width(model)
        classes = width if loss is Loss.CROSS_ENTROPY else None
        if classes is None and width is not None and self.targets != width:
            raise DataError(f"{self.source}: {self.targets} target column(s) but the model has {width} output(s); "
                            f"match the output size to the number of targets")
        return classes

    def __len__(self) -> int:
        return math.ceil(self.rows / self.global_batch)

    # -- the order --------------------------------------------------------------------------

    def _chunk_order(self, epoch: int) -> np.ndarray:
        if not self.shuffle:
            return np.arange(len(self.chunks))
        return np.random.default_rng([self.seed % 2**63, epoch]).permutation(len(self.chunks))

    def _row_order(self, epoch: int, chunk: int) -> np.ndarray | None:
        if not self.shuffle:
            return None
        start, stop = self.chunks[chunk]
        return np.random.default_rng([self.seed % 2**63, epoch, chunk]).permutation(stop - start)

    def order(self, epoch: int) -> torch.Tensor:
        """The file rows of the epoch in the order the steps use them, as one int64 tensor
        (``rows`` entries: for checks, not for training). It depends on the global batch only
        when there are several lanes."""
        from .streaming_shards import Layout

        parts = []
        for c in self._chunk_order(epoch):
            start, stop = self.chunks[c]
            perm = self._row_order(epoch, int(c))
            parts.append(np.arange(start, stop) if perm is None else start + perm)
        base = np.concatenate(parts).astype(np.int64)
        if self.lanes > 1:
            base = base[Layout(self.rows, self.global_batch, self.lanes).epoch_positions()]
        return torch.from_numpy(base)

    # -- the batches ------------------------------------------------------------------------

    def epoch(self, epoch: int, *, start_step: int = 0) -> Iterator[Batch]:
        """Yield this rank's batches of ``epoch``, skipping the first ``start_step``."""
        from .streaming_shards import stream_epoch

        yield from stream_epoch(self, epoch, start_step)

    def empty_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """x and y with no rows: a rank's share of a last global batch smaller than the job."""
        x = torch.empty((0, self.features), dtype=torch.float32, device=self.device)
        y = (torch.empty((0,), dtype=torch.int64, device=self.device) if self.classes is not None
             else torch.empty((0, self.targets), dtype=torch.float32, device=self.device))
        return x, y

    def _load(self, epoch: int, chunk: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """One chunk read and checked (in the reader thread): x, y and the chunk's row order.

        x is float32 (rows, features), y float32 (rows, targets) or int64 (rows,) class indices;
        both may be views into one block of the file's rows.
        """
        _trim_malloc()
        start, stop = self.chunks[chunk]
        x, y = self._read(start, stop)
        if x.dtype != np.float32:
            x = x.astype(np.float32)
        _check_finite(x, f"{self.source} features", start)
        if self.classes is not None:
            y = _class_indices(y, f"{self.source} target", start, self.classes)
        else:
            y = np.asarray(y, dtype=np.float32).reshape(stop - start, -1)
            _check_finite(y, f"{self.source} target", start)
        return x, y, self._row_order(epoch, chunk)

    def _read(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.source!r}, rows={self.rows}, features={self.features}, "
                f"targets={self.targets}, chunks={len(self.chunks)}, batch_size={self.batch_size}"
                + (f", lanes={self.lanes})" if self.lanes > 1 else ")"))


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


@functools.cache
def _malloc_trim() -> Any:
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim  # glibc (Linux)
    except (OSError, AttributeError):
        return None


def _trim_malloc() -> None:
    """Hand memory that malloc keeps in free lists back to the system (glibc only; else nothing).

    The training step's temporaries come and go in the arenas of several threads (the OpenMP
    workers, this reader). glibc keeps the freed blocks, and peak memory then wandered between
    about 0.4 and 0.8 GB from run to run. Trimming once per chunk costs well under a millisecond.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def _check_chunk_rows(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UsageError(f"chunk_rows must be a positive integer, got {value!r}")
    return value


def _ranges(rows: int, size: int) -> list[tuple[int, int]]:
    return [(s, min(s + size, rows)) for s in range(0, rows, size)]


def _check_finite(a: np.ndarray, what: str, first_row: int) -> None:
    # One sum is a quick test (a NaN or inf makes it non-finite); only then look element by element
    # (a sum can also overflow on finite values, so the element check decides).
    if a.dtype.kind == "f" and not np.isfinite(a.sum()) and not np.isfinite(a).all():
        row, *col = np.argwhere(~np.isfinite(a))[0].tolist()
        where = f"row {first_row + row}" + (f", column {col[0]}" if col else "")
        raise DataError(f"{what} has a non-finite value ({a[(row, *col)]}) at {where}; "
                        f"remove or fill missing values first")


def _class_indices(y: np.ndarray, what: str, first_row: int, classes: int) -> np.ndarray:
    y = np.asarray(y).reshape(len(y), -1)
    if y.shape[1] != 1:
        raise DataError(f"{what}: cross-entropy needs one class index per row, got {y.shape[1]} target columns")
    y = y[:, 0]
    if y.dtype.kind == "f":
        _check_finite(y, what, first_row)
        if not np.array_equal(y, np.round(y)):
            raise DataError(f"{what}: cross-entropy needs integer class indices, the chunk at row {first_row} holds fractions")
    y = y.astype(np.int64)
    if y.size and (y.min() < 0 or y.max() >= classes):
        row = int(np.argmax((y < 0) | (y >= classes)))
        raise DataError(f"{what}: class index {y[row]} at row {first_row + row} is outside [0, {classes}) "
                        f"for a model with {classes} outputs")
    return y
