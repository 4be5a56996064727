"""Opening a study: create it or continue it (``load_if_exists``), check that it was made for
the same table and target, and mark failed the trials whose worker died.

A study records what it was made for in its user attributes (``torchann``: target, table
fingerprint, task, the validation split's fraction and seed, the fixed options), so that a
second run, or a worker on another host, trains on the same rows and a study cannot be
continued on another table by mistake.
"""

from __future__ import annotations

import hashlib
import os
import socket
from typing import Any

import numpy as np

from ..core.errors import UsageError
from .objective import _start_ticks

__all__ = ["fingerprint", "open_study", "fail_dead_trials", "STUDY_KEY"]

STUDY_KEY = "torchann"


def fingerprint(table: Any) -> str:
    """A short SHA-256 of the table's column names and values (the rows a study trains on)."""
    digest = hashlib.sha256()
    for name in table.names:
        col = table.columns[name]
        digest.update(name.encode("utf-8", "surrogatepass") + b"\0")
        if col.dtype == np.float64:
            digest.update(np.ascontiguousarray(col).tobytes())
        else:
            digest.update(repr(col.tolist()).encode("utf-8", "surrogatepass"))
    return digest.hexdigest()[:16]


def open_study(optuna: Any, storage: Any, name: str, facts: dict[str, Any], *, sampler: Any, pruner: Any,
               where: str) -> Any:
    """The study ``name`` in ``storage``, created if absent; raises ``UsageError`` when it exists
    for another target, table or split (``facts`` as this run sees them)."""
    study = optuna.create_study(study_name=name, storage=storage, direction="minimize", sampler=sampler,
                                pruner=pruner, load_if_exists=True)
    known = study.user_attrs.get(STUDY_KEY)
    if known is None:
        study.set_user_attr(STUDY_KEY, facts)
        return study
    for key, what in (("target", "target"), ("table", "table"), ("task", "task"), ("options", "fixed options"),
                      ("seed", "the split's seed"), ("val_split", "validation fraction")):
        if known.get(key) != facts.get(key):
            raise UsageError(f"study {name!r} in {where} was made for {what} {_shown(known.get(key))}, this run has "
                             f"{_shown(facts.get(key))}; give another --study name (or --out) for a new search")
    return study


def _shown(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "none"
    return repr(value)


def fail_dead_trials(optuna: Any, study: Any, storage: Any) -> list[int]:
    """Mark failed the running trials whose worker was a process of this host that is gone
    (killed with SIGKILL, say); returns their numbers. Trials of other hosts are left to the
    storage's heartbeat (``storage.GRACE_SECONDS``)."""
    host = socket.gethostname()
    failed = []
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        worker = str(trial.user_attrs.get("worker", ""))
        parts = worker.rsplit(":", 2)
        if len(parts) != 3 or parts[0] != host or not parts[1].isdigit():
            continue
        if _alive(int(parts[1]), parts[2]):
            continue
        try:
            storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)  # noqa: SLF001 - as optuna's fail_stale_trials
        except RuntimeError:  # another worker got there first: it is finished either way
            continue
        failed.append(trial.number)
    return failed


def _alive(pid: int, start: str) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process holds the pid now, or ours under another user
        pass
    return start == "?" or _start_ticks(pid) == start
