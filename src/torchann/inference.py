"""predict(): a trained model's outputs for new rows, in eval mode and without gradients."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .data_tensors import as_feature_tensor

__all__ = ["predict"]


@torch.no_grad()
def predict(model: nn.Module, x: Any, *, batch_size: int | None = None, pad_to: int | None = None) -> torch.Tensor:
    """Outputs of ``model`` for the rows of ``x``, as a CPU tensor.

    Runs on the model's own device in eval mode (dropout off, batch norm on its running
    statistics) and puts the model back in the mode it was in.

    Args:
        x: rows x features (tensor, array or nested lists).
        batch_size: rows per forward pass; ``None`` sends all rows at once.
        pad_to: pad each forward pass with zero rows up to a multiple of this many rows. The CPU's
            matrix kernels compute the rows of a ragged last tile in another order, so a row's
            float32 answer could change in its last bits with the number of rows sent with it;
            padded passes give every row the same answer in any chunk (scoring a file in chunks
            equals scoring it whole).

    Shape:
        x: ``(N, in_features)`` -> ``(N, out_features)``
    """
    xt = as_feature_tensor(model, x)
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    step = batch_size or xt.shape[0]
    was_training = model.training
    model.eval()
    try:
        outs = [_forward(model, xt[i : i + step].to(device), pad_to) for i in range(0, xt.shape[0], step)]
    finally:
        model.train(was_training)
    return torch.cat(outs)


def _forward(model: nn.Module, x: torch.Tensor, pad_to: int | None) -> torch.Tensor:
    n = x.shape[0]
    padded = -(-n // pad_to) * pad_to if pad_to else n
    if padded != n:  # (n, F) -> (padded, F), answers for the first n rows kept
        x = torch.cat([x, x.new_zeros(padded - n, *x.shape[1:])])
    return model(x)[:n].float().cpu()
