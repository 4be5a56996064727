"""What each layer of an MLP computes in eval mode, as the functional operator its ``forward``
calls with the same arguments (so the answers are the module's bit for bit), and whether a
module has hooks. Shared by ``eval_pass`` (a network's layers one by one) and ``stacked``
(an ensemble's members in one chain)."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules import module as _module

from .dropout import Dropout

__all__ = ["STEPS", "ELEMENTWISE", "linear_step", "hooked", "global_hooks"]


def linear_step(m: nn.Linear, h: torch.Tensor) -> torch.Tensor:
    return F.linear(h, m.weight, m.bias)


def _batch_norm(m: nn.BatchNorm1d, h: torch.Tensor) -> torch.Tensor:
    if m.running_mean is None or m.running_var is None:  # no running statistics: the batch's own
        return m(h)
    return F.batch_norm(h, m.running_mean, m.running_var, m.weight, m.bias, False, 0.0, m.eps)


def _layer_norm(m: nn.LayerNorm, h: torch.Tensor) -> torch.Tensor:
    return F.layer_norm(h, m.normalized_shape, m.weight, m.bias, m.eps)


def _identity(m: nn.Module, h: torch.Tensor) -> torch.Tensor:
    return h


# Exact layer types (a subclass may change ``forward``) and what their eval-mode forward computes.
STEPS: dict[type, Callable[[nn.Module, torch.Tensor], torch.Tensor]] = {
    nn.Linear: linear_step,
    nn.ReLU: lambda m, h: torch.relu(h),
    nn.Tanh: lambda m, h: torch.tanh(h),
    nn.Sigmoid: lambda m, h: torch.sigmoid(h),
    nn.GELU: lambda m, h: F.gelu(h, approximate=m.approximate),
    nn.LeakyReLU: lambda m, h: F.leaky_relu(h, m.negative_slope),
    nn.Identity: _identity,
    nn.Dropout: _identity,  # eval mode
    Dropout: _identity,
    nn.BatchNorm1d: _batch_norm,
    nn.LayerNorm: _layer_norm,
}

# The steps that act on each value alone (so on several members' values at once).
ELEMENTWISE = {t: step for t, step in STEPS.items() if t not in (nn.Linear, nn.BatchNorm1d, nn.LayerNorm)}


def global_hooks() -> bool:
    return bool(_module._global_forward_hooks or _module._global_forward_pre_hooks
                or _module._global_backward_hooks or _module._global_backward_pre_hooks)


def hooked(m: nn.Module) -> bool:
    return bool(m._forward_hooks or m._forward_pre_hooks or m._backward_hooks or m._backward_pre_hooks)
