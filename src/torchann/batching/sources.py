"""What ``fit`` trains on, as batches on the device.

Four kinds of input, one interface (``len(batches)`` steps per epoch, ``batches.epoch(e,
start_step=s)`` yielding ``Batch``):

* tensors, arrays or lists: checked here (``data_tensors``), moved to the device once and
  sliced per step (``TensorBatches``);
* a ``Dataset``: wrapped in a ``DataLoader`` (a ``DistributedSampler`` under torchrun);
* a ``DataLoader``: used as given, each batch checked as it arrives (``LoaderBatches``);
* a streaming source (``NpyBatches``, ``ParquetBatches``): read in chunks (``streaming.py``).

``check_training_data`` reads and checks the data without touching the model;
``TrainingData.batches`` then builds the batches on the device.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

import torch
from torch import nn

from .batches import Batch, TensorBatches
from ..core.choices import Loss
from ..data.tensors import as_training_tensors, check_probability_targets, input_width
from ..core.errors import DataError, UsageError
from .streaming import StreamingBatches

__all__ = ["TrainingData", "LoaderBatches", "check_training_data", "check_batch_norm_rows", "has_batch_norm",
           "model_dtype", "on_device"]


def has_batch_norm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


class LoaderBatches:
    """A user's ``DataLoader`` behind the same interface as ``TensorBatches``.

    Each batch is checked as it arrives (a pair, 2-D x of the model's width), and for the
    losses torchann names, a 1-D y becomes a column so that it meets an ``(n, 1)`` output
    instead of broadcasting against it.
    """

    def __init__(self, loader: Any, device: torch.device, *, width: int | None, loss: Loss | None,
                 dtype: torch.dtype | None = None) -> None:
        self.loader, self.device, self.width, self.loss = loader, device, width, loss
        self.dtype = dtype  # the model's floating dtype: float batches are cast to it

    def __len__(self) -> int:
        return len(self.loader)

    def epoch(self, epoch: int, *, start_step: int = 0) -> Iterator[Batch]:
        sampler = getattr(self.loader, "sampler", None)
        if hasattr(sampler, "set_epoch"):  # a DistributedSampler: a new shuffled shard per epoch
            sampler.set_epoch(epoch)
        for i, item in enumerate(self.loader):
            if i < start_step:
                continue
            xb, yb = self._checked(i, item)
            yield Batch(_onto(xb, self.device, self.dtype), _onto(yb, self.device, self.dtype))

    def _checked(self, i: int, item: Any) -> tuple[torch.Tensor, torch.Tensor]:
        if not (isinstance(item, (tuple, list)) and len(item) == 2):
            raise UsageError("a DataLoader given to fit must yield (x, y) pairs")
        xb, yb = item
        if not (isinstance(xb, torch.Tensor) and isinstance(yb, torch.Tensor)):
            raise DataError(f"DataLoader batch {i}: x and y must be tensors, got {type(xb).__name__} and "
                            f"{type(yb).__name__}")
        if xb.dim() != 2 or (self.width is not None and xb.shape[1] != self.width):
            raise DataError(f"DataLoader batch {i}: x has shape {tuple(xb.shape)} but the model takes rows of "
                            f"{self.width} features; yield x of shape (batch, {self.width})")
        if self.loss is None or self.loss is Loss.CROSS_ENTROPY:
            return xb, yb
        if yb.dim() > 2:
            raise DataError(f"DataLoader batch {i}: y has shape {tuple(yb.shape)}; yield (batch,) or "
                            f"(batch, outputs) targets")
        if yb.dim() == 1:
            yb = yb[:, None]
        if not yb.is_floating_point():  # 0/1 labels for bce, integer targets for mse
            yb = yb.to(xb.dtype if xb.is_floating_point() else torch.float32)
        if self.loss is Loss.BCE:
            check_probability_targets(yb, f"DataLoader batch {i}: y")
        return xb, yb


def model_dtype(model: nn.Module) -> torch.dtype:
    """The dtype of the model's first floating-point parameter (float32 when it has none)."""
    return next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)


def _onto(t: torch.Tensor, device: torch.device, dtype: torch.dtype | None) -> torch.Tensor:
    """``t`` on ``device``; a floating tensor also in ``dtype`` (a float64 model trains on float64 rows)."""
    if dtype is not None and t.is_floating_point() and t.dtype != dtype:
        return t.to(device, dtype, non_blocking=True)
    return t.to(device, non_blocking=True)


