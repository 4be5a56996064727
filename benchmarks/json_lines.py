"""One JSON object a line, on stdout and, when a log is named, appended to it too: how the
long benchmark scripts report as they go, so a stopped run keeps what it had measured."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable


def emitter(log: Path | None) -> Callable[[dict], None]:
    def emit(obj: dict) -> None:
        line = json.dumps(obj)
        print(line, flush=True)
        if log:
            with log.open("a") as fh:
                fh.write(line + "\n")
    return emit
