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

import torch
from torch import nn

from .eval_steps import STEPS, global_hooks, hooked, linear_step
from .members import Members
from .stacked import stacked_pass

__all__ = ["eval_pass", "takes"]


def takes(network: nn.Module) -> bool:
    """Whether ``eval_pass`` runs ``network``: a plain ``nn.Sequential`` in eval mode, no hooks,
    or an ensemble (``Members``, unchanged) of such networks."""
    if type(network) is Members:
        return (not network.training and not hooked(network) and not global_hooks()
                and all(takes(m) for m in network.members))
    return (type(network).forward is nn.Sequential.forward and not network.training
            and not hooked(network) and not global_hooks())


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
        step = STEPS.get(type(layer))
        if step is None or layer.training or hooked(layer):
            h = layer(h)
            continue
        if step is linear_step:
            w = layer.weight
            if w.device.type != "cpu" or w.dtype != h.dtype:
                return None  # the general path words what is wrong (a meta weight, another device)
        h = step(layer, h)
    return h
