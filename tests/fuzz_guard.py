"""The harness every generated input runs in: a hang becomes a failure, and so does a write
outside the input's own folder or an exception that is not one of torchann's own.

``run_guarded(call, folder)`` calls ``call()`` and returns ``"ok"`` or the name of the
catalogued error it raised; anything else raises ``FuzzFailure`` naming what went wrong.

- **Hangs**: an interval timer interrupts the call after ``timeout`` seconds (the call
  becomes a failure, not a slow test); ``faulthandler`` ends the process with every thread's
  stack if even that does not come back (a hang inside C code).
- **Writes**: a ``sys.addaudithook`` hook sees every ``open`` for writing, rename, remove,
  ``mkdir`` and ``rmdir`` that Python makes while the call runs; each path must lie under
  ``folder``. (Writes that C libraries make themselves are not seen; the folder listing
  before and after is compared as well.)
"""

from __future__ import annotations

import faulthandler
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any, Callable

from torchann.core.errors import TorchannError

__all__ = ["FuzzFailure", "run_guarded", "one_line", "TIMEOUT"]

TIMEOUT = 60.0  # seconds one input may take on a loaded 2-core machine before it counts as a hang


class FuzzFailure(AssertionError):
    """A generated input broke the property: a foreign exception, a hang, a stray write."""


class _Hang(BaseException):  # not an Exception: no `except Exception` in the code under test catches it
    pass


_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
# event -> ((index of a path, index of its dir_fd or None), ...), as the audit events give them
_PATH_EVENTS = {"os.rename": ((0, 2), (1, 3)), "os.remove": ((0, 1),), "os.mkdir": ((0, 2),),
                "os.rmdir": ((0, 1),), "shutil.rmtree": ((0, None),), "os.truncate": ((0, None),),
                "os.link": ((0, 2), (1, 3)), "os.symlink": ((1, 2),), "os.chmod": ((0, 2),),
                "shutil.move": ((0, None), (1, None)), "shutil.copyfile": ((1, None),)}


class _Watch:
    def __init__(self) -> None:
        self.active = False
        self.thread: int | None = None
        self.writes: list[tuple[str, str]] = []

    def hook(self, event: str, args: tuple) -> None:
        if not self.active:
            return
        if event == "open":
            path, mode, flags = (tuple(args) + (None, None, None))[:3]
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or \
                (isinstance(flags, int) and flags & _WRITE_FLAGS)
            if writing and isinstance(path, (str, bytes, os.PathLike)):
                self.writes.append((event, os.fsdecode(path)))
        elif event in _PATH_EVENTS:
            for at, fd_at in _PATH_EVENTS[event]:
                path = args[at] if at < len(args) else None
                if not isinstance(path, (str, bytes, os.PathLike)):
                    continue
                path = os.fsdecode(path)
                fd = args[fd_at] if fd_at is not None and fd_at < len(args) else None
                if isinstance(fd, int) and fd >= 0 and not os.path.isabs(path):
                    try:  # a name relative to an open folder: that folder's path
                        path = os.path.join(os.readlink(f"/proc/self/fd/{fd}"), path)
                    except OSError:
                        pass
                self.writes.append((event, path))


_WATCH = _Watch()
sys.addaudithook(_WATCH.hook)


def _inside(path: str, folder: Path) -> bool:
    if path in (os.devnull,):
        return True
    full = Path(os.path.abspath(path))
    return full == folder or folder in full.parents


def _listing(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")} if folder.exists() else set()


def one_line(message: str) -> bool:
    return bool(message) and "\n" not in message and "\r" not in message


def run_guarded(call: Callable[[], Any], folder: Path, *, allowed: Callable[[BaseException], bool] | None = None,
                timeout: float = TIMEOUT) -> str:
    """``"ok"`` when ``call()`` returns, the error's class name when it raises a catalogued error.

    ``allowed(err)`` says whether an exception is catalogued (default: a ``TorchannError`` with a
    one-line message). Writes must stay under ``folder``, whose cwd the call runs in."""
    folder = Path(os.path.abspath(folder))
    allowed = allowed or (lambda err: isinstance(err, TorchannError) and one_line(str(err)))
    before = _listing(folder.parent)
    main = threading.current_thread() is threading.main_thread()

    def on_alarm(signum: int, frame: Any) -> None:
        raise _Hang()

    old_cwd = os.getcwd()
    old_handler = signal.signal(signal.SIGALRM, on_alarm) if main else None
    if main:
        signal.setitimer(signal.ITIMER_REAL, timeout)
    faulthandler.dump_traceback_later(timeout * 3, exit=True)
    _WATCH.writes.clear()
    _WATCH.active = True
    outcome: str
    try:
        os.chdir(folder)
        call()
        outcome = "ok"
    except _Hang:
        raise FuzzFailure(f"no answer within {timeout:g} s (a hang)") from None
    except BaseException as err:  # noqa: BLE001 - the point is to see every kind
        if isinstance(err, (KeyboardInterrupt, SystemExit)) and not isinstance(err, TorchannError):
            raise
        if not allowed(err):
            raise FuzzFailure(f"{type(err).__module__}.{type(err).__name__}: {str(err)[:300]!r}") from err
        outcome = type(err).__name__
    finally:
        _WATCH.active = False
        if main:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old_handler)
        faulthandler.cancel_dump_traceback_later()
        os.chdir(old_cwd)
    stray = [(event, path) for event, path in _WATCH.writes if not _inside(path, folder)]
    if stray:
        raise FuzzFailure(f"wrote outside its folder: {stray[:3]}")
    outside = {p for p in _listing(folder.parent) - before if not (p == folder.name or p.startswith(folder.name + "/"))}
    if outside:
        raise FuzzFailure(f"new files beside its folder: {sorted(outside)[:3]}")
    return outcome
