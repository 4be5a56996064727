"""Saving a finished run's model, and keeping it when the disk is full.

Every write is atomic, so a full disk leaves no partial file; :func:`save_final` then saves
the model to a new folder in the system's temporary folder and says where it went, or, when
that fails too, which checkpoint holds the latest weights.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

from ..core.files import StorageError, is_storage_full
from .rundir import RunDir

__all__ = ["save_final"]


def save_final(save: Callable[[Path], Any], run: RunDir | str | os.PathLike, *,
               checkpoint: str | os.PathLike | None = None) -> Path:
    """Call ``save(folder)`` for the run's folder; when the disk is full, keep the trained model.

    On a full disk (``ENOSPC``, ``EDQUOT``) the partial files are already gone (every write is
    atomic); the model is then saved to a new folder in the system's temporary folder, and a
    :class:`StorageError` says where it went, or, if that fails too, which checkpoint holds
    the latest weights. Returns the folder saved to.
    """
    path = Path(run.path if isinstance(run, RunDir) else run)
    try:
        save(path)
        return path
    except StorageError as err:
        first = err
    except OSError as err:
        if not is_storage_full(err):
            raise
        first = StorageError(f"cannot write {path}: no space left on the device")
    reason = str(first).split(";")[0]
    holder = None
    try:
        holder = Path(tempfile.mkdtemp(prefix=f"torchann-{path.name}-"))
        rescue = holder / path.name
        save(rescue)
    except (StorageError, OSError):
        if holder is not None:
            shutil.rmtree(holder, ignore_errors=True)
        kept = _latest_checkpoint_text(checkpoint)
        raise StorageError(f"{reason}; the trained model could not be saved anywhere; {kept}") from None
    raise StorageError(f"{reason}; the trained model was saved to {rescue} instead: move it where it belongs "
                       f"(e.g. mv {rescue} {path}) after freeing space") from None


def _latest_checkpoint_text(checkpoint: str | os.PathLike | None) -> str:
    if checkpoint is not None:
        from ..training.checkpoint import latest_checkpoint

        latest = latest_checkpoint(checkpoint)
        if latest is not None and latest.is_dir():
            return f"the last checkpoint, {latest}, holds the weights of that epoch: free space, then --resume"
    return "free some space and train again"

