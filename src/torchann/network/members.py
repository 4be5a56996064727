"""EnsembleSpec and Members: several MLPs on the same inputs that answer as one network.

A tuned model (``torchann.tune``) is often an ensemble of the best trials' networks. It is
saved like any model: one ``spec.json`` (this spec, each member's ``ModelSpec`` inside it),
one ``weights.safetensors`` (keys ``members.0.linear1.weight``, ...), one set of
preprocessing. Loading builds it from the JSON alone, as for a single MLP.

How members combine (``combine``):

* ``"mean"`` (regression): the weighted mean of the members' outputs, in the network's
  (scaled) units: ``sum_k w_k z_k``.
* ``"proba"`` (classification): the log of the weighted mean of the members' class
  probabilities, ``log(sum_k w_k softmax(z_k))`` (``sigmoid`` for one logit); a softmax of that
  gives the mean probabilities back, so everything that reads logits reads the ensemble too.

The weights are normalised to sum to 1; Caruana's greedy selection gives counts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, Sequence

import torch
from torch import nn

from ..core.errors import SpecError
from .spec import ModelSpec

__all__ = ["EnsembleSpec", "Members", "joined", "COMBINE", "MAX_MEMBERS"]

COMBINE = ("mean", "proba")
MAX_MEMBERS = 256  # a downloaded spec.json may not ask for a million members


@dataclass(frozen=True)
class EnsembleSpec(ModelSpec):
    """The architecture of an ensemble: its members' specs, their weights, how they combine.

    The fields inherited from ``ModelSpec`` are the first member's (so one-line views such as
    ``describe_spec`` still read); ``in_features`` and ``out_features`` are every member's.

    Example:
        >>> EnsembleSpec.of([ModelSpec(4, (8,), 1), ModelSpec(4, (16, 16), 1)], weights=[2, 1])
    """

    members: tuple[ModelSpec, ...] = ()  # each member network's architecture
    weights: tuple[float, ...] = ()  # each member's share of the answer, summing to 1
    combine: str = "mean"  # "mean" of outputs (regression) or "proba": mean of class probabilities

    @classmethod
    def of(cls, members: Sequence[ModelSpec], *, weights: Sequence[float] | None = None,
           combine: str = "mean") -> "EnsembleSpec":
        """An ensemble of ``members`` (equal weights unless given)."""
        members = tuple(members)
        if not members:
            raise SpecError("an ensemble needs at least one member")
        first = members[0]
        base = {f.name: getattr(first, f.name) for f in fields(ModelSpec) if f.name != "combine"}
        return cls(**base, members=members, weights=tuple(weights or [1.0] * len(members)), combine=combine)

    def __post_init__(self) -> None:
        members = tuple(m if isinstance(m, ModelSpec) else ModelSpec.from_dict(m, source=f"members[{i}]")
                        for i, m in enumerate(self.members))
        if not members:
            raise SpecError("an ensemble spec needs at least one member in 'members'")
        if len(members) > MAX_MEMBERS:
            raise SpecError(f"the ensemble lists {len(members):,} members, more than the limit of {MAX_MEMBERS}")
        for i, m in enumerate(members):
            if isinstance(m, EnsembleSpec):
                raise SpecError(f"members[{i}] is itself an ensemble; list its members instead")
            if (m.in_features, m.out_features) != (members[0].in_features, members[0].out_features):
                raise SpecError(f"members[{i}] maps {m.in_features} -> {m.out_features}, members[0] "
                                f"{members[0].in_features} -> {members[0].out_features}; members share inputs "
                                f"and outputs")
        object.__setattr__(self, "members", members)
        weights = tuple(self.weights)
        if len(weights) != len(members) or not all(
                isinstance(w, (int, float)) and not isinstance(w, bool) and math.isfinite(w) and w > 0
                for w in weights):
            raise SpecError(f"weights must be {len(members)} positive numbers, one per member, got {list(weights)!r}")
        total = float(sum(weights))
        object.__setattr__(self, "weights", tuple(float(w) / total for w in weights))
        if self.combine not in COMBINE:
            raise SpecError(f"combine must be one of {', '.join(COMBINE)}, got {self.combine!r}")
        if (self.in_features, self.out_features) != (members[0].in_features, members[0].out_features):
            raise SpecError("in_features and out_features must be the members'")
        super().__post_init__()

    def num_parameters(self) -> int:
        return sum(m.num_parameters() for m in self.members)

    def build(self) -> "Members":  # type: ignore[override]
        return Members(self)

    def to_dict(self) -> dict[str, Any]:
        data = ModelSpec.to_dict(ModelSpec(**{f.name: getattr(self, f.name) for f in fields(ModelSpec)}))
        data.update(members=[m.to_dict() for m in self.members], weights=list(self.weights), combine=self.combine)
        return data


def joined(networks: Sequence[nn.Module], combine: str, weights: Sequence[float] | None = None) -> "Members":
    """Trained networks, each built from its ``spec``, as one ``Members`` network holding copies
    of their weights (``weights``: their shares, equal unless given), in eval mode, on the first
    network's device."""
    spec = EnsembleSpec.of([net.spec for net in networks], weights=weights, combine=combine)
    ensemble = spec.build()
    with torch.no_grad():
        for member, net in zip(ensemble.members, networks):
            member.load_state_dict(net.state_dict())
    first = next(networks[0].parameters(), None)
    if first is not None:
        ensemble.to(first.device)
    return ensemble.eval()


