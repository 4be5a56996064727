"""ModelSpec: a feed-forward network's architecture as data, and ``build()`` to make it.

A spec is what lets a model be saved as JSON + safetensors and loaded again without
running any code from the file: the JSON names the layers, torchann builds them.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import asdict, dataclass, fields
from typing import Any, Sequence

from torch import nn

from ..core.choices import Activation, Norm, parse
from .dropout import Dropout
from ..core.errors import SpecError

__all__ = ["ModelSpec", "MLP", "mlp", "MAX_PARAMETERS", "MAX_HIDDEN_LAYERS"]

# A spec asking for more parameters than this is refused before anything is allocated:
# 2**31 float32 parameters is 8 GiB, past what a feed-forward net on tabular data needs,
# and past what a downloaded spec.json should be allowed to make this machine allocate.
MAX_PARAMETERS = 2**31
# Likewise for depth: each layer is a Python module, so a list of a million widths of 1 would
# take minutes to build while staying under the parameter limit.
MAX_HIDDEN_LAYERS = 1000


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

    def __post_init__(self) -> None:
        # Validate first, compute after: every field is checked before build() allocates.
        object.__setattr__(self, "hidden", _as_sizes(self.hidden))
        for name in ("in_features", "out_features"):
            _check_size(name, getattr(self, name))
        object.__setattr__(self, "activation", _parse(Activation, self.activation, "activation"))
        object.__setattr__(
            self, "output_activation", _parse(Activation, self.output_activation, "output_activation")
        )
        object.__setattr__(self, "norm", _parse(Norm, self.norm, "norm"))
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, (int, float)):
            raise SpecError(f"dropout must be a number in [0, 1), got {self.dropout!r}")
        if not 0.0 <= float(self.dropout) < 1.0:
            raise SpecError(f"dropout must be in [0, 1), got {self.dropout!r}; use 0 to disable it")
        object.__setattr__(self, "dropout", float(self.dropout))
        if not isinstance(self.bias, bool):
            raise SpecError(f"bias must be true or false, got {self.bias!r}")
        if self.num_parameters() > MAX_PARAMETERS:
            raise SpecError(
                f"the spec describes {self.num_parameters():,} parameters, more than the limit of "
                f"{MAX_PARAMETERS:,}; use smaller layer sizes"
            )

    @property
    def sizes(self) -> tuple[int, ...]:
        """All layer widths, input to output."""
        return (self.in_features, *self.hidden, self.out_features)

    def num_parameters(self) -> int:
        """Trainable parameters of the built network, computed from the sizes alone."""
        total = 0
        for n_in, n_out in zip(self.sizes, self.sizes[1:]):
            total += n_in * n_out + (n_out if self.bias else 0)
        if self.norm is not Norm.NONE:
            total += 2 * sum(self.hidden)
        return total

    def build(self) -> "MLP":
        """A freshly initialised ``nn.Sequential`` with readable layer names."""
        return MLP(self)

    # -- JSON -------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("activation", "output_activation", "norm"):
            data[key] = str(data[key].value if hasattr(data[key], "value") else data[key])
        data["hidden"] = list(self.hidden)
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
        layers: "OrderedDict[str, nn.Module]" = OrderedDict()
        for i, (n_in, n_out) in enumerate(zip(spec.sizes[:-1], spec.hidden), start=1):
            layers[f"linear{i}"] = nn.Linear(n_in, n_out, bias=spec.bias)
            if spec.norm is Norm.BATCH:
                layers[f"norm{i}"] = nn.BatchNorm1d(n_out)
            elif spec.norm is Norm.LAYER:
                layers[f"norm{i}"] = nn.LayerNorm(n_out)
            layers[f"act{i}"] = _activation_module(spec.activation)
            if spec.dropout > 0:
                layers[f"dropout{i}"] = Dropout(spec.dropout)
        layers["output"] = nn.Linear(spec.sizes[-2], spec.out_features, bias=spec.bias)
        if spec.output_activation is not Activation.IDENTITY:
            layers["output_act"] = _activation_module(spec.output_activation)
        super().__init__(layers)
        self.spec = spec

    def extra_repr(self) -> str:
        return "sizes=" + "-".join(map(str, self.spec.sizes)) + f", activation={self.spec.activation.value}"


def _check_size(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(f"{name} must be a positive integer, got {value!r}")
    if value < 1:
        raise SpecError(f"{name} must be a positive integer, got {value}")


def _as_sizes(hidden: Any) -> tuple[int, ...]:
    if isinstance(hidden, int) and not isinstance(hidden, bool):
        hidden = (hidden,)
    if isinstance(hidden, str) or not isinstance(hidden, (list, tuple)):
        raise SpecError(f"hidden must be a list of positive integers such as [8, 8], got {hidden!r}")
    if len(hidden) > MAX_HIDDEN_LAYERS:
        raise SpecError(
            f"hidden lists {len(hidden):,} layers, more than the limit of {MAX_HIDDEN_LAYERS:,}; use fewer layers"
        )
    for i, size in enumerate(hidden):
        _check_size(f"hidden[{i}]", size)
    return tuple(hidden)


def _parse(kind, value, name):
    try:
        return parse(kind, value, name=name)
    except Exception as err:  # UsageError -> SpecError: the spec is where it came from
        raise SpecError(str(err)) from None
