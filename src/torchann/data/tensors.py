"""Turning what a user passes to fit/predict into checked float tensors.

Checks happen here, where data enters, so that a wrong width or a NaN is reported with the
row, column and fix instead of as a matmul error deep inside the model.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from ..core.choices import Loss
from ..core.errors import DataError

__all__ = ["as_feature_tensor", "as_training_tensors", "check_input_width", "check_probability_targets", "input_width",
           "output_width"]


def _linears(model: nn.Module) -> list[nn.Linear]:
    return [m for m in model.modules() if isinstance(m, nn.Linear)]


def input_width(model: nn.Module) -> int | None:
    """Features per row the model takes, when it can be told without running it."""
    spec = getattr(model, "spec", None)
    if spec is not None:
        return spec.in_features
    linears = _linears(model)
    return linears[0].in_features if linears else None


def output_width(model: nn.Module) -> int | None:
    spec = getattr(model, "spec", None)
    if spec is not None:
        return spec.out_features
    linears = _linears(model)
    return linears[-1].out_features if linears else None


def _to_tensor(value: Any, what: str) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        if value.is_meta:
            raise DataError(f"{what} is a meta tensor, which has a shape but no values; pass a tensor with data")
        if value.is_complex():
            raise DataError(f"{what} is complex ({value.dtype}); pass real numbers, e.g. x.real or x.abs()")
        return value.detach()
    try:
        array = np.asarray(value)
    except (ValueError, TypeError) as err:
        raise DataError(f"{what} could not be read as a numeric array ({err}); pass equal-length rows of numbers") from None
    if array.dtype == object or array.dtype.kind in "USV":
        raise DataError(f"{what} holds non-numeric values (dtype {array.dtype}); pass numbers only, or use load_table for text columns")
    if array.dtype.kind == "c":
        raise DataError(f"{what} is complex ({array.dtype}); pass real numbers, e.g. x.real or abs(x)")
    if array.dtype.kind == "f" and array.dtype.itemsize > 8:  # longdouble: torch has no such dtype
        array = array.astype(np.float64)
    return torch.from_numpy(np.ascontiguousarray(array))


_FLOAT32_MAX = float(torch.finfo(torch.float32).max)


def _to_float32(t: torch.Tensor, what: str) -> torch.Tensor:
    """``t`` as float32, refusing finite values float32 cannot hold (they would become inf)."""
    if t.dtype == torch.float32:
        return t
    if t.is_floating_point() and t.dtype.itemsize > 4:
        _check_finite(t, what)
        too_big = t.abs() > _FLOAT32_MAX
        if bool(too_big.any()):
            bad = too_big.nonzero()[0].tolist()
            where = f"row {bad[0]}" + (f", column {bad[1]}" if len(bad) > 1 else "")
            raise DataError(
                f"{what} holds {t[tuple(bad)].item():g} at {where}, beyond float32's range (±3.4e38); "
                f"rescale it first (e.g. divide by a power of ten, or standardise it)"
            )
    return t.float()


def _check_finite(t: torch.Tensor, what: str) -> None:
    if t.is_floating_point() and not bool(torch.isfinite(t).all()):
        bad = (~torch.isfinite(t)).nonzero()[0].tolist()
        where = f"row {bad[0]}" + (f", column {bad[1]}" if len(bad) > 1 else "")
        raise DataError(
            f"{what} has a non-finite value ({t[tuple(bad)].item()}) at {where}; remove or fill missing values first"
        )


def as_feature_tensor(model: nn.Module | None, x: Any, *, what: str = "input") -> torch.Tensor:
    """``x`` as a float32 (rows, features) tensor whose width matches ``model``."""
    t = _to_tensor(x, what)
    if t.dim() == 1:
        raise DataError(
            f"{what} is 1-D with shape {tuple(t.shape)}; pass rows x features, e.g. [[10, 11]] for one row"
        )
    if t.dim() != 2:
        raise DataError(f"{what} must be 2-D (rows x features), got shape {tuple(t.shape)}")
    if t.shape[0] == 0:
        raise DataError(f"{what} has no rows")
    t = _to_float32(t, what)
    _check_finite(t, what)
    if model is not None:
        check_input_width(model, t.shape[1], what=what)
    return t


def check_input_width(model: nn.Module, width: int, *, what: str = "input") -> None:
    expected = input_width(model)
    if expected is not None and expected != width:
        raise DataError(
            f"{what} has {width} feature column(s) but the model expects {expected}; "
            f"pass rows of {expected} values"
        )


def as_training_tensors(model: nn.Module, x: Any, y: Any, loss: Loss | None, *, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Checked ``(x, y)``: y as class indices for cross-entropy, else float (rows, outputs)."""
    if y is None:
        raise DataError(f"{what}: targets y are missing; call fit(model, x, y) or pass a Dataset of (x, y) pairs")
    xt = as_feature_tensor(model, x, what=f"{what} x")
    yt = _to_tensor(y, f"{what} y")
    if yt.dim() == 0:
        raise DataError(f"{what} y is a single number ({yt.item()!r}), not one target per row; pass y of shape "
                        f"({xt.shape[0]},) or ({xt.shape[0]}, outputs)")
    if yt.shape[0] != xt.shape[0]:
        raise DataError(f"{what}: x has {xt.shape[0]} rows but y has {yt.shape[0]}; give one target per row")
    width = output_width(model)
    if loss is Loss.CROSS_ENTROPY:
        if yt.dim() == 2 and yt.shape[1] == 1:
            yt = yt[:, 0]
        if yt.dim() != 1:
            raise DataError(f"{what}: cross-entropy needs one class index per row, got y of shape {tuple(yt.shape)}")
        if yt.is_floating_point():
            _check_finite(yt, f"{what} y")
            if not bool((yt == yt.round()).all()):
                raise DataError(f"{what}: cross-entropy needs integer class indices, y holds fractions")
        yt = yt.long()
        if yt.min() < 0 or (width is not None and yt.max() >= width):
            raise DataError(
                f"{what}: class indices must lie in [0, {width}) for a model with {width} outputs; "
                f"found {int(yt.min())}..{int(yt.max())}"
            )
        return xt, yt
    if yt.dim() > 2:  # (n, 1, 1) against an (n, 1) output would broadcast to (n, n, 1)
        raise DataError(
            f"{what}: y has shape {tuple(yt.shape)}; pass one row of targets per input row, shape (n,) or "
            f"(n, outputs), e.g. y.reshape(len(y), -1)"
        )
    yt = _to_float32(yt, f"{what} y")
    if yt.dim() == 1:
        yt = yt[:, None]
    _check_finite(yt, f"{what} y")
    if width is not None and yt.shape[1] != width:
        raise DataError(
            f"{what}: y has {yt.shape[1]} column(s) but the model has {width} output(s); "
            f"match the output size to the number of targets"
        )
    if loss is Loss.BCE:
        check_probability_targets(yt, f"{what} y")
    return xt, yt


def check_probability_targets(y: torch.Tensor, what: str) -> None:
    """Binary cross-entropy reads each target as a probability: every value must lie in [0, 1]."""
    outside = (y < 0) | (y > 1)
    if bool(outside.any()):
        bad = outside.nonzero()[0].tolist()
        where = f"row {bad[0]}" + (f", column {bad[1]}" if len(bad) > 1 else "")
        raise DataError(f"{what} holds {y[tuple(bad)].item():g} at {where}, but loss='bce' needs targets in [0, 1] "
                        f"(0/1 labels or probabilities); use loss='mse' for numbers, or 'cross_entropy' for class "
                        f"indices")
