"""Optimisers, losses and learning-rate schedules, built from their names."""

from __future__ import annotations

import math
from typing import Any, Callable, Iterable

import torch
from torch import nn

from ..core.choices import Loss, Optimizer, Scheduler, parse
from ..core.errors import UsageError

__all__ = ["make_optimizer", "make_loss", "make_scheduler", "SCHEDULERS_PER_STEP", "DirectStep"]

ADAMW_WEIGHT_DECAY = 0.01  # what weight_decay=None gives AdamW


def make_optimizer(
    name: str | Optimizer,
    params: Iterable[nn.Parameter],
    *,
    lr: float,
    weight_decay: float | None = None,
    momentum: float = 0.0,
    device: torch.device,
) -> torch.optim.Optimizer:
    """SGD, Adam or AdamW; the fused kernels where this torch has them for ``device``.

    ``weight_decay=None`` is each optimizer's usual default: 0.01 for AdamW (torch's own), 0 for
    SGD and Adam, whose decay is an L2 term in the gradient. An explicit 0 turns it off for all.
    """
    kind = parse(Optimizer, name, name="optimizer")
    if weight_decay is None:
        weight_decay = ADAMW_WEIGHT_DECAY if kind is Optimizer.ADAMW else 0.0
    if not _finite_number(lr) or lr <= 0:
        raise UsageError(f"learning rate must be a positive number, got {lr!r}; try 1e-3")
    if not _finite_number(weight_decay) or weight_decay < 0:
        raise UsageError(f"weight decay must be a finite number >= 0, got {weight_decay!r}")
    if not _finite_number(momentum) or not 0 <= momentum < 1:
        raise UsageError(f"momentum must be a number in [0, 1), got {momentum!r}; 0.9 is common")
    params = list(params)
    # One fused kernel per step instead of a handful per parameter; same maths.
    fused = {"fused": True} if device.type in ("cpu", "cuda") else {}
    if kind is Optimizer.SGD:
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, **fused)
    if kind is Optimizer.ADAM:
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, **fused)
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, **fused)


def _finite_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


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


class DirectStep:
    """``optimizer.step()`` for torchann's fused SGD / Adam / AdamW, without the bookkeeping.

    ``Optimizer.step`` rebuilds its lists of parameters, gradients and state, groups them by
    device and checks hooks on every call: tens of microseconds, as long as the whole step of a
    small network. After one ordinary ``step()`` (which creates the state), this calls the same
    fused kernel with lists built once and the group's current hyper-parameters, so schedules,
    checkpoints (``state_dict``) and the numbers stay exactly those of ``step()``. Anything it
    does not know (several groups, hooks, AMSGrad on a device without it, a gradient missing)
    goes through ``step()``.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, *, direct: bool = True) -> None:
        self.opt = optimizer
        self.params: list[torch.Tensor] = list(optimizer.param_groups[0]["params"])
        self._state: tuple[list[torch.Tensor], ...] | None = None
        self._kernel = _direct_kernel(optimizer) if direct else None  # None: always step()

    def __call__(self, grads: list[torch.Tensor] | None = None) -> None:
        """One step from ``grads`` (in parameter order; default: each parameter's ``.grad``)."""
        if grads is None:
            grads = [p.grad for p in self.params]
        if self._kernel is None or self._state is None or any(g is None for g in grads):
            self._slow_step(grads)
            return
        self._kernel(self.opt.param_groups[0], self.params, grads, *self._state)

    def _slow_step(self, grads: list[torch.Tensor]) -> None:
        for p, g in zip(self.params, grads):
            p.grad = g
        self.opt.step()
        if self._kernel is not None:
            self._state = _state_lists(self.opt, self.params)


def _direct_kernel(opt: torch.optim.Optimizer) -> Callable[..., None] | None:
    from torch.optim.optimizer import _global_optimizer_post_hooks, _global_optimizer_pre_hooks

    if len(opt.param_groups) != 1 or not opt.param_groups[0].get("fused"):
        return None
    if opt._optimizer_step_pre_hooks or opt._optimizer_step_post_hooks:
        return None
    if _global_optimizer_pre_hooks or _global_optimizer_post_hooks:
        return None
    if getattr(opt, "grad_scale", None) is not None or getattr(opt, "found_inf", None) is not None:
        return None
    group = opt.param_groups[0]
    if group.get("differentiable") or isinstance(group["lr"], torch.Tensor):
        return None
    if type(opt) is torch.optim.Adam or (type(opt) is torch.optim.AdamW and "decoupled_weight_decay" in group):
        return _adam_step if hasattr(torch, "_fused_adam_") else None
    if type(opt) is torch.optim.SGD and hasattr(torch, "_fused_sgd_"):
        return _sgd_step
    return None


def _state_lists(opt: torch.optim.Optimizer, params: list[torch.Tensor]) -> tuple[list[torch.Tensor], ...] | None:
    """The state tensors the kernel updates in place, in parameter order (None if incomplete)."""
    states = [opt.state.get(p, {}) for p in params]
    group = opt.param_groups[0]
    if isinstance(opt, torch.optim.Adam):
        keys = ["exp_avg", "exp_avg_sq", "step"] + (["max_exp_avg_sq"] if group["amsgrad"] else [])
    elif group["momentum"] != 0:
        keys = ["momentum_buffer"]
    else:
        return ([],)
    if not all(isinstance(s.get(k), torch.Tensor) for s in states for k in keys):
        return None
    return tuple([s[k] for s in states] for k in keys)


def _adam_step(group, params, grads, exp_avgs, exp_avg_sqs, steps, max_exp_avg_sqs=()) -> None:
    # What torch.optim.adam._fused_adam does for one device and dtype.
    torch._foreach_add_(steps, 1)
    beta1, beta2 = group["betas"]
    decoupled = group.get("decoupled_weight_decay", False)
    kernel = torch._fused_adamw_ if decoupled else torch._fused_adam_
    kernel(
        params, grads, exp_avgs, exp_avg_sqs, list(max_exp_avg_sqs), steps,
        amsgrad=group["amsgrad"], lr=group["lr"], beta1=beta1, beta2=beta2,
        weight_decay=group["weight_decay"], eps=group["eps"], maximize=group["maximize"],
        grad_scale=None, found_inf=None,
    )


def _sgd_step(group, params, grads, momentum_buffers) -> None:
    # What torch.optim.sgd._fused_sgd does for one device and dtype after the first step.
    torch._fused_sgd_(
        params, grads, momentum_buffers,
        weight_decay=group["weight_decay"], momentum=group["momentum"], lr=group["lr"],
        dampening=group["dampening"], nesterov=group["nesterov"], maximize=group["maximize"],
        is_first_step=False, grad_scale=None, found_inf=None,
    )
