"""Encoding and scaling of a table's columns, fitted on training rows, stored as plain JSON.

Rules:

* Numeric feature columns are standardised, ``(x - mean) / std``, with the mean and the
  population std (ddof 0) of the training rows' observed values, computed in float64; a
  constant column gets std 1. ``scale=False`` stores mean 0 and std 1.
* Text and boolean feature columns (and numeric ones named in ``categorical=``) are one-hot
  encoded, one column per category, categories sorted. The category list comes from every row
  of the table given to ``fit`` (a category seen only in validation rows still gets a column);
  statistics come from the ``rows`` given (the training rows) only.
* Missing values are an error unless ``fill_missing`` is ``"mean"``, ``"median"`` or
  ``"zero"``: a missing number becomes the training mean / median / 0 (before scaling); a
  missing category becomes an all-zero one-hot block.
* Task, when not given (see :func:`infer_task`): classification when the one target is text or
  boolean, or holds integers with at most ``MAX_CLASSES`` distinct values and at least two rows
  per distinct value on average (``2 * n_distinct <= n_rows``); regression otherwise, and always
  when there are several targets.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np

from .choices import Choice, Task, parse
from .data import Key, Table
from .errors import DataError, ModelFileError, UsageError
from .columns import LabelKind, coerce, label_kind, numeric_values

__all__ = ["Preprocessor", "FillMissing", "infer_task", "MAX_CLASSES"]

MAX_CLASSES = 20  # integer targets with more distinct values than this are treated as regression
MAX_CATEGORIES = 1000  # a text feature with more distinct values is almost surely an identifier
FORMAT = "torchann.preprocessor"


class FillMissing(Choice):
    MEAN = "mean"
    MEDIAN = "median"
    ZERO = "zero"


def _shown(values: Sequence[Any], limit: int = 20) -> str:
    text = ", ".join(repr(v) for v in values[:limit])
    return text + (f", ... ({len(values) - limit} more)" if len(values) > limit else "")


def infer_task(table: Table, target: Key | Sequence[Key] | None = None) -> Task:
    """Classification or regression for ``target`` (default: the table's targets); see the module doc."""
    names = _targets(table, target)
    if len(names) > 1:
        return Task.REGRESSION
    col = table.columns[names[0]]
    if col.dtype != np.float64:
        return Task.CLASSIFICATION
    values = col[~np.isnan(col)]
    if values.size == 0 or not np.all(np.isfinite(values)) or not np.all(values == np.round(values)):
        return Task.REGRESSION
    n_distinct = np.unique(values).size
    if 2 <= n_distinct <= MAX_CLASSES and 2 * n_distinct <= values.size:
        return Task.CLASSIFICATION
    return Task.REGRESSION


def _targets(table: Table, target: Key | Sequence[Key] | None) -> list[str]:
    if target is None:
        if not table.targets:
            raise DataError(f"{table.source}: no target column given; name one with target= (--target); "
                            f"columns are: {', '.join(table.names[:20])}")
        return list(table.targets)
    keys = [target] if isinstance(target, (str, int)) else list(target)
    return [table.column_name(k, role="target") for k in keys]


@dataclass
class Feature:
    """How one input column becomes model inputs."""

    name: str
    kind: str  # "numeric" (1 input) or "categorical" (one input per category)
    mean: float = 0.0  # numeric: subtracted (training mean, or 0 when not scaling)
    std: float = 1.0  # numeric: divided by (training std, 1 for a constant column or when not scaling)
    fill: float | None = None  # numeric: value for a missing entry (None: missing is an error)
    categories: list | None = None  # categorical: sorted known values
    label_kind: str | None = None  # categorical: "str", "int", "float" or "bool"

    @property
    def width(self) -> int:
        return 1 if self.kind == "numeric" else len(self.categories or [])


class Preprocessor:
    """Turns a :class:`Table` into float32 model inputs and targets, and predictions back.

    Build one with :meth:`fit` (or :meth:`from_dict`); ``to_dict()`` is plain JSON.

    Example::

        table = load_table("sklearn:iris")                       # target defaults to "target"
        task = infer_task(table)                                 # classification
        labels = table.columns[table.targets[0]] if task == "classification" else None
        train, val = split_indices(table.n_rows, 0.2, seed=0, stratify=labels)
        pre = Preprocessor.fit(table, rows=train)                # statistics from training rows
        x, y = pre.transform_x(table), pre.transform_y(table)    # (150, 4) float32, (150,) int64
        x_train, y_train, x_val, y_val = x[train], y[train], x[val], y[val]
        labels = pre.inverse_y(logits)                           # logits (n, 3) -> labels 0 / 1 / 2
    """

    def __init__(self, *, task: Task, features: list[Feature], target_names: list[str], scale: bool,
                 fill_missing: FillMissing | None, target_mean: list[float] | None = None,
                 target_std: list[float] | None = None, classes: list | None = None,
                 class_kind: str | None = None) -> None:
        self.task = task
        self.features = features
        self.target_names = target_names
        self.scale = scale
        self.fill_missing = fill_missing
        self.target_mean = target_mean
        self.target_std = target_std
        self.classes = classes
        self.class_kind = class_kind

    # ------------------------------------------------------------------------------------ fit

    @classmethod
    def fit(cls, table: Table, *, target: Key | Sequence[Key] | None = None, features: Sequence[Key] | None = None,
            task: Task | str | None = None, scale: bool = True, fill_missing: FillMissing | str | None = None,
            categorical: Sequence[str] = (), rows: Any = None) -> Preprocessor:
        """Fit encoders and scalers.

        Args:
            table: the data; ``target``/``features`` default to the table's own choice.
            task: ``"regression"`` / ``"classification"``; None infers it (:func:`infer_task`).
            scale: standardise numeric features and regression targets.
            fill_missing: ``"mean"``, ``"median"`` or ``"zero"``; None makes missing values an error.
            categorical: numeric columns to one-hot encode instead of scaling (codes, ids).
            rows: indices of the training rows the statistics come from (default: all rows).
        """
        if not isinstance(table, Table):
            raise UsageError(f"Preprocessor.fit needs a torchann Table (from load_table), got {type(table).__name__}")
        targets = _targets(table, target)
        if features is None:
            feats = [n for n in table.feature_names if n not in targets]
        else:
            keys = [features] if isinstance(features, str) else list(features)
            feats = [table.column_name(k, role="feature") for k in keys]
        both = [n for n in feats if n in targets]
        if both:
            raise DataError(
                f"{table.source}: column {both[0]!r} is both a target and a feature; drop it from the features"
            )
        if not feats:
            raise DataError(f"{table.source}: no feature columns left besides the target(s) {', '.join(targets)}")
        task = infer_task(table, targets) if task is None else parse(Task, task, name="task")
        fill = None if fill_missing is None else parse(FillMissing, fill_missing, name="fill_missing")
        idx = np.arange(table.n_rows) if rows is None else np.asarray(rows, dtype=np.int64)
        if idx.size == 0:
            raise DataError(f"{table.source}: no training rows to fit on")
        unknown_cat = [c for c in categorical if c not in feats]
        if unknown_cat:
            raise DataError(f"{table.source}: categorical column {unknown_cat[0]!r} is not a feature; "
                            f"features: {', '.join(feats)}")
        cols = [_fit_feature(table, n, idx, scale, fill, n in categorical) for n in feats]
        pre = cls(task=task, features=cols, target_names=targets, scale=scale, fill_missing=fill)
        if task == Task.REGRESSION:
            pre.target_mean, pre.target_std = [], []
            for name in targets:
                y = _target_numbers(table, name)[idx]
                _no_missing_target(table, name, np.isnan(y), idx)
                mean, std = _stats(y) if scale else (0.0, 1.0)
                pre.target_mean.append(mean)
                pre.target_std.append(std)
        else:
            if len(targets) > 1:
                raise DataError(f"{table.source}: classification takes one target column, got {', '.join(targets)}; "
                                f"train one model per target")
            col = table.columns[targets[0]]
            values, missing, _ = coerce(col, label_kind(col))
            _no_missing_target(table, targets[0], missing[idx], idx)
            pre.class_kind = label_kind(col)
            pre.classes = sorted(set(values[~missing].tolist()))
            if len(pre.classes) < 2:
                raise DataError(f"{table.source}: target {targets[0]!r} has only the value {_shown(pre.classes)}; "
                                f"classification needs at least two classes")
        return pre

    # ----------------------------------------------------------------------------- properties

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def input_names(self) -> list[str]:
        """One name per model input: ``"age"`` or ``"colour=red"`` for one-hot columns."""
        return [n for f in self.features for n in ([f.name] if f.kind == "numeric" else
                                                    [f"{f.name}={c}" for c in f.categories or []])]

    @property
    def in_features(self) -> int:
        return sum(f.width for f in self.features)

    @property
    def out_features(self) -> int:
        return len(self.classes or []) if self.task == Task.CLASSIFICATION else len(self.target_names)

    # ------------------------------------------------------------------------------ transform

    def transform_x(self, table: Table) -> np.ndarray:
        """Model inputs, float32 ``(n_rows, in_features)``; feature columns are found by name."""
        missing = [f.name for f in self.features if f.name not in table.columns]
        if missing:
            why = "".join(f" ({n}: {table.skipped[n]})" for n in missing if n in table.skipped)
            raise DataError(f"{table.source}: missing feature column(s) {', '.join(missing)} that the model was "
                            f"trained on{why}; columns present: {', '.join(table.names[:20])}")
        out = np.zeros((table.n_rows, self.in_features), dtype=np.float32)
        j = 0
        for f in self.features:
            col = table.columns[f.name]
            if f.kind == "numeric":
                x = _numeric(table, f.name)
                miss = np.isnan(x)
                if miss.any():
                    if f.fill is None:
                        _missing_error(table, f.name, miss)
                    x = np.where(miss, f.fill, x)
                out[:, j] = (x - f.mean) / f.std
            else:
                codes, miss = _codes(table, f.name, col, f.categories, f.label_kind)
                if miss.any() and self.fill_missing is None:
                    _missing_error(table, f.name, miss)
                rows = np.flatnonzero(~miss)
                out[rows, j + codes[rows]] = 1.0
            j += f.width
        return out

    def transform_y(self, table: Table) -> np.ndarray:
        """Targets: regression float32 ``(n, k)`` (standardised when scaling); classification int64 ``(n,)``."""
        absent = [n for n in self.target_names if n not in table.columns]
        if absent:
            raise DataError(f"{table.source}: no target column {absent[0]!r}; "
                            f"columns present: {', '.join(table.names[:20])}")
        every = np.arange(table.n_rows)
        if self.task == Task.CLASSIFICATION:
            name = self.target_names[0]
            codes, miss = _codes(table, name, table.columns[name], self.classes, self.class_kind, what="class")
            _no_missing_target(table, name, miss, every)
            return codes.astype(np.int64)
        out = np.empty((table.n_rows, len(self.target_names)), dtype=np.float32)
        for k, name in enumerate(self.target_names):
            y = _target_numbers(table, name)
            _no_missing_target(table, name, np.isnan(y), every)
            out[:, k] = (y - self.target_mean[k]) / self.target_std[k]
        return out

    def inverse_y(self, pred: Any) -> np.ndarray:
        """Regression: model outputs back in target units (float64, same shape).
        Classification: logits ``(n, C)`` (or ``(n, 1)`` for two classes) -> class labels ``(n,)``."""
        p = _to_numpy(pred)
        if self.task == Task.REGRESSION:
            shape = p.shape
            p = p.reshape(len(p), -1) if p.ndim != 1 else p.reshape(-1, 1)
            if p.shape[1] != len(self.target_names):
                raise DataError(f"predictions have {p.shape[1]} column(s) but there are "
                                f"{len(self.target_names)} target(s)")
            return (p * np.asarray(self.target_std) + np.asarray(self.target_mean)).reshape(shape)
        labels = np.array(self.classes, dtype=object if self.class_kind == "str" else None)
        return labels[self.proba(p).argmax(axis=1)]

    def proba(self, logits: Any) -> np.ndarray:
        """Class probabilities ``(n, C)``, float64: softmax of logits (sigmoid for a single logit)."""
        if self.task != Task.CLASSIFICATION:
            raise UsageError("probabilities exist only for classification; this preprocessor is for regression")
        z = _to_numpy(logits)
        z = z.reshape(-1, 1) if z.ndim == 1 else z
        n_classes = len(self.classes or [])
        if z.shape[1] == 1 and n_classes == 2:
            p1 = 1.0 / (1.0 + np.exp(-z[:, 0]))
            return np.stack([1.0 - p1, p1], axis=1)
        if z.shape[1] != n_classes:
            raise DataError(f"logits have {z.shape[1]} column(s) but there are {n_classes} classes")
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    # ---------------------------------------------------------------------------------- JSON

    def to_dict(self) -> dict:
        """Plain JSON data (numbers, strings, lists, bools, null); ``from_dict`` restores it exactly."""
        return {
            "format": FORMAT,
            "version": 1,
            "task": self.task.value,
            "scale": self.scale,
            "fill_missing": None if self.fill_missing is None else self.fill_missing.value,
            "features": [{k: v for k, v in asdict(f).items() if v is not None} for f in self.features],
            "targets": self.target_names,
            "target_mean": self.target_mean,
            "target_std": self.target_std,
            "classes": self.classes,
            "class_kind": self.class_kind,
        }

    @classmethod
    def from_dict(cls, d: dict, *, source: str = "preprocessor record", in_features: int | None = None,
                  out_features: int | None = None) -> Preprocessor:
        """Rebuild a fitted preprocessor from ``to_dict()`` data, every field checked first.

        Args:
            source: named in messages (e.g. ``"runs/x/spec.json extra.preprocessor"``).
            in_features, out_features: the network's sizes; the record must encode exactly
                that many inputs and decode that many outputs (a record listing ten million
                categories for a 2-input network is refused before anything is built).

        Raises:
            ModelFileError: one line naming the field and what it holds.
        """
        _check_record(d, source, in_features, out_features)
        feats = [Feature(**f) for f in d["features"]]
        fill = d["fill_missing"]
        return cls(task=Task(d["task"]), features=feats, target_names=list(d["targets"]), scale=bool(d["scale"]),
                   fill_missing=None if fill is None else FillMissing(fill), target_mean=d["target_mean"],
                   target_std=d["target_std"], classes=d["classes"], class_kind=d["class_kind"])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Preprocessor) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return (f"Preprocessor(task={self.task.value}, features={self.feature_names}, targets={self.target_names}, "
                f"in_features={self.in_features}, out_features={self.out_features})")


