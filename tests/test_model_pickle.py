"""A model built from a spec pickles by reference to ``torchann.network.spec.MLP``, like any torch module."""

from __future__ import annotations

import pickle

import torch

import torchann
from torchann.network.spec import MLP


def test_a_built_model_pickles_and_comes_back_equal():
    model = torchann.mlp(3, [5, 4], 2, norm="batch", dropout=0.1)
    data = pickle.dumps(model)
    assert b"torchann.network.spec" in data and b"MLP" in data  # named by reference, not by value
    back = pickle.loads(data)
    assert type(back) is MLP and back.spec == model.spec
    for (name, a), b in zip(model.state_dict().items(), back.state_dict().values()):
        assert torch.equal(a, b), name
    x = torch.randn(6, 3)
    model.eval(), back.eval()
    assert torch.equal(model(x), back(x))