@dataclass
class TrainingData:
    """Checked training data, not yet on the device."""

    source: Any  # (x, y) tensors, a Dataset, a DataLoader or a StreamingBatches
    rows: int
    loader_batch: int | None = None  # a DataLoader's own batch size, which fit's batch_size cannot change

    def batches(self, model: nn.Module, loss: Loss | None, device: torch.device, *, batch_size: int,
                shuffle: bool, seed: int, world: Any, global_batch_size: int | None) -> Any:
        from torch.utils.data import DataLoader, Dataset

        src = self.source
        if isinstance(src, DataLoader):
            return LoaderBatches(src, device, width=input_width(model), loss=loss, dtype=model_dtype(model))
        if isinstance(src, StreamingBatches):  # larger than memory: read in chunks (streaming.py)
            return src.for_fit(model, loss, batch_size=batch_size, shuffle=shuffle, seed=seed, device=device,
                               world=world, global_batch_size=global_batch_size)
        if isinstance(src, Dataset):
            if world.is_distributed:
                from torch.utils.data.distributed import DistributedSampler

                # Pads each rank's share to the same length, so every rank takes the same steps.
                sampler = DistributedSampler(src, num_replicas=world.size, rank=world.rank, shuffle=shuffle,
                                             seed=seed)
                loader = DataLoader(src, batch_size=batch_size, sampler=sampler)
            else:
                # BatchNorm cannot train on one row: a last batch of one is left out of each epoch.
                drop = has_batch_norm(model) and self.rows > 1 and self.rows % batch_size == 1
                loader = DataLoader(src, batch_size=batch_size, shuffle=shuffle, drop_last=drop,
                                    generator=torch.Generator().manual_seed(seed))
            return LoaderBatches(loader, device, width=input_width(model), loss=loss, dtype=model_dtype(model))
        x, y = src
        dtype = model_dtype(model)
        return TensorBatches(
            _onto(x, device, dtype), _onto(y, device, dtype), batch_size=batch_size, shuffle=shuffle, seed=seed, rank=world.rank,
            world_size=world.size, global_batch_size=global_batch_size, min_rows=2 if has_batch_norm(model) else 1,
        )


def check_batch_norm_rows(model: nn.Module, rows: int, batch_size: int, *, world_size: int = 1) -> None:
    """Refuse, before anything is written, training that would give BatchNorm a batch of one row.

    A last batch of one row is merged or left out (``TensorBatches``, ``TrainingData.batches``);
    one row in all, or batches of one, cannot be helped."""
    if not has_batch_norm(model):
        return
    fix = ", or use norm='layer' (--norm layer) or norm='none', which train on batches of any size"
    if rows < 2 * world_size:
        raise DataError(f"the training data has {rows} row(s), but the model's BatchNorm needs at least 2 rows "
                        f"per batch{' on each process' if world_size > 1 else ''}; give more rows{fix}")
    if batch_size < 2:
        raise UsageError(f"batch_size {batch_size} gives BatchNorm batches of one row, which it cannot train on; "
                         f"use batch_size 2 or more{fix}")


def _check_batch_norm_loader(model: nn.Module, loader: Any) -> None:
    """BatchNorm cannot train on one row: refuse a loader whose last batch would hold one."""
    rows, size = len(loader.dataset), loader.batch_size
    if size is None or not has_batch_norm(model) or loader.drop_last:
        return  # a batch_sampler makes its own batches
    if rows == 1 or (size > 1 and rows % size == 1):
        raise DataError(
            f"the DataLoader's last batch holds 1 row ({rows} rows in batches of {size}), and the model's BatchNorm "
            f"cannot train on a single row; pass drop_last=True to the DataLoader or choose another batch_size")


def on_device(model: nn.Module, t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A checked tensor on the training device, in the model's dtype when it is floating point."""
    return _onto(t, device, model_dtype(model))


def check_training_data(model: nn.Module, x: Any, y: Any, loss: Loss | None, *, world: Any) -> TrainingData:
    """Read and check what ``fit`` was given; nothing is moved or changed."""
    from torch.utils.data import DataLoader, Dataset, IterableDataset

    dataset = x.dataset if isinstance(x, DataLoader) else x
    if isinstance(dataset, IterableDataset) or (isinstance(dataset, Dataset) and not hasattr(dataset, "__len__")):
        kind = "an IterableDataset" if isinstance(dataset, IterableDataset) else "a Dataset without __len__"
        raise UsageError(
            f"fit cannot train on {kind} ({type(dataset).__name__}): it has no length, and fit needs the rows "
            f"per epoch for its steps, schedule and checkpoints; give a map-style Dataset (__len__ and "
            f"__getitem__), tensors, or a streaming source such as torchann.NpyBatches for files larger than memory")
    if isinstance(x, DataLoader):
        _check_batch_norm_loader(model, x)
        return TrainingData(x, len(x.dataset), x.batch_size)  # type: ignore[arg-type]
    if isinstance(x, StreamingBatches):
        x.check_for(model, loss, world)  # widths, targets, rows for the job: before anything moves
        return TrainingData(x, x.rows)
    if isinstance(x, Dataset):
        return TrainingData(x, len(x))  # type: ignore[arg-type]
    xt, yt = as_training_tensors(model, x, y, loss, what="training data")
    return TrainingData((xt, yt), xt.shape[0])
