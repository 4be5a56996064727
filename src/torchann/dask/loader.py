"""What a task carries instead of a network (``ModelRef``), and each worker's one load of it.

A task of a torchann Dask job never holds the model: it holds the model directory's path and
the SHA-256 of its ``spec.json`` (which holds the weights' SHA-256, so the pair names one
model). The first task a worker process runs loads the directory from that path; the others
find it in a small per-process cache keyed by (path, checksum). A worker whose copy at that
path is another model refuses it instead of answering with it.
"""

from __future__ import annotations

import functools
import hashlib
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .internals import JSON_LIMIT, ModelFileError, TorchannError, read_file_bytes

__all__ = ["ModelRef", "worker_model", "spec_checksum", "where", "loads", "clear"]

SPEC_FILE = "spec.json"  # the file of a model directory that names everything else in it
_LOCK = threading.Lock()  # a worker with several threads loads the model once, not once per thread


@dataclass(frozen=True)
class ModelRef:
    """A model directory as tasks carry it.

    Attributes:
        path: the directory's absolute path; every worker reads the model there.
        checksum: SHA-256 of its ``spec.json``, as the client read it.
    """

    path: str
    checksum: str

    @classmethod
    def of(cls, run: str | os.PathLike) -> "ModelRef":
        """The reference to the model directory ``run`` (read here, on the client)."""
        path = Path(run).expanduser().absolute()
        return cls(str(path), spec_checksum(path))


def spec_checksum(path: str | os.PathLike) -> str:
    """SHA-256 (hex) of ``path/spec.json``; ``ModelFileError`` when there is none to read."""
    spec = Path(path) / SPEC_FILE
    if not spec.exists():
        raise ModelFileError(f"{path}: no such model directory (no {SPEC_FILE}); give the folder that "
                             f"torchann train wrote")
    data = read_file_bytes(spec, limit=JSON_LIMIT, what="model spec file", error=ModelFileError)
    return hashlib.sha256(data).hexdigest()


def worker_model(ref: ModelRef) -> Any:
    """The ``torchann.Model`` that ``ref`` names, loaded once in this process and then kept."""
    with _LOCK:
        return _load(ref.path, ref.checksum)


@functools.lru_cache(maxsize=4)
def _load(path: str, checksum: str) -> Any:
    from ..api.model import load

    try:
        found = spec_checksum(path)
        if found != checksum:
            raise ModelFileError(
                f"{path}/{SPEC_FILE} is not the model the job was started with (SHA-256 {found[:12]}..., "
                f"expected {checksum[:12]}...); give every worker the same model directory at the same path")
        return load(path)
    except TorchannError as err:
        raise type(err)(f"on worker {where()}: {err}") from None


def where() -> str:
    """This worker's address, for messages (a process id outside a distributed worker)."""
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):  # not inside a distributed worker (Dask's local schedulers)
        return f"process {os.getpid()}"


def loads() -> int:
    """How many times this process has loaded a model for a task (the cache's misses)."""
    return _load.cache_info().misses


def clear() -> None:
    """Forget the models this process keeps (a test starts from none)."""
    _load.cache_clear()
