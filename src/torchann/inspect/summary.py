"""``summary()``: the layers of a network, their output shapes and parameter counts.

The printed table has the layout and the size estimates of the ``torchsummary`` package
(Layer (type), Output Shape, Param #, totals, sizes in MB), so the tutorial's table comes out
line for line, but the work is done differently:

- the forward pass runs on the model's own device (CPU included) with a small random batch,
  in eval mode and without gradients; the model is never moved, every submodule's train/eval
  flag is restored, and the hooks are removed even when the forward pass raises;
- totals come from ``model.parameters()``, so a parameter shared by two layers is counted once
  and a frozen parameter (``requires_grad=False``) is non-trainable;
- several inputs, tuple outputs and integer inputs (``nn.Embedding``) are handled;
- ``depth`` folds nested modules: a container at that depth becomes one row holding all the
  parameters below it.

Rows are listed in the order the modules are called, so a container comes before its layers.
Each parameter is counted in the first row that uses it; a layer called a second time shows 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

from ..core.checks import as_integer
from ..core.errors import UsageError
from .trace import Call, check_model, first_tensor, make_inputs, model_device, run_hooked, same_device

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn

__all__ = ["Summary", "LayerRow", "summary", "summary_of_spec", "default_input_size"]

_MB = 1024.0**2
_MIN_WIDTHS = (20, 25, 15)  # torchsummary's columns: 20 + 2 + 25 + 1 + 15 = 63 characters


@dataclass(frozen=True)
class LayerRow:
    """One call of one module during the summary's forward pass."""

    name: str  # dotted name in the model ("encoder.0"); "" for the model itself
    type: str  # class name ("Linear")
    depth: int  # 0 for the model, 1 for its children, ...
    output_shapes: tuple[tuple[int, ...], ...]  # one shape per output tensor, batch dim first
    params: int  # parameters counted in this row (first use only)
    trainable_params: int  # those of `params` with requires_grad
    leaf: bool = True  # a module without submodules
    folded: bool = False  # a container whose deeper layers are hidden by `depth`


@dataclass(frozen=True)
class Summary:
    """What ``summary()`` found; ``str()`` gives the torchsummary-style table.

    Sizes follow torchsummary's estimates: the input, twice every leaf layer's output
    (forward values and their gradients) and the parameters, each for ``abs(batch_size)``
    samples, in bytes of the tensors' own dtypes.
    """

    rows: tuple[LayerRow, ...]
    total_params: int
    trainable_params: int
    batch_size: int
    input_bytes: float
    forward_backward_bytes: float
    params_bytes: float
    output_shapes: tuple[tuple[int, ...], ...] = field(default=())  # the model's own outputs

    @property
    def non_trainable_params(self) -> int:
        return self.total_params - self.trainable_params

    @property
    def input_size_mb(self) -> float:
        return self.input_bytes / _MB

    @property
    def forward_backward_size_mb(self) -> float:
        return self.forward_backward_bytes / _MB

    @property
    def params_size_mb(self) -> float:
        return self.params_bytes / _MB

    @property
    def total_size_mb(self) -> float:
        return self.input_size_mb + self.forward_backward_size_mb + self.params_size_mb

    def _shape_text(self, shapes: tuple[tuple[int, ...], ...]) -> str:
        shown = [_with_batch(s, self.batch_size) for s in shapes]
        return str(shown[0]) if len(shown) == 1 else str(shown)

    def labels(self) -> list[str]:
        """The "Layer (type)" column: ``Linear-1``, ``ReLU-2``, ..."""
        return [f"{row.type}-{i}" for i, row in enumerate(self.rows, start=1)]

    def to_dict(self) -> dict[str, Any]:
        """Rows, totals and sizes as plain data (for ``--json``)."""
        return {
            "rows": [
                {
                    "label": label,
                    "name": row.name,
                    "type": row.type,
                    "depth": row.depth,
                    "output_shape": [_with_batch(s, self.batch_size) for s in row.output_shapes],
                    "params": row.params,
                    "trainable_params": row.trainable_params,
                    "leaf": row.leaf,
                    "folded": row.folded,
                }
                for label, row in zip(self.labels(), self.rows)
            ],
            "output_shape": [_with_batch(s, self.batch_size) for s in self.output_shapes],
            "total_params": self.total_params,
            "trainable_params": self.trainable_params,
            "non_trainable_params": self.non_trainable_params,
            "batch_size": self.batch_size,
            "input_size_mb": self.input_size_mb,
            "forward_backward_size_mb": self.forward_backward_size_mb,
            "params_size_mb": self.params_size_mb,
            "total_size_mb": self.total_size_mb,
        }

    def __str__(self) -> str:
        cells = [
            (label, self._shape_text(row.output_shapes), f"{row.params:,}")
            for label, row in zip(self.labels(), self.rows)
        ]
        header = ("Layer (type)", "Output Shape", "Param #")
        # Columns widen for long names instead of running into each other.
        w1, w2, w3 = (max([m, *(len(c[i]) for c in cells)]) for i, m in enumerate(_MIN_WIDTHS))
        width = w1 + 2 + w2 + 1 + w3 + 1  # rules are one character wider than the rows
        dash, double = "-" * width, "=" * width

        def line(c: tuple[str, str, str]) -> str:
            return f"{c[0]:>{w1}}  {c[1]:>{w2}} {c[2]:>{w3}}"

        lines = [dash, line(header), double, *(line(c) for c in cells), double]
        lines += [
            f"Total params: {self.total_params:,}",
            f"Trainable params: {self.trainable_params:,}",
            f"Non-trainable params: {self.non_trainable_params:,}",
            dash,
            f"Input size (MB): {self.input_size_mb:0.2f}",
            f"Forward/backward pass size (MB): {self.forward_backward_size_mb:0.2f}",
            f"Params size (MB): {self.params_size_mb:0.2f}",
            f"Estimated Total Size (MB): {self.total_size_mb:0.2f}",
            dash,
        ]
        return "\n".join(lines) + "\n"

    def _repr_html_(self) -> str:
        """The table as HTML for a notebook, totals in the footer."""
        from ..render.html import fragment, summary_table

        return fragment(summary_table(self.to_dict()))

    def __repr__(self) -> str:
        return f"Summary(rows={len(self.rows)}, total_params={self.total_params}, trainable_params={self.trainable_params})"


