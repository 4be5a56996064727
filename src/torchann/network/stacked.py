"""An ensemble's members in one pass: their layers stacked, each layer one batched product.

``Members.forward`` runs its members one after the other: for the four networks ``train``
trains by default on a small table, a pass of 8 rows is four chains of small matrix products,
each paying the product's fixed cost. When the members are plain MLPs of one shape, the same
arithmetic can run as one chain:

* the first layers, which all read the same rows, as one ``F.linear`` whose weight is the
  members' first weights one above the other (``(K * h, in)``);
* every later hidden layer as one ``torch.baddbmm`` of the members' hidden rows ``(K, B, h)``
  with their weights ``(K, h, h')``, biases added by the product as ``F.linear`` adds them;
* the output layers member by member, as ``forward`` runs them: a product with one or a few
  outputs takes a matrix-vector kernel that ``baddbmm`` does not, and sums otherwise;
* the activations on all members at once (they act value by value);
* a leading periodic embedding (``periodic.PeriodicEmbedding``) for every member at once, the
  members' frequencies and weights one above the other; the members' first layers then read
  different rows, so they run as one ``baddbmm`` as later layers do.

Each output value is the same sum of the same products in the same order as a member's own
``F.linear`` computes it, and on the CPUs measured the answers were equal bit for bit. That is
not a promise the kernels make, so it is checked, not assumed: the first pass of each batch
shape and dtype also runs the members one by one, and the stacked pass is used for that shape
only if every value is equal. Where they differ the members run one by one from then on, so
``eval_pass`` always answers what ``Members.forward`` answers.

The stacked weights are built once and kept with the ensemble (weakly: they go with it). Every
pass first checks that each member still holds the same layers and weights, each weight at the
same version (an in-place update bumps it), in eval mode and without hooks; if not, the stack
is built again or the members run one by one, so a weight replaced or trained further, or a
hook added, is seen by the next pass.
"""

from __future__ import annotations

import weakref
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .eval_steps import ELEMENTWISE, hooked
from .periodic import PeriodicEmbedding, embed

__all__ = ["stacked_pass"]

class _Stack:
    """The members' layers stacked (``steps``), what they were built from, and the batch shapes
    already checked against the members one by one (True: equal, use the stack)."""

    def __init__(self, layouts: list, steps: list, dtype: torch.dtype) -> None:
        self.layouts = layouts  # each member's layers, held: the same objects must be there next time
        self.weights = [(layer._parameters, name, t, t._version) for layers in layouts for layer in layers
                        for name, t in layer._parameters.items()]
        self.steps = steps
        self.dtype = dtype
        self.checked: dict[tuple, bool] = {}

    def current(self, members: nn.ModuleList) -> bool:
        """Whether the members still hold the same layers, each with the same weights unchanged,
        in eval mode and without hooks (read at every call: cheap dictionary and identity checks)."""
        nets = members._modules
        if len(nets) != len(self.layouts):
            return False
        for net, layers in zip(nets.values(), self.layouts):
            now = net._modules
            if len(now) != len(layers):
                return False
            for layer, held in zip(now.values(), layers):
                if layer is not held or layer.training or hooked(layer):
                    return False
        return all(params.get(name) is t and t._version == version for params, name, t, version in self.weights)


STACK = True  # False: members always one by one (benchmarks/predict_one_row.py compares the two)
_MAX_SHAPES = 64  # batch shapes remembered per ensemble (padded passes come in a few sizes)
_STACKS: "weakref.WeakKeyDictionary[nn.Module, _Stack]" = weakref.WeakKeyDictionary()


def _layouts(members: nn.ModuleList) -> list | None:
    """Each member's layers, or None when the members are not plain MLPs of one shape (on the
    CPU, in eval mode, without hooks): then the members run one by one."""
    layouts = []
    for net in members:
        if type(net).forward is not nn.Sequential.forward:
            return None
        layouts.append([layer for layer in net._modules.values()])
    first = layouts[0]
    for layers in layouts:
        if len(layers) != len(first):
            return None
        for layer, ref in zip(layers, first):
            if layer is None or type(layer) is not type(ref) or layer.training or hooked(layer):
                return None
            if type(layer) is nn.Linear:
                w, b = layer.weight, layer.bias
                if (w.shape != ref.weight.shape or (b is None) != (ref.bias is None) or w.device.type != "cpu"
                        or w.dtype != ref.weight.dtype or (b is not None and b.dtype != w.dtype)):
                    return None
            elif type(layer) is PeriodicEmbedding:
                if (ref is not first[0] or layer.frequencies.shape != ref.frequencies.shape
                        or layer.weight.shape != ref.weight.shape or layer.weight.dtype != ref.weight.dtype
                        or not torch.equal(layer.columns, ref.columns)):
                    return None
            elif type(layer) in ELEMENTWISE:
                if (getattr(layer, "approximate", None), getattr(layer, "negative_slope", None)) != (
                        getattr(ref, "approximate", None), getattr(ref, "negative_slope", None)):
                    return None
            else:
                return None  # a norm layer, say
    if type(first[0]) is not nn.Linear and not (type(first[0]) is PeriodicEmbedding and len(first) > 1
                                                and type(first[1]) is nn.Linear):
        return None
    return layouts


