"""Periodic embeddings of numeric inputs: each number as a small learnt vector.

Gorishniy, Rubachev and Babenko, "On Embeddings for Numerical Features in Tabular Deep
Learning" (NeurIPS 2022), section 3.3, the "PLR" embedding: input ``j`` of the chosen ones,
a scaled number ``x_j``, becomes

    e_j = ReLU(W_j [cos(2 pi c_j x_j), sin(2 pi c_j x_j)] + b_j)

with ``c_j`` ``k`` learnt frequencies (initialised from ``N(0, sigma^2)``), ``W_j`` a
``(d, 2k)`` weight and ``b_j`` a bias, each input its own. The network reads the inputs as they
were and the embeddings after them: ``[x, e_1, ..., e_n]``, so the first hidden layer takes
``in_features + n * d`` values. A plain MLP must carve a number into intervals with its first
layer's kinks; the periodic features give it many narrow bumps to start from, which is what
a table of hours, days or prices asks for (docs/quality.md measures it).

The inputs' products run as one ``torch.bmm`` over the embedded inputs (``(n, B, 2k)`` by
``(n, 2k, d)``), so the cost per row is ``n * 2k * d`` multiply-adds, not a dense layer's.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

__all__ = ["PeriodicEmbedding", "embed"]


def embed(v: torch.Tensor, frequencies: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """The embeddings ``(n, B, d)`` of the values ``v`` ``(n, B, 1)``, input ``j`` by row ``j`` of
    ``frequencies`` ``(n, 1, k)``, ``weight`` ``(n, 2k, d)`` and ``bias`` ``(n, 1, d)``; the stacked
    ensemble pass calls it with every member's rows one above the other."""
    angle = (2 * math.pi) * v * frequencies  # (n, B, k)
    z = torch.cat([torch.cos(angle), torch.sin(angle)], dim=-1)  # (n, B, 2k)
    return torch.relu(torch.baddbmm(bias, z, weight))


class PeriodicEmbedding(nn.Module):
    """``(B, in_features)`` -> ``(B, in_features + len(columns) * dim)``: the inputs, then the
    periodic embedding of the inputs at ``columns`` (see the module doc).

    Args:
        columns: indexes of the inputs to embed (scaled numbers), increasing.
        frequencies: ``k``, frequencies per input.
        dim: ``d``, the size of each input's embedding.
        sigma: the standard deviation of the initial frequencies.
    """

    def __init__(self, columns: Sequence[int], frequencies: int, dim: int, sigma: float) -> None:
        super().__init__()
        n = len(columns)
        self.register_buffer("columns", torch.tensor(list(columns), dtype=torch.long), persistent=False)
        self.frequencies = nn.Parameter(torch.randn(n, 1, frequencies) * sigma)
        bound = 1.0 / math.sqrt(2 * frequencies)  # nn.Linear's initialisation, per input
        self.weight = nn.Parameter(torch.empty(n, 2 * frequencies, dim).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(n, 1, dim).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        flat = x.reshape(-1, x.shape[-1])
        v = flat.index_select(1, self.columns).t().unsqueeze(-1)  # (n, B, 1)
        e = embed(v, self.frequencies, self.weight, self.bias)  # (n, B, d)
        e = e.transpose(0, 1).reshape(flat.shape[0], -1)  # (B, n * d), input by input
        return torch.cat([flat, e], dim=1).reshape(*lead, -1)

    def extra_repr(self) -> str:
        n, _, k = self.frequencies.shape
        return f"inputs={n}, frequencies={k}, dim={self.weight.shape[-1]}"