# ------------------------------------------------------------------- checking a stored record

MAX_STORED_CLASSES = 100_000  # a classifier with more classes is not one torchann trained
_RECORD_KEYS = {"format", "version", "task", "scale", "fill_missing", "features", "targets", "target_mean",
                "target_std", "classes", "class_kind"}
_FEATURE_KEYS = {f for f in Feature.__dataclass_fields__}


def _bad(source: str, place: str, problem: str) -> ModelFileError:
    return ModelFileError(f"{source}: field {place} {problem}; the model file is damaged: train or save it again")


def _what(value: Any) -> str:
    if isinstance(value, (list, dict)):
        return f"a {type(value).__name__} of {len(value):,} item(s)"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _number(source: str, place: str, value: Any, *, positive: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _bad(source, place, f"holds {_what(value)}, not a finite number")
    if positive and not value > 0:
        raise _bad(source, place, f"holds {value!r}; it must be above 0")


def _labels(source: str, place: str, values: Any, kind: Any, kind_place: str, limit: int, least: int) -> None:
    if kind not in {k.value for k in LabelKind}:
        raise _bad(source, kind_place, f"holds {_what(kind)}; expected one of {', '.join(LabelKind.values())}")
    if not isinstance(values, list) or not least <= len(values) <= limit:
        raise _bad(source, place, f"holds {_what(values)}; expected a list of {least} to {limit:,} values")
    want = {"str": (str,), "bool": (bool,), "int": (int,), "float": (int, float)}[kind]
    for i, v in enumerate(values):
        if not isinstance(v, want) or (kind != "bool" and isinstance(v, bool)) or \
                (isinstance(v, float) and not math.isfinite(v)):
            raise _bad(source, f"{place}[{i}]", f"holds {_what(v)}, not a {kind} label")
    if len(set(values)) != len(values):
        raise _bad(source, place, "lists a value twice")


def _check_record(d: Any, source: str, in_features: int | None, out_features: int | None) -> None:
    """Every field of a stored preprocessor, checked before any object is built from it."""
    if not isinstance(d, dict) or d.get("format") != FORMAT:
        found = d.get("format") if isinstance(d, dict) else type(d).__name__
        raise ModelFileError(f"{source}: not a torchann preprocessor record (format {found!r}); "
                             f"the model file may be damaged")
    missing = sorted((_RECORD_KEYS - {"version"}) - set(d))
    if missing:
        raise _bad(source, missing[0], "is missing")
    unknown = sorted(set(d) - _RECORD_KEYS)
    if unknown:
        raise _bad(source, unknown[0], "is not a preprocessor field")
    if d["task"] not in Task.values():
        raise _bad(source, "task", f"holds {_what(d['task'])}; expected one of {', '.join(Task.values())}")
    if not isinstance(d["scale"], bool):
        raise _bad(source, "scale", f"holds {_what(d['scale'])}, not true or false")
    if d["fill_missing"] is not None and d["fill_missing"] not in FillMissing.values():
        raise _bad(source, "fill_missing", f"holds {_what(d['fill_missing'])}; expected null or one of "
                                           f"{', '.join(FillMissing.values())}")
    targets = d["targets"]
    if not isinstance(targets, list) or not targets or not all(isinstance(t, str) for t in targets):
        raise _bad(source, "targets", f"holds {_what(targets)}; expected a list of column names")
    features = d["features"]
    if not isinstance(features, list) or not features:
        raise _bad(source, "features", f"holds {_what(features)}; expected a list of features")
    if in_features is not None and len(features) > in_features:
        raise _bad(source, "features", f"lists {len(features):,} features for a network with {in_features} inputs")
    width, names = 0, set()
    for i, f in enumerate(features):
        place = f"features[{i}]"
        if not isinstance(f, dict):
            raise _bad(source, place, f"holds {_what(f)}; expected an object")
        extra = sorted(set(f) - _FEATURE_KEYS)
        if extra:
            raise _bad(source, f"{place}.{extra[0]}", "is not a feature field")
        if not isinstance(f.get("name"), str) or f["name"] in names:
            raise _bad(source, f"{place}.name", f"holds {_what(f.get('name'))}; expected a column name used once")
        names.add(f["name"])
        if f.get("kind") == "numeric":
            _number(source, f"{place}.mean", f.get("mean", 0.0))
            _number(source, f"{place}.std", f.get("std", 1.0), positive=True)
            if f.get("fill") is not None:
                _number(source, f"{place}.fill", f["fill"])
            width += 1
        elif f.get("kind") == "categorical":
            left = MAX_CATEGORIES if in_features is None else max(in_features - width, 0)
            _labels(source, f"{place}.categories", f.get("categories"), f.get("label_kind"), f"{place}.label_kind",
                    min(left, MAX_CATEGORIES), 1)
            width += len(f["categories"])
        else:
            raise _bad(source, f"{place}.kind", f"holds {_what(f.get('kind'))}; expected 'numeric' or 'categorical'")
    if in_features is not None and width != in_features:
        raise _bad(source, "features", f"encode {width:,} inputs but the network takes {in_features}")
    if d["task"] == Task.REGRESSION:
        for key in ("target_mean", "target_std"):
            values = d[key]
            if not isinstance(values, list) or len(values) != len(targets):
                raise _bad(source, key, f"holds {_what(values)}; expected {len(targets)} number(s), one per target")
            for k, v in enumerate(values):
                _number(source, f"{key}[{k}]", v, positive=key == "target_std")
        outputs = {len(targets)}
    else:
        if len(targets) != 1:
            raise _bad(source, "targets", f"lists {len(targets)} targets; a classifier has one")
        limit = MAX_STORED_CLASSES if out_features is None else max(out_features, 2)
        _labels(source, "classes", d["classes"], d["class_kind"], "class_kind", limit, 2)
        outputs = {len(d["classes"])} | ({1} if len(d["classes"]) == 2 else set())
    if out_features is not None and out_features not in outputs:
        raise _bad(source, "targets" if d["task"] == Task.REGRESSION else "classes",
                   f"decode {min(outputs)} output(s) but the network has {out_features}")


# --------------------------------------------------------------------------------- helpers


def _to_numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=np.float64)


