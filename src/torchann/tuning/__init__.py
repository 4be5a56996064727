"""torchann.tuning: ``torchann.tune`` searches ``torchann.train``'s options with Optuna and end in one model.

``torchann.tune(data, target=..., trials=..., time=...)`` (``search.tune``) returns a ``torchann.Model``: the best
trial's network, or a greedy (Caruana) ensemble of the best trials saved as one model
directory. Modules: ``space`` (the search space as data), ``objective`` (one trial: train,
report each epoch, leave the network and validation answers), ``storage`` (a study by URL),
``study`` (continue a study, check it is the same table, fail dead workers' trials),
``ensemble`` (greedy selection, members joined), ``search`` (``tune`` itself).

May import: the API (``torchann.train``, ``Model``), the report and everything below; this package sits above the API (``torchann.train``, ``Model``) and the report; it may
import those and everything below them, never the CLI. Optuna is imported only here, from the
``[tune]`` extra.
"""

from __future__ import annotations

from .search import DEFAULT_STUDY, DEFAULT_TRIALS, tune
from .space import SPACE

__all__ = ["tune", "SPACE", "DEFAULT_TRIALS", "DEFAULT_STUDY"]

