"""The demo: the tutorial's add-two-numbers network (§2.1), trained so that it always works.

Four all-positive rows give ReLU units little room: a start can have every hidden unit switched
off for all four rows (seed 17 does), and then nothing trains. The demo trains a few starts and
keeps the one with the lowest training loss; tests check every seed they try predicts 10 + 11
close to 21.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..data.table import Table
from ..model.base import identity_preprocessor
from .model import Model
from ..data.run_rows import RunRows
from ..network.spec import ModelSpec
from ..training.fitting import fit

__all__ = ["train_demo", "DEMO_X", "DEMO_Y", "DEMO_QUERIES", "DEMO_STARTS", "DEMO_FIT"]

# The tutorial's data (§2.1): pairs of numbers and their sums.
DEMO_X = [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 8.0]]
DEMO_Y = [[3.0], [7.0], [11.0], [15.0]]
# Unseen pairs; the first is the tutorial's own question.
DEMO_QUERIES = [[10.0, 11.0], [8.0, 9.0], [1.5, 2.5], [20.0, 30.0]]
DEMO_STARTS = 3
DEMO_FIT: dict[str, Any] = dict(epochs=500, batch_size=4, lr=1e-3, optimizer="sgd", momentum=0.9, loss="mse",
                                shuffle=False, early_stopping=None)


def train_demo(seed: int = 0, *, progress: Any = None) -> Model:
    """Train ``DEMO_STARTS`` starts of the 2-8-1 ReLU net and return the best as a ``Model``
    (features ``a``, ``b``; target ``sum``); ``history.info["starts_final_loss"]`` lists every start."""
    spec = ModelSpec(2, (8,), 1, activation="relu")
    best: tuple[torch.nn.Module, Any] | None = None
    finals = []
    for start in range(DEMO_STARTS):
        run_seed = seed * DEMO_STARTS + start
        torch.manual_seed(run_seed)
        network = spec.build()
        history = fit(network, DEMO_X, DEMO_Y, seed=run_seed, device="cpu", progress=progress, **DEMO_FIT)
        finals.append(history.final_loss)
        if best is None or history.final_loss < best[1].final_loss:
            best = (network, history)
    assert best is not None
    network, history = best
    history.info.update({"starts_final_loss": finals, "start": finals.index(history.final_loss) + 1, "demo": True})
    network.eval()
    rows = Table.from_columns({"a": [r[0] for r in DEMO_X], "b": [r[1] for r in DEMO_X], "sum": [r[0] for r in DEMO_Y]},
                              source="the tutorial's four pairs", targets=["sum"])
    # the report scores the four pairs and looks inside with them
    return Model(network, identity_preprocessor(2, 1, feature_names=["a", "b"], target_names=["sum"]), history,
                 rows=RunRows(rows, np.arange(len(DEMO_X))))
