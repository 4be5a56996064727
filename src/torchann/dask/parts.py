"""One task of a file job, run on a worker: score one input partition into one Parquet part.

The part is written under a temporary name in the job's staging folder, flushed, fsynced and
renamed to ``part-NNNNN.parquet``; a task that fails or whose worker dies leaves at most the
temporary file, which the client removes. A retried task writes the same rows to the same
name again. Once the job has failed (the staging folder holds ``ABORT``), tasks that have not
started yet return at once.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Sequence

from .inputs import Piece
from .internals import ClusterError, DataError, StorageError, TorchannError, is_storage_full, quiet_range, score_file
from .loader import ModelRef, where, worker_model

__all__ = ["score_piece", "part_name", "ABORT", "TEMP_SUFFIX", "CHUNK_ROWS"]

ABORT = ".abort"  # in the staging folder: the job has failed, start nothing more
TEMP_SUFFIX = ".tmp"
CHUNK_ROWS = 65_536  # rows read, predicted and written at a time, as torchann predict does


def part_name(index: int) -> str:
    """``part-00007.parquet``: parts sort by name in the order of the input."""
    return f"part-{index:05d}.parquet"


def score_piece(ref: ModelRef, piece: Piece, stage: str, out: str, index: int, *, keep: Sequence[str] = (),
                proba: bool = False, mode: int = 0o644, chunk_rows: int = CHUNK_ROWS) -> int | None:
    """Score ``piece`` with the model ``ref`` names into ``stage/part-<index>.parquet``.

    Args:
        stage: the job's staging folder (it becomes ``out`` when every part is in).
        out: the folder the user named, for messages.
        mode: the permission bits of the part (the client's umask applied).

    Returns:
        The rows written, or ``None`` when the job had already failed and nothing was done.
    """
    folder = Path(stage)
    if (folder / ABORT).exists() or not folder.is_dir():
        return None
    if not os.path.exists(piece.path):
        raise DataError(f"{piece.path}: not found on worker {where()}; every worker must see the input files at "
                        f"the path the client sees (a shared file system, or copies at the same path)")
    model = worker_model(ref)
    name = part_name(index)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=TEMP_SUFFIX, dir=folder)  # no folder: job over
    except FileNotFoundError:
        return None
    except OSError as err:
        raise _write_error(Path(out) / name, err) from None
    try:
        with os.fdopen(fd, "wb") as handle, quiet_range():
            rows = score_file(model, piece.path, stream=handle, fmt="parquet", keep=keep, proba=proba,
                              chunk_rows=chunk_rows, row_groups=piece.row_groups)
            handle.flush()
            os.fsync(handle.fileno())
        if piece.rows is not None and rows != piece.rows:
            raise DataError(f"{piece}: read {rows} rows where the file's footer promised {piece.rows}; was the "
                            f"file rewritten while it was scored?")
        os.chmod(tmp, mode)
        os.replace(tmp, folder / name)
    except TorchannError:
        _remove(tmp)
        raise
    except OSError as err:
        _remove(tmp)
        raise _write_error(Path(out) / name, err) from None
    except Exception as err:  # noqa: BLE001 - one line naming the file, not a worker's traceback
        _remove(tmp)
        reason = str(err).splitlines()[0] if str(err) else ""
        raise ClusterError(f"{piece}: scoring failed ({type(err).__name__}: {reason}); the worker's log has the "
                           f"traceback") from err
    except BaseException:
        _remove(tmp)
        raise
    return rows


def _write_error(final: Path, err: OSError) -> TorchannError:
    if is_storage_full(err):
        return StorageError(f"cannot write {final}: no space left on the device ({err.strerror}); free some space "
                            f"or choose another --out")
    return StorageError(f"cannot write {final}: {err.strerror or err}; every worker must be able to write to "
                        f"--out's folder")


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
