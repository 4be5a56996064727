"""Training on tables: the path from raw columns to a model that answers in the target's units.

``fit_table`` splits the rows, fits the ``Preprocessor`` on the training rows only, builds
the network from a ``ModelSpec``, and calls ``fit``. ``TabularModel`` keeps the three
together (module, preprocessor, history) and is what a model directory holds for a table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from .choices import Loss, Task, parse
from .data import Table
from .errors import UsageError
from .history import History
from .modeldir import read_model_dir, save
from .inference import predict
from .preprocess import Preprocessor, infer_task
from .spec import ModelSpec
from .splits import split_indices
from .train import fit

__all__ = ["TabularModel", "fit_table", "default_loss"]


def default_loss(task: Task, n_outputs: int) -> Loss:
    """Mean squared error for regression, cross-entropy for classification."""
    return Loss.CROSS_ENTROPY if task is Task.CLASSIFICATION else Loss.MSE


@dataclass
class TabularModel:
    """A network with the preprocessing that feeds it and the history that trained it."""

    model: nn.Module
    preprocessor: Preprocessor
    history: History = field(default_factory=History)

    @property
    def spec(self) -> ModelSpec:
        return self.model.spec  # type: ignore[return-value]

    @property
    def task(self) -> Task:
        return self.preprocessor.task

    def predict(self, table: Table, *, batch_size: int | None = 65536) -> np.ndarray:
        """Raw rows in, answers out: target units for regression, class labels otherwise."""
        out = predict(self.model, self.preprocessor.transform_x(table), batch_size=batch_size)
        return self.preprocessor.inverse_y(out)

    def predict_proba(self, table: Table, *, batch_size: int | None = 65536) -> np.ndarray:
        out = predict(self.model, self.preprocessor.transform_x(table), batch_size=batch_size)
        return self.preprocessor.proba(out)

    def extra(self) -> dict[str, Any]:
        pre = self.preprocessor
        return {
            "task": pre.task.value,
            "features": pre.feature_names,
            "targets": pre.target_names,
            "classes": pre.classes,
            "preprocessor": pre.to_dict(),
        }

    def save(self, path: str | Path, *, files: dict[str, bytes | str] | None = None) -> Path:
        return save(self.model, path, extra=self.extra(), files=files)

    @classmethod
    def load(cls, path: str | Path, *, device: str | torch.device = "cpu") -> "TabularModel":
        loaded = read_model_dir(path, device=device)
        record = loaded.extra.get("preprocessor")
        if record is None:
            raise UsageError(
                f"{path}: this model was not trained on a table (no preprocessor in spec.json); "
                f"use torchann.load and torchann.predict with numeric inputs"
            )
        return cls(model=loaded.model, preprocessor=Preprocessor.from_dict(record))


def fit_table(
    table: Table,
    *,
    target: str | Sequence[str] | None = None,
    features: Sequence[str] | None = None,
    hidden: Sequence[int] = (64, 64),
    task: str | Task | None = None,
    scale: bool = True,
    fill_missing: str | None = None,
    val_split: float = 0.0,
    val_table: Table | None = None,
    loss: str | None = None,
    seed: int = 0,
    spec_options: dict[str, Any] | None = None,
    **fit_options: Any,
) -> TabularModel:
    """Train a network on ``table`` and return it with its preprocessing and history.

    Args:
        target, features: column names (defaults: the table's own target, every other column).
        hidden: hidden layer widths.
        task: ``regression`` / ``classification``; inferred from the target when None.
        scale: standardise features and a regression target (statistics from training rows).
        fill_missing: ``mean`` / ``median`` / ``zero``; None makes a missing value an error.
        val_split: fraction of rows held out for validation (stratified for classes), or
            ``val_table`` with rows of the same columns.
        spec_options: ``ModelSpec`` fields such as ``activation``, ``dropout``, ``norm``.
        fit_options: passed to ``fit`` (``epochs``, ``batch_size``, ``lr``, ``optimizer``,
            ``early_stopping``, ``scheduler``, ``checkpoint``, ``device``, ``progress`` ...).
    """
    if not 0.0 <= val_split < 1.0:
        raise UsageError(f"val_split must be in [0, 1), got {val_split!r}; 0.2 holds out a fifth of the rows")
    if val_split and val_table is not None:
        raise UsageError("give either val_split or a validation table, not both")
    table = table.select(target, features) if (target is not None or features is not None) else table
    kind = infer_task(table) if task is None else parse(Task, task, name="task")
    train_rows = np.arange(table.n_rows)
    val_rows = None
    if val_split:
        labels = table.columns[table.targets[0]] if kind is Task.CLASSIFICATION else None
        train_rows, val_rows = split_indices(table.n_rows, val_split, seed=seed, stratify=labels)
    if loss is not None and kind is Task.REGRESSION and parse(Loss, loss, name="loss") in (Loss.CROSS_ENTROPY, Loss.BCE):
        raise UsageError(
            f"loss {loss} needs class labels, but the target was taken as a regression target; "
            f"pass task='classification' (--task classification) or a regression loss (mse, mae)"
        )
    pre = Preprocessor.fit(table, task=kind, scale=scale, fill_missing=fill_missing, rows=train_rows)
    x, y = pre.transform_x(table), pre.transform_y(table)
    validation = None
    if val_rows is not None:
        validation = (x[val_rows], y[val_rows])
    elif val_table is not None:
        validation = (pre.transform_x(val_table), pre.transform_y(val_table))
    spec = ModelSpec(pre.in_features, tuple(hidden), pre.out_features, **(spec_options or {}))
    torch.manual_seed(seed)  # the initial weights follow the seed too
    model = spec.build()
    std = pre.target_std if (kind is Task.REGRESSION and pre.scale) else None
    history = fit(
        model, x[train_rows], y[train_rows], loss=loss or default_loss(kind, pre.out_features).value,
        validation=validation, metrics=kind, target_std=std, seed=seed, **fit_options,
    )
    history.info.update({"task": kind.value, "train_rows": int(len(train_rows)),
                         "val_rows": 0 if validation is None else int(len(validation[0]))})
    return TabularModel(model=model, preprocessor=pre, history=history)
