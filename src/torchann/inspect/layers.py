"""Look inside a network: layer outputs (``activations``), parameters, and ``summary``.

``activations`` replaces the tutorial's §2.3 trick of rewriting ``forward`` to return the
hidden layer: forward hooks record each named layer's output during one ordinary forward
pass and are removed afterwards, so the model's code and its output stay as they are.
``parameters_table`` is the tutorial's §2.1 ``print(layer.weight)`` loop as data.
``summary`` lives in ``model_summary.py`` and is re-exported here.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from ..core.errors import DataError, UsageError
from .summary import LayerRow, Summary, summary

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn

    from ..network.spec import ModelSpec

__all__ = [
    "activations",
    "layer_names",
    "parameters_table",
    "describe_spec",
    "ParameterRow",
    "ParameterTable",
    "summary",
    "Summary",
    "LayerRow",
]


# -- activations ----------------------------------------------------------------------------

def layer_names(model: "nn.Module", *, leaves_only: bool = False) -> list[str]:
    """Dotted names of the model's submodules, in definition order ("encoder.0", "act1")."""
    names = []
    for name, module in model.named_modules():
        if name == "":
            continue
        if leaves_only and any(True for _ in module.children()):
            continue
        names.append(name)
    return names


def activations(
    model: "nn.Module",
    x: "torch.Tensor | Sequence[torch.Tensor] | Any",
    layers: str | Iterable[str] | None = None,
) -> dict[str, "torch.Tensor"]:
    """The output of each named layer during one forward pass of ``x``.

    Args:
        model: any ``nn.Module``; it is run as it is (call ``model.eval()`` first for
            inference behaviour), never moved, and left without the hooks this adds.
        x: the input: a tensor (or anything ``torch.as_tensor`` takes, such as a list of
            rows), or a tuple/list of tensors for a model with several inputs. It is moved
            to the model's device; non-tensor data gets the model's floating dtype.
        layers: dotted layer names (``"act1"``, ``"encoder.0"``), one name or several;
            ``None`` means every leaf layer (a module with no submodules).

    Returns:
        ``{name: output}`` in the order the layers ran, computed under ``torch.no_grad()``;
        each output is a copy, so in-place layers later in the network cannot change it.
        A layer that returns several tensors gives a tuple. A layer called more than once
        keeps its last output.

    Example:
        >>> acts = torchann.activations(model, torch.tensor([[10.0, 11.0]]), layers=["act1"])
        >>> acts["act1"].shape
        torch.Size([1, 8])
    """
    import torch
    from torch import nn

    if not isinstance(model, nn.Module):
        raise UsageError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    modules = dict(model.named_modules())
    if layers is None:
        wanted = layer_names(model, leaves_only=True) or [""]
    else:
        wanted = [layers] if isinstance(layers, str) else list(layers) if isinstance(layers, (list, tuple, set)) else None
        if wanted is None or not all(isinstance(name, str) for name in wanted):
            raise UsageError(f"layers must be a layer name or a list of names such as ['act1'], got {layers!r}")
        valid = layer_names(model)
        unknown = [name for name in wanted if name not in modules or name == ""]
        if unknown:
            raise UsageError(
                f"unknown layer name(s) {', '.join(map(repr, unknown))}; "
                f"valid names: {', '.join(valid) if valid else '(the model has no submodules)'}"
            )
        if not wanted:
            raise UsageError(f"layers is empty; give at least one of: {', '.join(valid)}")

    inputs = _as_inputs(model, x)
    captured: dict[str, Any] = {}

    def hook_for(name: str):
        def hook(module, args, output):
            captured.pop(name, None)  # re-insert: the dict follows the order layers ran
            captured[name] = _copy(output)

        return hook

    handles = []
    try:
        for name in dict.fromkeys(wanted):
            handles.append(modules[name].register_forward_hook(hook_for(name)))
        with torch.no_grad():
            try:
                model(*inputs)
            except Exception as err:  # the model's own error, said against what was given
                shapes = ", ".join(str(tuple(t.shape)) for t in inputs)
                first = str(err).splitlines()[0] if str(err) else ""
                raise DataError(f"the forward pass failed on input(s) of shape {shapes} ({type(err).__name__}: "
                                f"{first}); pass x as rows x features, e.g. [[10, 11]] for one row") from err
    finally:
        for handle in handles:
            handle.remove()

    if layers is not None:
        missing = [name for name in wanted if name not in captured]
        if missing:
            raise UsageError(
                f"layer(s) {', '.join(map(repr, missing))} did not run during the forward pass; "
                f"layers that ran: {', '.join(captured) or '(none)'}"
            )
    return captured


def _copy(output: Any) -> Any:
    import torch

    if isinstance(output, torch.Tensor):
        return output.detach().clone()
    if isinstance(output, (list, tuple)):
        return tuple(_copy(o) for o in output)
    if isinstance(output, dict):
        return {k: _copy(v) for k, v in output.items()}
    return output


def _as_inputs(model: "nn.Module", x: Any) -> list["torch.Tensor"]:
    import torch

    first = next(iter(model.parameters()), None)
    device = first.device if first is not None else torch.device("cpu")
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
    if isinstance(x, (list, tuple)) and x and all(isinstance(t, torch.Tensor) for t in x):
        return [t.to(device) for t in x]
    if isinstance(x, torch.Tensor):
        return [x.to(device)]
    try:
        return [torch.as_tensor(x, dtype=dtype, device=device)]
    except (TypeError, ValueError, RuntimeError) as err:
        raise DataError(
            f"cannot turn the input ({type(x).__name__}) into a tensor: {err}; "
            "give a tensor, a NumPy array or a list of equal-length rows of numbers"
        ) from None