def _stats(values: np.ndarray) -> tuple[float, float]:
    mean = float(np.mean(values))
    std = float(np.std(values))
    # a constant column (up to rounding in the mean) is left unscaled rather than divided by ~0
    if std == 0.0 or std <= 10 * np.finfo(np.float64).eps * max(1.0, abs(mean)):
        std = 1.0
    return mean, std


def _fit_feature(table: Table, name: str, idx: np.ndarray, scale: bool, fill: FillMissing | None,
                 categorical: bool) -> Feature:
    col = table.columns[name]
    if col.dtype == np.float64 and not categorical:
        x = _numeric(table, name)[idx]
        miss = np.isnan(x)
        observed = x[~miss]
        if observed.size == 0:
            raise DataError(f"{table.source}: feature column {name!r} has no values in the training rows; "
                            f"leave it out of the features")
        if miss.any() and fill is None:
            _missing_error(table.take(idx), name, miss)
        mean, std = _stats(observed) if scale else (0.0, 1.0)
        value = None if fill is None else {FillMissing.MEAN: float(np.mean(observed)),
                                           FillMissing.MEDIAN: float(np.median(observed)),
                                           FillMissing.ZERO: 0.0}[fill]
        return Feature(name, "numeric", mean=mean, std=std, fill=value)
    kind = label_kind(col)
    values, miss, _ = coerce(col, kind)
    if miss[idx].any() and fill is None:
        _missing_error(table.take(idx), name, miss[idx])
    categories = sorted(set(values[~miss].tolist()))
    if len(categories) > MAX_CATEGORIES or (len(categories) > 50 and 2 * len(categories) > table.n_rows):
        raise DataError(f"{table.source}: text column {name!r} has {len(categories)} distinct values in "
                        f"{table.n_rows} rows, which looks like an identifier; "
                        f"leave it out of the features (--features)")
    return Feature(name, "categorical", categories=categories, label_kind=kind)


