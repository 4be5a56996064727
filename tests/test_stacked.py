"""``network.stacked``: an ensemble's members as one chain of stacked products. The oracle is the
ensemble's own ``forward`` (its members one by one): equal bit for bit, on every path, and seen
to follow every change to a member."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import torchann
from torchann.network import stacked
from torchann.network.eval_pass import eval_pass
from torchann.network.members import joined


def _ensemble(out: int = 1, combine: str = "mean", k: int = 4, **options) -> nn.Module:
    gen = torch.Generator().manual_seed(3)
    nets = [torchann.mlp(12, [64, 32], out, **options) for _ in range(k)]
    with torch.no_grad():
        for net in nets:
            for p in net.parameters():
                p.add_(0.2 * torch.randn(p.shape, generator=gen))
    return joined(nets, combine, weights=[1.0 + i for i in range(k)]).eval()


@pytest.mark.parametrize("combine,out,options", [
    ("mean", 1, {}),
    ("proba", 1, dict(activation="gelu", dropout=0.2)),
    ("proba", 5, dict(activation="leaky_relu")),
    ("mean", 2, dict(activation="tanh")),
    ("mean", 1, dict(periodic=(0, 3, 7))),  # a periodic embedding first: the first layers batched
    ("proba", 3, dict(periodic=(2,), dropout=0.1)),
])
@pytest.mark.parametrize("rows", [1, 8, 24, 1024])
def test_the_stack_answers_the_members_bit_for_bit(combine, out, options, rows):
    ensemble = _ensemble(out, combine, **options)
    x = torch.randn(rows, 12, generator=torch.Generator().manual_seed(rows))
    with torch.no_grad():
        expected = ensemble(x)
        first = eval_pass(ensemble, x)  # checked against the members one by one
        second = eval_pass(ensemble, x)  # from the stack alone
        z = stacked.stacked_pass(ensemble, x, lambda: None)
    assert torch.equal(first, expected) and torch.equal(second, expected)
    # Whether the kernels sum the stack as they sum each member depends on the CPU and the shape
    # (one row takes a matrix-vector kernel): the stack is used where it was equal, else declined.
    taken = stacked._STACKS[ensemble].checked[(rows, 12)]
    assert (z is not None) is taken
    if taken:
        assert z.shape == (4, rows, out) and torch.equal(z, ensemble.member_outputs(x))


def test_every_change_to_a_member_is_seen_by_the_next_pass():
    ensemble = _ensemble()
    x = torch.randn(8, 12, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(eval_pass(ensemble, x), ensemble(x))
        ensemble.members[2].linear2.weight.mul_(2.0)  # in place: the version moves
        assert torch.equal(eval_pass(ensemble, x), ensemble(x))
        ensemble.members[0].output.bias = nn.Parameter(torch.full((1,), 5.0))  # replaced
        assert torch.equal(eval_pass(ensemble, x), ensemble(x))
        ensemble.members[1].act1 = nn.Tanh()  # another activation in one member only: one by one
        assert stacked.stacked_pass(ensemble, x, lambda: None) is None
        assert torch.equal(eval_pass(ensemble, x), ensemble(x))
        ensemble.members[1].act1 = nn.ReLU()
        calls = []
        ensemble.members[3].linear1.register_forward_hook(lambda m, i, o: calls.append(1))
        assert stacked.stacked_pass(ensemble, x, lambda: None) is None  # a hooked layer runs as a module
        assert torch.equal(eval_pass(ensemble, x), ensemble(x)) and calls == [1, 1]


def test_a_stack_that_differs_from_the_members_is_never_used(monkeypatch):
    ensemble = _ensemble()
    x = torch.randn(8, 12, generator=torch.Generator().manual_seed(0))
    real = stacked._run
    monkeypatch.setattr(stacked, "_run", lambda stack, h, k: real(stack, h, k) + 1e-7)  # a kernel summing otherwise
    with torch.no_grad():
        expected = ensemble(x)
        assert torch.equal(eval_pass(ensemble, x), expected)
        assert stacked._STACKS[ensemble].checked[(8, 12)] is False
        assert stacked.stacked_pass(ensemble, x, lambda: None) is None  # declined for that shape from then on
        assert torch.equal(eval_pass(ensemble, x), expected)


def test_members_of_other_shapes_or_layers_run_one_by_one():
    nets = [torchann.mlp(6, [16], 1), torchann.mlp(6, [8], 1)]
    mixed = joined(nets, "mean").eval()
    x = torch.randn(8, 6)
    with torch.no_grad():
        assert stacked.stacked_pass(mixed, x, lambda: None) is None
        assert torch.equal(eval_pass(mixed, x), mixed(x))
        normed = joined([torchann.mlp(6, [16], 1, norm="batch") for _ in range(2)], "mean").eval()
        assert stacked.stacked_pass(normed, x, lambda: None) is None
        assert torch.equal(eval_pass(normed, x), normed(x))
        assert stacked.stacked_pass(_ensemble(), x.double(), lambda: None) is None  # rows of another dtype
