"""One optimisation step: the general autograd step, and a shorter one for plain MLPs.

For small networks on a CPU, a training step costs more in overhead than in arithmetic. At
batch 32, a 32-256-256-1 MLP needs about 14 MFLOP per step: about 0.1 ms at this machine's
matmul rate. The eager step (autograd plus ``Optimizer.step``) takes several times that.
Most of the extra time is bookkeeping on every operation: the autograd engine records the
graph and then replays it, and the optimiser rebuilds its lists on each call.

``MLPStep`` computes the same gradients with the ATen kernels autograd itself calls
(``addmm``/``mm`` for linear layers, ``threshold_backward`` for ReLU,
``mse_loss_backward`` ...). It skips the engine. ``DirectStep`` (optim.py) then calls the
fused optimiser kernel directly. A model that ``MLPStep`` does not recognise takes
``AutogradStep``, which is the plain loop. Both return ``(loss, output)``. The loss is a
0-dim tensor on the device: the loop keeps it there, so no step waits for the device.

One switch, ``make_train_step(fast=...)``, turns both shortcuts on or off together; off, every
step is the plain autograd loop with ``optimizer.step()``. One value, ``compute_dtype``
(``torch.float32``, or ``torch.bfloat16`` for autocast), says what the step computes in.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable

import torch
from torch import nn

from .mlp_step import MLPStep, loss_kernel, plain_mlp_layers
from .optim import DirectStep

__all__ = ["AutogradStep", "make_train_step", "StepLosses", "autocast"]

aten = torch.ops.aten


def autocast(device: torch.device, compute_dtype: torch.dtype) -> Any:
    """The context a forward pass runs in: autocast to ``compute_dtype``, or nothing for float32."""
    if compute_dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=compute_dtype)


def _device_of(module: nn.Module) -> torch.device:
    param = next(module.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


class AutogradStep:
    """forward, loss, backward, (clip), optimiser step: the loop every tutorial writes.

    ``direct`` calls the fused optimiser kernel without ``Optimizer.step``'s bookkeeping
    (``optim.DirectStep``); the numbers are the same either way.
    """

    def __init__(self, net: nn.Module, loss_fn: Callable, optimizer: torch.optim.Optimizer, *,
                 compute_dtype: torch.dtype = torch.float32, clip_grad_norm: float | None = None,
                 direct: bool = True) -> None:
        self.net, self.loss_fn = net, loss_fn
        self.autocast = autocast(_device_of(net), compute_dtype)
        inner = getattr(net, "module", getattr(net, "_orig_mod", net))  # under DDP or torch.compile
        self.trains_members = bool(getattr(inner, "trains_members", False))  # TabMini: (K, B, out) in training
        self.clip = clip_grad_norm
        self.step_optimizer = DirectStep(optimizer, direct=direct)
        self.params = self.step_optimizer.params

    def __call__(self, x: torch.Tensor, y: torch.Tensor, loss_scale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        with self.autocast:
            out = self.net(x)
            if self.trains_members:  # (K, B, out): an ensemble's members (TabMini); the mean of their losses
                members = out.shape[0]
                loss = self.loss_fn(out.flatten(0, 1), y.repeat(members, *([1] * (y.dim() - 1))))
                out = out.detach().mean(dim=0)  # for the epoch's metrics
            else:
                loss = self.loss_fn(out, y) if x.shape[0] else out.sum() * 0.0
        for p in self.params:  # zero_grad(set_to_none=True) without its per-call bookkeeping
            p.grad = None
        (loss * loss_scale if loss_scale != 1.0 else loss).backward()
        if self.clip is not None:
            nn.utils.clip_grad_norm_(self.params, self.clip)
        self.step_optimizer()
        return loss.detach(), out


def make_train_step(net: nn.Module, model: nn.Module, loss_fn: Callable, optimizer: torch.optim.Optimizer, *,
                    compute_dtype: torch.dtype = torch.float32, clip_grad_norm: float | None = None,
                    fast: bool = True) -> AutogradStep | MLPStep:
    """The step ``fit`` takes for ``net`` (``model``, or it wrapped by DDP or ``torch.compile``).

    With ``fast`` (the default): ``MLPStep`` where it applies (``net`` is ``model`` itself, a
    plain MLP, a known loss), else ``AutogradStep``, both calling the optimiser kernel
    directly. Without: ``AutogradStep`` with ``optimizer.step()``, the reference loop.
    """
    general = AutogradStep(net, loss_fn, optimizer, compute_dtype=compute_dtype, clip_grad_norm=clip_grad_norm,
                           direct=fast)
    if not fast or net is not model:  # wrapped (DistributedDataParallel) or compiled
        return general
    layers = plain_mlp_layers(model)
    loss = loss_kernel(loss_fn)
    params = list(model.parameters())
    if layers is None or loss is None or len(params) != len(general.params):
        return general
    if any(p is not q for p, q in zip(params, general.params)):
        return general  # the gradients are handed to the optimiser in the model's order
    lower = None if compute_dtype == torch.float32 else compute_dtype
    return MLPStep(layers, loss, lower=lower, clip_grad_norm=clip_grad_norm, fallback=general)


class StepLosses:
    """Each step's loss and row count, written into device tensors a block at a time.

    Writing ``losses[step] = loss`` costs an indexing kernel per step; appending to a list
    costs nothing, and one ``stack`` per block moves the values into place.
    """

    def __init__(self, losses: torch.Tensor, rows: torch.Tensor, first_step: int, block: int = 512) -> None:
        self.losses, self.rows = losses, rows
        self.next = first_step
        self.block = block
        self._losses: list[torch.Tensor] = []
        self._rows: list[int] = []

    def add(self, loss: torch.Tensor, rows: int) -> None:
        self._losses.append(loss)
        self._rows.append(rows)
        if len(self._losses) >= self.block:
            self.flush()

    def flush(self) -> None:
        """Write the pending steps into ``losses`` and ``rows``."""
        if not self._losses:
            return
        n = len(self._losses)
        self.losses[self.next : self.next + n] = torch.stack(self._losses)
        self.rows[self.next : self.next + n] = torch.tensor(self._rows, dtype=self.rows.dtype)
        self.next += n
        self._losses.clear()
        self._rows.clear()
