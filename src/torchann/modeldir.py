"""Model directories: ``spec.json`` + ``weights.safetensors``, loaded without running code.

``spec.json`` holds the architecture (a ``ModelSpec``), the SHA-256 of the weights file, the
versions that wrote it, and ``extra``: whatever the data layer needs to turn raw rows into
inputs and outputs into answers (feature names, scaling, classes). Loading parses JSON and
reads safetensors; nothing is unpickled.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save as save_safetensors_bytes
from torch import nn

from . import __version__
from .errors import ModelFileError, SpecError, UsageError
from .files import atomic_dir, atomic_write_bytes, atomic_write_text, fsync_dir
from .spec import ModelSpec

__all__ = ["save", "load", "read_model_dir", "ModelDir", "SPEC_FILE", "WEIGHTS_FILE", "FORMAT"]

SPEC_FILE = "spec.json"
WEIGHTS_FILE = "weights.safetensors"
FORMAT = "torchann.model/1"
PREVIOUS_WEIGHTS = ".weights.safetensors.previous"  # see _keep_previous_weights
PICKLE_SUFFIXES = (".pth", ".pt", ".pkl", ".pickle", ".bin", ".ckpt")


@dataclass
class ModelDir:
    """A loaded model directory: the module, its spec, and the data layer's ``extra``."""

    model: nn.Module
    spec: ModelSpec
    extra: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None


def save(
    model: nn.Module,
    path: str | Path,
    *,
    spec: ModelSpec | None = None,
    extra: dict[str, Any] | None = None,
    files: dict[str, bytes | str] | None = None,
) -> Path:
    """Write ``model`` as a model directory at ``path``; returns the path.

    Args:
        spec: the architecture; taken from ``model.spec`` for models built by torchann.
        extra: JSON-serialisable facts stored in ``spec.json`` (e.g. preprocessing).
        files: more files to write beside the model (``history.jsonl``, ``loss.png``).

    A new directory appears whole or not at all. An existing one (a run folder that
    may hold ``checkpoint/``) has each file replaced atomically, weights before
    ``spec.json``; the weights' checksum in ``spec.json`` tells a torn pair on load.
    """
    spec = spec or getattr(model, "spec", None)
    if not isinstance(spec, ModelSpec):
        raise UsageError(
            "save() needs the model's ModelSpec to store it without pickle: build the model with "
            "torchann.mlp(...) / ModelSpec(...).build(), or pass spec=ModelSpec(...)"
        )
    _check_matches(model, spec)
    weights = save_safetensors_bytes({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()})
    document = {
        "format": FORMAT,
        "torchann_version": __version__,
        "torch_version": torch.__version__,
        "model": spec.to_dict(),
        "weights": {"file": WEIGHTS_FILE, "sha256": hashlib.sha256(weights).hexdigest()},
        "extra": extra or {},
    }
    try:
        spec_text = json.dumps(document, indent=2, allow_nan=False) + "\n"
    except (TypeError, ValueError) as err:
        raise UsageError(f"extra must hold JSON data only (numbers, strings, lists, dicts): {err}") from None
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UsageError(f"{path} exists and is not a directory; choose another --out")
    payload = {WEIGHTS_FILE: weights, **(files or {}), SPEC_FILE: spec_text}
    if path.exists():
        _keep_previous_weights(path)
        for name, data in payload.items():  # spec.json last: it vouches for the weights
            _write(path / name, data)
        (path / PREVIOUS_WEIGHTS).unlink(missing_ok=True)
    else:
        with atomic_dir(path) as stage:
            for name, data in payload.items():
                _write(stage / name, data)
    return path


def _keep_previous_weights(path: Path) -> None:
    """Keep the weights the current ``spec.json`` vouches for until the new ``spec.json`` is in place.

    Files in an existing directory are replaced one by one; a process killed between the new
    weights and the new ``spec.json`` would leave a pair that does not match. The weights that
    do match the old ``spec.json`` stay beside them as ``PREVIOUS_WEIGHTS``, and loading falls
    back to them, so a reader always finds the old model or the new one.
    """
    expected = _vouched_sha(path / SPEC_FILE)
    previous = path / PREVIOUS_WEIGHTS
    if expected is None or _sha_of(previous) == expected:  # an earlier save was cut short: keep that copy
        return
    current = path / WEIGHTS_FILE
    if _sha_of(current) != expected:
        return
    previous.unlink(missing_ok=True)
    try:
        os.link(current, previous)
    except OSError:  # a file system without hard links
        atomic_write_bytes(previous, current.read_bytes())
    fsync_dir(path)


def _vouched_sha(spec_path: Path) -> str | None:
    try:
        sha = json.loads(spec_path.read_text(encoding="utf-8"))["weights"]["sha256"]
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        return None
    return sha if isinstance(sha, str) else None


