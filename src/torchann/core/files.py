"""Atomic writes and careful reads: a reader sees the old file or the new one, never half.

Everything torchann writes goes through here: a temporary name in the same folder (so the
final ``os.replace`` is a rename on one file system), flushed and fsynced, then renamed. A
write that fails (a full or read-only disk) removes its temporary and raises one
:class:`StorageError` line instead of an ``OSError`` traceback.

Everything torchann reads from a path it was given is first checked to be a regular file
(a named pipe would block forever, a device would never end) and, where a size is known in
advance, no larger than it should be; JSON is parsed strictly (no ``NaN``/``Infinity``, no
integer too long to convert), and a bad value is reported with its place in the document.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import secrets
import shutil
import stat
from pathlib import Path
from typing import Any, Iterator

from .errors import TorchannError, UsageError

__all__ = [
    "atomic_path", "atomic_write_bytes", "atomic_write_text", "atomic_dir", "fsync_dir", "StorageError",
    "is_storage_full", "current_umask", "file_mode", "make_temp_file", "make_temp_dir", "memory_bytes",
    "check_regular_file", "read_file_bytes", "read_json", "parse_json_bytes", "JSON_LIMIT", "field_key",
]

JSON_LIMIT = 64 * 2**20  # bytes: a spec.json, args.json or state.json past this is not one torchann wrote
_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_READ_ONLY = {errno.EROFS, errno.EACCES, errno.EPERM}


class StorageError(TorchannError):
    """A write failed because of the disk: full, over quota, read-only. Exit code 1: the
    input was fine, the machine could not keep the result."""

    exit_code = 1


def is_storage_full(err: BaseException) -> bool:
    """True for the errors of a full disk or quota (``ENOSPC``, ``EDQUOT``, ``EFBIG``)."""
    return isinstance(err, OSError) and err.errno in _FULL


def _cannot_write(final: Path, err: OSError) -> TorchannError:
    blocker = next((p for p in final.parents if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        return UsageError(f"cannot write {final}: {blocker} is a file, not a folder; choose another place")
    if is_storage_full(err):
        return StorageError(f"cannot write {final}: no space left on the device ({err.strerror}); "
                            f"free some space or choose another place")
    if err.errno in _READ_ONLY:
        return UsageError(f"cannot write {final}: {err.strerror}; choose a folder you can write to")
    return StorageError(f"cannot write {final}: {err.strerror or err}; choose another place")


def current_umask() -> int:
    """This process's umask, read without changing it.

    ``os.umask`` can only be read by setting it, and setting it twice (to read, then to put it
    back) lets another thread create a file under the wrong mask in between. Linux (4.7+)
    reports the mask in ``/proc/self/status`` (``Umask:\t0022``), read here on every call;
    elsewhere the answer is the mask the process had when torchann was imported (the one
    moment torchann sets and restores it), which misses only a later change by the program.
    """
    mask = _proc_umask()
    return _IMPORT_UMASK if mask is None else mask


def _proc_umask() -> int | None:
    try:
        with open("/proc/self/status", "rb") as status:
            for line in status:
                if line.startswith(b"Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return None


def _import_umask() -> int:
    mask = _proc_umask()
    if mask is None:  # not Linux: read it by setting it, once, while the module is imported
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


_IMPORT_UMASK = _import_umask()  # current_umask()'s answer where /proc/self/status has no Umask line


def file_mode() -> int:
    """The permission bits a plain ``open(path, "w")`` gives a new file now: ``0o666 & ~umask``."""
    return 0o666 & ~current_umask()


def _temp_name(folder: Path, prefix: str, suffix: str) -> Path:
    return folder / f"{prefix}{secrets.token_hex(6)}{suffix}"


def make_temp_file(folder: str | os.PathLike, *, prefix: str, suffix: str = ".tmp") -> tuple[int, Path]:
    """A new, empty file under a random name in ``folder``, open for reading and writing.

    Like ``tempfile.mkstemp`` (exclusive create, symbolic links not followed), but with the
    bits of a plain ``open()``: mode ``0o666``, less the umask, applied by the kernel.
    Returns the descriptor and the path.
    """
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        path = _temp_name(Path(folder), prefix, suffix)
        try:
            return os.open(path, flags, 0o666), path
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, f"no free temporary name in {folder}")  # pragma: no cover


def make_temp_dir(folder: str | os.PathLike, *, prefix: str, suffix: str = ".tmp") -> Path:
    """A new, empty folder under a random name in ``folder``, with the bits of a plain
    ``mkdir()`` (``0o777`` less the umask), unlike ``tempfile.mkdtemp``'s ``0o700``."""
    for _ in range(100):
        path = _temp_name(Path(folder), prefix, suffix)
        try:
            os.mkdir(path, 0o777)
            return path
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, f"no free temporary name in {folder}")  # pragma: no cover


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
        fd, tmp = make_temp_file(final.parent, prefix=f".{final.name}.")
    except OSError as err:
        raise _cannot_write(final, err) from None
    os.close(fd)
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, final)
        fsync_dir(final.parent)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise _cannot_write(final, err) from None
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
        stage = make_temp_dir(final.parent, prefix=f".{final.name}.")
    except OSError as err:
        raise _cannot_write(final, err) from None
    try:
        yield stage
        fsync_dir(stage)
        aside = None
        if final.exists():
            aside = make_temp_dir(final.parent, prefix=f".{final.name}.old-", suffix="")
            os.replace(final, aside / "d")
        os.replace(stage, final)
        fsync_dir(final.parent)
        if aside is not None:
            shutil.rmtree(aside, ignore_errors=True)
    except OSError as err:
        shutil.rmtree(stage, ignore_errors=True)
        raise _cannot_write(final, err) from None
    except TorchannError as err:  # a file inside failed: name it where it was going, not the staging folder
        shutil.rmtree(stage, ignore_errors=True)
        raise type(err)(str(err).replace(str(stage), str(final))) from None
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise


