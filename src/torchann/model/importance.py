"""Permutation importance: how much a model's score drops when one column is shuffled.

For each original feature column, the column's values are shuffled across the rows (for a
one-hot column its whole block of inputs moves together, so a row keeps one category), the
rows are scored again, and the drop from the unshuffled score is the column's importance.
Each column is shuffled ``repeats`` times; the result is the mean drop and its spread (the
population standard deviation of the drops, as scikit-learn reports it).

The score is the task's plain one, higher is better: ``r2`` for regression (averaged over
targets), ``accuracy`` for classes, computed from the answers ``Model.predict`` gives.

The shuffles are scikit-learn's for the same integer seed
(``sklearn.inspection.permutation_importance(..., random_state=seed)``): one draw from
``RandomState(seed)`` seeds a ``RandomState`` per column, whose ``shuffle`` of the row order is
applied to the column once per repeat, each on top of the last. So an estimator that wraps the
model and is given the raw columns gets the same drops from scikit-learn, which the tests check.

One computation: ``Model.importance``, ``torchann.permutation_importance``,
``torchann importance`` and the run report's "Which features matter" all call
:func:`input_importance`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.errors import DataError, UsageError

if TYPE_CHECKING:  # pragma: no cover
    from .base import BaseModel

__all__ = ["ColumnImportance", "Importance", "permutation_importance", "input_importance", "DEFAULT_REPEATS"]

DEFAULT_REPEATS = 5  # shuffles per column, as scikit-learn's permutation_importance


@dataclass(frozen=True)
class ColumnImportance:
    """One feature column's importance."""

    column: str  # the original column (a one-hot column's inputs are shuffled together)
    drop: float  # mean over the repeats of (score unshuffled - score shuffled)
    spread: float  # population std (ddof 0) of the drops
    drops: tuple[float, ...]  # each repeat's drop, in order


@dataclass(frozen=True)
class Importance:
    """Permutation importance of every feature column, largest mean drop first."""

    metric: str  # "r2" or "accuracy"
    base: float  # the score of the unshuffled rows
    rows: int  # rows scored
    repeats: int  # shuffles per column
    seed: int  # the seed of the shuffles
    columns: tuple[ColumnImportance, ...]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data: ``columns`` as a list of ``{column, drop, spread, drops}``."""
        out = asdict(self)
        out["columns"] = [dict(c, drops=list(c["drops"])) for c in out["columns"]]
        return out

    def __str__(self) -> str:
        width = max([len("column"), *(len(c.column) for c in self.columns)])
        lines = [f"permutation importance: drop in {self.metric} (base {self.base:.6g}) on {self.rows} rows, "
                 f"{self.repeats} shuffles per column, seed {self.seed}",
                 f"  {'column':<{width}}  {'drop':>10}  {'spread':>10}"]
        lines += [f"  {c.column:<{width}}  {c.drop:>10.4g}  {c.spread:>10.4g}" for c in self.columns]
        return "\n".join(lines)


def permutation_importance(model: "BaseModel", data: Any, *, repeats: int = DEFAULT_REPEATS,
                           seed: int = 0) -> Importance:
    """Permutation importance of each feature column of ``model`` on the labelled rows ``data``.

    Args:
        model: a trained model (``torchann.Model``).
        data: a labelled table (a path, ``Table``, frame or dict of columns with the target).
        repeats: shuffles per column (at least 1).
        seed: an int; the same seed gives the same shuffles as scikit-learn's
            ``permutation_importance(..., random_state=seed)``.

    Returns:
        an :class:`Importance`, columns sorted by mean drop, largest first.

    Example:
        >>> model.importance("test.csv", repeats=5, seed=0).columns[0]   # the column that matters most
    """
    check_repeats(repeats, seed)
    table = model.table(data)
    absent = [n for n in model.target_names if n not in table.columns]
    if absent:
        raise DataError(f"{table.source}: no target column {absent[0]!r}; permutation importance scores the "
                        f"shuffled rows against the true answers, columns present: {', '.join(table.names[:20])}")
    if table.n_rows < 2:
        raise DataError(f"{table.source}: {table.n_rows} row(s); shuffling a column needs at least 2 rows")
    return input_importance(model, model.encode(table), table, repeats=repeats, seed=seed)


def check_repeats(repeats: Any, seed: Any) -> None:
    """``repeats`` a positive int and ``seed`` an int, or one line naming the bad value."""
    if isinstance(repeats, bool) or not isinstance(repeats, (int, np.integer)) or repeats < 1:
        raise UsageError(f"repeats must be a whole number of shuffles, 1 or more, got {repeats!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**32:
        raise UsageError(f"seed must be a whole number in [0, 2**32), got {seed!r}")


def input_importance(model: "BaseModel", x: np.ndarray, table: Any, *, repeats: int = DEFAULT_REPEATS,
                     seed: int = 0) -> Importance:
    """Permutation importance on rows already encoded: ``x`` is ``model.encode(table)``, and
    ``table`` holds the same rows' targets."""
    pre = model.preprocessor
    if pre.task.value == "classification":
        metric, codes = "accuracy", pre.transform_y(table)

        def score(inputs: np.ndarray) -> float:
            return float((pre.proba(model.network_outputs(inputs)).argmax(1) == codes).mean())
    else:
        from .scores import regression_scores

        metric = "r2"
        truth = np.stack([np.asarray(table.columns[t], dtype=np.float64) for t in pre.target_names], 1)

        def score(inputs: np.ndarray) -> float:
            pred = pre.inverse_y(model.network_outputs(inputs)).reshape(truth.shape)
            return regression_scores(truth, pred)["r2"]

    base = score(x)
    # scikit-learn's scheme: one seed per call, then the same RandomState(column_seed) per column.
    column_seed = np.random.RandomState(int(seed)).randint(np.iinfo(np.int32).max + 1)
    columns, start = [], 0
    for f in pre.features:
        block = slice(start, start + f.width)
        start += f.width
        rng = np.random.RandomState(column_seed)
        order = np.arange(len(x))
        shuffled = x.copy()
        drops = []
        for _ in range(repeats):
            rng.shuffle(order)
            shuffled[:, block] = shuffled[order, block]
            drops.append(base - score(shuffled))
        columns.append(ColumnImportance(f.name, float(np.mean(drops)), float(np.std(drops)),
                                        tuple(float(d) for d in drops)))
    columns.sort(key=lambda c: -c.drop)
    return Importance(metric, float(base), int(len(x)), int(repeats), int(seed), tuple(columns))
