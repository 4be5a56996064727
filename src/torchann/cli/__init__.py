"""The ``torchann`` command: a thin shell over the Python API.

Each command lives in a module of this package named after what it does; each module adds
its commands to the one Typer ``app``. Heavy modules (torch and friends) are imported inside
the command functions, so ``torchann --help`` stays fast.
"""

from __future__ import annotations

from ._app import app, main

# Importing these registers their commands on `app`.
from . import demo_cmd as _demo  # noqa: F401,E402
from . import train_cmd as _train  # noqa: F401,E402
from . import predict_cmd as _predict  # noqa: F401,E402

for _name in ("inspect_cmd", "bench_cmd", "import_cmd", "report_cmd", "export_cmd", "tune_cmd", "serve_cmd",
              "cv_cmd", "importance_cmd"):
    # Command groups that other modules add; a missing one is simply not offered.
    try:
        __import__(f"{__name__}.{_name}")
    except ModuleNotFoundError as _err:  # pragma: no cover
        if _err.name != f"{__name__}.{_name}":
            raise

__all__ = ["app", "main"]
