"""predict(): a trained model's outputs for new rows, in eval mode and without gradients."""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
import torch
from torch import nn

from ..core.checks import check_non_negative_int, check_optional_positive_int, check_positive_int
from ..core.errors import UsageError
from ..data.tensors import as_feature_tensor, check_input_width
from .eval_pass import eval_pass

__all__ = ["predict", "padded_pass", "MemberColumns"]


@torch.no_grad()
def predict(model: nn.Module, x: Any, *, batch_size: int | None = None, block: int | None = None,
            first_row: int = 0) -> torch.Tensor:
    """Outputs of ``model`` for the rows of ``x``, as a CPU tensor.

    Runs on the model's own device in eval mode (dropout off, batch norm on its running
    statistics) and puts the model back in the mode it was in.

    Args:
        x: rows x features (tensor, array or nested lists).
        batch_size: rows per forward pass; ``None`` sends all rows at once.
        block: instead of ``batch_size``, forward passes of exactly ``block`` rows each (zero
            rows fill the gaps), aligned to multiples of ``block`` counted from ``first_row``.
            The CPU's matrix kernels give a row's float32 answer last bits that depend on where
            the row sits in the pass and on the pass's size, so only this gives every row the
            same answer whatever else it is sent with: scoring a file in chunks then equals
            scoring it whole.
        first_row: the index of ``x``'s first row in the whole it belongs to (with ``block``).

    Shape:
        x: ``(N, in_features)`` -> ``(N, out_features)``
    """
    batch_size = check_optional_positive_int("batch_size", batch_size, hint="; None sends all rows at once")
    block = check_optional_positive_int("block", block)
    first_row = check_non_negative_int("first_row", first_row)
    _check_model(model)
    xt = _in_model_dtype(model, as_feature_tensor(model, x))
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    was_training = model.training
    model.eval()
    try:
        if block is not None:
            outs = list(_aligned_passes(model, xt, block, first_row, device))
        else:
            step = batch_size or xt.shape[0]  # as_feature_tensor refuses no rows
            outs = [model(xt[i : i + step].to(device)).float().cpu() for i in range(0, xt.shape[0], step)]
    finally:
        model.train(was_training)
    return torch.cat(outs)


def _check_model(model: object) -> None:
    if not isinstance(model, nn.Module):
        raise UsageError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        if tensor.is_meta:
            raise UsageError(f"model tensor {name!r} is on the meta device (a shape without values); load or "
                             f"initialise the weights before predicting")


def _in_model_dtype(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The float32 rows in the model's floating dtype (a ``model.double()`` reads float64 rows)."""
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), x.dtype)
    return x if dtype == x.dtype else x.to(dtype)


def _aligned_passes(model: nn.Module, x: torch.Tensor, block: int, first_row: int, device: torch.device):
    """Each row at place ``(first_row + i) % block`` of a pass of exactly ``block`` rows."""
    n, i = x.shape[0], 0
    while i < n:
        at = (first_row + i) % block
        m = min(block - at, n - i)
        if at == 0 and m == block:
            rows = x[i : i + m].to(device)
        else:
            rows = x.new_zeros(block, *x.shape[1:])
            rows[at : at + m] = x[i : i + m]
            rows = rows.to(device)
        yield model(rows)[at : at + m].float().cpu()
        i += m


@torch.no_grad()
def padded_pass(model: nn.Module, x: Any, *, multiple: int) -> torch.Tensor:
    """Outputs of ``model`` for a few rows of ``x`` in one pass, padded with zero rows to a
    multiple of ``multiple`` rows (rows first), as a CPU tensor.

    A pass of one row takes another kernel than a pass of many (a matrix-vector product,
    summing in another order): on an AVX2 AMD EPYC, 65 of 3,000 one-row answers differed from
    the aligned 1,024-row passes by more than 1e-6 relative. Passes of 8 rows gave the same
    answers as those passes, at a 1,024-row pass's cost divided by about 20.

    The pass runs on one intra-op thread (the previous count is put back after, as ``fit``
    does): on the same 2-core machine, busy with other work, an 8-row pass of a 26-256-256-1
    network took 0.1 ms on one thread and 0.4 to 6 ms on two (the threads' hand-off costs more
    than the work).
    """
    multiple = check_positive_int("multiple", multiple)
    if isinstance(x, np.ndarray) and x.dtype == np.float32 and x.ndim == 2 and len(x):
        out = _plain_pass(model, x, multiple)  # encoded rows through a plain MLP (eval_pass): the quick way
        if out is not None:
            return out
    _check_model(model)
    if isinstance(x, np.ndarray) and x.dtype == np.float32 and x.ndim == 2 and len(x):
        xt = _in_model_dtype(model, _padded_array(model, x, multiple))  # encoded rows: padded in numpy
        n = len(x)
    else:
        xt = _in_model_dtype(model, as_feature_tensor(model, x))
        n = xt.shape[0]
        size = -(-n // multiple) * multiple
        if size != n:
            padded = xt.new_zeros(size, xt.shape[1])
            padded[:n] = xt
            xt = padded
    param = next(model.parameters(), None)
    if param is not None and param.device.type != "cpu":
        xt = xt.to(param.device)
    with _one_thread(xt.device.type == "cpu"):
        was_training = model.training
        try:
            if was_training:  # a loaded model is in eval mode: no switching back and forth
                model.eval()
            return model(xt)[:n].float().cpu()
        finally:
            if was_training:
                model.train(True)


@contextlib.contextmanager
def _one_thread(cpu: bool):
    """One intra-op thread for the block (see ``padded_pass``), the previous count put back after."""
    previous = torch.get_num_threads()
    if previous > 1 and cpu:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if torch.get_num_threads() != previous:
            torch.set_num_threads(previous)


def _plain_pass(model: nn.Module, x: np.ndarray, multiple: int) -> torch.Tensor | None:
    """``padded_pass`` of float32 rows through a plain sequential network in eval mode
    (``eval_pass``: the same operators without the modules' per-call work); None where it does
    not apply (a float64 or GPU network, say), and the general path runs."""
    xt = _padded_array(model, x, multiple)
    try:
        with _one_thread(True):
            out = eval_pass(model, xt)
    except Exception:
        _check_model(model)  # a meta weight, say: worded as the general path words it
        raise
    return None if out is None else out[: len(x)].float()


def _padded_array(model: nn.Module, x: np.ndarray, multiple: int) -> torch.Tensor:
    """``x`` (float32 rows) with zero rows after it up to a multiple of ``multiple``, as a tensor;
    the checks of ``as_feature_tensor`` (finite values, the model's width) done on the array."""
    if not np.isfinite(x).all():
        as_feature_tensor(model, x)  # words the error
    check_input_width(model, x.shape[1])
    size = -(-len(x) // multiple) * multiple
    padded = np.zeros((size, x.shape[1]), dtype=np.float32)
    padded[: len(x)] = x
    return torch.from_numpy(padded)


class MemberColumns(nn.Module):
    """A shared-weight ensemble (``spec.TabMini``) with its members side by side:
    ``(B, in)`` -> ``(B, K * out)``, member 0's outputs first; ``predict`` and its aligned passes
    then give every member's answers for the spread."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.train(net.training)  # predict puts back the mode it found: the network's own

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.net.member_outputs(x)  # (K, B, out)
        return z.permute(1, 0, 2).reshape(x.shape[0], -1)
