"""torchann's Dropout: nn.Dropout's contract (drop rate, scale, eval identity) with a cheaper mask."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import torchann
from torchann.network.dropout import Dropout, dropout_mask


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_drop_rate_and_scale_are_those_of_nn_dropout(p):
    torch.manual_seed(0)
    n = 400_000
    mask = dropout_mask((n,), p)
    dropped = float((mask == 0).double().mean())
    # A binomial(n, p) count: 5 standard deviations is far outside any seed's luck.
    assert abs(dropped - p) < 5 * math.sqrt(p * (1 - p) / n)
    drop = round(p * 65536)
    values = mask.unique().tolist()
    assert values[0] == 0.0 and values[1:] == [pytest.approx(65536 / (65536 - drop), rel=1e-7)]
    # Unbiased: E[mask] = 1 (the kept share times the scale), as nn.Dropout's.
    assert float(mask.double().mean()) == pytest.approx(1.0, abs=5 * math.sqrt(p / (1 - p) / n))


def test_draws_are_uniform_over_all_four_16_bit_lanes():
    # Each 64-bit word gives four draws; a lane with a stuck bit would drop too many or too few.
    torch.manual_seed(0)
    mask = dropout_mask((4 * 100_000,), 0.5).view(-1, 4)
    for lane in range(4):
        assert float((mask[:, lane] == 0).double().mean()) == pytest.approx(0.5, abs=5 * 0.5 / math.sqrt(100_000))


def test_module_is_an_nn_dropout_identity_in_eval_and_repeats_under_a_seed():
    layer = Dropout(0.25)
    assert isinstance(layer, nn.Dropout) and repr(layer) == repr(nn.Dropout(0.25))
    x = torch.randn(64, 32)
    assert layer.eval()(x) is x
    layer.train()
    torch.manual_seed(3)
    a = layer(x)
    torch.manual_seed(3)
    b = layer(x)
    assert torch.equal(a, b)
    kept = a != 0
    torch.testing.assert_close(a[kept], x[kept] * (65536 / (65536 - round(0.25 * 65536))))


def test_gradient_is_the_mask():
    torch.manual_seed(0)
    x = torch.randn(50, 20, requires_grad=True)
    layer = Dropout(0.3)
    torch.manual_seed(7)
    layer(x).sum().backward()
    torch.manual_seed(7)
    assert torch.equal(x.grad, dropout_mask(x.shape, 0.3))


def test_bf16_input_gives_bf16_output_with_the_same_mask():
    x = torch.randn(16, 8)
    torch.manual_seed(1)
    a = Dropout(0.5)(x.to(torch.bfloat16))
    torch.manual_seed(1)
    b = Dropout(0.5)(x)
    assert a.dtype == torch.bfloat16
    assert torch.equal(a == 0, b == 0)


def test_mlp_uses_it_and_loads_the_same_state_dict():
    net = torchann.mlp(4, [8, 8], 1, dropout=0.1)
    assert [type(m) for m in net if isinstance(m, nn.Dropout)] == [Dropout, Dropout]
    assert [k for k in net.state_dict()] == ["linear1.weight", "linear1.bias", "linear2.weight", "linear2.bias",
                                             "output.weight", "output.bias"]
