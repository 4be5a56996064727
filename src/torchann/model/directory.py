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

from ..core.version import __version__
from ..core.checks import check_path
from ..core.errors import ModelFileError, SpecError, UsageError
from ..core.files import (
    JSON_LIMIT,
    atomic_dir,
    atomic_write_bytes,
    atomic_write_text,
    check_regular_file,
    fsync_dir,
    parse_json_bytes,
    read_file_bytes,
)
from ..network.members import spec_from_dict
from ..network.spec import ModelSpec

__all__ = ["save", "load", "read_model_dir", "weights_size_limit", "ModelDir", "SPEC_FILE", "WEIGHTS_FILE", "FORMAT"]

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
    path = check_path("path", path, what="the model directory to write")
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
        kept = _keep_previous_weights(path)
        try:
            _write(path / WEIGHTS_FILE, weights)
        except BaseException:  # the old pair is still whole: the copy kept aside is not needed
            if kept:
                (path / PREVIOUS_WEIGHTS).unlink(missing_ok=True)
            raise
        for name, data in payload.items():  # spec.json last: it vouches for the weights
            if name != WEIGHTS_FILE:
                _write(path / name, data)
        (path / PREVIOUS_WEIGHTS).unlink(missing_ok=True)
    else:
        with atomic_dir(path) as stage:
            for name, data in payload.items():
                _write(stage / name, data)
    return path


def _keep_previous_weights(path: Path) -> bool:
    """Keep the weights the current ``spec.json`` vouches for until the new ``spec.json`` is in place;
    True when this call made the copy.

    Files in an existing directory are replaced one by one; a process killed between the new
    weights and the new ``spec.json`` would leave a pair that does not match. The weights that
    do match the old ``spec.json`` stay beside them as ``PREVIOUS_WEIGHTS``, and loading falls
    back to them, so a reader always finds the old model or the new one.
    """
    expected = _vouched_sha(path / SPEC_FILE)
    previous = path / PREVIOUS_WEIGHTS
    if expected is None or _sha_of(previous) == expected:  # an earlier save was cut short: keep that copy
        return False
    current = path / WEIGHTS_FILE
    if _sha_of(current) != expected:
        return False
    previous.unlink(missing_ok=True)
    try:
        os.link(current, previous)
    except OSError:  # a file system without hard links
        atomic_write_bytes(previous, current.read_bytes())
    fsync_dir(path)
    return True


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
    if not isinstance(model, nn.Module):
        raise UsageError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    found = model.state_dict()
    for key, tensor in found.items():
        if tensor.is_meta:
            raise UsageError(f"model tensor {key!r} is on the meta device (a shape without values), so there are no "
                             f"weights to save; materialise the model first (model.to_empty(device='cpu'), then "
                             f"initialise or train it)")
    with torch.device("meta"):  # the spec's shapes and dtypes, without allocating its weights
        expected = spec.build().state_dict()
    problems = _differences(expected, found)
    if problems:
        fix = "; call model.float() first (weights are stored as float32)" if "expected dtype" in problems else ""
        raise UsageError(f"the model does not match the spec it would be saved with: {problems}{fix}")


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
    """Read and check a model directory; every problem is a one-line ``ModelFileError``.

    Nothing is allocated or read past the sizes ``spec.json`` allows: the architecture is
    built on the meta device first, and a weights file larger than those tensors need is
    refused before it is read. A save running in another process at the same moment is
    seen whole: the files are read as one snapshot, and read again when it is torn.
    """
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
        if path.exists():
            check_regular_file(path, what="model directory", error=ModelFileError)
        raise ModelFileError(f"{path}: no such model directory; train one with `torchann train ... --out {path}`")
    spec_path, weights_path = path / SPEC_FILE, path / WEIGHTS_FILE
    for needed in (spec_path, weights_path):
        if not needed.exists():
            raise ModelFileError(f"{needed}: missing; a model directory holds {SPEC_FILE} and {WEIGHTS_FILE}")
    document, spec, data = _read_snapshot(path)
    try:
        tensors = load_safetensors_bytes(data)
    except (SafetensorError, ValueError, RuntimeError) as err:
        raise ModelFileError(f"{weights_path}: not a readable safetensors file ({err})") from None
    with torch.device("meta"):  # shapes only: nothing the size of the spec's network is allocated
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


SNAPSHOT_TRIES = 5  # a torn read happens only while another process saves; each retry sees a later state