# -- parameters -----------------------------------------------------------------------------

@dataclass(frozen=True)
class ParameterRow:
    """One parameter tensor and its statistics (population std, ddof=0)."""

    name: str
    shape: tuple[int, ...]
    count: int
    dtype: str
    device: str
    requires_grad: bool
    mean: float | None  # None for an empty tensor, a non-numeric dtype or the meta device
    std: float | None
    min: float | None
    max: float | None


@dataclass(frozen=True)
class ParameterTable:
    """Every parameter of a model; ``str()`` is a plain-text table, ``to_dict()`` is JSON-ready."""

    rows: tuple[ParameterRow, ...]

    @property
    def total(self) -> int:
        return sum(r.count for r in self.rows)

    @property
    def trainable(self) -> int:
        return sum(r.count for r in self.rows if r.requires_grad)

    def __iter__(self):
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> ParameterRow:
        return self.rows[index]

    def to_dict(self) -> dict[str, Any]:
        rows = []
        for row in self.rows:
            data = asdict(row)
            data["shape"] = list(row.shape)
            for key in ("mean", "std", "min", "max"):  # JSON has no NaN / Infinity
                if data[key] is not None and not math.isfinite(data[key]):
                    data[key] = str(data[key])
            rows.append(data)
        return {"parameters": rows, "total": self.total, "trainable": self.trainable}

    def __str__(self) -> str:
        header = ("name", "shape", "count", "dtype", "device", "grad", "mean", "std", "min", "max")
        cells = [header]
        for r in self.rows:
            cells.append(
                (
                    r.name,
                    "x".join(map(str, r.shape)) or "scalar",
                    f"{r.count:,}",
                    r.dtype,
                    r.device,
                    "yes" if r.requires_grad else "no",
                    *(_number(v) for v in (r.mean, r.std, r.min, r.max)),
                )
            )
        widths = [max(len(c[i]) for c in cells) for i in range(len(header))]
        left = {0, 1, 3, 4, 5}  # text columns align left, numbers right

        def line(c) -> str:
            return "  ".join(
                (v.ljust(w) if i in left else v.rjust(w)) for i, (v, w) in enumerate(zip(c, widths))
            ).rstrip()

        rule = "-" * len(line(header))
        lines = [line(header), rule, *(line(c) for c in cells[1:]), rule]
        lines.append(f"{self.total:,} parameters, {self.trainable:,} trainable")
        return "\n".join(lines) + "\n"


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def parameters_table(model: "nn.Module") -> ParameterTable:
    """Name, shape, count, dtype, device, requires_grad, mean, std, min and max of every
    parameter (a parameter shared by two layers is listed once, under its first name).

    Example:
        >>> print(torchann.parameters_table(torchann.mlp(2, [8], 1)))
    """
    import torch
    from torch import nn

    if not isinstance(model, nn.Module):
        raise UsageError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    rows = []
    with torch.no_grad():
        for name, p in model.named_parameters():
            stats: list[float | None] = [None] * 4
            # a meta tensor has a shape but no values
            if p.numel() > 0 and not p.is_complex() and p.dtype != torch.bool and p.device.type != "meta":
                v = p.detach().to(torch.float64)
                # one transfer from the device instead of four
                stats = torch.stack([v.mean(), v.std(correction=0), v.min(), v.max()]).tolist()
            rows.append(
                ParameterRow(
                    name=name,
                    shape=tuple(p.shape),
                    count=p.numel(),
                    dtype=str(p.dtype).removeprefix("torch."),
                    device=str(p.device),
                    requires_grad=p.requires_grad,
                    mean=stats[0],
                    std=stats[1],
                    min=stats[2],
                    max=stats[3],
                )
            )
    return ParameterTable(tuple(rows))


# -- the spec in words ----------------------------------------------------------------------

def describe_spec(spec: "ModelSpec") -> str:
    """One line such as ``2 inputs -> 8 (relu) -> 1 output, 33 parameters``."""

    def plural(n: int, word: str) -> str:
        return f"{n} {word}" + ("" if n == 1 else "s")

    members = getattr(spec, "members", ())
    if members:  # an ensemble (torchann.tune): each member in a line of its own
        shares = getattr(spec, "weights", ())
        if all(m == members[0] for m in members) and len(set(shares)) == 1:  # the networks train trains
            return (f"ensemble of {len(members)} networks of one shape, equal weights ({spec.num_parameters():,} "
                    f"parameters), each: {describe_spec(members[0])}")
        each = "; ".join(f"{w:.2f} x [{describe_spec(m)}]" for w, m in zip(shares, members))
        return f"ensemble of {len(members)} members ({spec.num_parameters():,} parameters): {each}"
    act = str(spec.activation)
    inputs = plural(spec.in_features, "input")
    if getattr(spec, "periodic", ()):
        inputs += f" ({len(spec.periodic)} also as periodic embeddings of {spec.periodic_dim})"
    parts = [inputs, *(f"{h} ({act})" for h in spec.hidden)]
    out = plural(spec.out_features, "output")
    if str(spec.output_activation) != "identity":
        out += f" ({spec.output_activation})"
    parts.append(out)
    extras = []
    if str(spec.norm) != "none":
        extras.append(f"{spec.norm} norm")
    if spec.dropout > 0:
        extras.append(f"dropout {spec.dropout:g}")
    if not spec.bias:
        extras.append("no bias")
    text = " -> ".join(parts) + f", {spec.num_parameters():,} parameters"
    return text + (f" ({', '.join(extras)})" if extras else "")
