"""Run folders: which folder a training run writes, who holds it, and what it may replace.

A run folder is what ``torchann train --out DIR`` (or ``torchann.train``) writes: a model
directory plus ``history.jsonl``, ``loss.png`` and ``checkpoint/``. :func:`claim_run_dir`
decides the folder before any training starts:

* no folder given: ``runs/<data name>``, then ``runs/<data name>-2``, ``-3``, ... the first
  that is new or empty, so two default runs never write over each other;
* a folder given: it may be new or empty; an existing run needs ``overwrite`` (or ``resume``);
  a folder holding anything else, the current folder and its parents are refused;
* the folder is locked (``fcntl.flock`` on ``.torchann.lock``) while the run holds it, so a
  second process on the same folder stops with one line instead of mixing files; the lock
  goes when the process ends, however it ends;
* a folder that cannot be written to, or a disk without room for the run, is refused before
  training rather than after it.

:func:`~torchann.model.final_save.save_final` saves the trained model into it.
``run_args.read_args`` reads a run's ``args.json`` with every field checked.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.errors import TorchannError, UsageError
from ..core.files import StorageError, is_storage_full

__all__ = [
    "RunDir", "claim_run_dir", "is_run_dir", "default_run_name",
    "estimate_run_bytes", "RunDirBusy", "LOCK_FILE", "RUNS_ROOT",
]

RUNS_ROOT = Path("runs")
LOCK_FILE = ".torchann.lock"
MARKER_FILES = ("spec.json", "weights.safetensors", "history.jsonl", "loss.png", "report.html")
MAX_SUFFIX = 10_000  # runs/<name>-2 ... -10000: past that, the folder is full of runs
MIN_FREE_BYTES = 1 << 20  # a run writes at least a spec.json, weights and a history


class RunDirBusy(UsageError):
    """Another process holds the run folder (its lock file is locked)."""


@dataclass
class RunDir:
    """A claimed run folder; release it (or leave the ``with`` block) when the run ends.

    Attributes:
        path: the folder.
        chosen: True when :func:`claim_run_dir` picked the name (no folder was given).
        existed: the folder held a run before this claim (``overwrite`` or ``resume``).
        created: folders this claim made, outermost first; removed again on release when
            they are still empty (a run stopped by bad input leaves nothing behind).
    """

    path: Path
    chosen: bool = False
    existed: bool = False
    created: list[Path] = field(default_factory=list)
    _fd: int | None = field(default=None, repr=False)

    def release(self) -> None:
        """Drop the lock and remove the lock file, and folders this claim made that stayed empty."""
        if self._fd is not None:
            try:
                (self.path / LOCK_FILE).unlink(missing_ok=True)  # unlink first: see _lock
            except OSError:
                pass
            os.close(self._fd)  # closing releases the flock
            self._fd = None
        for folder in reversed(self.created):
            try:
                folder.rmdir()  # only succeeds when empty
            except OSError:
                break
        self.created = []

    def discard(self) -> None:
        """Remove what a run that crashed wrote (a history cut short, a half-drawn plot), when
        the folder held no run before this claim and there is no checkpoint to resume from:
        a failed run leaves no folder that looks like a run but holds no model."""
        if self.existed or (self.path / "checkpoint").exists():
            return
        for name in MARKER_FILES:
            try:
                (self.path / name).unlink(missing_ok=True)
            except OSError:
                pass

    def __enter__(self) -> "RunDir":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()

    def __fspath__(self) -> str:
        return str(self.path)


def is_run_dir(path: str | os.PathLike) -> bool:
    """True when ``path`` holds what a torchann run writes (spec.json, history, checkpoint/...)."""
    path = Path(path)
    if not path.is_dir():
        return False
    names = set(os.listdir(path)) - {LOCK_FILE}
    if not names:
        return False
    ours = set(MARKER_FILES) | {"checkpoint", "args.json"}
    # Temporaries of an interrupted atomic write (".spec.json.xxxx.tmp") belong to the run too.
    strays = {n for n in names if n not in ours and not (n.startswith(".") and (n.endswith(".tmp") or ".old-" in n))}
    strays.discard(".weights.safetensors.previous")
    if strays:
        return False
    # Names alone prove nothing (anyone may have a loss.png): one file must be torchann's own.
    return (_starts_with(path / "spec.json", b'"format": "torchann.model/')
            or (path / "checkpoint" / "latest.json").is_file() or (path / "checkpoint" / "args.json").is_file()
            or _starts_with(path / "history.jsonl", b'{"epoch": '))


def _starts_with(path: Path, marker: bytes) -> bool:
    if not os.path.isfile(path):  # a named pipe must not be opened: it would block
        return False
    try:
        with open(path, "rb", buffering=0) as handle:
            return marker in handle.read(256)
    except OSError:
        return False


def default_run_name(data: str | os.PathLike | None) -> str:
    """The folder name for a run on ``data``: the file's stem (``data.csv.gz`` -> ``data``) or
    the dataset's name (``sklearn:iris`` -> ``iris``), reduced to letters, digits, ``-_.``."""
    text = str(data) if data is not None else "train"
    name = Path(text.split(":")[-1]).name
    while Path(name).suffix and len(Path(name).suffix) <= 8:
        name = Path(name).stem
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "train"
    return name[:64]


