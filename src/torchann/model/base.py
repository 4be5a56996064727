"""Model: a trained network together with the preprocessing that feeds it and its history.

Whatever trained it (``torchann train``, ``torchann.train``, the scikit-learn estimators) and
however it is reached (``torchann.load``, the CLI), a trained model is one of these, and raw
columns go in and answers in the target's own units (or class labels) come out.

``Model.network`` is the bare ``nn.Module``: calling it directly skips the preprocessing and
answers in the scaled units the network was trained on.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from ..core.choices import Task
from ..core.errors import DataError, ModelFileError, UsageError
from ..data.run_rows import RunRows
from ..data.table import Table
from ..data.table_input import as_table
from ..inspect.layers import summary as layer_summary
from ..inspect.summary import default_input_size
from ..network.predict import padded_pass, predict as network_outputs
from ..network.spec import ModelSpec
from ..preprocess.features import Feature
from ..preprocess.preprocessor import Preprocessor
from ..training.history import History
from .directory import read_model_dir, save as save_model_dir
from .facts import describe as describe_model, model_html
from .scores import classification_scores, regression_scores
from .spread import members_spread

__all__ = ["BaseModel", "identity_preprocessor", "HISTORY_FILE", "PREDICT_BLOCK"]

HISTORY_FILE = "history.jsonl"
# Rows per forward pass when predicting, every pass exactly this size and aligned to the row
# numbers, so that a row's answer does not depend on its neighbours (inference.predict). On a
# 2-core AMD EPYC (AVX2), 1024-row passes of a 32-256-256-1 network ran at 2.3x 65,536-row ones.
PREDICT_BLOCK = 1024
# Fewer rows than this, in a call that is not a piece of a larger file, go through one pass of
# the rows padded to a multiple of PREDICT_SMALL_MULTIPLE rows (network.predict.padded_pass): one row
# costs an 8-row pass instead of a 1,024-row one, within 1e-6 of the aligned passes' answers.
PREDICT_SMALL = 64
PREDICT_SMALL_MULTIPLE = 8


def identity_preprocessor(
    in_features: int, out_features: int, *, feature_names: Sequence[str] | None = None,
    target_names: Sequence[str] | None = None,
) -> Preprocessor:
    """The preprocessing of a network saved without a table: numbers in, outputs as they are."""
    names = list(feature_names or [f"x{i}" for i in range(in_features)])
    targets = list(target_names or (["output"] if out_features == 1 else [f"output{i}" for i in range(out_features)]))
    features = [Feature(name=n, kind="numeric", mean=0.0, std=1.0) for n in names]
    return Preprocessor(task=Task.REGRESSION, features=features, target_names=targets, scale=False,
                        fill_missing=None, target_mean=[0.0] * len(targets), target_std=[1.0] * len(targets))


class BaseModel:
    """A trained network with its preprocessing and history: the value, its answers and its files.

    ``torchann.Model`` is this class plus the views that present it (the run report and loss
    curve its ``save`` adds, ONNX export); code below the report layer takes a ``BaseModel``.

    Args:
        network: the ``nn.Module`` (built from a ``ModelSpec``, so it can be saved without pickle).
        preprocessor: how raw columns become inputs and outputs become answers; ``None`` is the
            identity (features ``x0, x1, ...`` as numbers, outputs returned as they are).
        history: the training run's per-epoch records and facts.
        rows: the table and split it was trained on (what ``train`` passes), kept in memory for
            the run report and never saved or pickled; ``None`` when not at hand.

    Example:
        >>> model = torchann.train("houses.csv", target="price")
        >>> model.predict("new_houses.csv")          # prices, in the target's units
        >>> model.evaluate("test_houses.csv")        # {'rows': ..., 'mse': ..., 'mae': ..., 'r2': ...}
        >>> model.save("runs/houses"); torchann.load("runs/houses").predict([[3, 120.0, "north"]])
    """

    def __init__(self, network: nn.Module, preprocessor: Preprocessor | None = None,
                 history: History | None = None, *, bare: bool | None = None,
                 rows: RunRows | None = None) -> None:
        if not isinstance(network, nn.Module):
            raise UsageError(f"network must be a torch.nn.Module, got {type(network).__name__}")
        spec = getattr(network, "spec", None)
        if preprocessor is None:
            if not isinstance(spec, ModelSpec):
                raise UsageError("a network without a ModelSpec needs a preprocessor; build it with torchann.mlp(...)")
            preprocessor = identity_preprocessor(spec.in_features, spec.out_features)
            bare = True if bare is None else bare
        bare = bool(bare)
        if isinstance(spec, ModelSpec) and spec.in_features != preprocessor.in_features:
            raise UsageError(f"the preprocessor makes {preprocessor.in_features} inputs but the network takes "
                             f"{spec.in_features}")
        self.bare = bare  # saved without a table: inputs are numbers in order
        self.network = network
        self.preprocessor = preprocessor
        self.history = history if history is not None else History()
        self.rows = rows  # the training table and its split, for the report (not saved)
        self.path: Path | None = None  # the model directory it was loaded from or saved to

    # ---------------------------------------------------------------------------- facts

    @property
    def spec(self) -> ModelSpec:
        return self.network.spec  # type: ignore[return-value]

    @property
    def task(self) -> str:
        """``"regression"`` or ``"classification"``."""
        return self.preprocessor.task.value

    @property
    def feature_names(self) -> list[str]:
        """The raw columns the model reads, in order."""
        return self.preprocessor.feature_names

    @property
    def input_names(self) -> list[str]:
        """One name per network input (``"colour=red"`` for a one-hot column)."""
        return self.preprocessor.input_names

    @property
    def target_names(self) -> list[str]:
        return list(self.preprocessor.target_names)

    @property
    def classes(self) -> list | None:
        """Class labels in the order of ``predict_proba``'s columns; None for regression."""
        return None if self.preprocessor.classes is None else list(self.preprocessor.classes)

    def __getstate__(self) -> dict[str, Any]:
        # The training rows kept for the report stay behind: a pickled model carries no data.
        return {k: v for k, v in self.__dict__.items() if k != "rows"} | {"rows": None}

    @property
    def members(self) -> int:
        """How many networks answer together: 1, or the ensemble's member count (``torchann.tune``,
        or the shared-weight members of ``ensemble``)."""
        return len(getattr(self.spec, "members", ())) or getattr(self.spec, "ensemble", 1)

    def __repr__(self) -> str:
        shape = "-".join(str(n) for n in (self.spec.in_features, *self.spec.hidden, self.spec.out_features))
        if self.members > 1:
            shape = f"ensemble of {self.members}"
        where = f", path={str(self.path)!r}" if self.path is not None else ""
        return (f"Model({self.task}, {len(self.feature_names)} features -> {', '.join(self.target_names)}, "
                f"network {shape}, epochs={len(self.history)}{where})")

    def _repr_html_(self) -> str:
        return model_html(self)

    # ------------------------------------------------------------------------- answers

    def table(self, data: Any) -> Table:
        """``data`` as a ``Table``; rows of numbers are read as the features in order."""
        return as_table(data, names=self.feature_names)

    def encode(self, data: Any, *, strict: bool = False) -> np.ndarray:
        """Network inputs, float32 ``(n, in_features)``, for raw ``data`` (the stored preprocessing).

        A bare network (saved without a table) has no column names to match: a table without
        its ``x0, x1, ...`` columns gives its numeric columns, in order, as the inputs.
        ``strict``: a category never seen in training is a ``DataError`` (column, values, rows),
        not a counted ``UnseenCategoryWarning``. Numbers outside their column's training range
        are named in one ``OutOfRangeWarning`` (the model extrapolates there).
        """
        table = self.table(data)
        names = self.feature_names
        if not self.bare or all(n in table.columns for n in names):
            return self.preprocessor.transform_x(table, strict=strict, warn_outside=True)
        numeric = [n for n in table.names if table.columns[n].dtype == np.float64 and n not in self.target_names]
        if len(numeric) != len(names):
            raise DataError(
                f"{table.source}: the model takes {len(names)} numeric input column(s), the table has "
                f"{len(numeric)} ({', '.join(numeric[:20]) or 'none'}); give a table with exactly the model's inputs"
            )
        positional = identity_preprocessor(len(names), self.spec.out_features, feature_names=numeric)
        return positional.transform_x(table)

    def outputs(self, data: Any, *, first_row: int | None = None, strict: bool = False) -> torch.Tensor:
        """The network's raw outputs (scaled units or logits) for raw ``data``.

        ``first_row``: where ``data`` starts in a larger file that is scored in pieces; each row
        then gets the float answer it gets when the file is scored whole. None: ``data`` stands
        alone (a few rows then take the small-batch pass, see ``network_outputs``).
        """
        return self.network_outputs(self.encode(data, strict=strict), first_row=first_row)

    def network_outputs(self, x: Any, *, first_row: int | None = None) -> torch.Tensor:
        """The network's outputs for encoded rows ``x`` (``encode``'s float32 inputs).

        Rows go through forward passes of exactly ``PREDICT_BLOCK`` rows aligned to the row
        numbers counted from ``first_row``, so a row's answer does not depend on the rows sent
        with it. A standalone call (``first_row=None``) of fewer than ``PREDICT_SMALL`` rows
        takes one pass padded to a multiple of ``PREDICT_SMALL_MULTIPLE`` rows instead: its
        answers are within 1e-6 (relative) of the aligned passes' (measured in
        ``tests/test_predict_small.py``), at a fraction of their cost.
        """
        if first_row is None and len(x) < PREDICT_SMALL:
            return padded_pass(self.network, x, multiple=PREDICT_SMALL_MULTIPLE)
        return network_outputs(self.network, x, block=PREDICT_BLOCK, first_row=first_row or 0)

    def predict(self, data: Any, *, return_std: bool = False, strict: bool = False) -> Any:
        """Answers for the rows of ``data``: target units for regression (``(n,)`` for one target,
        ``(n, k)`` for several), class labels ``(n,)`` for classification.

        ``return_std``: also the per-row spread of an ensemble's members, ``(answers, spread)``:
        for regression the members' (weighted) standard deviation in target units, shaped like
        the answers; for classes the members' disagreement, the weight of the members whose
        label differs from the ensemble's, in [0, 1]. Only a model with members has one.
        ``strict``: refuse categories never seen in training (see ``encode``).
        """
        if return_std:
            answers, spread = members_spread(self, self.encode(data, strict=strict), block=PREDICT_BLOCK)
            if self.preprocessor.task is Task.REGRESSION and spread.shape[1] == 1:
                return answers[:, 0], spread[:, 0]
            return (answers, spread[:, 0] if self.preprocessor.task is Task.CLASSIFICATION else spread)
        answers = self.preprocessor.inverse_y(self.outputs(data, strict=strict))
        if self.preprocessor.task is Task.REGRESSION:
            answers = answers.reshape(len(answers), -1)
            return answers[:, 0] if answers.shape[1] == 1 else answers
        return answers

    def predict_proba(self, data: Any, *, strict: bool = False) -> np.ndarray:
        """Class probabilities ``(n, n_classes)``, columns in the order of ``classes``."""
        if self.preprocessor.task is not Task.CLASSIFICATION:
            raise UsageError(f"predict_proba needs a classifier, but this model predicts "
                             f"{', '.join(self.target_names)} as numbers (regression); use predict")
        return self.preprocessor.proba(self.outputs(data, strict=strict))

    def predictions(self, data: Any, *, proba: bool = False, keep: Sequence[str] = (),
                    first_row: int | None = None, std: bool = False, strict: bool = False) -> dict[str, np.ndarray]:
        """Named output columns for ``data``: the ``keep`` columns copied from the input, then one
        column per target, then ``p(<class>)`` per class when ``proba``, then with ``std`` the
        members' spread (``std(<target>)`` for regression, ``disagreement`` for classes; see
        ``predict``). ``first_row`` as for ``outputs``, ``strict`` as for ``encode``."""
        table = self.table(data)
        missing = [k for k in keep if k not in table.columns]
        if missing:
            raise DataError(f"{table.source}: no column {missing[0]!r} to keep; columns are: "
                            f"{', '.join(table.names[:20])}")
        if proba and self.preprocessor.task is not Task.CLASSIFICATION:
            raise UsageError(f"class probabilities need a classifier, but this model predicts "
                             f"{', '.join(self.target_names)} as numbers (regression); leave out proba")
        x = self.encode(table, strict=strict)
        out = self.network_outputs(x, first_row=first_row)
        columns: dict[str, np.ndarray] = {k: _kept(table.columns[k]) for k in keep}
        answers = self.preprocessor.inverse_y(out)
        if self.preprocessor.task is Task.REGRESSION:
            answers = answers.reshape(len(answers), -1)
            columns.update({t: answers[:, i] for i, t in enumerate(self.target_names)})
        else:
            columns[self.target_names[0]] = answers
            if proba:
                p = self.preprocessor.proba(out)
                columns.update({f"p({c})": p[:, i] for i, c in enumerate(self.classes or [])})
        if std:
            _, spread = members_spread(self, x, block=PREDICT_BLOCK, first_row=first_row or 0)
            if self.preprocessor.task is Task.REGRESSION:
                columns.update({f"std({t})": spread[:, i] for i, t in enumerate(self.target_names)})
            else:
                columns["disagreement"] = spread[:, 0]
        return columns

    def evaluate(self, data: Any) -> dict[str, float]:
        """The task's metrics on a labelled table (the target column(s) must be present).

        Regression: ``mse``, ``mae``, ``r2`` (averaged over targets), in the target's units.
        Classification: ``accuracy``, ``balanced_accuracy``, ``log_loss``, and ``auc`` for two
        classes. ``rows`` is the number of rows scored.
        """
        table = self.table(data)
        absent = [n for n in self.target_names if n not in table.columns]
        if absent:
            raise DataError(f"{table.source}: no target column {absent[0]!r} to score against; evaluate needs "
                            f"the true answers, columns present: {', '.join(table.names[:20])}")
        out = self.outputs(table)
        if self.preprocessor.task is Task.REGRESSION:
            truth = np.stack([_numbers(table, n) for n in self.target_names], axis=1)
            pred = self.preprocessor.inverse_y(out).reshape(len(truth), -1)
            return {"rows": int(len(truth)), **regression_scores(truth, pred)}
        codes = self.preprocessor.transform_y(table)
        return {"rows": int(len(codes)), **classification_scores(codes, self.preprocessor.proba(out))}

    # ------------------------------------------------------------------------ look inside

    def summary(self, **kwargs: Any):
        """The layer table (``torchann.summary``) for one row of this model's inputs."""
        return layer_summary(self.network, input_size=default_input_size(self.spec), **kwargs)

    def describe(self) -> dict[str, Any]:
        """What a user needs to trust the model, as plain data: task, features and how each
        became inputs, targets, classes, preprocessing, architecture, and how training went."""
        return describe_model(self)

    # ----------------------------------------------------------------------------- files

    def save(self, path: str | Path, *, files: dict[str, bytes | str] | None = None) -> Path:
        """Write the model directory: ``spec.json``, ``weights.safetensors``, ``history.jsonl``
        (when there is a history), plus ``files`` (name -> content)."""
        pre = self.preprocessor
        extra = {
            "task": pre.task.value, "features": pre.feature_names, "targets": pre.target_names,
            "classes": pre.classes, "preprocessor": pre.to_dict(), "training": _jsonable(self.history.info),
        }
        written: dict[str, bytes | str] = {HISTORY_FILE: self.history.to_jsonl()} if len(self.history) else {}
        written.update(files or {})
        self.path = save_model_dir(self.network, path, extra=extra, files=written)
        return self.path

    @classmethod
    def load(cls, path: str | Path, *, device: str | torch.device = "cpu") -> "BaseModel":
        """The model directory at ``path``; JSON and safetensors only, nothing unpickled."""
        loaded = read_model_dir(path, device=device)
        extra = loaded.extra
        record = extra.get("preprocessor")
        if record is not None:
            pre = Preprocessor.from_dict(record, source=f"{loaded.path}/spec.json extra.preprocessor",
                                         in_features=loaded.spec.in_features, out_features=loaded.spec.out_features)
        else:  # saved with torchann.save(module): numbers in, outputs as they are
            names = extra.get("features")
            names = names if isinstance(names, list) and len(names) == loaded.spec.in_features else None
            pre = identity_preprocessor(loaded.spec.in_features, loaded.spec.out_features, feature_names=names)
        history = _read_history(loaded.path / HISTORY_FILE) if loaded.path is not None else History()
        info = extra.get("training")
        if isinstance(info, dict):
            history.info.update(info)
        try:
            model = cls(loaded.model, pre, history, bare=record is None)
        except UsageError as err:
            raise ModelFileError(f"{path}: {err}; the model directory is inconsistent") from None
        model.path = loaded.path
        return model


