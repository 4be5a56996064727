"""Stopping a run cleanly on SIGINT (Ctrl-C), SIGTERM (``kill``, a scheduler ending a job) or
SIGHUP (a closed terminal).

While ``StopSignals`` is active the handler only records the signal; the loop looks at
``StopSignals.received`` between steps, so a step is never cut in half and the state it
checkpoints is the state after a whole step. A second signal of any kind stops at once
(``KeyboardInterrupt``), for a run that will not stop.

Under torchrun the ranks may get the signal at different steps, and a rank that stopped alone
would leave the others waiting in the next all-reduce. So there the loop does not stop at the
step: it adds the flag to the all-reduce it already makes at the end of each epoch (no extra
collective), and every rank stops after that same epoch. torchrun forwards SIGTERM and SIGINT
to its workers and kills them if they have not ended within its shutdown grace period; an
epoch longer than that ends as a kill, and a resume starts from the last epoch checkpoint.
"""

from __future__ import annotations

import signal
import threading
from typing import Any

__all__ = ["StopSignals", "STOP_SIGNALS"]

STOP_SIGNALS = tuple(s for s in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s is not None)


class StopSignals:
    """A context in which SIGINT, SIGTERM and SIGHUP set ``received`` (the signal's number)."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():  # Python installs handlers there only
            for sig in STOP_SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.received is not None:  # a second signal: stop at once
            raise KeyboardInterrupt
        self.received = signum

    def __exit__(self, *exc: Any) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous if previous is not None else signal.SIG_DFL)
        self._previous.clear()