def _with_batch(shape: tuple[int, ...], batch_size: int) -> list[int]:
    return [batch_size, *shape[1:]] if shape else []


def summary(
    model: "nn.Module",
    input_size: Sequence[int] | Sequence[Sequence[int]] | None = None,
    *,
    input_data: "torch.Tensor | Sequence[torch.Tensor] | None" = None,
    batch_size: int = -1,
    device: "str | torch.device | None" = None,
    dtypes: "torch.dtype | Sequence[torch.dtype] | None" = None,
    depth: int | None = None,
) -> Summary:
    """Run one forward pass through ``model`` and tabulate its layers.

    Args:
        model: any ``nn.Module``; it is not moved, and its train/eval flags are restored.
        input_size: the shape of one sample *without* the batch dimension, as in torchsummary:
            ``(2,)`` or ``(1, 2)``; a list of shapes, ``[(3,), (4,)]``, for several inputs.
        input_data: real inputs instead of ``input_size`` (a tensor or a list of tensors, batch
            dimension first).
        batch_size: the batch size shown in "Output Shape" and used for the MB estimates;
            -1 (the default) means "any", and the sizes are then per sample.
        device: where the inputs are made; defaults to the device of the model's first
            parameter (cpu for a model without any). It must be the model's device.
        dtypes: dtype of each input made from ``input_size``; defaults to the model's first
            floating-point parameter dtype (float32 if none). Use ``torch.long`` for
            ``nn.Embedding`` inputs.
        depth: show modules down to this depth (1 = the model's direct children); a
            container at that depth is folded into one row. ``None`` shows every module.

    Returns:
        a ``Summary``; ``print(summary(...))`` prints the table.

    Example:
        >>> model = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 1))
        >>> print(torchann.summary(model, input_size=(1, 2)))
    """
    import torch

    check_model(model)
    given = batch_size
    batch_size = as_integer(batch_size)
    if batch_size is None or not (batch_size == -1 or batch_size > 0):
        raise UsageError(f"batch_size must be a positive integer or -1 (any), got {given!r}")
    if depth is not None:
        given, depth = depth, as_integer(depth)
        if depth is None or depth < 0:
            raise UsageError(f"depth must be a non-negative integer or None (all), got {given!r}")
    home = model_device(model)
    if device is None:
        device = home
    else:
        try:
            device = torch.device(device)
        except (RuntimeError, TypeError) as err:
            raise UsageError(f"device {device!r} is not a torch device such as 'cpu' or 'cuda': {err}") from None
        if first_tensor(model) is not None and not same_device(device, home):
            raise UsageError(
                f"device={str(device)!r} but the model's parameters are on {str(home)!r}; "
                f"summary() never moves the model: leave device out, or call model.to({str(device)!r}) first"
            )
    inputs = make_inputs(model, input_size, input_data, dtypes, device)

    calls = run_hooked(model, inputs)
    return _tabulate(model, inputs, calls, batch_size=batch_size, depth=depth)