def _numeric(table: Table, name: str) -> np.ndarray:
    """Column ``name`` as float64 (NaN = missing); infinite values and text raise ``DataError``."""
    x, bad = numeric_values(table.columns[name])
    if bad is not None:
        raise DataError(f"{table.source}: column {name!r} should hold numbers, but row {table.row(bad)} holds "
                        f"{table.columns[name][bad]!r}; correct that value or leave it empty")
    inf = np.isinf(x)
    if inf.any():
        i = int(np.argmax(inf))
        raise DataError(f"{table.source}: column {name!r} row {table.row(i)} is {x[i]}; replace infinite values")
    return x


def _target_numbers(table: Table, name: str) -> np.ndarray:
    col = table.columns[name]
    if col.dtype != np.float64:
        raise DataError(f"{table.source}: target {name!r} holds {table.kind(name)} values, not numbers; "
                        f"use task='classification' (--task classification)")
    return _numeric(table, name)


def _missing_error(table: Table, name: str, miss: np.ndarray) -> None:
    i = int(np.argmax(miss))
    raise DataError(f"{table.source}: column {name!r} has a missing value in row {table.row(i)} ({int(miss.sum())} "
                    f"missing in all); pass fill_missing='mean'|'median'|'zero' (--fill-missing mean|median|zero) "
                    f"or drop those rows")


