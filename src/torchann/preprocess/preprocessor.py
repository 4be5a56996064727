"""Encoding and scaling of a table's columns, fitted on training rows, stored as plain JSON.

Rules:

* Numeric feature columns go through a quantile map to normal scores (``scaling="quantile"``),
  or are standardised, ``(x - mean) / std`` (the default), with the mean and the population
  std (ddof 0) of the training rows' observed values (``scaling="standard"``); a column with
  two distinct values is always standardised. ``scale=False`` leaves numbers as they are.
* Text columns whose every value reads as a date with one format become year, month,
  weekday and day number.
* Text and boolean feature columns (and numeric ones named in ``categorical=``) are one-hot
  encoded, one column per category, categories sorted. The category list comes from every row
  of the table given to ``fit`` (a category seen only in validation rows still gets a column);
  statistics come from the ``rows`` given (the training rows) only. A text column with very
  many distinct values keeps its frequent ones, or is left out as an identifier (``dropped``).
* Missing values are an error unless ``fill_missing`` is ``"mean"``, ``"median"`` or
  ``"zero"``: a missing number becomes the training mean / median / 0 (before scaling) and,
  when training rows had missing values in that column, an indicator input says so; a
  missing category is a category of its own. See :mod:`torchann.features` for the details.
* A category never seen in training sets no input of its column and is counted in an
  :class:`UnseenCategoryWarning`; ``transform_x(..., strict=True)`` refuses it instead.
* A regression target that is positive and strongly right-skewed (skewness above
  ``LOG_TARGET_SKEW`` with a smaller skewness after ``log1p``) is learnt as ``log1p(y)``
  (``target_log=None``, the default, decides; True / False force it); predictions come back
  through ``expm1``.
* Task, when not given (see :func:`infer_task`): classification when the one target is text or
  boolean, or holds integers with at most ``MAX_CLASSES`` distinct values and at least two rows
  per distinct value on average (``2 * n_distinct <= n_rows``); regression otherwise, and always
  when there are several targets.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Sequence

import numpy as np

from ..core.choices import FillMissing, Scaling, Task, parse
from ..core.errors import DataError, UsageError
from ..core.warn import warn
from ..data.table import Key, Table
from .checks import category_codes, check_magnitude, check_scaled, missing_error, numeric_column, shown_values
from ..data.table_input import as_table
from ..data.columns import coerce, label_kind, shown_name
from .features import Feature, _stats, fit_feature
from .record import FORMAT, check_record
from .target import MAX_CLASSES, class_weights, infer_task, no_missing_target, target_columns, target_numbers, wants_log
from .facts import FILLED, OUT_OF_RANGE, UNSEEN, InputFacts, OutOfRangeWarning, UnseenCategoryWarning, outside_text
from .few_rows import encode_few

__all__ = ["Preprocessor", "UnseenCategoryWarning", "OutOfRangeWarning"]


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
                 class_kind: str | None = None, scaling: Scaling = Scaling.STANDARD,
                 target_log: list[bool] | None = None, dropped: dict[str, str] | None = None) -> None:
        self.task = task
        self.scaling = scaling
        self.target_log = target_log  # per regression target: learnt as log1p(y)
        self.dropped = dict(dropped or {})  # columns left out of the features -> why
        self.unseen: dict[str, int] = {}  # after transform_x: column -> rows with an unseen category
        self.outside: dict[str, int] = {}  # after transform_x: column -> rows outside the training range
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
            categorical: Sequence[str] = (), rows: Any = None, scaling: Scaling | str = Scaling.STANDARD,
            target_log: bool | None = None, named: Sequence[str] = (), ple_bins: int = 0,
            ple_min_distinct: int = 0) -> Preprocessor:
        """Fit encoders and scalers.

        Args:
            table: the data; ``target``/``features`` default to the table's own choice.
            task: ``"regression"`` / ``"classification"``; None infers it (:func:`infer_task`).
            scale: scale numeric features and standardise regression targets.
            fill_missing: ``"mean"``, ``"median"`` or ``"zero"``; None makes missing values an error.
            categorical: numeric columns to one-hot encode instead of scaling (codes, ids).
            rows: indices of the training rows the statistics come from (default: all rows).
            scaling: ``"quantile"`` (normal scores) or ``"standard"`` for numeric features.
            target_log: learn a regression target as ``log1p(y)``; None decides from its skewness.
            named: columns the user named as features (``features`` given here counts too):
                never left out as numeric identifiers (see :mod:`features`).
            ple_bins: a piecewise-linear encoding over this many training quantile bins for each
                numeric column of more than ``ple_min_distinct`` values (``ple_encode``); 0: none.
        """
        if not isinstance(table, Table):
            raise UsageError(f"Preprocessor.fit needs a torchann Table (from load_table), got {type(table).__name__}")
        targets = target_columns(table, target)
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
            raise DataError(f"{table.source}: no feature columns left besides the target(s) {', '.join(map(shown_name, targets))}; "
                            f"give the table at least one feature column")
        task = infer_task(table, targets) if task is None else parse(Task, task, name="task")
        fill = None if fill_missing is None else parse(FillMissing, fill_missing, name="fill_missing")
        scaling = parse(Scaling, scaling, name="scaling")
        idx = np.arange(table.n_rows) if rows is None else np.asarray(rows, dtype=np.int64)
        if idx.size == 0:
            raise DataError(f"{table.source}: no training rows to fit on")
        unknown_cat = [c for c in categorical if c not in feats]
        if unknown_cat:
            raise DataError(f"{table.source}: categorical column {unknown_cat[0]!r} is not a feature; "
                            f"features: {', '.join(feats)}")
        for keep_numbers in (features is not None, True):  # numbers that look like ids only when others remain
            cols, dropped = [], {}
            for n in feats:
                feature, why = fit_feature(table, n, idx, scale, fill, n in categorical, scaling, ple_bins,
                                           ple_min_distinct, named=keep_numbers or n in set(named))
                if feature is None:
                    dropped[n] = why
                else:
                    cols.append(feature)
            if cols:
                break
        if not cols:
            raise DataError(f"{table.source}: no usable feature column: " +
                            "; ".join(f"{n!r} left out ({why})" for n, why in dropped.items()))
        pre = cls(task=task, features=cols, target_names=targets, scale=scale, fill_missing=fill, scaling=scaling,
                  dropped=dropped)
        if task == Task.REGRESSION:
            pre.target_mean, pre.target_std, pre.target_log = [], [], []
            for name in targets:
                y = target_numbers(table, name)[idx]
                no_missing_target(table, name, np.isnan(y), idx)
                log = wants_log(y) if target_log is None else bool(target_log)
                if log and np.min(y) <= -1:
                    raise DataError(f"{table.source}: target {name!r} has values <= -1 (e.g. {np.min(y)}), "
                                    f"so it cannot be learnt as log1p(y); pass target_log=False")
                raw, y = y, (np.log1p(y) if log else y)
                if scale:
                    check_magnitude(table, name, y, idx, role="target", shown=raw,
                                    fix="divide the column by a power of ten, or learn log1p(y) with --target-log "
                                        "(target_log=True)" if not log else "divide the column by a power of ten")
                mean, std = _stats(y) if scale else (0.0, 1.0)
                pre.target_mean.append(mean)
                pre.target_std.append(std)
                pre.target_log.append(log)
        else:
            if len(targets) > 1:
                raise DataError(f"{table.source}: classification takes one target column, got {', '.join(targets)}; "
                                f"train one model per target")
            col = table.columns[targets[0]]
            values, missing, _ = coerce(col, label_kind(col))
            no_missing_target(table, targets[0], missing[idx], idx)
            pre.class_kind = label_kind(col)
            pre.classes = sorted(set(values[~missing].tolist()))
            if len(pre.classes) < 2:
                raise DataError(f"{table.source}: target {targets[0]!r} has only the value {shown_values(pre.classes)}; "
                                f"classification needs at least two classes")
        return pre

    # ----------------------------------------------------------------------------- properties

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def input_names(self) -> list[str]:
        """One name per model input: ``"age"`` or ``"colour=red"`` for one-hot columns."""
        return [n for f in self.features for n in f.input_names]

    @property
    def in_features(self) -> int:
        return sum(f.width for f in self.features)

    @property
    def out_features(self) -> int:
        return len(self.classes or []) if self.task == Task.CLASSIFICATION else len(self.target_names)

    # ------------------------------------------------------------------------------ transform

    def transform_x(self, table: Any, *, strict: bool = False, warn_outside: bool = False) -> np.ndarray:
        """Model inputs, float32 ``(n_rows, in_features)``; feature columns are found by name.
        ``table`` is a ``Table`` or anything ``Model.predict`` takes (a path, a pandas or pyarrow
        frame, a dict of columns, rows of values in feature order).

        A category never seen in training sets no input of its column; the rows are counted in
        ``self.unseen`` and in one :class:`UnseenCategoryWarning`. ``strict=True`` raises
        ``DataError`` instead. Numbers outside a column's training range are counted in
        ``self.outside`` and, with ``warn_outside`` (``Model.predict``'s; not training's, whose
        validation rows may lie beyond), named in one :class:`OutOfRangeWarning`."""
        out, facts = self.transform_x_facts(table := self._table(table), strict=strict)
        self.unseen, self.outside = (facts.counts().get(kind, {}) for kind in (UNSEEN, OUT_OF_RANGE))
        if self.unseen:
            shown = ", ".join(f"{n!r}: {k} row(s)" for n, k in self.unseen.items())
            warn(f"{table.source}: categories never seen in training ({shown}) set no input of their column; "
                 f"pass strict=True (torchann predict --strict) to refuse them", UnseenCategoryWarning)
        if self.outside and warn_outside:
            shown = outside_text(self.outside, self.features)
            warn(f"{table.source}: numbers outside the training range ({shown}); the model never saw such values "
                 f"and its answers for those rows are extrapolations", OutOfRangeWarning)
        return out

    def transform_x_facts(self, table: Any, *, strict: bool = False) -> tuple[np.ndarray, InputFacts]:
        """``transform_x``'s inputs and, per row, what was unlike the training rows
        (:class:`~torchann.input_facts.InputFacts`: unseen categories, numbers outside the
        training range, missing values filled); warns of nothing and changes no state."""
        table = self._table(table)
        few = encode_few(self, table, strict=strict)  # a few rows: value by value, the same bits
        if few is not None:
            return few
        return self._encode_columns(table, strict=strict)

    def _encode_columns(self, table: Table, *, strict: bool = False) -> tuple[np.ndarray, InputFacts]:
        """``transform_x_facts`` column by column, for any number of rows, with every check."""
        missing = [f.name for f in self.features if f.name not in table.columns]
        if missing:
            why = "".join(f" ({n}: {table.skipped[n]})" for n in missing if n in table.skipped)
            raise DataError(f"{table.source}: missing feature column(s) {', '.join(missing)} that the model was "
                            f"trained on{why}; columns present: {', '.join(table.names[:20])}")
        out = np.zeros((table.n_rows, self.in_features), dtype=np.float32)
        facts = InputFacts(table.n_rows)
        j = 0
        for f in self.features:
            col = table.columns[f.name]
            if f.kind == "numeric":
                x = numeric_column(table, f.name)
                miss = np.isnan(x)
                if miss.any() and f.fill is None:
                    missing_error(table, f.name, miss)
                out[:, j : j + f.width] = check_scaled(table, f.name, x, f.encode_numbers(x), role="column")
                facts.add(OUT_OF_RANGE, f.name, f.outside_range(x))
            elif f.kind == "date":
                values, miss, _ = coerce(col, "str")
                if miss.any() and self.fill_missing is None:
                    missing_error(table, f.name, miss)
                out[:, j : j + f.width], miss = f.encode_dates(np.where(miss, None, values))  # unreadable: filled
            else:
                lookup = f.derived("lookup", lambda: {v: i for i, v in enumerate(f.categories or [])})
                codes, miss = category_codes(table, f.name, col, f.categories, f.label_kind,
                                             strict=strict and not f.other, lookup=lookup)
                if miss.any() and self.fill_missing is None:
                    missing_error(table, f.name, miss)
                unseen = ~miss & (codes < 0)
                if unseen.any():
                    if f.other:  # rare categories were pooled in training: a new one is one more of them
                        codes[unseen] = len(f.categories or [])
                    else:
                        facts.add(UNSEEN, f.name, unseen)
                rows = np.flatnonzero(~miss & (codes >= 0))
                out[rows, j + codes[rows]] = 1.0
                if f.missing_slot:
                    out[np.flatnonzero(miss), j + f.width - 1] = 1.0
            facts.add(FILLED, f.name, miss)
            j += f.width
        return out, facts

    def transform_y(self, table: Any) -> np.ndarray:
        """Targets: regression float32 ``(n, k)`` (standardised when scaling); classification int64 ``(n,)``."""
        table = self._table(table)
        absent = [n for n in self.target_names if n not in table.columns]
        if absent:
            raise DataError(f"{table.source}: no target column {absent[0]!r}; "
                            f"columns present: {', '.join(table.names[:20])}")
        every = np.arange(table.n_rows)
        if self.task == Task.CLASSIFICATION:
            name = self.target_names[0]
            codes, miss = category_codes(table, name, table.columns[name], self.classes, self.class_kind, what="class")
            no_missing_target(table, name, miss, every)
            return codes.astype(np.int64)
        out = np.empty((table.n_rows, len(self.target_names)), dtype=np.float32)
        for k, name in enumerate(self.target_names):
            y = target_numbers(table, name)
            no_missing_target(table, name, np.isnan(y), every)
            z = ((np.log1p(y) if self.target_log and self.target_log[k] else y) - self.target_mean[k]) / self.target_std[k]
            out[:, k] = check_scaled(table, name, y, z, role="target")
        return out

    def _table(self, data: Any) -> Table:
        """``data`` as a ``Table``: rows of values are read as the features in order."""
        return data if isinstance(data, Table) else as_table(data, names=self.feature_names)

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
            y = p * np.asarray(self.target_std) + np.asarray(self.target_mean)
            if self.target_log and any(self.target_log):
                y = np.where(np.asarray(self.target_log), np.expm1(y), y)
            return y.reshape(shape)
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
            "version": 2,
            "task": self.task.value,
            "scale": self.scale,
            "scaling": self.scaling.value,
            "target_log": self.target_log,
            "dropped": self.dropped,
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
        check_record(d, source, in_features, out_features)
        feats = [Feature(**f) for f in d["features"]]
        fill = d["fill_missing"]
        return cls(task=Task(d["task"]), features=feats, target_names=list(d["targets"]), scale=bool(d["scale"]),
                   fill_missing=None if fill is None else FillMissing(fill), target_mean=d["target_mean"],
                   target_std=d["target_std"], classes=d["classes"], class_kind=d["class_kind"],
                   scaling=Scaling(d.get("scaling", "standard")), target_log=d.get("target_log"),
                   dropped=d.get("dropped"))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Preprocessor) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return (f"Preprocessor(task={self.task.value}, features={self.feature_names}, targets={self.target_names}, "
                f"in_features={self.in_features}, out_features={self.out_features})")


# ------------------------------------------------------------------- checking a stored record

def _to_numpy(value: Any) -> np.ndarray:
    return np.asarray(value.detach().cpu().numpy() if hasattr(value, "detach") else value, dtype=np.float64)
