"""The rows of a streamed epoch, step by step and rank by rank: lanes.

The *base order* of an epoch is the file's chunks in an order shuffled from ``(seed, epoch)``,
with each chunk's rows shuffled from ``(seed, epoch, chunk)``. The epoch cuts the base order
into ``lanes`` consecutive stretches and builds every global batch from all of them at once:
global batch k is lane 0's next rows, then lane 1's, and so on, each lane's share of the batch
cut as ``torch.tensor_split`` cuts it. With one lane the epoch is the base order itself. With
several, a batch mixes rows from as many distant places of the file.

Under ``torchrun`` every global batch is split over the ranks in contiguous pieces, again as
``tensor_split`` cuts it (the way ``TensorBatches`` shares in-memory data). A rank's piece
carries ``loss_scale = size * world / total``, so that DDP's average of the ranks' gradients is
the mean over the global batch, also for an uneven last batch. With as many lanes as ranks (the
default under ``torchrun``) a rank's piece is exactly its lane's share, so each rank reads only
the chunks of its own stretch of the base order: about 1/N of the file, plus a chunk at each end
of the stretch that it shares with a neighbour.

The order depends on the seed, the epoch, the chunks and the number of lanes, never on the
number of processes: N processes take the same steps on the same rows as one process with an
N-times larger batch and the same ``lanes``.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Iterator

import numpy as np
import torch

from .batches import Batch


__all__ = ["Layout", "split_sizes", "stream_epoch"]


def split_sizes(total: int, parts: int) -> np.ndarray:
    """The sizes ``torch.tensor_split`` gives ``total`` rows cut in ``parts``: the first
    ``total % parts`` parts hold one row more."""
    base, extra = divmod(int(total), parts)
    return base + (np.arange(parts) < extra).astype(np.int64)


class Layout:
    """Where each step's rows sit in the base order, for one rank.

    Every global batch but the last has ``global_batch`` rows, so all full steps are cut alike:
    lane j gives ``piece[0][j]`` rows to each, and ``piece[1][j]`` to the last, short step (the
    sizes are 0 when the rows fill whole batches). Lane j is the stretch
    ``[lane_start[j], lane_start[j] + lane_length[j])`` of the base order. Of lane j's piece of a
    step, this rank takes ``take[kind][j]`` rows after the first ``skip[kind][j]`` (kind 0 for a
    full step, 1 for the last), ``size[kind]`` rows in all.
    """

    def __init__(self, rows: int, global_batch: int, lanes: int = 1, world: int = 1, rank: int = 0) -> None:
        self.rows, self.global_batch, self.lanes, self.world, self.rank = rows, global_batch, lanes, world, rank
        self.full, last = divmod(rows, global_batch)  # full steps; rows of the last, short one
        self.steps = self.full + (last > 0)
        self.totals = (global_batch, last)
        self.piece = (split_sizes(global_batch, lanes), split_sizes(last, lanes))
        self.lane_length = self.full * self.piece[0] + self.piece[1]
        self.lane_start = np.concatenate([[0], np.cumsum(self.lane_length)[:-1]]).astype(np.int64)
        parts = [self._part(total, piece) for total, piece in zip(self.totals, self.piece)]
        self.skip = (parts[0][0], parts[1][0])
        self.take = (parts[0][1], parts[1][1])
        self.size = tuple(int(split_sizes(total, world)[rank]) for total in self.totals)

    def _part(self, total: int, piece: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        shares = split_sizes(total, self.world)
        first = int(shares[: self.rank].sum())
        end = first + int(shares[self.rank])
        at = np.concatenate([[0], np.cumsum(piece)[:-1]])  # where each lane's piece starts in the batch
        lo, hi = np.clip(first - at, 0, piece), np.clip(end - at, 0, piece)
        return lo, hi - lo

    def kind(self, step: int) -> int:
        return 0 if step < self.full else 1

    def loss_scale(self, step: int) -> float:
        kind = self.kind(step)
        return self.size[kind] * self.world / self.totals[kind]

    def lanes_read(self) -> list[int]:
        """The lanes this rank takes rows from."""
        return [j for j in range(self.lanes) if self.take[0][j] or self.take[1][j]]

    def before(self, lane: int, step: int) -> int:
        """Rows of ``lane`` that steps before ``step`` use (all ranks together)."""
        return min(step, self.full) * int(self.piece[0][lane]) + (int(self.piece[1][lane]) if step > self.full else 0)

    def span(self, lane: int, first_step: int = 0) -> tuple[int, int]:
        """The stretch ``[lo, hi)`` of the base order that ``lane`` still holds from ``first_step`` on."""
        start = int(self.lane_start[lane])
        return start + self.before(lane, first_step), start + int(self.lane_length[lane])

    def whole(self, lane: int) -> bool:
        """Whether this rank takes every row of the lane (then its rows are one stretch)."""
        return all(self.skip[k][lane] == 0 and self.take[k][lane] == self.piece[k][lane] for k in (0, 1))

    def wanted(self, lane: int, lo: int, hi: int, first_step: int = 0) -> np.ndarray:
        """The base-order positions in ``[lo, hi)`` that this rank takes from ``lane`` in steps
        ``first_step`` and later, in increasing order (which is the order it uses them in)."""
        start, stop = self.span(lane, first_step)
        q = np.arange(max(lo, start), min(hi, stop), dtype=np.int64)
        if self.whole(lane) or not q.size:
            return q
        rel = q - int(self.lane_start[lane])
        a, full_rows = int(self.piece[0][lane]), self.full * int(self.piece[0][lane])
        keep = np.zeros(q.shape, dtype=bool)
        if a:
            offset = rel % a
            keep = (rel < full_rows) & (offset >= self.skip[0][lane]) & (offset < self.skip[0][lane] + self.take[0][lane])
        offset = rel - full_rows
        keep |= (rel >= full_rows) & (offset >= self.skip[1][lane]) & (offset < self.skip[1][lane] + self.take[1][lane])
        return q[keep]

    def epoch_positions(self) -> np.ndarray:
        """The base-order position of every row of the epoch, in the order the steps use them."""
        a, b = self.piece
        starts = (self.lane_start[None, :] + np.arange(self.full)[:, None] * a[None, :]).reshape(-1)
        counts = np.tile(a, self.full)
        if self.steps > self.full:
            starts = np.concatenate([starts, self.lane_start + self.full * a])
            counts = np.concatenate([counts, b])
        firsts = np.cumsum(counts) - counts  # where each piece begins in the epoch
        return np.repeat(starts - firsts, counts) + np.arange(self.rows, dtype=np.int64)


class _Lane:
    """One lane's rows for this rank, read chunk by chunk, handed out ``take(n)`` at a time.

    Only chunks that hold rows this rank takes are read; the next one is read in the background
    (``pool``) while the current one trains. Of each chunk only the wanted rows are gathered, in
    the training thread (torch's threads are faster at it than one reader thread).
    """

    def __init__(self, source: Any, epoch: int, layout: Layout, lane: int, first_step: int,
                 pool: ThreadPoolExecutor) -> None:
        self.source, self.epoch, self.layout, self.lane, self.first_step = source, epoch, layout, lane, first_step
        self.pool = pool
        order = source._chunk_order(epoch)
        lengths = np.array([source.chunks[c][1] - source.chunks[c][0] for c in order], dtype=np.int64)
        offsets = np.cumsum(lengths) - lengths  # where each chunk starts in the base order
        lo, hi = layout.span(lane, first_step)
        first, last = np.searchsorted(offsets, lo, side="right") - 1, np.searchsorted(offsets, hi, side="left")
        chunks = range(max(first, 0), last) if hi > lo else range(0)
        self.todo = [(int(order[i]), int(offsets[i])) for i in chunks  # (chunk, where it starts in the base order)
                     if layout.whole(lane) or layout.wanted(lane, int(offsets[i]), int(offsets[i] + lengths[i]),
                                                            first_step).size]
        self.next = 0
        self.pending: Future | None = None
        self.x = self.y = None  # the current chunk's wanted rows, on the device
        self.at = 0
        self._read_ahead()

    def _read_ahead(self) -> None:
        if self.next < len(self.todo):
            self.pending = self.pool.submit(self.source._load, self.epoch, self.todo[self.next][0])

    def _advance(self) -> None:
        if self.pending is None:
            raise RuntimeError(f"{self.source.source}: lane {self.lane} ran out of rows before the epoch ended")
        x, y, perm = self.pending.result()
        _, offset = self.todo[self.next]
        self.next += 1
        self.pending = None
        self._read_ahead()
        n = x.shape[0]
        mine = self.layout.wanted(self.lane, offset, offset + n, self.first_step) - offset
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)
        if perm is None and mine.size and mine[-1] - mine[0] + 1 == mine.size:  # a stretch in file order
            xt, yt = xt[int(mine[0]) : int(mine[-1]) + 1].contiguous(), yt[int(mine[0]) : int(mine[-1]) + 1].contiguous()
        else:
            rows = mine if perm is None else (perm if mine.size == n else perm[mine])
            index = torch.from_numpy(rows)
            xt, yt = xt.index_select(0, index), yt.index_select(0, index)
        del x, y  # the chunk goes; only this rank's rows stay
        self.x, self.y, self.at = xt.to(self.source.device), yt.to(self.source.device), 0

    def take(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The lane's next ``n`` rows: a view of one chunk, or joined across a chunk boundary."""
        xs, ys = [], []
        while n:
            if self.x is None or self.at == self.x.shape[0]:
                self._advance()
            assert self.x is not None and self.y is not None
            m = min(n, self.x.shape[0] - self.at)
            xs.append(self.x[self.at : self.at + m])
            ys.append(self.y[self.at : self.at + m])
            self.at += m
            n -= m
        if len(xs) == 1:
            return xs[0], ys[0]
        return torch.cat(xs), torch.cat(ys)


def stream_epoch(source: Any, epoch: int, start_step: int = 0) -> Iterator[Batch]:
    """Yield ``source.rank``'s batches of ``epoch``, skipping the first ``start_step`` steps."""
    layout = Layout(source.rows, source.global_batch, source.lanes, source.world_size, source.rank)
    if start_step >= layout.steps:
        return
    distributed = source.world_size > 1
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="torchann-read") as pool:
        lanes = [(j, _Lane(source, epoch, layout, j, start_step, pool)) for j in layout.lanes_read()]
        for step in range(start_step, layout.steps):
            take = layout.take[layout.kind(step)]
            parts = [lane.take(int(take[j])) for j, lane in lanes if take[j]]
            if not parts:  # a last global batch smaller than the job: an empty piece still takes the step
                x, y = source.empty_batch()
            elif len(parts) == 1:
                x, y = parts[0]
            else:
                x, y = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
            yield Batch(x, y, loss_scale=layout.loss_scale(step)) if distributed else Batch(x, y)