class Members(nn.Module):
    """The ensemble's network: ``members`` (an ``nn.ModuleList`` of ``MLP``) combined in ``forward``.

    Shape:
        input ``(B, in_features)``; ``member_outputs`` ``(K, B, out_features)``; ``forward``
        ``(B, out_features)``.
    """

    def __init__(self, spec: EnsembleSpec) -> None:
        super().__init__()
        self.members = nn.ModuleList(m.build() for m in spec.members)  # an MLP, or a TabMini (ensemble > 1)
        # Not in the state dict: the weights are part of the spec, written once in spec.json.
        self.register_buffer("member_weights", torch.tensor(spec.weights, dtype=torch.float32), persistent=False)
        self.spec = spec

    def member_outputs(self, x: torch.Tensor) -> torch.Tensor:
        """Each member's raw outputs, stacked: ``(K, *x.shape[:-1], out_features)``."""
        return torch.stack([m(x) for m in self.members])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.combined(self.member_outputs(x))

    def combined(self, z: torch.Tensor) -> torch.Tensor:
        """The ensemble's outputs from its members' stacked outputs ``z`` (``member_outputs``)."""
        w = self.member_weights.to(z.dtype).view(-1, *([1] * (z.dim() - 1)))  # (K, 1, ..., 1): any input rank
        if self.spec.combine == "mean":
            return (z * w).sum(dim=0)
        if z.shape[-1] == 1:  # one logit per member: mean of sigmoid probabilities, back to a logit
            p = (torch.sigmoid(z) * w).sum(dim=0).clamp(1e-12, 1 - 1e-12)
            return torch.log(p) - torch.log1p(-p)
        return torch.logsumexp(torch.log_softmax(z, dim=-1) + torch.log(w), dim=0)  # log sum_k w_k p_k

    def extra_repr(self) -> str:
        weights = ", ".join(f"{w:.3g}" for w in self.spec.weights)
        return f"combine={self.spec.combine}, weights=[{weights}]"


def spec_from_dict(data: Any, *, source: str = "spec") -> ModelSpec:
    """The spec a stored dict describes: an ``EnsembleSpec`` when it lists ``members`` (what
    ``torchann.tune`` saves), else a plain ``ModelSpec``."""
    if isinstance(data, dict) and "members" in data:
        return EnsembleSpec.from_dict(data, source=source)
    return ModelSpec.from_dict(data, source=source)
