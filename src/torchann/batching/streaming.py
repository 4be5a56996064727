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
from typing import Any, Iterator

import numpy as np
import torch

from .batches import Batch, global_batch_rows
from .lanes import Layout, stream_epoch
from ..core.errors import DataError, UsageError

__all__ = ["StreamingBatches", "DEFAULT_CHUNK_ROWS"]

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
        self.global_batch = global_batch_rows(batch_size, world_size, global_batch_size)
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
        global_batch = global_batch_rows(batch_size, world.size, global_batch_size)
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
        from ..core.choices import Loss
        from ..data.tensors import check_input_width, output_width

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
