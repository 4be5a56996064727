"""``MLPStep``: a training step for plain MLPs written out with the ATen kernels autograd calls.

For small networks on a CPU a step costs more in overhead than in arithmetic (see
``steps.py``). ``MLPStep`` computes the same gradients as autograd with ``addmm``/``mm`` for
linear layers, ``threshold_backward`` for ReLU, ``mse_loss_backward`` and the like, without the
engine, then hands them to ``DirectStep`` (optim.py), the fused optimiser kernel called
directly. ``plain_mlp_layers`` says whether a model is one it can run.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn
from torch.nn import functional as F

from ..network.dropout import Dropout, dropout_mask

__all__ = ["MLPStep", "plain_mlp_layers", "loss_kernel"]

aten = torch.ops.aten


_DROPOUT = "dropout"  # the kind plain_mlp_layers gives a dropout.Dropout; the plan holds the module itself


class _Activation:
    """An activation MLPStep knows: its forward and the backward kernel autograd uses for it.

    ``forward_`` and ``backward_``, where given, do the same in place: ``forward_(a)``
    overwrites the linear layer's output with the activation's, ``backward_(g, out)``
    overwrites the incoming gradient. They are used when the activation directly follows a
    linear layer, whose own output no backward needs.
    """

    def __init__(self, forward: Callable, backward: Callable, forward_: Callable | None = None,
                 backward_: Callable | None = None) -> None:
        self.forward, self.backward = forward, backward  # (a, module) and (g, a, out, module)
        self.forward_, self.backward_ = forward_, backward_  # (a) and (g, out)


def _mse(out: torch.Tensor, y: torch.Tensor, one: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return aten.mse_loss(out, y, 1), aten.mse_loss_backward(one, out, y, 1)  # 1 = mean


def _l1(out, y, one):
    diff = out - y  # l1_loss is (out - y).abs().mean() for autograd as well
    return diff.abs().mean(), diff.sgn().div_(diff.numel())


def _bce_logits(out, y, one):
    return F.binary_cross_entropy_with_logits(out, y), (out.sigmoid() - y).div_(out.numel())


def _cross_entropy(ignore_index: int) -> Callable:
    def loss(out, y, one):
        logp = torch.log_softmax(out, 1)
        value, total_weight = aten.nll_loss_forward(logp, y, None, 1, ignore_index)
        grad = aten.nll_loss_backward(one, logp, y, None, 1, ignore_index, total_weight)
        return value, aten._log_softmax_backward_data(grad, logp, 1, logp.dtype)

    loss.class_targets = True  # type: ignore[attr-defined]
    return loss


def loss_kernel(loss_fn: Any) -> Callable | None:
    """The loss and its gradient for the loss modules MLPStep knows (mean reduction only)."""
    kind = type(loss_fn)
    if getattr(loss_fn, "reduction", None) != "mean" or _has_hooks(loss_fn):
        return None
    if kind is nn.MSELoss:
        return _mse
    if kind is nn.L1Loss:
        return _l1
    if kind is nn.BCEWithLogitsLoss and loss_fn.weight is None and loss_fn.pos_weight is None:
        return _bce_logits
    if kind is nn.CrossEntropyLoss and loss_fn.weight is None and loss_fn.label_smoothing == 0.0:
        return _cross_entropy(loss_fn.ignore_index)
    return None


class _Linear:
    """One linear layer of an MLPStep plan, and the activation that runs in place on its output."""

    def __init__(self, module: nn.Linear) -> None:
        self.weight, self.bias = module.weight, module.bias
        self.activation: _Activation | None = None  # an in-place activation that follows it


class MLPStep:
    """The step of ``AutogradStep`` for a plain MLP, with the backward pass written out.

    A plain MLP is an ``nn.Sequential`` of ``nn.Linear`` layers and the activations in
    ``_ACTIVATIONS``, and torchann's ``Dropout`` (``Identity`` and ``Dropout(p=0)`` are skipped), trained with an MSE,
    L1, BCE-with-logits or cross-entropy loss. Under ``bf16`` it does what autocast does:
    linear layers run in bfloat16 on bfloat16 copies of the weights, the loss in float32, and
    the gradients come back to the float32 parameters. Batches it cannot take (not 2-D, or
    another dtype) go through ``fallback``.

    Every activation and gradient of the size of a batch is written into a buffer that the
    step keeps (``out=`` kernels, activations in place): a step allocates almost nothing.
    Fresh tensors cost more than their arithmetic here: at batch 1024 a layer's output is
    1 MB, the C allocator hands such blocks back to the system when they are freed, and the
    next step pays a page fault for every 4 KB it touches again. The ``output`` a call
    returns is therefore one of those buffers: use it before the next call.
    """

    def __init__(self, layers: list[tuple[Any, nn.Module]], loss: Callable, *,
                 lower: torch.dtype | None, clip_grad_norm: float | None, fallback: Any) -> None:
        self.loss, self.lower, self.clip, self.fallback = loss, lower, clip_grad_norm, fallback
        self.class_targets = getattr(loss, "class_targets", False)
        self.step_optimizer = fallback.step_optimizer
        self.params = fallback.params
        first = next(m for kind, m in layers if kind == "linear")
        self.dtype, self.device = first.weight.dtype, first.weight.device
        self.compute = lower or self.dtype  # the dtype the linear layers run in
        self.one = torch.ones((), dtype=self.dtype, device=self.device)
        # The plan: linear layers, with an activation that directly follows one run in place.
        self.plan: list[Any] = []  # layers is [(kind, module)]: kind is "linear", "dropout" or an _Activation
        for kind, module in layers:
            if kind == _DROPOUT:
                self.plan.append(module)
            elif kind != "linear" and kind.forward_ is not None and isinstance(self.plan[-1], _Linear) \
                    and self.plan[-1].activation is None:
                self.plan[-1].activation = kind
            else:
                self.plan.append(_Linear(module) if kind == "linear" else (kind, module))
        self.linears = [p for p in self.plan if isinstance(p, _Linear)]
        empty = lambda t: torch.empty_like(t, dtype=self.compute)  # noqa: E731
        # Gradients (and under bf16, the low-precision weights) keep their buffers across steps.
        self.detached = [p.detach() for p in self.params]  # views: the optimiser's updates show through
        self.grads = [torch.empty_like(p) for p in self.params]  # parameter order
        self.low_grads = [empty(p) for p in self.params] if lower is not None else self.grads
        self.low_weights = [empty(p) for p in self.params] if lower is not None else None
        self._rows = 0  # batch rows the buffers below hold
        self._buffers: dict[str, list[torch.Tensor]] = {}
        self._views: dict[int, dict[str, list[torch.Tensor]]] = {}

    def _batch_buffers(self, n: int, x: torch.Tensor) -> dict[str, list[torch.Tensor]]:
        """Buffers of ``n`` rows: each linear layer's output and input gradient, the low-precision batch."""
        views = self._views.get(n)
        if views is not None:
            return views
        if n > self._rows:
            def rows(cols: int, dtype: torch.dtype) -> torch.Tensor:
                return torch.empty((n, cols), dtype=dtype, device=self.device)

            self._buffers = {
                "out": [rows(lin.weight.shape[0], self.compute) for lin in self.linears],
                "grad_in": [rows(lin.weight.shape[1], self.compute) for lin in self.linears],
                "x": [rows(x.shape[1], self.compute)] if self.lower is not None else [],
                "out32": [rows(self.linears[-1].weight.shape[0], self.dtype)] if self.lower is not None else [],
            }
            self._rows, self._views = n, {}
        views = self._views[n] = {k: [t[:n] for t in v] for k, v in self._buffers.items()}
        return views

    def __call__(self, x: torch.Tensor, y: torch.Tensor, loss_scale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        n = x.shape[0]
        if x.dim() != 2 or x.dtype != self.dtype or loss_scale != 1.0 or not n:
            return self.fallback(x, y, loss_scale)
        buffers = self._batch_buffers(n, x)
        low = self.lower
        if low is not None:
            torch._foreach_copy_(self.low_weights, self.detached)  # the casts autocast would make
            a = buffers["x"][0].copy_(x)
            weights = iter(self.low_weights)
        else:
            a = x
            weights = iter(self.detached)
        saved: list[tuple[torch.Tensor, ...]] = []
        outs = iter(buffers["out"])
        for layer in self.plan:
            if isinstance(layer, _Linear):
                w = next(weights)
                b = next(weights) if layer.bias is not None else None
                out = next(outs)
                if b is not None:
                    torch.addmm(b, a, w.t(), out=out)  # (B, in) @ (in, out)
                else:
                    torch.mm(a, w.t(), out=out)
                if layer.activation is not None:
                    layer.activation.forward_(out)
                saved.append((a, w))
            elif isinstance(layer, Dropout):  # the mask the module would draw, kept for backward
                mask = dropout_mask(a.shape, layer.p, dtype=a.dtype, device=a.device)
                out = a * mask
                saved.append((a, mask))
            else:
                kind, module = layer
                out = kind.forward(a, module)
                saved.append((a, out))
            a = out
        if low is not None:
            out = buffers["out32"][0].copy_(out)  # autocast runs losses in float32
        if (y.dim() != 1) if self.class_targets else (y.shape != out.shape or y.dtype != out.dtype):
            return self.fallback(x, y, loss_scale)  # broadcasting or mixed dtypes: leave them to autograd
        loss, grad = self.loss(out, y, self.one)
        if low is not None:
            grad = grad.to(low)

        p = len(self.params)  # gradients are written from the last parameter backwards
        j = len(self.linears)
        for k in range(len(self.plan) - 1, -1, -1):
            layer = self.plan[k]
            if isinstance(layer, _Linear):
                j -= 1
                a_in, w = saved[k]
                if layer.activation is not None:
                    layer.activation.backward_(grad, a)  # a: this layer's output, after the activation
                if layer.bias is not None:
                    p -= 1
                    torch.sum(grad, 0, out=self.low_grads[p])
                p -= 1
                torch.mm(grad.t(), a_in, out=self.low_grads[p])  # (out, B) @ (B, in), as autograd computes it
                if j and w.shape[0] == 1:  # (B, 1) @ (1, in) is a broadcast product, with the same rounding
                    grad = torch.mul(grad, w, out=buffers["grad_in"][j])
                elif j:  # the first layer's input needs no gradient
                    grad = torch.mm(grad, w, out=buffers["grad_in"][j])  # the gradient for the layer below
                a = a_in
            elif isinstance(layer, Dropout):
                a_in, mask = saved[k]
                grad = grad.mul_(mask)  # grad is this step's own buffer: the next layer's input gradient
                a = a_in
            else:
                kind, module = layer
                a_in, a_out = saved[k]
                grad = kind.backward(grad, a_in, a_out, module)
                a = a_in
        if low is not None:
            torch._foreach_copy_(self.grads, self.low_grads)
        for param, g in zip(self.params, self.grads):
            param.grad = g
        if self.clip is not None:
            nn.utils.clip_grad_norm_(self.params, self.clip)
        self.step_optimizer(self.grads)
        return loss, out


def plain_mlp_layers(model: nn.Module) -> list[tuple[Any, nn.Module]] | None:
    """``model``'s layers as (kind, module) if it is a plain MLP that ``MLPStep`` can train."""
    if not isinstance(model, nn.Sequential) or type(model).forward is not nn.Sequential.forward:
        return None
    if _global_hooks() or any(_has_hooks(m) for m in model.modules()):
        return None
    layers: list[tuple[Any, nn.Module]] = []
    for module in model.children():
        kind = type(module)
        if kind is nn.Linear:
            layers.append(("linear", module))
        elif kind in _ACTIVATIONS:
            layers.append((_ACTIVATIONS[kind], module))
        elif kind is nn.Identity or (kind in (nn.Dropout, Dropout) and module.p == 0.0):
            continue
        elif kind is Dropout and not module.inplace:
            layers.append((_DROPOUT, module))
        else:
            return None
    if not layers or layers[0][0] != "linear":
        return None
    params = list(model.parameters())
    mine = [p for kind, m in layers if kind == "linear" for p in (m.weight, m.bias) if p is not None]
    if len(params) != len(mine) or any(p is not q for p, q in zip(params, mine)):
        return None  # parameters the plan would not update
    if not all(p.requires_grad and p.dtype == params[0].dtype and p.device == params[0].device for p in params):
        return None
    if any(p._post_accumulate_grad_hooks or p._backward_hooks for p in params):
        return None
    return layers


def _has_hooks(module: nn.Module) -> bool:
    return bool(module._forward_hooks or module._forward_pre_hooks or module._backward_hooks
                or module._backward_pre_hooks)


def _global_hooks() -> bool:
    from torch.nn.modules import module as m

    return bool(m._global_forward_hooks or m._global_forward_pre_hooks or m._global_backward_hooks
                or m._global_backward_pre_hooks)


_ACTIVATIONS: dict[type, _Activation] = {
    nn.ReLU: _Activation(
        lambda a, m: torch.relu(a), lambda g, a, out, m: aten.threshold_backward(g, out, 0),
        torch.relu_, lambda g, out: aten.threshold_backward.grad_input(g, out, 0, grad_input=g)),
    nn.Tanh: _Activation(
        lambda a, m: torch.tanh(a), lambda g, a, out, m: aten.tanh_backward(g, out),
        torch.tanh_, lambda g, out: aten.tanh_backward.grad_input(g, out, grad_input=g)),
    nn.Sigmoid: _Activation(
        lambda a, m: torch.sigmoid(a), lambda g, a, out, m: aten.sigmoid_backward(g, out),
        torch.sigmoid_, lambda g, out: aten.sigmoid_backward.grad_input(g, out, grad_input=g)),
    nn.GELU: _Activation(
        lambda a, m: F.gelu(a, approximate=m.approximate),
        lambda g, a, out, m: aten.gelu_backward(g, a, approximate=m.approximate)),
    nn.LeakyReLU: _Activation(
        lambda a, m: F.leaky_relu(a, m.negative_slope),
        lambda g, a, out, m: aten.leaky_relu_backward(g, a, m.negative_slope, False)),
}