def _kept(column: np.ndarray) -> np.ndarray:
    """A kept column as the output shows it: whole numbers (ids) as integers, not ``909279080.0``."""
    if column.dtype != np.float64 or column.size == 0:
        return column
    if np.all(np.isfinite(column)) and np.all(column == np.round(column)) and np.max(np.abs(column)) < 2.0**53:
        return column.astype(np.int64)
    return column


def _numbers(table: Table, name: str) -> np.ndarray:
    col = table.columns[name]
    if col.dtype != np.float64:
        raise DataError(f"{table.source}: target column {name!r} holds text; a regression target must be numbers")
    if np.isnan(col).any():
        row = table.row(int(np.flatnonzero(np.isnan(col))[0]))
        raise DataError(f"{table.source}: target column {name!r} is missing a value at row {row}; "
                        f"drop the rows without an answer before evaluating")
    return col


def _read_history(path: Path) -> History:
    if not path.is_file():
        return History()
    try:
        return History.from_jsonl(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, TypeError) as err:
        raise ModelFileError(f"{path}: unreadable training history ({type(err).__name__}); delete the file "
                             f"or train again") from None


def _jsonable(info: dict[str, Any]) -> dict[str, Any]:
    """``history.info`` without what JSON cannot hold (it is facts: numbers, strings, lists)."""
    out = {}
    for key, value in info.items():
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError):
            continue
        out[key] = value
    return out
