"""Dropout whose mask costs a quarter of the random numbers.

``nn.Dropout`` draws one random number per element (``bernoulli_``). On a CPU that draw is
the expensive part: for a 512x256 activation it takes longer than the 256x256 linear layer
before it (measured: docs/benchmarks.md, "Dropout"). Here one 64-bit random integer gives
four 16-bit draws, and an element is kept when its draw is at least ``round(p * 65536)``.
The drop probability is therefore ``p`` rounded to a multiple of 1/65536, and kept elements
are scaled by the inverse of the exact keep probability, so the expected output equals the
input as with ``nn.Dropout``. Masks come from torch's global generator: ``torch.manual_seed``
makes them repeat.

``Dropout`` is an ``nn.Dropout`` (same ``p``, same repr, no parameters, identity in eval
mode); ``dropout_mask`` is the mask itself, which ``steps.MLPStep`` uses so that its step
drops the same elements as the module would.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["Dropout", "dropout_mask"]

_DRAWS = 65536  # values of one 16-bit draw


def dropout_mask(shape: tuple[int, ...] | torch.Size, p: float, *, dtype: torch.dtype = torch.float32,
                 device: torch.device | str = "cpu") -> torch.Tensor:
    """A tensor of ``shape`` holding 0 (dropped, probability ``p``) or the keep scale."""
    n = 1
    for size in shape:
        n *= int(size)
    drop = min(round(p * _DRAWS), _DRAWS - 1)  # draws below this are dropped
    words = torch.randint(-(2**63), 2**63 - 1, ((n + 3) // 4,), dtype=torch.int64, device=device)
    draws = words.view(torch.int16)[:n].view(shape)  # signed: [-32768, 32767]
    # draw + 32768 >= drop, as 0/1 in float without a bool tensor (converting int16 is cheaper)
    mask = draws.to(torch.float32).sub_(drop - _DRAWS // 2 - 1).clamp_(0.0, 1.0)
    mask.mul_(_DRAWS / (_DRAWS - drop))
    return mask if dtype == torch.float32 else mask.to(dtype)


class Dropout(nn.Dropout):
    """``nn.Dropout`` with the cheaper mask of ``dropout_mask``; the identity in eval mode."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return input
        if self.p >= 1.0:
            return input * 0.0
        mask = dropout_mask(input.shape, self.p, dtype=input.dtype, device=input.device)
        return input.mul_(mask) if self.inplace else input * mask
