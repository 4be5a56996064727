"""One traced forward pass for ``summary()``: inputs made from shapes on the model's own device,
and every module call recorded through hooks that are always removed, even when the pass raises."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..core.errors import UsageError

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn

__all__ = ["check_model", "first_tensor", "model_device", "same_device", "make_inputs", "Call", "run_hooked",
           "MAX_SAMPLE_BYTES"]

# The sample batch summary() makes from input_size is refused beyond this size on a real device:
# a summary needs shapes, not 1 GiB of random numbers (on the meta device nothing is allocated).
MAX_SAMPLE_BYTES = 2**30


def check_model(model: Any) -> None:
    from torch import nn

    if not isinstance(model, nn.Module):
        raise UsageError(f"model must be a torch.nn.Module, got {type(model).__name__}")


def first_tensor(model: "nn.Module"):
    for tensor in model.parameters():
        return tensor
    for tensor in model.buffers():
        return tensor
    return None


def model_device(model: "nn.Module") -> "torch.device":
    import torch

    tensor = first_tensor(model)
    return tensor.device if tensor is not None else torch.device("cpu")


def same_device(a: "torch.device", b: "torch.device") -> bool:
    # "cuda" and "cuda:0" are the same place when the current device is 0.
    if a.type != b.type:
        return False
    if a.index is None or b.index is None:
        return True
    return a.index == b.index


def _default_dtype(model: "nn.Module") -> "torch.dtype":
    import torch

    for p in model.parameters():
        if p.is_floating_point():
            return p.dtype
    return torch.float32


def _input_shapes(input_size: Any) -> list[tuple[int, ...]]:
    from ..core.checks import as_integer

    def is_int(v: Any) -> bool:
        return as_integer(v) is not None

    hint = "give the shape of one sample without the batch dimension, e.g. (2,) or [(2,), (3,)] for two inputs"
    if is_int(input_size):
        input_size = (input_size,)
    if not isinstance(input_size, (list, tuple)) or len(input_size) == 0:
        raise UsageError(f"input_size {input_size!r} is not a shape; {hint}")
    if all(is_int(v) for v in input_size):
        shapes = [tuple(as_integer(v) for v in input_size)]
    elif all(isinstance(s, (list, tuple)) and s and all(is_int(v) for v in s) for s in input_size):
        shapes = [tuple(as_integer(v) for v in s) for s in input_size]
    else:
        raise UsageError(f"input_size {input_size!r} is not a shape or a list of shapes; {hint}")
    for shape in shapes:
        if any(v < 1 for v in shape):
            raise UsageError(f"input_size {input_size!r} has a size below 1; every dimension must be positive")
    return shapes


def make_inputs(model, input_size, input_data, dtypes, device) -> list["torch.Tensor"]:
    import torch

    if (input_size is None) == (input_data is None):
        raise UsageError("give exactly one of input_size (a sample's shape, e.g. (2,)) or input_data (tensors)")
    if input_data is not None:
        if dtypes is not None:
            raise UsageError("dtypes applies to inputs made from input_size; input_data already has its dtypes")
        data = [input_data] if isinstance(input_data, torch.Tensor) else list(input_data)
        if not data or not all(isinstance(t, torch.Tensor) for t in data):
            raise UsageError("input_data must be a tensor or a list of tensors, batch dimension first")
        return [t.to(device) for t in data]

    shapes = _input_shapes(input_size)
    if dtypes is None:
        dtypes = [_default_dtype(model)] * len(shapes)
    elif isinstance(dtypes, torch.dtype):
        dtypes = [dtypes] * len(shapes)
    else:
        dtypes = list(dtypes)
        if len(dtypes) != len(shapes) or not all(isinstance(d, torch.dtype) for d in dtypes):
            raise UsageError(
                f"dtypes must be one torch.dtype per input: {len(shapes)} input(s), got {dtypes!r}"
            )
    _check_sample_size(shapes, dtypes, device)
    # A private generator keeps the caller's random stream untouched. Batch 2, as torchsummary
    # does, so that layers which mix samples still see more than one.
    gen = torch.Generator().manual_seed(0)
    inputs = []
    for shape, dtype in zip(shapes, dtypes):
        if torch.device(device).type == "meta":  # shapes only: nothing is allocated
            inputs.append(torch.empty((2, *shape), dtype=dtype, device="meta"))
            continue
        if dtype.is_floating_point or dtype.is_complex:
            t = torch.rand((2, *shape), generator=gen).to(dtype)
        else:  # integer and bool inputs: zeros are valid indices for every embedding
            t = torch.zeros((2, *shape), dtype=dtype)
        inputs.append(t.to(device))
    return inputs


def _check_sample_size(shapes: list[tuple[int, ...]], dtypes: list["torch.dtype"], device: Any) -> None:
    """Refuse, before allocating, a sample batch too large to make (the batch of 2 is counted)."""
    import math

    import torch

    on_meta = torch.device(device).type == "meta"
    for shape, dtype in zip(shapes, dtypes):
        size = 2 * math.prod(shape) * dtype.itemsize
        if size >= 2**62 or (not on_meta and size > MAX_SAMPLE_BYTES):
            meta = "" if size >= 2**62 else (", or summarise the network on the meta device, which allocates nothing "
                                             "(torchann.inspect.summary_of_spec, or build it under torch.device('meta'))")
            limit = "more than a tensor can hold" if size >= 2**62 else f"more than the limit of {MAX_SAMPLE_BYTES:,}"
            raise UsageError(
                f"input_size {shape} makes a sample batch of 2 x {math.prod(shape):,} values ({size:,} bytes), "
                f"{limit}; give one sample's shape without the batch dimension{meta}")


@dataclass
class Call:
    module: Any
    name: str
    depth: int
    outputs: list = field(default_factory=list)  # (shape, element_size) of each output tensor


def _tensors(value: Any):
    import torch

    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _tensors(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _tensors(v)


def run_hooked(model: "nn.Module", inputs: list["torch.Tensor"]) -> list[Call]:
    import torch

    calls: list[Call] = []
    handles = []
    modes = [(m, m.training) for m in model.modules()]

    def pre_hook(name: str):
        def hook(module, args):
            calls.append(Call(module, name, 0 if name == "" else name.count(".") + 1))
            stack.append(calls[-1])

        return hook

    def post_hook(module, args, output):
        call = stack.pop()
        call.outputs = [(tuple(t.shape), t.element_size()) for t in _tensors(output)]

    stack: list[Call] = []
    try:
        for name, module in model.named_modules():
            handles.append(module.register_forward_pre_hook(pre_hook(name)))
            handles.append(module.register_forward_hook(post_hook))
        # eval mode: dropout off and batch-norm running statistics left alone.
        model.eval()
        with torch.no_grad():
            try:
                model(*inputs)
            except Exception as err:
                shapes = ", ".join(str(tuple(t.shape)) for t in inputs)
                raise UsageError(
                    f"the forward pass failed on input(s) of shape {shapes} "
                    f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}); "
                    "check input_size (one sample's shape, without the batch dimension) and dtypes"
                ) from err
    finally:
        for handle in handles:
            handle.remove()
        for module, training in modes:
            module.training = training
    return calls
