"""``RunRows``: the table a model was trained on, with its training and held-out rows."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .table import Table

__all__ = ["RunRows"]


@dataclass
class RunRows:
    """The table a model was trained on and its split: ``train`` and ``val`` are row indices
    into ``table``; ``val_table`` is a separate validation table (``--val``) instead."""

    table: Table
    train: np.ndarray
    val: np.ndarray | None = None
    val_table: Table | None = None
    held_out: str = "validation"  # what the page calls the held-out rows ("given" for another table)

    def split(self, name: str) -> Table | None:
        if name == "training":
            return self.table.take(self.train)
        if self.val_table is not None:
            return self.val_table
        return None if self.val is None or len(self.val) == 0 else self.table.take(self.val)
