"""``--cluster``: the address of a running Dask scheduler, or a cluster of local processes.

``tcp://HOST:PORT`` (also ``tls://``, ``ws://``, ``wss://``) connects to a scheduler that
``dask scheduler`` started, whose workers ``dask worker tcp://HOST:PORT`` started, on any
machines. ``local`` starts a ``distributed.LocalCluster`` of one single-threaded worker
process per core this process may use, ``local:N`` one of ``N``; it stops with the job.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from dataclasses import dataclass
from typing import Any, Iterator

from .extra import require
from .internals import ClusterError, UsageError

__all__ = ["ClusterSpec", "parse_cluster", "connect", "CONNECT_TIMEOUT_S"]

CONNECT_TIMEOUT_S = 10.0  # a scheduler that does not answer by then is reported, not waited for
_LOCAL = re.compile(r"local(?::(\d+))?")
_ADDRESS = re.compile(r"(tcp|tls|ws|wss)://(\[[0-9a-fA-F:]+\]|[A-Za-z0-9._-]+):(\d{1,5})")
_MAX_LOCAL = 256


@dataclass(frozen=True)
class ClusterSpec:
    """What ``--cluster`` names.

    Attributes:
        address: the scheduler's address; ``None`` for a local cluster.
        workers: the local cluster's worker processes (``None``: one per usable core).
    """

    address: str | None = None
    workers: int | None = None

    def __str__(self) -> str:
        if self.address is not None:
            return self.address
        return "local" if self.workers is None else f"local:{self.workers}"


def parse_cluster(text: str) -> ClusterSpec:
    """``"tcp://host:8786"``, ``"local"`` or ``"local:4"`` as a ``ClusterSpec``; anything else is a
    ``UsageError`` that shows the two forms."""
    text = str(text).strip()
    local = _LOCAL.fullmatch(text)
    if local is not None:
        if local.group(1) is None:
            return ClusterSpec()
        n = int(local.group(1))
        if not 1 <= n <= _MAX_LOCAL:
            raise UsageError(f"--cluster local:{local.group(1)}: the number of worker processes must be 1 to "
                             f"{_MAX_LOCAL}")
        return ClusterSpec(workers=n)
    address = _ADDRESS.fullmatch(text)
    if address is None or not 0 < int(address.group(3)) < 65536:
        raise UsageError(f"--cluster expects a scheduler address such as tcp://HOST:8786, or local, or local:N "
                         f"(N worker processes here), got {text!r}")
    return ClusterSpec(address=text)


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


@contextlib.contextmanager
def connect(cluster: str | ClusterSpec, *, timeout: float | None = None) -> Iterator[Any]:
    """A ``distributed.Client`` for ``cluster``, closed (and a local cluster stopped) at the end.

    Args:
        cluster: ``"tcp://HOST:PORT"``, ``"local"`` or ``"local:N"`` (or a ``ClusterSpec``).
        timeout: seconds to wait for a remote scheduler before a ``ClusterError``
            (``CONNECT_TIMEOUT_S`` when ``None``).
    """
    spec = cluster if isinstance(cluster, ClusterSpec) else parse_cluster(cluster)
    timeout = CONNECT_TIMEOUT_S if timeout is None else timeout
    dask, distributed = require()
    if spec.address is None:
        # One thread per worker process: torch's own threads would only fight over the cores,
        # and a process per core is what a crash takes down (one partition, retried elsewhere).
        # The scheduler's HTTP server (and dashboard, with bokeh) listens on a free loopback port:
        # its default, 8787, may be taken, and then distributed warns on stderr. The workers'
        # logs share this terminal: only critical ones pass, or a task's DataError would come
        # with a page of "Compute Failed" traceback before the job's own one-line error.
        # Dask starts its workers with MALLOC_TRIM_THRESHOLD_=65536, which turns off glibc's
        # adaptive mmap threshold: every ~1 MB tensor of a forward pass is then mmapped and
        # unmapped again, and scoring ran at half speed (docs/distributed.md). Unset here; a
        # value in this process's environment still wins.
        with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}), \
                distributed.LocalCluster(n_workers=spec.workers or usable_cores(), threads_per_worker=1,
                                         processes=True, host="127.0.0.1", dashboard_address="127.0.0.1:0",
                                         silence_logs=logging.CRITICAL) as local, \
                distributed.Client(local) as client:
            yield client
        return
    try:
        client = distributed.Client(spec.address, timeout=timeout)
    except (OSError, TimeoutError):
        raise ClusterError(f"cannot reach the Dask scheduler at {spec.address} within {timeout:g} s; start one with "
                           f"'dask scheduler' and workers with 'dask worker {spec.address}', or check "
                           f"--cluster") from None
    with client:
        yield client