def estimate_run_bytes(n_parameters: int, *, checkpoint: bool = False) -> int:
    """Bytes a run needs on disk at its peak, for the free-space check.

    float32 weights twice (the new file beside the kept previous one while saving over a run);
    with checkpoints, two more copies of the weights and two of Adam's moments (the new
    checkpoint is complete before the old one goes); plus 1 MiB for spec, history and plot.
    """
    weights = 4 * max(int(n_parameters), 0)
    return 2 * weights + (6 * weights if checkpoint else 0) + MIN_FREE_BYTES


def claim_run_dir(out: str | os.PathLike | None, *, overwrite: bool = False, resume: bool = False,
                  data: str | os.PathLike | None = None, root: str | os.PathLike = RUNS_ROOT,
                  need_bytes: int = MIN_FREE_BYTES) -> RunDir:
    """Decide, check and lock the folder a training run writes.

    Args:
        out: the folder given (``--out``), or None to pick ``root/<data name>[-N]``.
        overwrite: an existing run in ``out`` may be replaced (its old ``checkpoint/`` goes now,
            its model when the new one is saved).
        resume: ``out`` is an existing run to continue; it must hold a run.
        data: the data file or dataset name the default folder is named after.
        root: where default folders go (``runs``).
        need_bytes: free space the run needs (see :func:`estimate_run_bytes`).

    Returns:
        a locked :class:`RunDir`; call ``release()`` (or use ``with``) when the run ends.

    Raises:
        UsageError: the folder is ``.`` or above it, a file, holds something that is not a
            run, holds a run and neither ``overwrite`` nor ``resume`` is set, or cannot be
            written to. ``RunDirBusy`` when another process holds it.
        StorageError: the disk has less than ``need_bytes`` free.
    """
    if out is None:
        if resume:
            raise UsageError("resume needs the run folder to continue; give it (--resume DIR)")
        run = _claim_default(Path(root), default_run_name(data))
    else:
        run = _claim_given(Path(out), overwrite=overwrite, resume=resume)
    try:
        _check_free_space(run.path, need_bytes)
        if overwrite and run.existed and not resume:
            _drop_old_checkpoints(run.path)
    except BaseException:
        run.release()
        raise
    return run


def _claim_default(root: Path, name: str) -> RunDir:
    for n in range(1, MAX_SUFFIX + 1):
        path = root / (name if n == 1 else f"{name}-{n}")
        if path.exists() and not (path.is_dir() and not _entries(path)):
            continue  # taken: a run, a file, or anything else; never write over it
        created = _make_dirs(path)
        try:
            run = _lock(path, created=created, chosen=True)
        except RunDirBusy:  # another default run took this name a moment ago
            _remove_empty(created)
            continue
        if _entries(run.path):  # filled between the check and the lock
            run.release()
            continue
        return run
    raise UsageError(f"{root}: {name}, {name}-2 ... {name}-{MAX_SUFFIX} all exist; give a folder with --out")


