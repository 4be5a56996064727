"""Optimisers, losses and learning-rate schedules, built from their names."""

from __future__ import annotations

from typing import Any, Callable, Iterable

import torch
from torch import nn

from .choices import Loss, Optimizer, Scheduler, parse
from .errors import UsageError

__all__ = ["make_optimizer", "make_loss", "make_scheduler", "SCHEDULERS_PER_STEP"]


def make_optimizer(
    name: str | Optimizer,
    params: Iterable[nn.Parameter],
    *,
    lr: float,
    weight_decay: float = 0.0,
    momentum: float = 0.0,
    device: torch.device,
) -> torch.optim.Optimizer:
    """SGD, Adam or AdamW; the fused kernels where this torch has them for ``device``."""
    kind = parse(Optimizer, name, name="optimizer")
    if not (isinstance(lr, (int, float)) and lr > 0):
        raise UsageError(f"learning rate must be a positive number, got {lr!r}; try 1e-3")
    if weight_decay < 0:
        raise UsageError(f"weight decay must be >= 0, got {weight_decay!r}")
    params = list(params)
    # One fused kernel per step instead of a handful per parameter; same maths.
    fused = {"fused": True} if device.type in ("cpu", "cuda") else {}
    if kind is Optimizer.SGD:
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, **fused)
    if kind is Optimizer.ADAM:
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, **fused)
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay or 0.01, **fused)


def make_loss(name: str | Loss) -> nn.Module:
    kind = parse(Loss, name, name="loss")
    return {
        Loss.MSE: nn.MSELoss,
        Loss.MAE: nn.L1Loss,
        Loss.CROSS_ENTROPY: nn.CrossEntropyLoss,
        Loss.BCE: nn.BCEWithLogitsLoss,
    }[kind]()


# Schedules stepped after every optimiser step rather than after every epoch.
SCHEDULERS_PER_STEP = (Scheduler.ONE_CYCLE,)


def make_scheduler(
    spec: str | Scheduler | Callable[[torch.optim.Optimizer], Any] | None,
    optimizer: torch.optim.Optimizer,
    *,
    epochs: int,
    steps_per_epoch: int,
    lr: float,
) -> tuple[Any, Scheduler | None]:
    """A ``torch.optim.lr_scheduler`` object and its kind (``None`` for a user's callable)."""
    if spec is None:
        return None, Scheduler.NONE
    if callable(spec) and not isinstance(spec, str):
        return spec(optimizer), None
    kind = parse(Scheduler, spec, name="scheduler")
    sched = torch.optim.lr_scheduler
    if kind is Scheduler.NONE:
        return None, kind
    if kind is Scheduler.COSINE:
        return sched.CosineAnnealingLR(optimizer, T_max=max(1, epochs)), kind
    if kind is Scheduler.STEP:
        return sched.StepLR(optimizer, step_size=max(1, epochs // 3), gamma=0.1), kind
    if kind is Scheduler.PLATEAU:
        return sched.ReduceLROnPlateau(optimizer, factor=0.5, patience=5), kind
    return sched.OneCycleLR(optimizer, max_lr=lr, total_steps=max(1, epochs * steps_per_epoch)), kind
