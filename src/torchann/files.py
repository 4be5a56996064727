"""Atomic file and directory writes: a reader sees the old file or the new one, never half.

Everything torchann writes goes through here: a temporary name in the same folder (so the
final ``os.replace`` is a rename on one file system), flushed and fsynced, then renamed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from .errors import UsageError

__all__ = ["atomic_path", "atomic_write_bytes", "atomic_write_text", "atomic_dir", "fsync_dir"]


def _cannot_write(final: Path, err: OSError) -> UsageError:
    blocker = next((p for p in final.parents if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        return UsageError(f"cannot write {final}: {blocker} is a file, not a folder; choose another place")
    return UsageError(f"cannot write {final}: {err.strerror or err}; choose another place")


def fsync_dir(path: str | os.PathLike) -> None:
    """Make a rename inside ``path`` durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is fsynced and renamed to ``path``.

    On an exception the temporary file is removed and ``path`` is left as it was.
    """
    final = Path(path)
    if final.is_dir():
        raise UsageError(f"{final} is a folder; give a file name to write to")
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    except OSError as err:
        raise _cannot_write(final, err) from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, final)
        fsync_dir(final.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty staging directory; on success it replaces ``path`` as a whole.

    An existing ``path`` is moved aside, the staging directory renamed into place, and the old
    one deleted, so ``path`` always holds a complete old or complete new directory (between
    the two renames, for an instant, only the aside copy ``.NAME.old-*`` exists).
    On an exception the staging directory is removed and ``path`` is untouched.
    """
    final = Path(path)
    if final.exists() and not final.is_dir():
        raise UsageError(f"{final} exists and is not a folder; choose another place to write to")
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    except OSError as err:
        raise _cannot_write(final, err) from None
    try:
        yield stage
        fsync_dir(stage)
        aside = None
        if final.exists():
            aside = Path(tempfile.mkdtemp(prefix=f".{final.name}.old-", dir=final.parent))
            os.replace(final, aside / "d")
        os.replace(stage, final)
        fsync_dir(final.parent)
        if aside is not None:
            shutil.rmtree(aside, ignore_errors=True)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
