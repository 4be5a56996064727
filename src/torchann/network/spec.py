"""ModelSpec: a feed-forward network's architecture as data, and ``build()`` to make it.

A spec is what lets a model be saved as JSON + safetensors and loaded again without
running any code from the file: the JSON names the layers, torchann builds them.
"""

from __future__ import annotations

import json
import math
import numbers
from collections import OrderedDict
from dataclasses import asdict, dataclass, fields
from typing import Any, Sequence

import torch
from torch import nn

from ..core.checks import as_integer
from ..core.choices import Activation, Norm, parse
from .dropout import Dropout
from .periodic import PeriodicEmbedding
from ..core.errors import SpecError

__all__ = ["ModelSpec", "MLP", "TabMini", "mlp", "MAX_PARAMETERS", "MAX_HIDDEN_LAYERS", "MAX_ENSEMBLE"]

# A spec asking for more parameters than this is refused before anything is allocated:
# 2**31 float32 parameters is 8 GiB, past what a feed-forward net on tabular data needs,
# and past what a downloaded spec.json should be allowed to make this machine allocate.
MAX_PARAMETERS = 2**31
# Likewise for depth: each layer is a Python module, so a list of a million widths of 1 would
# take minutes to build while staying under the parameter limit.
MAX_HIDDEN_LAYERS = 1000
MAX_ENSEMBLE = 256  # members of one shared-weight ensemble
MAX_PERIODIC = 1024  # frequencies or embedding size of one periodic embedding