def _read_snapshot(path: Path) -> tuple[dict[str, Any], ModelSpec, bytes]:
    """``spec.json``, its spec, and the weights it vouches for, read as one consistent state.

    A save into an existing directory replaces the weights, then ``spec.json``, keeping the
    old weights as ``PREVIOUS_WEIGHTS`` in between. A reader that reads ``spec.json`` before
    a save and the weights after it holds a pair that does not match, and the kept copy may
    already be gone. The pair is then read again; only a mismatch that stays while
    ``spec.json`` is unchanged is reported as damage.
    """
    spec_path, weights_path = path / SPEC_FILE, path / WEIGHTS_FILE
    last_spec: bytes | None = None
    for _ in range(SNAPSHOT_TRIES):
        spec_bytes = read_file_bytes(spec_path, limit=JSON_LIMIT, what=f"torchann {SPEC_FILE}", error=ModelFileError)
        document = _parse_spec_document(spec_path, spec_bytes)
        try:
            spec = spec_from_dict(document.get("model"), source=str(spec_path))
        except SpecError as err:
            raise ModelFileError(str(err)) from None
        expected_sha = _weights_sha(spec_path, document)
        limit = weights_size_limit(spec)
        data = _read_weights(weights_path, limit)
        if expected_sha is None or hashlib.sha256(data).hexdigest() == expected_sha:
            return document, spec, data
        # A save may be half-way: the weights this spec.json vouches for are kept aside.
        previous = path / PREVIOUS_WEIGHTS
        if previous.exists():
            try:
                kept = _read_weights(previous, limit)
            except ModelFileError:
                kept = b""
            if hashlib.sha256(kept).hexdigest() == expected_sha:
                return document, spec, kept
        if spec_bytes == last_spec and _unchanged(spec_path, spec_bytes):
            break  # the same spec.json twice, and still no weights to match it: damage, not a race
        last_spec = spec_bytes
        _before_retry()
    raise ModelFileError(
        f"{weights_path}: contents do not match the checksum in {SPEC_FILE} (truncated, corrupt, or from "
        f"another model); save the model again"
    )


def _before_retry() -> None:
    """Called between two reads of a torn pair (tests inject a concurrent save here)."""


def _unchanged(spec_path: Path, spec_bytes: bytes) -> bool:
    try:
        return spec_path.read_bytes() == spec_bytes
    except OSError:
        return False


def _weights_sha(spec_path: Path, document: dict[str, Any]) -> str | None:
    entry = document.get("weights") or {}
    if not isinstance(entry, dict):
        raise ModelFileError(f"{spec_path}: 'weights' must be a JSON object like {{\"sha256\": ...}}, "
                             f"got {type(entry).__name__}")
    sha = entry.get("sha256")
    if sha is not None and not isinstance(sha, str):
        raise ModelFileError(f"{spec_path}: field weights.sha256 must be a hex string, got {type(sha).__name__}")
    return sha


def weights_size_limit(spec: ModelSpec) -> int:
    """The most bytes a weights file for ``spec`` can hold: its float32 tensors plus a
    safetensors header (8 bytes of length, then at most ~64 KiB of JSON per tensor name list)."""
    with torch.device("meta"):
        tensors = spec.build().state_dict()
    data = sum(t.numel() * t.element_size() for t in tensors.values())
    return data + 8 + 65536 + 256 * len(tensors)


def _read_weights(weights_path: Path, limit: int) -> bytes:
    try:
        info = check_regular_file(weights_path, what=f"{WEIGHTS_FILE} file", error=ModelFileError)
    except FileNotFoundError:
        raise ModelFileError(f"{weights_path}: missing; a model directory holds {SPEC_FILE} and {WEIGHTS_FILE}") from None
    if info.st_size > limit:
        raise ModelFileError(
            f"{weights_path}: {info.st_size:,} bytes, but the network in {SPEC_FILE} needs at most {limit:,}; "
            f"the file is not this model's weights (save the model again)"
        )
    return read_file_bytes(weights_path, limit=limit, what=f"{WEIGHTS_FILE} file", error=ModelFileError)


def _parse_spec_document(spec_path: Path, raw: bytes) -> dict[str, Any]:
    document = parse_json_bytes(raw, spec_path, what=f"torchann {SPEC_FILE}", error=ModelFileError)
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        found = document.get("format") if isinstance(document, dict) else type(document).__name__
        raise ModelFileError(f"{spec_path}: not a torchann model spec (format {found!r}, expected {FORMAT!r})")
    return document


def _read_spec_document(spec_path: Path) -> dict[str, Any]:
    raw = read_file_bytes(spec_path, limit=JSON_LIMIT, what=f"torchann {SPEC_FILE}", error=ModelFileError)
    return _parse_spec_document(spec_path, raw)


def load(path: str | Path, *, device: str | torch.device = "cpu") -> nn.Module:
    """The model stored at ``path``, in eval mode, on ``device``."""
    return read_model_dir(path, device=device).model
