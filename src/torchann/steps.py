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
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable

import torch
from torch import nn
from torch.nn import functional as F

from .optim import DirectStep

__all__ = ["AutogradStep", "MLPStep", "make_train_step", "StepLosses"]

aten = torch.ops.aten


class AutogradStep:
    """forward, loss, backward, (clip), optimiser step: the loop every tutorial writes."""

    def __init__(self, net: nn.Module, loss_fn: Callable, optimizer: torch.optim.Optimizer, *,
                 autocast: Any = None, clip_grad_norm: float | None = None) -> None:
        self.net, self.loss_fn = net, loss_fn
        self.autocast = autocast if autocast is not None else contextlib.nullcontext()
        self.clip = clip_grad_norm
        self.step_optimizer = DirectStep(optimizer)
        self.params = self.step_optimizer.params

    def __call__(self, x: torch.Tensor, y: torch.Tensor, loss_scale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        with self.autocast:
            out = self.net(x)
            loss = self.loss_fn(out, y) if x.shape[0] else out.sum() * 0.0
        for p in self.params:  # zero_grad(set_to_none=True) without its per-call bookkeeping
            p.grad = None
        (loss * loss_scale if loss_scale != 1.0 else loss).backward()
        if self.clip is not None:
            nn.utils.clip_grad_norm_(self.params, self.clip)
        self.step_optimizer()
        return loss.detach(), out


# Activation modules MLPStep knows: forward(input, module) and backward(grad, input, output, module),
# with the backward kernels that autograd uses for them.
_ACTIVATIONS: dict[type, tuple[Callable, Callable]] = {
    nn.ReLU: (lambda a, m: torch.relu(a), lambda g, a, out, m: aten.threshold_backward(g, out, 0)),
    nn.Tanh: (lambda a, m: torch.tanh(a), lambda g, a, out, m: aten.tanh_backward(g, out)),
    nn.Sigmoid: (lambda a, m: torch.sigmoid(a), lambda g, a, out, m: aten.sigmoid_backward(g, out)),
    nn.GELU: (lambda a, m: F.gelu(a, approximate=m.approximate),
              lambda g, a, out, m: aten.gelu_backward(g, a, approximate=m.approximate)),
    nn.LeakyReLU: (lambda a, m: F.leaky_relu(a, m.negative_slope),
                   lambda g, a, out, m: aten.leaky_relu_backward(g, a, m.negative_slope, False)),
}


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


def _loss_kernel(loss_fn: Any) -> Callable | None:
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


class MLPStep:
    """The step of ``AutogradStep`` for a plain MLP, with the backward pass written out.

    A plain MLP is an ``nn.Sequential`` of ``nn.Linear`` layers and the activations in
    ``_ACTIVATIONS`` (``Identity`` and ``Dropout(p=0)`` are skipped), trained with an MSE,
    L1, BCE-with-logits or cross-entropy loss. Under ``bf16`` it does what autocast does:
    linear layers run in bfloat16 on bfloat16 copies of the weights, the loss in float32, and
    the gradients come back to the float32 parameters. Batches it cannot take (not 2-D, or
    another dtype) go through ``fallback``.
    """

    def __init__(self, layers: list[tuple[Any, nn.Module]], loss: Callable, optimizer: torch.optim.Optimizer, *,
                 lower: torch.dtype | None, clip_grad_norm: float | None, fallback: AutogradStep) -> None:
        self.layers = layers  # (kind, module): kind is "linear" or an entry of _ACTIVATIONS
        self.loss, self.lower, self.clip, self.fallback = loss, lower, clip_grad_norm, fallback
        self.class_targets = getattr(loss, "class_targets", False)
        self.step_optimizer = fallback.step_optimizer
        self.params = fallback.params
        first = next(m for kind, m in layers if kind == "linear")
        self.dtype, self.device = first.weight.dtype, first.weight.device
        self.one = torch.ones((), dtype=self.dtype, device=self.device)
        # Detached views: the optimiser updates the parameters in place, the views follow.
        self.weights = [(m.weight.detach(), None if m.bias is None else m.bias.detach())
                        for kind, m in layers if kind == "linear"]

    def __call__(self, x: torch.Tensor, y: torch.Tensor, loss_scale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        if x.dim() != 2 or x.dtype != self.dtype or loss_scale != 1.0:
            return self.fallback(x, y, loss_scale)
        low = self.lower
        a = x if low is None else x.to(low)
        saved: list[tuple[torch.Tensor, ...]] = []
        weights = iter(self.weights)
        for kind, module in self.layers:
            if kind == "linear":
                w, b = next(weights)
                if low is not None:
                    w, b = w.to(low), (None if b is None else b.to(low))
                out = torch.addmm(b, a, w.t()) if b is not None else a.mm(w.t())  # (B, in) @ (in, out)
                saved.append((a, w))
            else:
                out = kind[0](a, module)
                saved.append((a, out))
            a = out
        if low is not None:
            out = out.to(self.dtype)  # autocast runs losses in float32
        if (y.dim() != 1) if self.class_targets else (y.shape != out.shape or y.dtype != out.dtype):
            return self.fallback(x, y, loss_scale)  # broadcasting or mixed dtypes: leave them to autograd
        loss, grad = self.loss(out, y, self.one)
        if low is not None:
            grad = grad.to(low)

        grads: list[torch.Tensor] = []
        for i in range(len(self.layers) - 1, -1, -1):
            kind, module = self.layers[i]
            if kind == "linear":
                a_in, w = saved[i]
                if module.bias is not None:
                    grads.append(grad.sum(0))
                grads.append(grad.t().mm(a_in))  # (out, B) @ (B, in) -> (out, in), as autograd computes it
                if i:  # the input needs no gradient
                    grad = grad.mm(w)  # (B, out) @ (out, in): the gradient for the layer below
            else:
                grad = kind[1](grad, saved[i][0], saved[i][1], module)
        grads.reverse()  # parameter order: weight, bias of each layer, first layer first
        if low is not None:
            grads = [g.to(self.dtype) for g in grads]
        for p, g in zip(self.params, grads):
            p.grad = g
        if self.clip is not None:
            nn.utils.clip_grad_norm_(self.params, self.clip)
        self.step_optimizer(grads)
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
        elif kind is nn.Identity or (kind is nn.Dropout and module.p == 0.0):
            continue
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


def make_train_step(net: nn.Module, model: nn.Module, loss_fn: Callable, optimizer: torch.optim.Optimizer, *,
                    autocast: Any = None, bf16: bool = False, clip_grad_norm: float | None = None,
                    fast: bool = True) -> AutogradStep | MLPStep:
    """``MLPStep`` where it applies (``net`` is ``model`` itself, a plain MLP, a known loss), else ``AutogradStep``."""
    general = AutogradStep(net, loss_fn, optimizer, autocast=autocast, clip_grad_norm=clip_grad_norm)
    if not fast or net is not model:  # wrapped (DistributedDataParallel) or compiled
        return general
    layers = plain_mlp_layers(model)
    loss = _loss_kernel(loss_fn)
    params = list(model.parameters())
    if layers is None or loss is None or len(params) != len(general.params):
        return general
    if any(p is not q for p, q in zip(params, general.params)):
        return general  # the gradients are handed to the optimiser in the model's order
    lower = torch.bfloat16 if bf16 else None
    return MLPStep(layers, loss, optimizer, lower=lower, clip_grad_norm=clip_grad_norm, fallback=general)


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
