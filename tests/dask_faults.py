"""A fault for the Dask scoring tests: a worker process that dies as it puts its first part in place.

Loaded into worker processes with ``dask worker --preload tests/dask_faults.py``, with
``TORCHANN_TEST_KILL_MARK=PATH`` in the workers' environment. The first worker process that is
about to rename a scored part (``.part-NNNNN.parquet.*.tmp``) to its final name creates PATH
(exclusively, so only one process ever can), writes its process id there and exits at once,
leaving the temporary part behind. Every other rename, in any worker, later or at the same
time, goes through: the mark exists. Without the variable nothing is changed.
"""

from __future__ import annotations

import os

MARK = "TORCHANN_TEST_KILL_MARK"


def dask_setup(worker) -> None:  # called by `dask worker --preload` in each worker process
    mark = os.environ.get(MARK)
    if not mark:
        return
    real_replace = os.replace

    def replace(src, dst, *args, **kwargs):
        name = os.path.basename(os.fspath(src))
        if name.startswith(".part-") and name.endswith(".tmp"):
            try:
                fd = os.open(mark, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                pass
            else:
                os.write(fd, f"{os.getpid()} {name}".encode())
                os.close(fd)
                os._exit(17)  # as a crash would: no clean-up, no goodbye to the scheduler
        return real_replace(src, dst, *args, **kwargs)

    os.replace = replace
