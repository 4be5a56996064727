"""Scoring on Dask's distributed scheduler: many worker processes, on one machine or many.

What it offers:

- ``predict(dataframe, run)``: a Dask dataframe of ``run``'s answers for the rows of a Dask
  dataframe, lazily, partition by partition, row for row equal to ``torchann.load(run)``'s.
- ``score_files(run, "data/*.parquet", "preds/", cluster="tcp://host:8786")``: what
  ``torchann predict RUN --data GLOB --out DIR --cluster ...`` runs: one Parquet part per input
  partition, the folder in place only once every part is.
- ``connect(cluster)``: a ``distributed.Client`` for ``tcp://HOST:PORT`` or ``local[:N]``.

Workers never receive the network through the task graph: each task carries the model
directory's path and the checksum of its ``spec.json`` (``ModelRef``), and each worker process
loads the directory once and keeps it (``loader.worker_model``).

May import: every layer below (``core`` ... ``api``: the errors, atomic files, the readers'
delimiter guess and ``model.scoring`` through ``internals``; ``api.model.load`` inside the
functions that load a model), never ``cli``.
``dask`` and ``distributed`` (the ``[dask]`` extra) are imported inside functions, so
``import torchann.dask`` works without them and a call says what to install. Inside this
package ``import dask`` is the library: imports are absolute.
"""

from __future__ import annotations

import importlib
from typing import Any

# public name -> module of this package that defines it
_EXPORTS = {
    "predict": "frames",
    "score_files": "jobs",
    "ScoreResult": "jobs",
    "connect": "cluster",
    "ModelRef": "loader",
    "INSTALL_HINT": "extra",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)


def __dir__() -> list[str]:
    return sorted(__all__)