def _no_missing_target(table: Table, name: str, miss: np.ndarray, idx: np.ndarray) -> None:
    if miss.any():
        i = int(idx[int(np.argmax(miss))])
        raise DataError(f"{table.source}: target {name!r} is missing in row {table.row(i)} "
                        f"({int(miss.sum())} missing in all); drop rows without a target")


def _codes(table: Table, name: str, col: np.ndarray, known: list, kind: str,
           what: str = "category") -> tuple[np.ndarray, np.ndarray]:
    """Index of each row's value in ``known`` and the missing mask; an unknown value raises."""
    values, miss, invalid = coerce(col, kind)
    lookup = {v: i for i, v in enumerate(known)}
    codes = np.zeros(len(col), dtype=np.int64)
    present = np.flatnonzero(~miss & ~invalid)
    if present.size and values.dtype == object:  # text: a dict lookup per row beats sorting objects
        get = lookup.get
        codes[present] = np.fromiter((get(v, -1) for v in values[present].tolist()), np.int64, present.size)
    elif present.size:
        uniq, inv = np.unique(values[present], return_inverse=True)
        mapped = np.array([lookup.get(u, -1) for u in uniq.tolist()], dtype=np.int64)
        codes[present] = mapped[inv.ravel()]
    bad = np.flatnonzero(invalid | (~miss & (codes < 0)))
    if bad.size:
        i = int(bad[0])
        raise DataError(f"{table.source}: column {name!r} row {table.row(i)} holds {col[i]!r}, an unknown {what}; "
                        f"known: {_shown(known)}")
    return codes, miss
