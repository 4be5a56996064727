"""One rank's share of a streamed epoch under ``torchrun``.

The epoch's row order is the one a single process streams (``StreamingBatches.order``): it is
a pure function of the seed and the epoch, not of the number of processes. The order is cut
into global batches of ``global_batch`` rows, and each global batch is split over the ranks
the way ``torch.tensor_split`` splits it (sizes differ by at most one row; rank 0 first), as
``TensorBatches`` splits in-memory data. A rank's batch carries ``loss_scale = size * world /
total``, so that DDP's average of the ranks' gradients is the mean over the global batch, also
for an uneven last batch. N processes therefore take the same steps on the same rows as one
process with an N-times larger batch.

A rank reads the chunks in the epoch's order (a background thread reads the next one), keeps
only the rows of its pieces (an ``index_select`` of the chunk), and never reads a chunk that
holds none of them.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Iterator

import numpy as np
import torch

from .batches import Batch

if TYPE_CHECKING:
    from .streaming import StreamingBatches

__all__ = ["piece_sizes", "rank_positions", "sharded_epoch"]


def piece_sizes(rows: int, global_batch: int, world: int, rank: int) -> tuple[np.ndarray, np.ndarray]:
    """(this rank's rows, all ranks' rows) of every global batch of an epoch of ``rows`` rows."""
    totals = np.minimum(global_batch, rows - np.arange(0, rows, global_batch, dtype=np.int64))
    base, extra = totals // world, totals % world
    return base + (rank < extra), totals


def rank_positions(start: int, length: int, *, rows: int, global_batch: int, world: int, rank: int,
                   first_step: int = 0) -> np.ndarray:
    """Offsets into ``[start, start + length)`` of the epoch's order that belong to ``rank``'s
    pieces of global batches ``first_step`` and later, in order."""
    p = np.arange(start, start + length, dtype=np.int64)
    k = p // global_batch
    offset = p - k * global_batch  # place inside its global batch
    total = np.minimum(global_batch, rows - k * global_batch)
    base, extra = total // world, total % world
    first = rank * base + np.minimum(rank, extra)  # tensor_split: the first `extra` pieces hold one more row
    keep = (offset >= first) & (offset < first + base + (rank < extra)) & (k >= first_step)
    return p[keep] - start


def sharded_epoch(source: "StreamingBatches", epoch: int, start_step: int = 0) -> Iterator[Batch]:
    """Yield ``source.rank``'s batches of ``epoch``, skipping the first ``start_step`` steps."""
    g, w, r, n = source.global_batch, source.world_size, source.rank, source.rows
    sizes, totals = piece_sizes(n, g, w, r)
    steps = len(sizes)
    todo: list[tuple[int, np.ndarray]] = []  # (chunk, this rank's offsets inside it)
    offset = 0
    for c in source._chunk_order(epoch):
        a, b = source.chunks[c]
        if offset + (b - a) > start_step * g:
            mine = rank_positions(offset, b - a, rows=n, global_batch=g, world=w, rank=r, first_step=start_step)
            if mine.size:
                todo.append((int(c), mine))
        offset += b - a

    k = start_step

    def batch(x: torch.Tensor, y: torch.Tensor) -> Batch:
        return Batch(x, y, loss_scale=float(sizes[k]) * w / float(totals[k]))

    carry: tuple[torch.Tensor, torch.Tensor] | None = None
    if todo:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="torchann-read") as pool:
            pending = pool.submit(source._load, epoch, todo[0][0])
            for i, (_, mine) in enumerate(todo):
                x, y, perm = pending.result()
                if i + 1 < len(todo):
                    pending = pool.submit(source._load, epoch, todo[i + 1][0])  # read ahead
                rows = torch.from_numpy(mine if perm is None else perm[mine])
                xt = torch.from_numpy(x).index_select(0, rows).to(source.device)
                yt = torch.from_numpy(y).index_select(0, rows).to(source.device)
                del x, y  # the chunk goes; only this rank's rows stay
                start, m = 0, xt.shape[0]
                if carry is not None:  # a piece that began in the previous chunk
                    need = int(sizes[k]) - carry[0].shape[0]
                    if need > m:
                        carry = (torch.cat([carry[0], xt]), torch.cat([carry[1], yt]))
                        continue
                    yield batch(torch.cat([carry[0], xt[:need]]), torch.cat([carry[1], yt[:need]]))
                    start, carry, k = need, None, k + 1
                while k < steps and start + int(sizes[k]) <= m:
                    yield batch(xt[start : start + int(sizes[k])], yt[start : start + int(sizes[k])])
                    start += int(sizes[k])
                    k += 1
                if start < m:
                    carry = (xt[start:], yt[start:])
    if carry is not None:  # cannot happen: every row belongs to a piece
        raise RuntimeError(f"{source.source}: {carry[0].shape[0]} rows left over after the epoch")
    while k < steps:  # a last global batch smaller than the job: empty pieces still take the step
        x_empty = torch.empty((0, source.features), dtype=torch.float32, device=source.device)
        y_empty = (torch.empty((0,), dtype=torch.int64, device=source.device) if source.classes is not None
                   else torch.empty((0, source.targets), dtype=torch.float32, device=source.device))
        yield batch(x_empty, y_empty)
        k += 1

