"""Importing tutorial-style weight files (``torch.save(model.state_dict(), "w.pth")``).

A ``.pth`` file is a pickle. Loading one with plain ``torch.load`` can run any code the file
names, so it is read here with ``weights_only=True``: only tensors and plain containers come
back, and a file that holds a whole pickled model (``torch.save(model, ...)``) is refused
unless the caller says it trusts the file (``trust_pickle=True``).

The state dict's keys are then mapped onto a ``ModelSpec``-built MLP. The tutorial's files
name their layers ``0.weight, 0.bias, 2.weight, ...`` (``nn.Sequential``) or
``input_to_hidden_layer.weight, hidden_to_output_layer.weight`` (its ``MyNeuralNet``);
torchann's are ``linear1.weight, ..., output.bias``. Layers are matched in order: the
file's n-th module with parameters becomes the spec's n-th.
"""

from __future__ import annotations

import re
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from ..core.choices import Activation, Norm, parse
from ..core.checks import check_path
from ..core.errors import ModelFileError, SpecError, UsageError
from ..core.files import check_regular_file, memory_bytes, read_json
from ..network.members import spec_from_dict
from ..network.spec import ModelSpec

__all__ = ["import_state_dict", "convert_state_dict", "read_state_dict", "read_spec_file", "infer_spec", "map_state_dict"]

# Wrappers that training scripts often put around the state dict itself.
_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model")

_UNSAFE_ADVICE = (
    "a pickle can run any code when it is loaded, so torchann reads only plain tensors; "
    "in the script that made it, save model.state_dict() instead (torch.save(model.state_dict(), PATH)), "
    "or, if you wrote this file yourself, pass --trust-pickle (trust_pickle=True)"
)


# -- reading ----------------------------------------------------------------------------------


def read_state_dict(path: str | Path, *, trust_pickle: bool = False) -> "OrderedDict[str, torch.Tensor]":
    """The tensors stored in a ``.pth``/``.pt`` state-dict file (or a ``.safetensors`` file).

    Args:
        trust_pickle: also accept a whole pickled model (``torch.save(model, ...)``). This
            unpickles the file, which runs whatever code it names: only for files you made.

    Raises:
        ModelFileError: the file is missing, unreadable, not a state dict, or (without
            ``trust_pickle``) holds anything but tensors.
    """
    path = check_path("path", path, what="the .pth weights file")
    if not path.exists() or path.is_dir():
        what = "is a folder" if path.is_dir() else "does not exist"
        raise ModelFileError(f"{path} {what}; give the .pth file written by torch.save(model.state_dict(), ...)")
    size = check_regular_file(path, what="weights file (.pth, .pt or .safetensors)", error=ModelFileError).st_size
    if size > memory_bytes() // 2:
        raise ModelFileError(f"{path}: {size:,} bytes, more than half of this machine's memory; a feed-forward "
                             f"network's weights file is far smaller")
    if path.suffix.lower() == ".safetensors":
        return _read_safetensors(path)
    obj = _torch_load(path, trust_pickle=trust_pickle)
    return _as_state_dict(obj, path)


def _read_safetensors(path: Path) -> "OrderedDict[str, torch.Tensor]":
    from safetensors import SafetensorError
    from safetensors.torch import load

    try:
        tensors = load(path.read_bytes())
    except (SafetensorError, ValueError, RuntimeError, OSError) as err:
        raise ModelFileError(f"{path}: not a readable safetensors file ({err})") from None
    # A safetensors file keeps no module order; numbered layers ("0", "2", "10") sort by
    # number, so nn.Sequential files map in their true order.
    return OrderedDict(sorted(tensors.items(), key=lambda item: _natural_key(item[0])))


def _natural_key(key: str) -> tuple:
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in key.split("."))


def _torch_load(path: Path, *, trust_pickle: bool) -> Any:
    import pickle

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about pickle protocols; the error says enough
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if not trust_pickle:
            found = _unsupported_global(str(err))
            raise ModelFileError(f"{path} holds {found}, not only tensors: refused, because {_UNSAFE_ADVICE}") from None
    except (OSError, EOFError, RuntimeError, KeyError, ValueError, TypeError, AttributeError, IndexError) as err:
        raise ModelFileError(_unreadable(path, err)) from None
    # The caller said the file is theirs: unpickle it for real.
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=False)
    except (AttributeError, ModuleNotFoundError, ImportError) as err:
        raise ModelFileError(
            f"{path}: the pickled model needs code that is not importable here ({err}); in the script that "
            f"defines the model, save model.state_dict() and import that file"
        ) from None
    except Exception as err:  # noqa: BLE001 - anything an arbitrary pickle raises
        raise ModelFileError(f"{path}: unpickling failed ({type(err).__name__}: {err})") from None


