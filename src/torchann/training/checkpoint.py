"""Resumable training state on disk: safetensors for tensors, JSON for everything else.

Layout of a checkpoint directory::

    checkpoint/
      latest.json            {"name": "epoch-000004-step-000000"}: written last, atomically
      epoch-000004-step-000000/
        state.json           nested state with tensors replaced by {"__tensor__": key}
        tensors.safetensors  every tensor of the state (model, optimiser, RNGs, ...)

A new checkpoint is written to its own folder first; only then does ``latest.json`` point
at it and the previous folder go. A process killed at any moment leaves ``latest.json``
naming a complete checkpoint. Nothing here is unpickled when it is read back.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..core.errors import ModelFileError, TorchannError, UsageError
from ..core.files import (
    JSON_LIMIT,
    StorageError,
    atomic_write_text,
    check_regular_file,
    file_mode,
    fsync_dir,
    memory_bytes,
    read_file_bytes,
    read_json,
)

__all__ = ["save_state", "load_state", "latest_checkpoint", "rng_state", "set_rng_state", "flatten", "unflatten"]

POINTER = "latest.json"
FORMAT = "torchann.checkpoint/1"

#: What a training state (one holding "epoch") must hold, and the JSON types of the plain
#: fields: resuming reads each of these without a default.
RUN_STATE_FIELDS: dict[str, tuple[type, ...]] = {
    "epoch": (int,), "step": (int,), "seed": (int,), "batch_size": (int,), "rows": (int,),
    "model": (dict,), "optimizer": (dict,), "stopper": (dict,), "history": (dict,), "rng": (dict,),
}


def flatten(obj: Any, tensors: dict[str, torch.Tensor], prefix: str = "") -> Any:
    """Replace every tensor in a nested dict/list structure by a reference into ``tensors``."""
    if isinstance(obj, torch.Tensor):
        key = prefix or "tensor"
        tensors[key] = obj.detach().cpu().contiguous()
        return {"__tensor__": key}
    if isinstance(obj, np.ndarray):
        key = prefix or "array"
        tensors[key] = torch.from_numpy(np.ascontiguousarray(obj))
        return {"__ndarray__": key}
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            # JSON keys are strings; remember int keys (optimiser state is keyed by int).
            name = f"__int__{k}" if isinstance(k, int) and not isinstance(k, bool) else str(k)
            out[name] = flatten(v, tensors, f"{prefix}.{k}" if prefix else str(k))
        return out
    if isinstance(obj, (list, tuple)):
        items = [flatten(v, tensors, f"{prefix}.{i}") for i, v in enumerate(obj)]
        return {"__tuple__": items} if isinstance(obj, tuple) else items
    if isinstance(obj, float) and not math.isfinite(obj):
        return {"__float__": repr(obj)}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot store {type(obj).__name__} at {prefix!r} in a checkpoint")


def unflatten(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__ndarray__" in obj:
            return tensors[obj["__ndarray__"]].numpy()
        if "__tuple__" in obj:
            return tuple(unflatten(v, tensors) for v in obj["__tuple__"])
        if "__float__" in obj:
            return float(obj["__float__"])
        return {
            (int(k[7:]) if k.startswith("__int__") else k): unflatten(v, tensors) for k, v in obj.items()
        }
    if isinstance(obj, list):
        return [unflatten(v, tensors) for v in obj]
    return obj


def rng_state() -> dict[str, Any]:
    """Every random number generator that training touches."""
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(tuple(state["numpy"]))
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(list(state["cuda"]))


def save_state(directory: str | Path, name: str, state: dict[str, Any]) -> Path:
    """Write ``state`` as checkpoint ``name`` inside ``directory`` and point ``latest.json`` at it."""
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise UsageError(f"checkpoint directory {directory} is a file; give a folder for checkpoints")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UsageError(f"cannot create checkpoint directory {directory}: {err.strerror or err}") from None
    tensors: dict[str, torch.Tensor] = {}
    tree = flatten(state, tensors)
    if _pointer(directory) == name or (directory / name).exists():
        # Never delete the folder latest.json names before the pointer moves: a crash in
        # between would leave it naming nothing. Write beside it under a fresh name.
        n = 1
        while _pointer(directory) == f"{name}.{n}" or (directory / f"{name}.{n}").exists():
            n += 1
        name = f"{name}.{n}"
    final = directory / name
    stage = directory / f".{name}.tmp"
    shutil.rmtree(stage, ignore_errors=True)
    try:
        stage.mkdir()
        save_file(tensors, str(stage / "tensors.safetensors"))
        os.chmod(stage / "tensors.safetensors", file_mode())  # safetensors creates it 0o600, open() would not
        (stage / "state.json").write_text(json.dumps({"format": FORMAT, "state": tree}))
        for child in stage.iterdir():
            with open(child, "rb+") as handle:
                handle.flush()
                os.fsync(handle.fileno())
        fsync_dir(stage)
        stage.rename(final)
        fsync_dir(directory)
    except (OSError, SafetensorError) as err:  # a full disk: the previous checkpoint stays the latest
        shutil.rmtree(stage, ignore_errors=True)
        detail = getattr(err, "strerror", None) or str(err).splitlines()[0]
        kept = latest_checkpoint(directory)
        raise StorageError(f"cannot write checkpoint {final}: {detail}; "
                           + (f"{kept} is still the latest checkpoint" if kept is not None else "no checkpoint kept")
                           + "; free some space or choose another place") from None
    atomic_write_text(directory / POINTER, json.dumps({"name": name}))
    # Only now that the pointer names the new checkpoint may older ones go; only folders
    # this module wrote are removed, whatever else the directory holds is left alone.
    for child in directory.iterdir():
        if child.is_dir() and child.name != name and _is_checkpoint_folder(child):
            shutil.rmtree(child, ignore_errors=True)
        elif child.name.startswith(f".{POINTER}.") and child.name.endswith(".tmp") and child.is_file():
            child.unlink(missing_ok=True)  # a pointer write cut short by a killed process
    return final


_STAGE_FILES = {"tensors.safetensors", "state.json"}


def _is_checkpoint_folder(folder: Path) -> bool:
    """A complete checkpoint, or a staging folder a killed process left behind."""
    try:
        names = {child.name for child in folder.iterdir()}
    except OSError:
        return False
    if folder.name.startswith(".") and folder.name.endswith(".tmp"):
        return names <= _STAGE_FILES
    if names == _STAGE_FILES:
        return _is_checkpoint_json(folder / "state.json")
    # An old checkpoint whose removal a killed process cut short: part of its files, and the
    # name this module gives checkpoints.
    return names < _STAGE_FILES and re.fullmatch(r"epoch-\d{6,}-step-\d{6,}(\.\d+)?", folder.name) is not None


def _is_checkpoint_json(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            return f'"format": "{FORMAT}"'.encode() in handle.read(64)
    except OSError:
        return False


def _pointer(directory: Path) -> str | None:
    try:
        raw = read_file_bytes(directory / POINTER, limit=4096, what=f"checkpoint {POINTER}", error=ModelFileError)
        name = json.loads(raw)["name"]
    except (TorchannError, OSError, ValueError, KeyError, TypeError, RecursionError):
        return None
    # A plain folder name inside ``directory``: a pointer must not lead elsewhere.
    if not isinstance(name, str) or not name or name.startswith(".") or "/" in name or "\\" in name or \
            not name.isprintable():  # (a NUL byte or a lone surrogate cannot name a file)
        return None
    return name


def latest_checkpoint(directory: str | Path) -> Path | None:
    """The folder ``latest.json`` names, or ``None`` when there is no checkpoint yet."""
    directory = Path(directory)
    name = _pointer(directory)
    return None if name is None else directory / name


def load_state(directory: str | Path) -> dict[str, Any]:
    """Read the latest checkpoint in ``directory`` (JSON + safetensors only)."""
    directory = Path(directory)
    if (directory / "checkpoint" / POINTER).exists():  # a run folder was given
        directory = directory / "checkpoint"
    if not directory.is_dir():
        raise ModelFileError(f"{directory}: no such checkpoint directory; pass the run folder given to --out")
    folder = latest_checkpoint(directory)
    if folder is None and (directory / POINTER).exists():
        raise ModelFileError(
            f"{directory / POINTER}: unreadable or names no checkpoint folder; it should hold "
            f'{{"name": "epoch-000001-step-000000"}} naming a folder beside it'
        )
    if folder is None:
        raise ModelFileError(
            f"{directory}: no {POINTER} here, so no complete checkpoint; train with --checkpoint-every N to write one"
        )
    meta = read_json(folder / "state.json", what="torchann checkpoint state.json", error=ModelFileError,
                     limit=JSON_LIMIT)
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or not isinstance(meta.get("state"), dict):
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise ModelFileError(f"{folder}/state.json: not a torchann checkpoint (format {found!r}, expected {FORMAT!r})")
    _check_run_state(folder, meta["state"])
    tensors_path = folder / "tensors.safetensors"
    try:
        info = check_regular_file(tensors_path, what="checkpoint tensors file", error=ModelFileError)
    except FileNotFoundError:
        raise ModelFileError(f"{tensors_path}: missing; the checkpoint is incomplete") from None
    if info.st_size > memory_bytes() // 2:
        raise ModelFileError(f"{tensors_path}: {info.st_size:,} bytes, more than half of this machine's memory; "
                             f"it is not a checkpoint torchann wrote here")
    try:
        tensors = load_file(str(tensors_path))
    except (OSError, ValueError, SafetensorError, RecursionError) as err:
        raise ModelFileError(f"{folder}: checkpoint is unreadable ({err}); it may be truncated or corrupt") from None
    try:
        return unflatten(meta["state"], tensors)
    except KeyError as err:
        raise ModelFileError(f"{folder}: tensor {err} named in state.json is missing from tensors.safetensors") from None
    except (TypeError, ValueError, AttributeError, IndexError) as err:
        raise ModelFileError(f"{folder}/state.json: malformed checkpoint state ({err})") from None


def _check_run_state(folder: Path, state: dict[str, Any]) -> None:
    """A training state (it holds "epoch") must hold every field resuming reads, typed."""
    if "epoch" not in state:
        return
    for key, types in RUN_STATE_FIELDS.items():
        if key not in state:
            raise ModelFileError(f"{folder}/state.json: field state.{key} is missing; the checkpoint is damaged: "
                                 f"train again without --resume")
        value = state[key]
        if isinstance(value, bool) or not isinstance(value, types) or (isinstance(value, int) and not
                                                                        0 <= value < 2 ** 63):  # (torch's int64)
            shown = repr(value) if not isinstance(value, (dict, list)) else type(value).__name__
            expected = "a non-negative integer below 2**63" if types == (int,) else "an object"
            raise ModelFileError(f"{folder}/state.json: field state.{key} holds {shown[:40]}, expected {expected}; "
                                 f"the checkpoint is damaged: train again without --resume")