def _sha_of(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _write(path: Path, data: bytes | str) -> None:
    if isinstance(data, str):
        atomic_write_text(path, data)
    else:
        atomic_write_bytes(path, data)


def _check_matches(model: nn.Module, spec: ModelSpec) -> None:
    expected = spec.build().state_dict()
    found = model.state_dict()
    problems = _differences(expected, found)
    if problems:
        raise UsageError(f"the model does not match the spec it would be saved with: {problems}")


def _names(keys: list[str], limit: int = 12) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")


def _differences(expected: dict[str, torch.Tensor], found: dict[str, torch.Tensor]) -> str:
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    parts = []
    if missing:
        parts.append(f"missing {_names(missing)}")
    if unexpected:
        parts.append(f"unexpected {_names(unexpected)}")
    wrong = []
    for key in sorted(set(expected) & set(found)):
        e, f = expected[key], found[key]
        if tuple(e.shape) != tuple(f.shape):
            wrong.append(f"{key}: expected shape {tuple(e.shape)}, found {tuple(f.shape)}")
        elif e.dtype != f.dtype:
            wrong.append(f"{key}: expected dtype {e.dtype}, found {f.dtype}")
    parts += wrong[:12] + ([f"... ({len(wrong) - 12} more)"] if len(wrong) > 12 else [])
    return "; ".join(parts)


def read_model_dir(path: str | Path, *, device: str | torch.device = "cpu") -> ModelDir:
    """Read and check a model directory; every problem is a one-line ``ModelFileError``."""
    if not isinstance(path, (str, os.PathLike)):
        raise UsageError(f"expected the path of a model directory, got {type(path).__name__}")
    path = Path(path)
    if path.is_file():
        if path.name in (SPEC_FILE, WEIGHTS_FILE):
            path = path.parent
        elif path.suffix.lower() in PICKLE_SUFFIXES:
            raise ModelFileError(
                f"{path} is a PyTorch pickle file, which can run code when loaded; convert a state dict with "
                f"`torchann import {path} --spec SPEC.json --out DIR` first"
            )
        else:
            raise ModelFileError(f"{path} is a file; pass the model directory holding {SPEC_FILE} and {WEIGHTS_FILE}")
    if not path.is_dir():
        raise ModelFileError(f"{path}: no such model directory; train one with `torchann train ... --out {path}`")
    spec_path, weights_path = path / SPEC_FILE, path / WEIGHTS_FILE
    for needed in (spec_path, weights_path):
        if not needed.is_file():
            raise ModelFileError(f"{needed}: missing; a model directory holds {SPEC_FILE} and {WEIGHTS_FILE}")
    document = _read_spec_document(spec_path)
    try:
        spec = ModelSpec.from_dict(document.get("model"), source=str(spec_path))
    except SpecError as err:
        raise ModelFileError(str(err)) from None
    weights_entry = document.get("weights") or {}
    if not isinstance(weights_entry, dict):
        raise ModelFileError(f"{spec_path}: 'weights' must be a JSON object like {{\"sha256\": ...}}, "
                             f"got {type(weights_entry).__name__}")
    try:
        data = weights_path.read_bytes()
    except OSError as err:
        raise ModelFileError(f"{weights_path}: cannot read the file ({err.strerror or err})") from None
    expected_sha = weights_entry.get("sha256")
    if expected_sha is not None and hashlib.sha256(data).hexdigest() != expected_sha:
        # A save into this directory may have been cut short after the new weights and
        # before the new spec.json: the weights this spec.json vouches for are kept aside.
        previous = path / PREVIOUS_WEIGHTS
        if previous.is_file() and _sha_of(previous) == expected_sha:
            data = previous.read_bytes()
    if expected_sha is not None and hashlib.sha256(data).hexdigest() != expected_sha:
        raise ModelFileError(
            f"{weights_path}: contents do not match the checksum in {SPEC_FILE} (truncated, corrupt, or from "
            f"another model); save the model again"
        )
    try:
        tensors = load_safetensors_bytes(data)
    except (SafetensorError, ValueError, RuntimeError) as err:
        raise ModelFileError(f"{weights_path}: not a readable safetensors file ({err})") from None
    # Compare shapes on the meta device first: a spec.json whose sizes do not match the
    # weights on disk must not make this machine allocate the network it describes.
    with torch.device("meta"):
        expected = spec.build().state_dict()
    problems = _differences(expected, tensors)
    if problems:
        raise ModelFileError(f"{weights_path}: weights do not fit {SPEC_FILE}: {problems}")
    model = spec.build()
    model.load_state_dict(tensors)
    model.to(device).eval()
    extra = document.get("extra") or {}
    if not isinstance(extra, dict):
        raise ModelFileError(f"{spec_path}: 'extra' must be a JSON object")
    return ModelDir(model=model, spec=spec, extra=extra, path=path)


def _read_spec_document(spec_path: Path) -> dict[str, Any]:
    try:
        document = json.loads(spec_path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ModelFileError(f"{spec_path}: not UTF-8 text; it is not a torchann spec.json") from None
    except json.JSONDecodeError as err:
        raise ModelFileError(f"{spec_path}: malformed JSON ({err.msg} at line {err.lineno}, column {err.colno})") from None
    except RecursionError:
        raise ModelFileError(f"{spec_path}: JSON nested too deeply; it is not a torchann spec.json") from None
    except OSError as err:
        raise ModelFileError(f"{spec_path}: cannot read the file ({err.strerror or err})") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        found = document.get("format") if isinstance(document, dict) else type(document).__name__
        raise ModelFileError(f"{spec_path}: not a torchann model spec (format {found!r}, expected {FORMAT!r})")
    return document


def load(path: str | Path, *, device: str | torch.device = "cpu") -> nn.Module:
    """The model stored at ``path``, in eval mode, on ``device``."""
    return read_model_dir(path, device=device).model
