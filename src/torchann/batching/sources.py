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
from ..data.tensors import as_training_tensors, input_width
from ..core.errors import DataError, UsageError
from .streaming import StreamingBatches

__all__ = ["TrainingData", "LoaderBatches", "check_training_data", "has_batch_norm"]


def has_batch_norm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


class LoaderBatches:
    """A user's ``DataLoader`` behind the same interface as ``TensorBatches``.

    Each batch is checked as it arrives (a pair, 2-D x of the model's width), and for the
    losses torchann names, a 1-D y becomes a column so that it meets an ``(n, 1)`` output
    instead of broadcasting against it.
    """

    def __init__(self, loader: Any, device: torch.device, *, width: int | None, loss: Loss | None) -> None:
        self.loader, self.device, self.width, self.loss = loader, device, width, loss

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
            yield Batch(xb.to(self.device, non_blocking=True), yb.to(self.device, non_blocking=True))

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
        return xb, yb


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
            return LoaderBatches(src, device, width=input_width(model), loss=loss)
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
                loader = DataLoader(src, batch_size=batch_size, shuffle=shuffle,
                                    generator=torch.Generator().manual_seed(seed))
            return LoaderBatches(loader, device, width=input_width(model), loss=loss)
        x, y = src
        return TensorBatches(
            x.to(device), y.to(device), batch_size=batch_size, shuffle=shuffle, seed=seed, rank=world.rank,
            world_size=world.size, global_batch_size=global_batch_size, min_rows=2 if has_batch_norm(model) else 1,
        )


def check_training_data(model: nn.Module, x: Any, y: Any, loss: Loss | None, *, world: Any) -> TrainingData:
    """Read and check what ``fit`` was given; nothing is moved or changed."""
    from torch.utils.data import DataLoader, Dataset

    if isinstance(x, DataLoader):
        return TrainingData(x, len(x.dataset), x.batch_size)  # type: ignore[arg-type]
    if isinstance(x, StreamingBatches):
        x.check_for(model, loss, world)  # widths, targets, rows for the job: before anything moves
        return TrainingData(x, x.rows)
    if isinstance(x, Dataset):
        return TrainingData(x, len(x))  # type: ignore[arg-type]
    xt, yt = as_training_tensors(model, x, y, loss, what="training data")
    return TrainingData((xt, yt), xt.shape[0])