def summary_of_spec(spec: Any, input_size: Sequence[int] | None = None, *, batch_size: int = -1,
                    depth: int | None = None) -> Summary:
    """The summary of the network a ``ModelSpec`` describes, built on PyTorch's meta device.

    Shapes and parameter counts do not depend on the weights, so nothing is allocated: a
    60-byte spec declaring a 46000 x 46000 layer (8 GB of weights) is summarised in the
    memory of an empty process.

    Args:
        input_size: one sample's shape; defaults to ``(1, in_features)`` as in the tutorial,
            ``(in_features,)`` for batch-norm networks (BatchNorm1d reads dim 1 as features).
    """
    import torch

    with torch.device("meta"):
        model = spec.build()
    if input_size is None:
        input_size = default_input_size(spec)
    return summary(model, input_size=input_size, batch_size=batch_size, depth=depth)


def default_input_size(spec: Any) -> tuple[int, ...]:
    """One sample's shape for a spec's summary: ``(1, in_features)`` as in the tutorial, but
    ``(in_features,)`` for a batch-norm network (``BatchNorm1d`` reads dim 1 as the features)."""
    return (spec.in_features,) if str(getattr(spec, "norm", "none")) == "batch" else (1, spec.in_features)


# -- inputs ---------------------------------------------------------------------------------


# -- the forward pass -----------------------------------------------------------------------


def _tabulate(model, inputs, calls: list[Call], *, batch_size: int, depth: int | None) -> Summary:
    has_children = any(True for _ in model.children())
    n = abs(batch_size)

    def per_sample(shape: tuple[int, ...]) -> int:
        return math.prod(shape[1:]) if shape else 1

    counted: set[int] = set()
    rows = []
    fb_bytes = 0.0
    for call in calls:
        is_leaf = not any(True for _ in call.module.children())
        if is_leaf:
            fb_bytes += 2.0 * sum(per_sample(s) * n * size for s, size in call.outputs)
        if call.depth == 0:
            shown = not has_children or depth == 0
        else:
            shown = depth is None or call.depth <= depth
        if not shown:
            continue
        folded = not is_leaf and depth is not None and call.depth == depth
        params = trainable = 0
        for p in call.module.parameters(recurse=folded):
            if id(p) in counted:
                continue
            counted.add(id(p))
            params += p.numel()
            trainable += p.numel() if p.requires_grad else 0
        rows.append(
            LayerRow(
                name=call.name,
                type=type(call.module).__name__,
                depth=call.depth,
                output_shapes=tuple(s for s, _ in call.outputs),
                params=params,
                trainable_params=trainable,
                leaf=is_leaf,
                folded=folded,
            )
        )

    unique = list(model.parameters())  # parameters() yields a shared parameter once
    root = next((c for c in calls if c.depth == 0), None)
    return Summary(
        rows=tuple(rows),
        total_params=sum(p.numel() for p in unique),
        trainable_params=sum(p.numel() for p in unique if p.requires_grad),
        batch_size=batch_size,
        input_bytes=float(sum(per_sample(tuple(t.shape)) * n * t.element_size() for t in inputs)),
        forward_backward_bytes=fb_bytes,
        params_bytes=float(sum(p.numel() * p.element_size() for p in unique)),
        output_shapes=tuple(s for s, _ in root.outputs) if root else (),
    )