@dataclass(frozen=True)
class ModelSpec:
    """The architecture of a multi-layer perceptron.

    Example:
        >>> ModelSpec(2, (8,), 1).build()      # the tutorial's 2-8-1 ReLU net
    """

    in_features: int  # width of one input row
    hidden: tuple[int, ...]  # width of each hidden layer, first to last; () is a linear model
    out_features: int  # width of the output (1 for regression, n classes for classification)
    activation: Activation = Activation.RELU  # non-linearity after each hidden layer
    dropout: float = 0.0  # dropout probability after each hidden activation; 0 disables
    norm: Norm = Norm.NONE  # normalisation after each hidden linear layer
    bias: bool = True  # whether linear layers have a bias
    output_activation: Activation = Activation.IDENTITY  # usually identity: losses take logits
    ensemble: int = 1  # members sharing the hidden layers (TabM-mini, ``TabMini``); 1 is one network
    ensemble_combine: str = "mean"  # how members answer as one: "mean" of outputs, "proba": of class probabilities
    periodic: tuple[int, ...] = ()  # inputs given a periodic embedding (``periodic.PeriodicEmbedding``); () none
    periodic_frequencies: int = 16  # frequencies per embedded input
    periodic_dim: int = 16  # size of each embedded input's vector
    periodic_sigma: float = 0.1  # standard deviation of the initial frequencies

    def __post_init__(self) -> None:
        # Validate first, compute after: every field is checked before build() allocates.
        object.__setattr__(self, "hidden", _as_sizes(self.hidden))
        for name in ("in_features", "out_features"):  # numpy integers become plain ints (JSON)
            object.__setattr__(self, name, _check_size(name, getattr(self, name)))
        object.__setattr__(self, "activation", _parse(Activation, self.activation, "activation"))
        object.__setattr__(
            self, "output_activation", _parse(Activation, self.output_activation, "output_activation")
        )
        object.__setattr__(self, "norm", _parse(Norm, self.norm, "norm"))
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, numbers.Real):
            raise SpecError(f"dropout must be a number in [0, 1), got {self.dropout!r}")
        if not 0.0 <= float(self.dropout) < 1.0:
            raise SpecError(f"dropout must be in [0, 1), got {self.dropout!r}; use 0 to disable it")
        object.__setattr__(self, "dropout", float(self.dropout))
        if type(self.bias).__module__ == "numpy" and type(self.bias).__name__ in ("bool", "bool_"):  # numpy bool
            object.__setattr__(self, "bias", bool(self.bias))
        if not isinstance(self.bias, bool):
            raise SpecError(f"bias must be true or false, got {self.bias!r}")
        _check_size("ensemble", self.ensemble)
        if self.ensemble > MAX_ENSEMBLE:
            raise SpecError(f"ensemble asks for {self.ensemble} members, more than the limit of {MAX_ENSEMBLE}")
        if self.ensemble > 1 and (not self.hidden or self.output_activation is not Activation.IDENTITY
                                  or self.norm is Norm.BATCH):
            raise SpecError("an ensemble (ensemble > 1) needs at least one hidden layer, an identity output and "
                            "no batch norm (layer norm works)")
        if self.ensemble_combine not in ("mean", "proba"):
            raise SpecError(f"ensemble_combine must be mean or proba, got {self.ensemble_combine!r}")
        self._check_periodic()
        if self.num_parameters() > MAX_PARAMETERS:
            raise SpecError(
                f"the spec describes {self.num_parameters():,} parameters, more than the limit of "
                f"{MAX_PARAMETERS:,}; use smaller layer sizes"
            )

    def _check_periodic(self) -> None:
        given = self.periodic
        if isinstance(given, (str, bytes)) or not isinstance(given, (list, tuple, range)):
            raise SpecError(f"periodic must be a list of input indexes such as [0, 3], got {given!r}")
        columns = tuple(as_integer(c) for c in given)
        if any(c is None or c < 0 or c >= self.in_features for c in columns):
            raise SpecError(f"periodic lists {list(given)!r}: each must be an input index from 0 to "
                            f"{self.in_features - 1}")
        if list(columns) != sorted(set(columns)):
            raise SpecError(f"periodic lists {list(columns)!r}: the indexes must be increasing, each once")
        object.__setattr__(self, "periodic", columns)
        for name in ("periodic_frequencies", "periodic_dim"):
            _check_size(name, getattr(self, name))
            if getattr(self, name) > MAX_PERIODIC:
                raise SpecError(f"{name} is {getattr(self, name)}, more than the limit of {MAX_PERIODIC}")
        sigma = self.periodic_sigma
        if isinstance(sigma, bool) or not isinstance(sigma, numbers.Real) or not 0 < float(sigma) < math.inf:
            raise SpecError(f"periodic_sigma must be a positive number, got {sigma!r}")
        object.__setattr__(self, "periodic_sigma", float(sigma))
        if self.periodic and self.norm is Norm.BATCH and self.ensemble > 1:
            raise SpecError("periodic embeddings and batch norm do not go with an ensemble (ensemble > 1)")

    @property
    def sizes(self) -> tuple[int, ...]:
        """All layer widths, input to output."""
        return (self.in_features, *self.hidden, self.out_features)

    @property
    def trunk_in(self) -> int:
        """What the first hidden layer reads: the inputs, and each periodic embedding after them."""
        return self.in_features + len(self.periodic) * self.periodic_dim

    def num_parameters(self) -> int:
        """Trainable parameters of the built network, computed from the sizes alone."""
        total = 0
        sizes = (self.trunk_in, *self.sizes[1:])
        for n_in, n_out in zip(sizes, sizes[1:]):
            total += n_in * n_out + (n_out if self.bias else 0)
        n, k, d = len(self.periodic), self.periodic_frequencies, self.periodic_dim
        total += n * (k + 2 * k * d + d)
        if self.norm is not Norm.NONE:
            total += 2 * sum(self.hidden)
        if self.ensemble > 1:  # an input scale per member, and each member's own output layer
            total += self.ensemble * self.trunk_in
            total += (self.ensemble - 1) * (self.sizes[-2] * self.out_features + (self.out_features if self.bias else 0))
        return total

    def build(self) -> "MLP | TabMini":
        """A freshly initialised ``nn.Sequential`` with readable layer names (``TabMini`` for an ensemble)."""
        return TabMini(self) if self.ensemble > 1 else MLP(self)

    # -- JSON -------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("activation", "output_activation", "norm"):
            data[key] = str(data[key].value if hasattr(data[key], "value") else data[key])
        data["hidden"] = list(self.hidden)
        if self.ensemble == 1:  # a single network's spec.json reads as it did before ensembles
            data.pop("ensemble")
            data.pop("ensemble_combine")
        if not self.periodic:  # a spec without embeddings reads as it did before them
            for key in ("periodic", "periodic_frequencies", "periodic_dim", "periodic_sigma"):
                data.pop(key)
        else:
            data["periodic"] = list(self.periodic)
        return data

    def to_json(self, *, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "spec") -> "ModelSpec":
        if not isinstance(data, dict):
            raise SpecError(f"{source}: expected a JSON object with the model's sizes, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            shown = ", ".join(repr(u)[:40] if not u.isprintable() else u for u in unknown)  # no newline in the line
            raise SpecError(f"{source}: unknown field(s) {shown}; valid fields: {', '.join(sorted(known))}")
        missing = sorted(f for f in ("in_features", "hidden", "out_features") if f not in data)
        if missing:
            raise SpecError(f"{source}: missing field(s) {', '.join(missing)}")
        try:
            return cls(**data)
        except SpecError as err:
            raise SpecError(f"{source}: {err}") from None

    @classmethod
    def from_json(cls, text: str, *, source: str = "spec") -> "ModelSpec":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise SpecError(f"{source}: not valid JSON ({err.msg} at line {err.lineno}, column {err.colno})") from None
        except RecursionError:
            raise SpecError(f"{source}: JSON nested too deeply to be a model spec") from None
        return cls.from_dict(data, source=source)


def mlp(
    in_features: int,
    hidden: int | Sequence[int],
    out_features: int,
    **options: Any,
) -> "MLP":
    """Build a multi-layer perceptron: the short form of ``ModelSpec(...).build()``.

    Example:
        >>> model = torchann.mlp(2, [8], 1)                      # 2-8-1 ReLU
        >>> model = torchann.mlp(30, [64, 32], 2, dropout=0.1, norm="batch")
    """
    known = {f.name for f in fields(ModelSpec)} - {"in_features", "hidden", "out_features"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise SpecError(f"unknown option(s) {', '.join(unknown)} for mlp(); valid options: {', '.join(sorted(known))}")
    return ModelSpec(in_features, hidden, out_features, **options).build()


# -- the module ----------------------------------------------------------------------------

def _activation_module(kind: Activation) -> nn.Module:
    return {
        Activation.RELU: nn.ReLU,
        Activation.TANH: nn.Tanh,
        Activation.SIGMOID: nn.Sigmoid,
        Activation.GELU: nn.GELU,
        Activation.LEAKY_RELU: nn.LeakyReLU,
        Activation.IDENTITY: nn.Identity,
    }[kind]()


class MLP(nn.Sequential):
    """``nn.Sequential`` built from a ``ModelSpec``; the spec travels with the module.

    Layers are named ``linear1, norm1, act1, dropout1, ..., output``, so that
    ``activations(model, x, layers=["act1"])`` and state-dict keys read well. The class
    lives at module level, so a model pickles by reference like any torch module.
    """

    def __init__(self, spec: ModelSpec) -> None:
        layers = _hidden_layers(spec)
        if spec.periodic:
            layers = OrderedDict([("periodic", _periodic(spec)), *layers.items()])
        layers["output"] = nn.Linear(spec.hidden[-1] if spec.hidden else spec.trunk_in, spec.out_features,
                                     bias=spec.bias)
        if spec.output_activation is not Activation.IDENTITY:
            layers["output_act"] = _activation_module(spec.output_activation)
        super().__init__(layers)
        self.spec = spec

    def extra_repr(self) -> str:
        return "sizes=" + "-".join(map(str, self.spec.sizes)) + f", activation={self.spec.activation.value}"


def _periodic(spec: ModelSpec) -> PeriodicEmbedding:
    return PeriodicEmbedding(spec.periodic, spec.periodic_frequencies, spec.periodic_dim, spec.periodic_sigma)


def _hidden_layers(spec: ModelSpec) -> "OrderedDict[str, nn.Module]":
    layers: "OrderedDict[str, nn.Module]" = OrderedDict()
    for i, (n_in, n_out) in enumerate(zip((spec.trunk_in, *spec.hidden[:-1]), spec.hidden), start=1):
        layers[f"linear{i}"] = nn.Linear(n_in, n_out, bias=spec.bias)
        if spec.norm is Norm.BATCH:
            layers[f"norm{i}"] = nn.BatchNorm1d(n_out)
        elif spec.norm is Norm.LAYER:
            layers[f"norm{i}"] = nn.LayerNorm(n_out)
        layers[f"act{i}"] = _activation_module(spec.activation)
        if spec.dropout > 0:
            layers[f"dropout{i}"] = Dropout(spec.dropout)
    return layers


class TabMini(nn.Module):
    """``spec.ensemble`` members sharing one MLP's hidden layers: TabM-mini (Gorishniy, Kotelnikov,
    Babenko, ICLR 2025).

    Member ``k`` scales the input by its own vector ``r_k`` (initialised to random signs, as
    TabM-mini does), runs the shared hidden layers, and has its own output layer:
    ``z_k = W_k h(x * r_k) + b_k``. The members run as one batch: the shared layers see a
    ``(K, B, width)`` tensor and the output layers are one ``baddbmm``.

    In training mode ``forward`` gives every member's outputs ``(K, B, out)``; the training
    step takes the mean of the members' losses (``steps.AutogradStep``). In eval mode it gives
    the ensemble's answer ``(B, out)``: the mean of the outputs for regression (``combine``
    "mean"), the log of the mean class probabilities for classes ("proba"; a softmax or
    sigmoid of it gives the mean probabilities back), as ``members.Members`` combines.
    """

    trains_members = True  # training mode answers every member: the step takes the mean of their losses

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        k, width, out = spec.ensemble, spec.sizes[-2], spec.out_features
        self.periodic = _periodic(spec) if spec.periodic else None  # shared by the members, before the adapter
        signs = torch.randint(0, 2, (k, spec.trunk_in)).float() * 2 - 1
        self.adapter = nn.Parameter(signs)
        self.backbone = nn.Sequential(_hidden_layers(spec))
        bound = 1.0 / width**0.5  # nn.Linear's initialisation, per member
        self.head_weight = nn.Parameter(torch.empty(k, width, out).uniform_(-bound, bound))
        self.head_bias = nn.Parameter(torch.empty(k, 1, out).uniform_(-bound, bound)) if spec.bias else None
        self.spec = spec
        self.combine = spec.ensemble_combine

    def member_outputs(self, x: torch.Tensor) -> torch.Tensor:
        """Each member's outputs: ``(B, in)`` -> ``(K, B, out)`` (any leading shape for ``B``)."""
        k = self.adapter.shape[0]
        if self.periodic is not None:
            x = self.periodic(x)
        h = self.backbone(x.unsqueeze(0) * self.adapter.view(k, *([1] * (x.dim() - 1)), -1))
        flat = h.reshape(k, -1, h.shape[-1])
        z = torch.bmm(flat, self.head_weight) if self.head_bias is None else \
            torch.baddbmm(self.head_bias, flat, self.head_weight)
        return z.reshape(k, *x.shape[:-1], z.shape[-1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.member_outputs(x)
        if self.training:
            return z
        if self.combine == "mean":
            return z.mean(dim=0)
        if z.shape[-1] == 1:  # one logit: mean of the sigmoid probabilities, back to a logit
            p = torch.sigmoid(z).mean(dim=0).clamp(1e-7, 1 - 1e-7)
            return torch.log(p) - torch.log1p(-p)
        return torch.logsumexp(torch.log_softmax(z, dim=-1), dim=0) - math.log(z.shape[0])

    def extra_repr(self) -> str:
        return f"members={self.spec.ensemble}, combine={self.combine}"


def _check_size(name: str, value: Any) -> int:
    """A layer width as a plain int: ``operator.index`` accepts numpy integers; bools and floats are refused."""
    size = as_integer(value)
    if size is None:
        raise SpecError(f"{name} must be a positive integer, got {value!r}")
    if size < 1:
        raise SpecError(f"{name} must be a positive integer, got {size}")
    return size


def _as_sizes(hidden: Any) -> tuple[int, ...]:
    if as_integer(hidden) is not None:  # one width: 8, np.int64(8)
        hidden = (hidden,)
    elif type(hidden).__module__ == "numpy" and getattr(hidden, "ndim", None) == 1:  # np.array([8, 8])
        hidden = list(hidden)
    if isinstance(hidden, str) or not isinstance(hidden, (list, tuple, range)):
        raise SpecError(f"hidden must be a list of positive integers such as [8, 8], got {hidden!r}")
    if len(hidden) > MAX_HIDDEN_LAYERS:
        raise SpecError(
            f"hidden lists {len(hidden):,} layers, more than the limit of {MAX_HIDDEN_LAYERS:,}; use fewer layers"
        )
    return tuple(_check_size(f"hidden[{i}]", size) for i, size in enumerate(hidden))


def _parse(kind, value, name):
    try:
        return parse(kind, value, name=name)
    except Exception as err:  # UsageError -> SpecError: the spec is where it came from
        raise SpecError(str(err)) from None
