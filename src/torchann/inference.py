"""predict(): a trained model's outputs for new rows, in eval mode and without gradients."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .data_tensors import as_feature_tensor

__all__ = ["predict"]


@torch.no_grad()
def predict(model: nn.Module, x: Any, *, batch_size: int | None = None) -> torch.Tensor:
    """Outputs of ``model`` for the rows of ``x``, as a CPU tensor.

    Runs on the model's own device in eval mode (dropout off, batch norm on its running
    statistics) and puts the model back in the mode it was in.

    Args:
        x: rows x features (tensor, array or nested lists).
        batch_size: rows per forward pass; ``None`` sends all rows at once.

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
        outs = [model(xt[i : i + step].to(device)).float().cpu() for i in range(0, xt.shape[0], step)]
    finally:
        model.train(was_training)
    return torch.cat(outs)