def _build(layouts: list) -> _Stack:
    steps: list = []
    first_linear = True
    last = max(j for j, layer in enumerate(layouts[0]) if type(layer) is nn.Linear)
    for j, ref in enumerate(layouts[0]):
        column = [layers[j] for layers in layouts]
        if type(ref) is PeriodicEmbedding:  # the members' embeddings as one: the first layers then read (K, B, w)
            with torch.no_grad():
                stacked = (torch.cat([m.frequencies.detach() for m in column]).contiguous(),  # (K * n, 1, k)
                           torch.cat([m.weight.detach() for m in column]).contiguous(),  # (K * n, 2k, d)
                           torch.cat([m.bias.detach() for m in column]).contiguous())  # (K * n, 1, d)
            steps.append(("embed", stacked, ref.columns, ref.weight.shape[-1]))
            first_linear = False
            continue
        if type(ref) is nn.Linear:
            with torch.no_grad():
                weights = [m.weight.detach() for m in column]
                biases = None if ref.bias is None else [m.bias.detach() for m in column]
                if j == last and not first_linear:  # the output layer: a few outputs each, member by member
                    steps.append(("apart", weights, biases, ref.out_features))
                elif first_linear:  # (K * out, in): one product for every member's first layer
                    steps.append(("first", torch.cat(weights).contiguous(),
                                  None if biases is None else torch.cat(biases).contiguous(), ref.out_features))
                else:  # (K, in, out) as F.linear reads a weight, transposed; (K, 1, out) biases
                    w = torch.stack(weights).transpose(1, 2).contiguous()
                    b = None if biases is None else torch.stack(biases).unsqueeze(1)
                    steps.append(("batched", w, b, ref.out_features))
            first_linear = False
        else:
            steps.append(("each", ELEMENTWISE[type(ref)], ref, None))
    first = next(layer for layer in layouts[0] if type(layer) is nn.Linear)
    return _Stack(layouts, steps, first.weight.dtype)


def _run(stack: _Stack, x: torch.Tensor, k: int) -> torch.Tensor:
    h = x
    for kind, a, b, width in stack.steps:
        if kind == "first":
            h = F.linear(h, a, b)  # (B, K * width)
            h = h.view(x.shape[0], k, width).transpose(0, 1).contiguous()  # (K, B, width)
        elif kind == "embed":  # PeriodicEmbedding.forward for every member at once
            frequencies, weight, bias = a
            rows = h.shape[0]
            v = h.index_select(1, b).t().unsqueeze(-1).repeat(k, 1, 1)  # (K * n, B, 1)
            e = embed(v, frequencies, weight, bias)  # (K * n, B, d)
            e = e.view(k, -1, rows, width).transpose(1, 2).reshape(k, rows, -1)  # (K, B, n * d)
            h = torch.cat([h.unsqueeze(0).expand(k, -1, -1), e], dim=2)  # (K, B, in + n * d)
        elif kind == "batched":
            h = torch.bmm(h, a) if b is None else torch.baddbmm(b, h, a)
        elif kind == "apart":
            h = torch.stack([F.linear(h[i], a[i], None if b is None else b[i]) for i in range(k)])
        else:
            h = a(b, h)
    return h  # (K, B, out)


def stacked_pass(network: nn.Module, x: torch.Tensor, each: Callable[[], torch.Tensor | None]) -> torch.Tensor | None:
    """The members' stacked outputs ``(K, B, out)`` of ``Members`` ``network`` for the 2-D rows
    ``x``, computed as one chain; ``each()`` gives them member by member (the reference, run
    the first time a batch shape is seen). None where the stack does not apply or did not give
    the reference's answers: the caller then runs the members one by one."""
    members = network.members
    if not STACK or x.dim() != 2 or len(members) < 2:
        return None
    stack = _STACKS.get(network)
    if stack is None or not stack.current(members):
        layouts = _layouts(members)
        if layouts is None:
            _STACKS.pop(network, None)
            return None
        stack = _STACKS[network] = _build(layouts)
    if stack.dtype != x.dtype:
        return None
    shape = tuple(x.shape)
    verdict = stack.checked.get(shape)
    if verdict is False:
        return None
    z = _run(stack, x, len(members))
    if verdict is None:
        reference = each()
        same = reference is not None and reference.shape == z.shape and torch.equal(reference, z)
        if len(stack.checked) >= _MAX_SHAPES:
            stack.checked.clear()
        stack.checked[shape] = same
        return reference if not same else z
    return z
