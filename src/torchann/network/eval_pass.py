"""A few rows through a sequential network in eval mode, without ``nn.Module``'s per-call work.

``module(x)`` runs ``_call_impl`` for the container and again for every layer: hook lookups,
the forward, the bookkeeping around it. For a 26-256-256-1 network on 8 rows that machinery
cost as much as the three matrix products (a pass took 45 µs through the modules and 31 µs as
a bare chain of ``F.linear`` and ``torch.relu`` on a quiet 2-core AMD EPYC). ``eval_pass``
walks the layers of an ``nn.Sequential`` (``MLP`` is one) and calls, for the layers it knows,
the same functional operator their ``forward`` calls in eval mode, with the same arguments: the
answers are those of ``module(x)`` bit for bit (``tests/test_eval_pass.py``).

Nothing is cached: the layers, their weights and their hooks are read at every call, so a
layer swapped, a weight replaced or a hook added is seen by the next call. A layer it does not
know, or one with hooks, is called as a module; a network that is not a plain sequential one,
in training mode, or off the CPU is not taken (``eval_pass`` returns None and the caller runs
``module(x)``).
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules import module as _module

from .dropout import Dropout
from .members import Members
from .stacked import stacked_pass

__all__ = ["eval_pass", "takes"]


def _linear(m: nn.Linear, h: torch.Tensor) -> torch.Tensor:
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
_STEPS: dict[type, Callable[[nn.Module, torch.Tensor], torch.Tensor]] = {
    nn.Linear: _linear,
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


def _global_hooks() -> bool:
    return bool(_module._global_forward_hooks or _module._global_forward_pre_hooks
                or _module._global_backward_hooks or _module._global_backward_pre_hooks)


def _hooked(m: nn.Module) -> bool:
    return bool(m._forward_hooks or m._forward_pre_hooks or m._backward_hooks or m._backward_pre_hooks)


def takes(network: nn.Module) -> bool:
    """Whether ``eval_pass`` runs ``network``: a plain ``nn.Sequential`` in eval mode, no hooks,
    or an ensemble (``Members``, unchanged) of such networks."""
    if type(network) is Members:
        return (not network.training and not _hooked(network) and not _global_hooks()
                and all(takes(m) for m in network.members))
    return (type(network).forward is nn.Sequential.forward and not network.training
            and not _hooked(network) and not _global_hooks())


def eval_pass(network: nn.Module, x: torch.Tensor) -> torch.Tensor | None:
    """``network(x)`` for a plain sequential network in eval mode, on the CPU, under no_grad;
    None when ``takes(network)`` is false or a weight is not a CPU tensor of ``x``'s dtype."""
    if not takes(network):
        return None
    if type(network) is Members:  # the members' passes, combined as Members.forward combines them
        z = stacked_pass(network, x, lambda: _each_member(network, x))
        if z is None:
            z = _each_member(network, x)
        return None if z is None else network.combined(z)
    return _sequential_pass(network, x)


def _each_member(network: Members, x: torch.Tensor) -> torch.Tensor | None:
    outs = [_sequential_pass(m, x) for m in network.members]
    return None if any(o is None for o in outs) else torch.stack(outs)


def _sequential_pass(network: nn.Module, x: torch.Tensor) -> torch.Tensor | None:
    h = x
    for layer in network._modules.values():
        if layer is None:
            continue
        step = _STEPS.get(type(layer))
        if step is None or layer.training or _hooked(layer):
            h = layer(h)
            continue
        if step is _linear:
            w = layer.weight
            if w.device.type != "cpu" or w.dtype != h.dtype:
                return None  # the general path words what is wrong (a meta weight, another device)
        h = step(layer, h)
    return h