def _unsupported_global(message: str) -> str:
    match = re.search(r"GLOBAL ([\w.]+)", message)
    if match:
        name = match.group(1)
        if name.startswith("torch.nn.") or name.startswith("__main__."):
            return f"a whole pickled model ({name})"
        return f"a pickled object ({name})"
    return "pickled Python objects"


def _unreadable(path: Path, err: BaseException) -> str:
    detail = str(err).splitlines()[0].split(". ")[0] if str(err) else type(err).__name__
    if isinstance(err, EOFError) or path.stat().st_size == 0:
        detail = "the file is empty" if path.stat().st_size == 0 else "the file ends too early"
    elif isinstance(err, (KeyError, IndexError, ValueError, AttributeError)):
        detail = "unexpected bytes for a torch.save file"
    elif len(detail) > 160:
        detail = detail[:157] + "..."
    return f"{path}: not a readable PyTorch weights file ({detail}); it may be truncated or not made by torch.save"


def _as_state_dict(obj: Any, path: Path) -> "OrderedDict[str, torch.Tensor]":
    if isinstance(obj, nn.Module):
        obj = obj.state_dict()
    if isinstance(obj, dict) and not any(isinstance(v, torch.Tensor) for v in obj.values()):
        for key in _WRAPPER_KEYS:  # {"model_state_dict": {...}, "epoch": 3}: take the weights
            inner = obj.get(key)
            if isinstance(inner, nn.Module):
                inner = inner.state_dict()
            if isinstance(inner, dict) and inner:
                obj = inner
                break
    if not isinstance(obj, dict) or not obj:
        kind = "an empty dict" if isinstance(obj, dict) else f"a {type(obj).__name__}"
        raise ModelFileError(
            f"{path} holds {kind}, not a state dict of named tensors; save it with torch.save(model.state_dict(), PATH)"
        )
    bad = sorted(str(k) for k, v in obj.items() if not isinstance(v, torch.Tensor) or not isinstance(k, str))
    if bad:
        raise ModelFileError(f"{path}: entries {', '.join(bad[:10])} are not named tensors; save model.state_dict()")
    for key, tensor in obj.items():
        problem = _not_plain_weights(tensor)
        if problem:
            raise ModelFileError(f"{path}: tensor {key!r} {problem}; a feed-forward network's state dict holds "
                                 f"dense tensors with values: save model.state_dict() of the trained model")
    return OrderedDict(obj)


def _not_plain_weights(tensor: torch.Tensor) -> str | None:
    """Why ``tensor`` cannot be copied into a layer, or None. A sparse tensor's indices are never
    read (they may point outside its shape); a meta tensor has a shape and no values."""
    if tensor.layout is not torch.strided:
        return f"is {str(tensor.layout).removeprefix('torch.')}, not a dense tensor"
    if tensor.is_meta:
        return "is on the meta device (a shape without values, as made under torch.device('meta'))"
    if tensor.is_quantized:
        return f"is quantized ({tensor.dtype})"
    if tensor.is_complex():
        return f"holds complex numbers ({tensor.dtype})"
    return None


# -- mapping keys onto a spec -------------------------------------------------------------------


def _groups(state: "OrderedDict[str, torch.Tensor]") -> "OrderedDict[str, OrderedDict[str, torch.Tensor]]":
    """Keys grouped by module (``"0.weight"`` -> module ``"0"``), in the file's order."""
    groups: "OrderedDict[str, OrderedDict[str, torch.Tensor]]" = OrderedDict()
    for key, value in state.items():
        module, _, leaf = key.rpartition(".")
        groups.setdefault(module, OrderedDict())[leaf] = value
    return groups


