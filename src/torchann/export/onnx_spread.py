"""The members' spread as an ONNX output, for a model whose network is an ensemble.

An ensemble's network (``network.members.Members`` from ``torchann.tune``, or the shared-weight
``network.spec.TabMini`` of ``ensemble=K``) is exported with a second output, every member's
raw outputs ``(batch, K, out)`` (``WithMembers``). These steps turn it into what
``Model.predict(..., return_std=True)`` answers:

* regression: ``std(<target>)`` per target, the members' weighted standard deviation in the
  target's units (each member's outputs decoded as the answers are: ``* target_std +
  target_mean``, then ``expm1`` for a target learnt as ``log1p``);
* classes: ``disagreement``, the weight of the members whose class differs from the ensemble's.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from torch import nn

__all__ = ["WithMembers", "member_weights", "spread"]


class WithMembers(nn.Module):
    """``net``'s answer and every member's outputs: ``(B, in)`` -> ``((B, out), (B, K, out))``."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x):
        import torch

        if hasattr(self.net, "member_outputs"):
            each = self.net.member_outputs(x)
        else:
            each = torch.stack([m(x) for m in self.net.members])
        return self.net(x), each.permute(1, 0, 2)


def member_weights(network: Any) -> np.ndarray | None:
    """Each member's share of the answer, or None for a network without members."""
    if hasattr(network, "member_outputs"):
        k = network.spec.ensemble
        return np.full(k, 1.0 / k)
    if hasattr(network, "members") and hasattr(network, "member_weights"):
        return network.member_weights.detach().cpu().double().numpy()
    return None


def spread(g: Any, members: str, pre: Any, out_features: int, weights: np.ndarray) -> None:
    """Add the spread output(s) computed from ``members`` ``(batch, K, out)`` float32."""
    from onnx import helper

    from .onnx_ops import _double, _int64, from_log, probabilities_name

    wide = g.op("Cast", [members], "members64", to=_double())
    axis = g.const(np.array([1], dtype=np.int64), "member_axis")
    if pre.task.value == "regression":
        w = g.const(weights.reshape(1, -1, 1).astype(np.float64), "member_weights")
        values = g.op("Add", [g.op("Mul", [wide, g.const(np.asarray(pre.target_std, dtype=np.float64),
                                                             "target_std")], "member_times_std"),
                              g.const(np.asarray(pre.target_mean, dtype=np.float64), "target_mean")], "member_answers")
        if pre.target_log and any(pre.target_log):
            values = from_log(g, values, pre.target_log)
        mean = g.op("ReduceSum", [g.op("Mul", [values, w], "weighted"), axis], "member_mean", keepdims=1)
        dev = g.op("Sub", [values, mean], "member_deviation")
        var = g.op("ReduceSum", [g.op("Mul", [g.op("Mul", [dev, dev], "squared"), w], "weighted_squares"), axis],
                   "member_variance", keepdims=0)
        std = g.op("Sqrt", [g.op("Max", [var, g.const(np.array(0.0), "zero")], "variance")], "member_std")
        for k, name in enumerate(pre.target_names):
            out = f"std({name})"
            g.op("Gather", [std, g.const(np.array(k, dtype=np.int64), "target")], out=out, axis=1)
            g.outputs.append(helper.make_tensor_value_info(out, _double(), ["batch"]))
        return
    if out_features == 1:  # one logit per member: the second class where its sigmoid passes 1/2
        half = g.op("Greater", [wide, g.const(np.array(0.0), "zero")], "member_second")
        picked = g.op("Squeeze", [g.op("Cast", [half], "member_class1", to=_int64()),
                                  g.const(np.array([2], dtype=np.int64), "last")], "member_class")
    else:
        picked = g.op("ArgMax", [wide], "member_class", axis=2, keepdims=0)
    chosen = g.op("ArgMax", [probabilities_name(pre)], "ensemble_class", axis=1, keepdims=1)
    agree = g.op("Cast", [g.op("Equal", [picked, chosen], "member_agrees")], "member_agrees64", to=_double())
    share = g.op("ReduceSum", [g.op("Mul", [agree, g.const(weights.reshape(1, -1).astype(np.float64),
                                                           "member_shares")], "agreeing"), axis],
                 "agreement", keepdims=0)
    g.op("Sub", [g.const(np.array(1.0), "one"), share], out="disagreement")
    g.outputs.append(helper.make_tensor_value_info("disagreement", _double(), ["batch"]))
