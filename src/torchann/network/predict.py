"""predict(): a trained model's outputs for new rows, in eval mode and without gradients."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..data.tensors import as_feature_tensor

__all__ = ["predict"]


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
    xt = as_feature_tensor(model, x)
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