def _claim_given(path: Path, *, overwrite: bool, resume: bool) -> RunDir:
    shown = path
    try:
        resolved, here = path.resolve(), Path.cwd().resolve()
    except OSError as err:
        raise UsageError(f"{shown}: cannot use this folder ({err.strerror or err}); choose another --out") from None
    if resolved == here or resolved in here.parents:
        where = "the current folder" if resolved == here else "a folder above the current one"
        raise UsageError(f"--out {shown} is {where}; a run writes spec.json, checkpoint/ and more there, "
                         f"so give a folder of its own, e.g. --out runs/NAME")
    if path.exists() and not path.is_dir():
        raise UsageError(f"{shown} exists and is not a folder; choose another --out")
    existed = False
    if path.is_dir() and _entries(path):
        if not is_run_dir(path):
            sample = ", ".join(sorted(_entries(path))[:3])
            raise UsageError(f"{shown} is not empty and not a torchann run (it holds {sample}); "
                             f"choose a new or empty folder for --out")
        if not (overwrite or resume):
            raise UsageError(f"{shown} already holds a torchann run; pass --overwrite to replace it, "
                             f"--resume {shown} to continue it, or choose another --out")
        existed = True
    elif resume:
        raise UsageError(f"{shown}: no run to resume here; give the folder of a run trained with "
                         f"--checkpoint-every")
    created = _make_dirs(path)
    run = _lock(path, created=created, chosen=False)
    run.existed = existed
    return run


def _entries(path: Path) -> set[str]:
    try:
        return set(os.listdir(path)) - {LOCK_FILE}
    except OSError:
        return set()


def _make_dirs(path: Path) -> list[Path]:
    missing = []
    for folder in [path, *path.parents]:
        if folder.exists():
            break
        missing.append(folder)
    created = []
    for folder in reversed(missing):
        try:
            folder.mkdir()
        except FileExistsError:
            continue  # another process made it: not ours to remove
        except OSError as err:
            _remove_empty(created)
            raise _unwritable(path, err) from None
        created.append(folder)
    return created


def _remove_empty(created: list[Path]) -> None:
    for folder in reversed(created):
        try:
            folder.rmdir()
        except OSError:
            return


def _unwritable(path: Path, err: OSError) -> TorchannError:
    blocker = next((p for p in [path, *path.parents] if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        return UsageError(f"cannot write {path}: {blocker} is a file, not a folder; choose another --out")
    if is_storage_full(err):
        return StorageError(f"cannot write in {path}: no space left on the device; free some space or choose "
                            f"another --out")
    return UsageError(f"cannot write in {path}: {err.strerror or err}; choose a folder you can write to (--out)")


def _lock(path: Path, *, created: list[Path], chosen: bool) -> RunDir:
    import fcntl

    lock = path / LOCK_FILE
    for _ in range(100):
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except FileNotFoundError:  # a holder that stopped early removed the empty folder: make it again
            created = created + _make_dirs(path)
            continue
        except OSError as err:
            _remove_empty(created)
            raise _unwritable(path, err) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            _remove_empty(created)
            raise RunDirBusy(f"{path} is in use by another torchann run{holder}; wait for it to end or choose "
                             f"another --out") from None
        except OSError as err:  # a file system without locks: go on unlocked rather than refuse
            if err.errno not in (getattr(os, "ENOLCK", 37), 95):  # ENOLCK, EOPNOTSUPP
                os.close(fd)
                _remove_empty(created)
                raise _unwritable(path, err) from None
        # The holder before us unlinks the file before it unlocks: if the name now leads to
        # another file (or none), this lock guards nothing; take the lock again.
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(lock))
        except FileNotFoundError:
            same = False
        if not same:
            os.close(fd)
            continue
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        except OSError as err:
            os.close(fd)
            lock.unlink(missing_ok=True)
            _remove_empty(created)
            raise _unwritable(path, err) from None
        return RunDir(path=path, chosen=chosen, created=created, _fd=fd)
    raise RunDirBusy(f"{path}: could not take the run's lock (other processes keep replacing it); try again")


def _holder(fd: int) -> str:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return ""
    return f" (process {int(text)})" if text.isdigit() else ""


def _check_free_space(path: Path, need: int) -> None:
    try:
        free = shutil.disk_usage(path).free
    except OSError:
        return
    if free < need:
        raise StorageError(f"{path}: {free:,} bytes free on its disk, but the run needs about {need:,}; "
                           f"free some space or choose another --out")


def _drop_old_checkpoints(path: Path) -> None:
    """An overwritten run's checkpoints belong to the old run: resuming from them would mix runs."""
    old = path / "checkpoint"
    if old.is_dir() and not old.is_symlink():
        shutil.rmtree(old, ignore_errors=True)
