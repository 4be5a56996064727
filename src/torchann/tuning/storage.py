"""Where a study lives, chosen by URL, and the errors a storage can give, as one line each.

* none given: ``DIR/study.db``, SQLite (one process at a time);
* ``sqlite:///PATH``: SQLite at PATH;
* ``journal:PATH``: Optuna's journal file storage, safe for several processes on one machine
  (Optuna recommends it over SQLite for parallel workers);
* ``postgresql://USER:PASSWORD@HOST:PORT/DB`` (or ``mysql://...``): a database server shared
  by workers on many hosts; PostgreSQL's driver comes with ``torchann[tune]``.

Relational storages get Optuna's heartbeat, so a trial whose worker died on another host is
marked failed once its heartbeat is older than the grace period.
"""

from __future__ import annotations

import re
import time
import warnings
from pathlib import Path
from typing import Any

from ..core.errors import UsageError

__all__ = ["require_optuna", "open_storage", "redact", "SCHEMES", "HEARTBEAT_SECONDS", "GRACE_SECONDS",
           "StorageError", "is_locked", "locked", "LOCK_WAIT_SECONDS"]

SCHEMES = ("sqlite", "journal", "postgresql", "mysql")
HEARTBEAT_SECONDS = 30  # a running trial's worker writes its heartbeat this often (relational storages)
GRACE_SECONDS = 120  # a trial whose heartbeat is older than this is taken as dead and marked failed
STUDY_DB = "study.db"
LOCK_WAIT_SECONDS = 30.0  # how long a SQLite study waits for another process's lock before giving up


class StorageError(UsageError):
    """A storage that cannot be used: unknown scheme, unreachable, missing driver, locked."""


def require_optuna() -> Any:
    """The ``optuna`` module, or one line saying how to install it."""
    try:
        import optuna
    except ImportError:
        raise UsageError("tuning needs Optuna: pip install 'torchann[tune]'") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the CLI prints its own line per trial
    return optuna


def redact(url: str) -> str:
    """``url`` with any password replaced by ``***``, for messages and the report."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)


def open_storage(url: str | None, out: Path | None) -> tuple[Any, str]:
    """``(storage, url)``: an Optuna storage for ``url`` (``DIR/study.db`` when None), checked
    by reaching it once, and the URL as recorded (password redacted)."""
    optuna = require_optuna()
    if url is None:
        if out is None:
            return optuna.storages.InMemoryStorage(), "memory"
        out.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{(out / STUDY_DB).resolve()}"
    scheme = url.split(":", 1)[0].split("+", 1)[0].lower() if ":" in url else ""
    if scheme not in SCHEMES:
        raise StorageError(f"unknown storage {redact(url)!r}: give sqlite:///PATH, journal:PATH (several processes "
                           f"on one machine), or postgresql://USER:PASSWORD@HOST:PORT/DB (several hosts)")
    if scheme == "journal":
        path = Path(url.split(":", 1)[1].removeprefix("//"))
        if not path.parent.is_dir():
            raise StorageError(f"storage {url!r}: folder {path.parent} does not exist; create it or name another file")
        from optuna.storages.journal import JournalFileBackend

        try:
            return optuna.storages.JournalStorage(JournalFileBackend(str(path))), url
        except OSError as err:
            raise StorageError(f"storage {url!r}: cannot open {path} ({err.strerror}); check the path") from None
    if scheme == "postgresql":
        try:
            import psycopg  # noqa: F401 - SQLAlchemy 2.1's driver for postgresql://
        except ImportError:
            raise StorageError("a postgresql:// storage needs its driver: pip install 'torchann[tune]'") from None
    if scheme == "sqlite":
        path = Path(url.split(":///", 1)[1]) if ":///" in url else None
        if path is not None and not path.parent.is_dir():
            raise StorageError(f"storage {url!r}: folder {path.parent} does not exist; create it first")
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if scheme == "sqlite":
        kwargs["connect_args"] = {"timeout": LOCK_WAIT_SECONDS}  # wait for a lock instead of failing at once
    elif scheme == "postgresql":
        kwargs["connect_args"] = {"connect_timeout": 10}
    for attempt in range(5):
        try:
            with warnings.catch_warnings():  # the heartbeat is marked experimental; it is what finds dead workers
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                storage = optuna.storages.RDBStorage(url, engine_kwargs=kwargs, heartbeat_interval=HEARTBEAT_SECONDS,
                                                     grace_period=GRACE_SECONDS)
            break
        except Exception as err:  # sqlalchemy's OperationalError and friends: say what failed, in one line
            if _creating_tables_beside_another(err) and attempt < 4:
                # Two workers starting on an empty database both create Optuna's tables; the one
                # that loses the race finds them made on its next try.
                time.sleep(0.2 * (attempt + 1))
                continue
            if is_locked(err):
                raise locked(redact(url)) from None
            raise StorageError(f"cannot reach storage {redact(url)}: {_first_line(err)}; check the host, port, "
                               f"user and password, and that the server runs") from None
    return storage, redact(url)


def locked(where: str) -> Exception:
    """The error for a study database another process holds locked (exit 1: a failure while running)."""
    from ..core.errors import TrainingError

    return TrainingError(f"the study database {where} is locked by another process (waited {LOCK_WAIT_SECONDS:g} s); "
                         f"for several processes on one machine use --storage journal:PATH, for several hosts "
                         f"postgresql://...")


def is_locked(err: BaseException) -> bool:
    """Whether ``err`` is SQLite's 'database is locked' (another process holds the file)."""
    return "database is locked" in str(err)


def _creating_tables_beside_another(err: BaseException) -> bool:
    text = str(getattr(err, "orig", None) or err)
    return "duplicate key" in text or "already exists" in text


def _first_line(err: BaseException) -> str:
    text = str(getattr(err, "orig", None) or err).strip()
    return (text.splitlines() or [type(err).__name__])[0][:300]
