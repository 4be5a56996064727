"""Data-parallel training under ``torchrun``: who this process is and how ranks agree.

``fit`` asks ``current_world()`` once. Alone, every method is a no-op; inside an
initialised process group the model is wrapped in ``DistributedDataParallel`` and epoch
sums are all-reduced, so every rank reports and decides the same.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["World", "current_world"]


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1

    @property
    def is_distributed(self) -> bool:
        return self.size > 1

    def wrap(self, model: nn.Module, device: torch.device) -> nn.Module:
        if not self.is_distributed:
            return model
        from torch.nn.parallel import DistributedDataParallel

        ids = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        if not self.is_distributed:
            return tensor
        import torch.distributed as dist

        out = tensor.clone()
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out

    def broadcast_int(self, value: int, *, device: torch.device) -> int:
        """Rank 0's ``value`` on every rank (e.g. a seed drawn at random)."""
        if not self.is_distributed:
            return value
        import torch.distributed as dist

        t = torch.tensor([value], dtype=torch.int64, device=device if device.type == "cuda" else "cpu")
        dist.broadcast(t, src=0)
        return int(t.item())


def current_world() -> World:
    """The process group set up by the caller (or by ``torchann train`` under torchrun)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return World(rank=dist.get_rank(), size=dist.get_world_size())
    return World()
