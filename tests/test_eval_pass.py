"""``network.eval_pass``: a sequential network's layers called as the functional operators their
eval-mode ``forward`` calls. The oracle is ``module(x)`` itself: the answers must be equal bit for
bit, for every layer kind ``MLP`` builds; what it does not know, it calls as a module."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import torchann
from torchann.network.eval_pass import eval_pass, takes
from torchann.network.predict import padded_pass


def _trained_like(net: nn.Module) -> nn.Module:
    """Running statistics and weights that are not the initial ones (a batch norm at its
    initial statistics would hide a wrong eval formula)."""
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=gen))
        for m in net.modules():
            if isinstance(m, nn.BatchNorm1d):
                m.running_mean.normal_(0, 1, generator=gen)
                m.running_var.uniform_(0.5, 2.0, generator=gen)
    return net.eval()


@pytest.mark.parametrize("options", [
    dict(),
    dict(activation="gelu", dropout=0.2),
    dict(activation="tanh", norm="batch"),
    dict(activation="leaky_relu", norm="layer", dropout=0.1),
    dict(activation="sigmoid", output_activation="sigmoid"),
])
def test_eval_pass_equals_the_modules_bit_for_bit(options):
    torch.manual_seed(0)
    net = _trained_like(torchann.mlp(7, [32, 16], 3, **options))
    x = torch.randn(40, 7)
    with torch.no_grad():
        expected = net(x)
        got = eval_pass(net, x)
    assert got is not None and torch.equal(got, expected)


def test_eval_pass_calls_what_it_does_not_know_and_sees_every_change():
    torch.manual_seed(0)
    net = torchann.mlp(4, [8], 2).eval()
    x = torch.randn(5, 4)
    calls = []
    net.linear1.register_forward_hook(lambda m, i, o: calls.append("hook"))  # a hooked layer runs as a module
    with torch.no_grad():
        assert torch.equal(eval_pass(net, x), net(x))
        assert calls == ["hook", "hook"]
        net.act1 = nn.Softplus()  # a layer it has no step for, swapped in after the first call
        assert torch.equal(eval_pass(net, x), net(x))
        net.output.weight = nn.Parameter(torch.ones(2, 8))  # a replaced weight is read at the call
        assert torch.equal(eval_pass(net, x), net(x))


def test_eval_pass_declines_what_it_cannot_run_as_the_module_would():
    net = torchann.mlp(4, [8], 2)
    assert not takes(net)  # training mode: dropout and batch statistics would differ
    assert eval_pass(net.eval(), torch.randn(3, 4).double()) is None  # the rows' dtype is not the weights'
    assert eval_pass(net.double().eval(), torch.randn(3, 4)) is None
    ensemble = torchann.mlp(4, [8], 1, ensemble=3).eval()
    assert not takes(ensemble)  # not a plain sequential network


def test_padded_pass_gives_the_modules_answer_on_every_path():
    torch.manual_seed(0)
    net = _trained_like(torchann.mlp(6, [16, 16], 1, norm="batch"))
    x = np.random.default_rng(0).normal(size=(5, 6)).astype(np.float32)
    with torch.no_grad():
        padded = torch.zeros(8, 6)
        padded[:5] = torch.from_numpy(x)
        expected = net(padded)[:5]
    assert torch.equal(padded_pass(net, x, multiple=8), expected)  # the quick way
    assert torch.equal(padded_pass(net, x.tolist(), multiple=8), expected)  # the general path
    net.train()
    assert torch.equal(padded_pass(net, x, multiple=8), expected)  # switched to eval for the pass
    assert net.training


def test_padded_pass_words_a_meta_weight_as_before():
    net = torchann.mlp(3, [4], 1).eval()
    net.linear1.weight = nn.Parameter(torch.empty(4, 3, device="meta"))
    with pytest.raises(torchann.TorchannError, match="meta device"):
        padded_pass(net, np.zeros((2, 3), dtype=np.float32), multiple=8)


@pytest.mark.parametrize("combine,out", [("mean", 1), ("proba", 1), ("proba", 3)])
def test_eval_pass_of_an_ensemble_equals_its_forward_bit_for_bit(combine, out):
    from torchann.network.members import joined

    torch.manual_seed(0)
    nets = [_trained_like(torchann.mlp(6, [16, 8], out, dropout=0.1)) for _ in range(3)]
    ensemble = joined(nets, combine, weights=[0.5, 0.3, 0.2])
    x = torch.randn(16, 6)
    with torch.no_grad():
        expected = ensemble(x)
        got = eval_pass(ensemble, x)
    assert takes(ensemble) and got is not None and torch.equal(got, expected)
    ensemble.members[1].register_forward_hook(lambda m, i, o: None)  # a hooked member: the modules' way
    assert not takes(ensemble)
    ensemble.train()
    assert not takes(ensemble)