def infer_spec(state: "OrderedDict[str, torch.Tensor]", *, activation: str | Activation = "relu",
               hidden: Sequence[int] | None = None, source: str = "state dict", **options: Any) -> ModelSpec:
    """The ``ModelSpec`` whose layers have the shapes of ``state``'s weights.

    Sizes come from the chain of 2-D ``weight`` tensors, ``(out, in)`` as ``nn.Linear`` stores
    them. The activation is not stored in a state dict: it is ``activation`` (default relu).
    With ``hidden`` given, only the input and output widths are read from the weights.
    """
    linears = [(name, g) for name, g in _groups(state).items() if "weight" in g and g["weight"].dim() == 2]
    if not linears:
        shapes = ", ".join(f"{k} {tuple(v.shape)}" for k, v in list(state.items())[:6])
        raise ModelFileError(
            f"{source}: no 2-D 'weight' tensors (found {shapes}); give the layer sizes with --hidden or --spec"
        )
    chain = [tuple(g["weight"].shape) for _, g in linears]
    for (name_a, _), (name_b, _), (out_a, _), (out_b, in_b) in zip(linears, linears[1:], chain, chain[1:]):
        if in_b != out_a:
            raise ModelFileError(
                f"{source}: {name_b}.weight takes {in_b} inputs but {name_a}.weight gives {out_a}; "
                f"the weights do not form a chain of linear layers, so give --spec"
            )
    biases = {name: "bias" in g for name, g in linears}
    if len(set(biases.values())) > 1:
        raise ModelFileError(
            f"{source}: some linear layers have a bias and some do not "
            f"({', '.join(n for n, b in biases.items() if not b)} without); give --spec"
        )
    if "norm" not in options:
        options["norm"] = _infer_norm(state, {name for name, _ in linears})
    if "bias" not in options:
        options["bias"] = all(biases.values())
    sizes = [chain[0][1]] + [out for out, _ in chain]
    try:
        return ModelSpec(sizes[0], tuple(hidden) if hidden is not None else tuple(sizes[1:-1]), sizes[-1],
                         activation=activation, **options)
    except TypeError as err:
        raise UsageError(f"unknown spec option: {err}") from None


def _infer_norm(state: "OrderedDict[str, torch.Tensor]", linear_names: set[str]) -> Norm:
    others = [g for name, g in _groups(state).items() if name not in linear_names]
    if any("running_mean" in g for g in others):
        return Norm.BATCH
    if any(set(g) <= {"weight", "bias"} and all(t.dim() == 1 for t in g.values()) and g for g in others):
        return Norm.LAYER
    return Norm.NONE


def map_state_dict(state: "OrderedDict[str, torch.Tensor]", model: nn.Module, *,
                   source: str = "state dict") -> tuple["OrderedDict[str, torch.Tensor]", dict[str, str]]:
    """Rename ``state``'s keys to ``model``'s, module by module in order.

    Returns the renamed state dict (float tensors cast to the model's dtype) and the mapping
    ``{file key: model key}``. Raises ``ModelFileError`` listing, sorted, every missing,
    unexpected or wrongly shaped tensor with the expected and found shapes.
    """
    target = model.state_dict()
    source_groups = list(_groups(state).items())
    target_groups = list(_groups(OrderedDict(target)).items())
    mapping: dict[str, str] = {}
    problems: list[str] = []
    for i in range(max(len(source_groups), len(target_groups))):
        if i >= len(source_groups):
            mod, leaves = target_groups[i]
            problems += [f"missing {_join(mod, leaf)} {_shape(t)}" for leaf, t in leaves.items()]
            continue
        src_mod, src_leaves = source_groups[i]
        if i >= len(target_groups):
            problems += [f"unexpected {_join(src_mod, leaf)} {_shape(t)}" for leaf, t in src_leaves.items()]
            continue
        dst_mod, dst_leaves = target_groups[i]
        for leaf in sorted(set(src_leaves) | set(dst_leaves)):
            src_key, dst_key = _join(src_mod, leaf), _join(dst_mod, leaf)
            if leaf not in src_leaves:
                problems.append(f"missing {dst_key} {_shape(dst_leaves[leaf])}")
            elif leaf not in dst_leaves:
                problems.append(f"unexpected {src_key} {_shape(src_leaves[leaf])}")
            elif tuple(src_leaves[leaf].shape) != tuple(dst_leaves[leaf].shape):
                problems.append(
                    f"{_arrow(src_key, dst_key)}: expected shape {_shape(dst_leaves[leaf])}, "
                    f"found {_shape(src_leaves[leaf])}"
                )
            else:
                mapping[src_key] = dst_key
    for src_key, dst_key in mapping.items():
        found, expected = state[src_key], target[dst_key]
        if found.is_floating_point() != expected.is_floating_point():
            problems.append(f"{_arrow(src_key, dst_key)}: expected dtype {expected.dtype}, found {found.dtype}")
    if problems:
        sizes = getattr(getattr(model, "spec", None), "sizes", None)
        what = "the spec " + "-".join(map(str, sizes)) if sizes else "the model"
        raise ModelFileError(f"{source}: the weights do not fit {what}: {'; '.join(sorted(problems))}")
    renamed = OrderedDict(
        (dst, state[src].detach().to(target[dst].dtype).clone()) for src, dst in mapping.items()
    )
    return renamed, mapping


