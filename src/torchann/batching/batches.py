"""Fast batch iteration over in-memory tensors.

The tutorial's ``Dataset.__getitem__`` + ``DataLoader`` pays Python work per sample and a
collate per batch. Here the data already sits on the training device; each epoch costs one
``randperm`` and one gather, and every batch after that is a zero-copy slice.

The order is a pure function of ``(seed, epoch)``, so a resumed run sees the same batches as
an uninterrupted one without saving any generator state, and every rank of a distributed
job draws the same global permutation and takes its own shard of each global batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch

__all__ = ["Batch", "TensorBatches", "epoch_permutation", "global_batch_rows"]


def global_batch_rows(batch_size: int, world_size: int, given: int | None = None) -> int:
    """Rows per step over all processes: ``given`` (``global_batch_size``) when set, else
    ``batch_size`` on each of the ``world_size`` ranks."""
    return given or batch_size * world_size


@dataclass(frozen=True)
class Batch:
    x: torch.Tensor
    y: torch.Tensor
    # Multiplies this rank's mean loss so that averaging gradients over ranks (what DDP does)
    # gives the mean over the whole global batch, also when the last batch splits unevenly.
    loss_scale: float = 1.0


def epoch_permutation(n: int, *, seed: int, epoch: int) -> torch.Tensor:
    """The global sample order of one epoch (CPU int64), the same on every rank."""
    gen = torch.Generator().manual_seed((seed * 1_000_003 + epoch) % (2**63 - 1))
    return torch.randperm(n, generator=gen)


class TensorBatches:
    """Batches of ``(x, y)`` rows, shuffled per epoch, optionally sharded over ranks.

    Args:
        x, y: tensors with the same first dimension, already on the training device.
        batch_size: rows per batch on each rank; the global batch is ``batch_size * world_size``.
        shuffle: draw a new order each epoch from ``(seed, epoch)``; otherwise keep row order.
        rank, world_size: this process's place in a distributed job (0, 1 when alone).

    Every rank takes the same number of steps: the last global batch is split over the ranks
    as evenly as possible, and a rank whose share is empty still takes the step.
    """

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        batch_size: int,
        shuffle: bool = True,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        global_batch_size: int | None = None,
        min_rows: int = 1,
    ) -> None:
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"x has {x.shape[0]} rows but y has {y.shape[0]}")
        self.x, self.y = x, y
        self.n = x.shape[0]
        self.global_batch = global_batch_rows(batch_size, world_size, global_batch_size)
        self.shuffle, self.seed = shuffle, seed
        self.rank, self.world_size = rank, world_size
        # (start, stop) of each global batch. A last batch with fewer than ``min_rows`` rows per
        # rank joins the one before it: BatchNorm cannot train on a single row (33 rows in
        # batches of 32 make one step of 33 rows, not 32 + 1).
        starts = list(range(0, self.n, self.global_batch))
        self.merged_last = min_rows > 1 and len(starts) > 1 and self.n - starts[-1] < min_rows * world_size
        if self.merged_last:
            starts.pop()
        self.bounds = list(zip(starts, starts[1:] + [self.n]))

    def __len__(self) -> int:
        return len(self.bounds)

    def epoch(self, epoch: int, *, start_step: int = 0) -> Iterator[Batch]:
        """Yield this rank's batches of ``epoch``, skipping the first ``start_step``."""
        order = epoch_permutation(self.n, seed=self.seed, epoch=epoch) if self.shuffle else None
        if self.world_size == 1:
            yield from self._local(order, start_step)
        else:
            yield from self._sharded(order, start_step)

    def _local(self, order: torch.Tensor | None, start_step: int) -> Iterator[Batch]:
        if order is None:
            x, y = self.x, self.y
        else:
            # One gather per epoch; (N, F) -> (N, F) in the new order, then views per batch.
            order = order.to(self.x.device)
            x, y = self.x.index_select(0, order), self.y.index_select(0, order)
        for start, stop in self.bounds[start_step:]:
            yield Batch(x[start:stop], y[start:stop])

    def _sharded(self, order: torch.Tensor | None, start_step: int) -> Iterator[Batch]:
        if order is None:
            order = torch.arange(self.n)
        w, r = self.world_size, self.rank
        pieces, sizes, totals = [], [], []
        for start, stop in self.bounds:
            chunk = order[start:stop]
            share = torch.tensor_split(chunk, w)[r]  # sizes differ by at most one row
            pieces.append(share)
            sizes.append(share.numel())
            totals.append(chunk.numel())
        local = torch.cat(pieces).to(self.x.device)
        x, y = self.x.index_select(0, local), self.y.index_select(0, local)
        offset = sum(sizes[:start_step])
        for size, total in zip(sizes[start_step:], totals[start_step:]):
            yield Batch(x[offset : offset + size], y[offset : offset + size], loss_scale=size * w / total)
            offset += size