# ------------------------------------------------------------------------------------ reads


def memory_bytes() -> int:
    """This machine's physical memory in bytes: the bound for what a reader may allocate."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        return 1 << 62

_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))


def _not_regular(path: Path, mode: int, what: str, error: type[TorchannError]) -> TorchannError:
    kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
    return error(f"{path} is {kind}, not a regular file; give a {what}")


def check_regular_file(path: str | os.PathLike, *, what: str = "file",
                       error: type[TorchannError] = UsageError) -> os.stat_result:
    """The ``stat`` of ``path``, or ``error`` when it is a pipe, device, socket or folder.

    Opening a named pipe blocks until someone writes to it, and a device never ends: readers
    call this before they open anything. Symbolic links are followed.
    """
    info = os.stat(path)
    if not stat.S_ISREG(info.st_mode):
        raise _not_regular(Path(path), info.st_mode, what, error)
    return info


def read_file_bytes(path: str | os.PathLike, *, limit: int, what: str = "file",
                    error: type[TorchannError] = UsageError) -> bytes:
    """The contents of the regular file ``path``, refused unread when larger than ``limit`` bytes.

    The file is opened without blocking and checked on the open descriptor, so a pipe put in
    place of a file between a check and the read cannot stall the reader.
    """
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    except FileNotFoundError:
        raise error(f"{path}: not found; give a {what}") from None
    except OSError as err:
        raise error(f"{path}: cannot read the file ({err.strerror or err})") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _not_regular(path, info.st_mode, what, error)
        if info.st_size > limit:
            raise error(f"{path}: {info.st_size:,} bytes, more than the {limit:,} a {what} can hold; "
                        f"it is not a {what}")
        try:
            data = handle.read(limit + 1)
        except OSError as err:
            raise error(f"{path}: cannot read the file ({err.strerror or err})") from None
    if len(data) > limit:  # grew after the check
        raise error(f"{path}: more than {limit:,} bytes; it is not a {what}")
    return data


class _Bad:
    """A JSON value that parsed but must not be used (NaN, an infinite or endless number)."""

    def __init__(self, text: str) -> None:
        self.text = text


def _bad_constant(text: str) -> _Bad:
    return _Bad(text)


def _checked_int(text: str) -> Any:
    try:
        return int(text)
    except ValueError:  # longer than Python converts (sys.get_int_max_str_digits)
        return _Bad(f"an integer of {len(text.lstrip('-'))} digits")


def _checked_float(text: str) -> Any:
    value = float(text)
    return value if math.isfinite(value) else _Bad(text)


def field_key(name: Any) -> str:
    """A field name as a message can show it on one line (a newline in a name broke the line)."""
    name = str(name)
    return name if name.isprintable() else repr(name)[:40]


def _find_bad(node: Any, where: str) -> tuple[str, _Bad] | None:
    stack = [(node, where)]
    while stack:
        value, place = stack.pop()
        if isinstance(value, _Bad):
            return place, value
        if isinstance(value, dict):
            stack.extend((v, f"{place}.{field_key(k)}" if place else field_key(k))
                         for k, v in reversed(list(value.items())))
        elif isinstance(value, list):
            stack.extend((v, f"{place}[{i}]") for i, v in reversed(list(enumerate(value))))
    return None


def read_json(path: str | os.PathLike, *, what: str, error: type[TorchannError] = UsageError,
              limit: int = JSON_LIMIT) -> Any:
    """Parse the JSON file ``path`` strictly; every problem is one ``error`` naming the file.

    Refused: a file that is not regular or is larger than ``limit``, text that is not UTF-8,
    malformed or too deeply nested JSON, and the values Python's parser would otherwise let
    through: ``NaN``, ``Infinity``, numbers that overflow to infinity (``1e999``) and
    integers too long to convert. The message names the field (``model.hidden[0]``).
    """
    path = Path(path)
    return parse_json_bytes(read_file_bytes(path, limit=limit, what=what, error=error), path, what=what, error=error)


def parse_json_bytes(data: bytes, path: str | os.PathLike, *, what: str,
                     error: type[TorchannError] = UsageError) -> Any:
    """:func:`read_json` for bytes already read from ``path`` (named in the messages)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise error(f"{path}: not UTF-8 text; it is not a {what}") from None
    try:
        document = json.loads(text.lstrip("\ufeff"), parse_constant=_bad_constant, parse_int=_checked_int,
                              parse_float=_checked_float)
    except json.JSONDecodeError as err:
        raise error(f"{path}: malformed JSON ({err.msg} at line {err.lineno}, column {err.colno}); "
                    f"it is not a complete {what}") from None
    except RecursionError:
        raise error(f"{path}: JSON nested too deeply; it is not a {what}") from None
    except ValueError as err:
        raise error(f"{path}: unreadable JSON value ({str(err).split(';')[0]}); it is not a {what}") from None
    found = _find_bad(document, "")
    if found is not None:
        place, bad = found
        raise error(f"{path}: field {place or '(top level)'} holds {bad.text}, which is not a finite number; "
                    f"fix or regenerate the {what}")
    return document
