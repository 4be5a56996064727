"""``cross_validate()``: k-fold scores of ``torchann.train`` on one table; ``torchann cv``'s core.

The rows are cut into ``folds`` folds (``torchann.data.folds``: scikit-learn's ``KFold`` for
regression, ``StratifiedKFold`` for classes, shuffled, the same folds for the same seed). For
each fold a model is trained with ``torchann.train`` on the other folds' rows, with the given
options (its own early stopping holds out ``val_split`` of those rows), and scored with
``Model.evaluate`` on the fold's rows. The result is plain data: each fold's scores, and the
mean and spread (population std, ddof 0, as ``numpy.std``) of every score over the folds.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..core.choices import Task, parse
from ..data.folds import k_folds
from ..preprocess.preprocessor import OutOfRangeWarning, infer_task
from .tabular import _features, _training_table, train

__all__ = ["Fold", "CrossValidation", "cross_validate", "DEFAULT_FOLDS"]

DEFAULT_FOLDS = 5


@dataclass(frozen=True)
class Fold:
    """One fold: which rows trained and which were scored, and the scores."""

    fold: int  # 1-based
    train_rows: np.ndarray  # sorted row indices of the table that trained (int64)
    test_rows: np.ndarray  # sorted row indices scored
    scores: dict[str, float]  # Model.evaluate on the test rows (without "rows")
    epochs: int  # epochs trained
    best_epoch: int | None  # the epoch whose weights were kept


@dataclass(frozen=True)
class CrossValidation:
    """Scores of every fold, their mean and spread."""

    task: str
    folds: tuple[Fold, ...]
    seed: int  # of the split and of each fold's training
    stratified: bool  # StratifiedKFold (classes) or KFold
    rows: int  # rows of the table

    @property
    def metrics(self) -> list[str]:
        """Score names present in every fold, in evaluate's order."""
        first = list(self.folds[0].scores)
        return [m for m in first if all(m in f.scores for f in self.folds)]

    @property
    def mean(self) -> dict[str, float]:
        return {m: float(np.mean([f.scores[m] for f in self.folds])) for m in self.metrics}

    @property
    def std(self) -> dict[str, float]:
        return {m: float(np.std([f.scores[m] for f in self.folds])) for m in self.metrics}

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data; folds give their row counts, not their indices."""
        return {
            "task": self.task, "rows": self.rows, "folds": len(self.folds), "seed": self.seed,
            "split": "StratifiedKFold" if self.stratified else "KFold",
            "mean": self.mean, "std": self.std,
            "fold_scores": [{"fold": f.fold, "train_rows": int(len(f.train_rows)), "test_rows": int(len(f.test_rows)),
                             "epochs": f.epochs, "best_epoch": f.best_epoch, **f.scores} for f in self.folds],
        }

    def __str__(self) -> str:
        names = self.metrics
        lines = [f"{self.task}, {len(self.folds)} folds ({'stratified' if self.stratified else 'shuffled'}, "
                 f"seed {self.seed}) of {self.rows} rows",
                 "  " + "  ".join([f"{'fold':<6}", *(f"{m:>12}" for m in names)])]
        for f in self.folds:
            lines.append("  " + "  ".join([f"{f.fold:<6}", *(f"{f.scores[m]:>12.6g}" for m in names)]))
        lines.append("  " + "  ".join([f"{'mean':<6}", *(f"{self.mean[m]:>12.6g}" for m in names)]))
        lines.append("  " + "  ".join([f"{'std':<6}", *(f"{self.std[m]:>12.6g}" for m in names)]))
        return "\n".join(lines)


def cross_validate(data: Any, target: Any = None, *, folds: int = DEFAULT_FOLDS, seed: int | None = 0,
                   on_fold: Callable[[Fold], None] | None = None, **options: Any) -> CrossValidation:
    """K-fold cross-validation of ``torchann.train`` with ``options`` on ``data``.

    Args:
        data, target: as for ``torchann.train`` (a path, ``Table``, frame, dict of columns; the
            target column name(s)).
        folds: how many folds (2 or more, at most the number of rows).
        seed: the seed of the split (scikit-learn's ``random_state``) and of each fold's
            training; None draws one (it is recorded in the result).
        on_fold: called with each finished :class:`Fold`, e.g. to show progress.
        options: any ``torchann.train`` option (``hidden``, ``epochs``, ``task``, ...).

    Returns:
        a :class:`CrossValidation`: ``.folds[i].scores``, ``.mean``, ``.std``, ``.to_dict()``.

    Example:
        >>> cv = torchann.cross_validate("sklearn:diabetes", target="target", folds=5, seed=0)
        >>> cv.mean["r2"], cv.std["r2"]
    """
    from ..core.options import TrainOptions

    TrainOptions.from_flat({**options, "seed": seed}, where="cross_validate")  # an unknown option fails first
    seed = int(seed) if seed is not None else int.from_bytes(os.urandom(4), "little") >> 1
    table = _training_table(data, target, options.pop("target", None))
    table = table.select(None, _features(table, options.pop("features", None), options.pop("exclude", None) or ()))
    task = infer_task(table) if options.get("task") is None else parse(Task, options["task"], name="task")
    stratified = task is Task.CLASSIFICATION
    labels = table.columns[table.targets[0]] if stratified else None
    splits = k_folds(table.n_rows, folds, seed=seed, stratify=labels)
    options = {**options, "task": task.value}
    done = []
    for i, (train_rows, test_rows) in enumerate(splits, 1):
        model = train(table.take(train_rows), seed=seed, **options)
        with warnings.catch_warnings():  # a fold's rows beyond the others' ends are part of the estimate
            warnings.simplefilter("ignore", OutOfRangeWarning)
            scores = model.evaluate(table.take(test_rows))
        scores.pop("rows", None)
        fold = Fold(i, train_rows, test_rows, scores, len(model.history), model.history.info.get("best_epoch"))
        done.append(fold)
        if on_fold is not None:
            on_fold(fold)
    return CrossValidation(task.value, tuple(done), seed, stratified, int(table.n_rows))