def _arrow(src_key: str, dst_key: str) -> str:
    return src_key if src_key == dst_key else f"{src_key} -> {dst_key}"


def _join(module: str, leaf: str) -> str:
    return f"{module}.{leaf}" if module else leaf


def _shape(t: torch.Tensor) -> str:
    return str(tuple(t.shape))


# -- the whole import ----------------------------------------------------------------------------


def import_state_dict(
    path: str | Path,
    spec: ModelSpec | dict[str, Any] | None = None,
    *,
    hidden: Sequence[int] | None = None,
    activation: str | Activation | None = None,
    trust_pickle: bool = False,
) -> nn.Module:
    """A torchann MLP holding the weights of a tutorial-style ``.pth`` file.

    Args:
        path: a ``torch.save(model.state_dict(), path)`` file (or ``.safetensors``).
        spec: the architecture; when ``None`` it is read from the weights' shapes
            (``hidden`` overrides the hidden sizes) with ``activation`` (default relu,
            since a state dict does not record it).
        trust_pickle: accept a whole pickled model; this runs code from the file.

    Returns:
        The model (``.spec`` set), in eval mode, ready for ``torchann.modeldir.save``.

    Example:
        >>> model = import_state_dict("model_weights.pth", ModelSpec(2, [8], 1))
        >>> torchann.modeldir.save(model, "runs/imported")
    """
    state = read_state_dict(path, trust_pickle=trust_pickle)
    model, _ = convert_state_dict(state, spec, hidden=hidden, activation=activation, source=str(path))
    return model


def convert_state_dict(
    state: "OrderedDict[str, torch.Tensor]",
    spec: ModelSpec | dict[str, Any] | None = None,
    *,
    hidden: Sequence[int] | None = None,
    activation: str | Activation | None = None,
    source: str = "state dict",
) -> tuple[nn.Module, dict[str, str]]:
    """``import_state_dict`` for a state dict already in memory; also returns the key mapping."""
    if spec is None:
        spec = infer_spec(state, activation=activation or Activation.RELU, hidden=hidden, source=source)
    else:
        if hidden is not None or activation is not None:
            raise UsageError("give either a spec or hidden/activation, not both; the spec already holds them")
        if isinstance(spec, dict):
            spec = spec_from_dict(spec, source="spec")
        if not isinstance(spec, ModelSpec):
            raise UsageError(f"spec must be a ModelSpec or a dict, got {type(spec).__name__}")
    for key, tensor in state.items():
        problem = _not_plain_weights(tensor) if isinstance(tensor, torch.Tensor) else "is not a tensor"
        if problem:
            raise ModelFileError(f"{source}: tensor {key!r} {problem}; give the dense tensors of a trained model")
    model = spec.build()
    renamed, mapping = map_state_dict(state, model, source=source)
    model.load_state_dict(renamed)
    return model.eval(), mapping


def read_spec_file(path: str | Path) -> ModelSpec:
    """A ``ModelSpec`` from a JSON file: a bare spec, or a model directory's ``spec.json``."""
    import json

    path = Path(path)
    if path.is_dir():
        path = path / "spec.json"
    if not path.exists():
        raise SpecError(f"{path}: spec file not found")
    try:
        data = read_json(path, what="model spec", error=SpecError)
    except SpecError as err:  # keep the wording callers know for broken JSON
        raise SpecError(str(err).replace(": malformed JSON (", ": not valid JSON (").split("; it is not a complete")[0]) from None
    if isinstance(data, dict) and "model" in data and "format" in data:  # a model directory's spec.json
        data = data["model"]
    return spec_from_dict(data, source=str(path))


def parse_activation(value: str) -> Activation:
    """``value`` as an activation, with the list of valid ones on a typo."""
    return parse(Activation, value, name="activation")
