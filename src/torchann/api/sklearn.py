"""scikit-learn estimators over ``torchann.train``: ``MLPRegressor`` and ``MLPClassifier``.

They follow scikit-learn's contract: the constructor only stores its arguments, ``fit``
validates them and the data, fitted attributes end in ``_``, and the estimators work inside
``Pipeline``, ``cross_val_score`` and ``GridSearchCV``.

Underneath, ``fit`` calls ``torchann.train`` and keeps the trained ``torchann.Model`` as
``model_``. A pandas DataFrame goes to ``train`` as it is, so text, categorical, boolean and
missing values get ``train``'s own preprocessing (one-hot categories, dates, identifiers left
out, missing values filled); an array becomes the number columns ``x0, x1, ...``. The
arguments are ``train``'s options, with the same names and the same defaults (declared once
in ``torchann.options``), so the estimator, the ``torchann train`` command and
``torchann.train`` make the same model from the same rows and seed. ``random_state`` is the seed (an int is used as it is).

``fit`` leaves the global random state of torch, numpy and ``random`` as it found it.

Example:
    >>> clf = torchann.MLPClassifier(hidden=(32,), random_state=0).fit(X, y)
    >>> clf.predict_proba(X[:2])            # (2, n_classes), rows sum to 1
    >>> clf.model_.save("runs/clf")         # a model directory, as torchann train writes
"""

from __future__ import annotations

import contextlib
import random
import warnings
from numbers import Integral
from typing import Any

import numpy as np

from ..core.checks import VAL_SPLIT_HINT, check_fraction

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    from sklearn.utils import check_random_state
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import check_is_fitted
except ImportError as err:  # pragma: no cover - depends on the environment
    from ..core.errors import UsageError

    raise UsageError(
        "torchann.MLPRegressor / MLPClassifier need scikit-learn; run: pip install torchann[sklearn]"
    ) from err

__all__ = ["MLPRegressor", "MLPClassifier"]


def _validate_data(estimator: BaseEstimator, X: Any, y: Any = "no_validation", **kwargs: Any) -> Any:
    """scikit-learn's input validation (a function since 1.6, a method before)."""
    try:
        from sklearn.utils.validation import validate_data
    except ImportError:  # scikit-learn < 1.6
        return estimator._validate_data(X, y, **kwargs)
    return validate_data(estimator, X, y, **kwargs)


def _check_frame_names(estimator: BaseEstimator, X: Any, *, reset: bool) -> None:
    """Set (``reset``) or check ``n_features_in_`` and ``feature_names_in_`` without converting ``X``."""
    try:
        from sklearn.utils.validation import validate_data
    except ImportError:  # scikit-learn < 1.6
        estimator._validate_data(X, reset=reset, cast_to_ndarray=False)
        return
    validate_data(estimator, X, reset=reset, skip_check_array=True)


def _is_frame(X: Any) -> bool:
    """A pandas DataFrame: it keeps its column types and goes to ``train`` as a table."""
    return type(X).__module__.startswith("pandas") and hasattr(X, "columns") and hasattr(X, "iloc")


@contextlib.contextmanager
def _own_random_state():
    """Run the block with private RNG states: ``fit`` seeds torch, numpy and ``random``."""
    import torch

    py_state, np_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        try:
            yield
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)


def _d(name: str) -> Any:
    from ..core.options import option_default

    value = option_default(name)
    return value


class _MLPBase(BaseEstimator):
    """What the regressor and the classifier share; see their docstrings."""

    _task = "regression"

    def __init__(
        self,
        hidden: Any = _d("hidden"),
        activation: str = _d("activation"),
        *,
        dropout: float = _d("dropout"),
        norm: str = _d("norm"),
        epochs: int = _d("epochs"),
        batch_size: int | None = _d("batch_size"),
        lr: float = _d("lr"),
        optimizer: str = _d("optimizer"),
        weight_decay: float = _d("weight_decay"),
        momentum: float = _d("momentum"),
        clip_grad_norm: float | None = _d("clip_grad_norm"),
        scheduler: str | None = _d("scheduler"),
        early_stopping: int | None = _d("early_stopping"),
        val_split: float = _d("val_split"),
        scale: bool = _d("scale"),
        fill_missing: str | None = _d("fill_missing"),
        scaling: str = _d("scaling"),
        target_log: bool | None = _d("target_log"),
        class_weight: str | None = _d("class_weight"),
        ple_bins: int | None = _d("ple_bins"),
        num_embeddings: str | None = _d("num_embeddings"),
        ensemble: int = _d("ensemble"),
        networks: int | None = _d("networks"),
        time_budget: float | None = _d("time_budget"),
        random_state: Any = None,
        device: str = _d("device"),
        precision: str = _d("precision"),
        threads: int | None = _d("threads"),
    ) -> None:
        self.hidden = hidden
        self.activation = activation
        self.dropout = dropout
        self.norm = norm
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.optimizer = optimizer
        self.weight_decay = weight_decay
        self.momentum = momentum
        self.clip_grad_norm = clip_grad_norm
        self.scheduler = scheduler
        self.early_stopping = early_stopping
        self.val_split = val_split
        self.scale = scale
        self.fill_missing = fill_missing
        self.scaling = scaling
        self.target_log = target_log
        self.class_weight = class_weight
        self.ple_bins = ple_bins
        self.num_embeddings = num_embeddings
        self.ensemble = ensemble
        self.networks = networks
        self.time_budget = time_budget
        self.random_state = random_state
        self.device = device
        self.precision = precision
        self.threads = threads

    # ------------------------------------------------------------------------------ checks

    def _options(self) -> dict[str, Any]:
        """The estimator's parameters as ``torchann.train`` options, checked where scikit-learn's
        tools expect a ``ValueError`` with the parameter's name."""
        name = type(self).__name__
        sizes = self.hidden
        sizes = (sizes,) if isinstance(sizes, Integral) else sizes
        try:
            sizes = tuple(sizes)
        except TypeError:
            raise ValueError(f"{name}: hidden must be an int or a sequence of ints, got {self.hidden!r}") from None
        if not all(isinstance(s, Integral) and not isinstance(s, bool) and s > 0 for s in sizes):
            raise ValueError(f"{name}: hidden must hold positive integers, got {self.hidden!r}")
        for param in ("epochs",) + (("networks",) if self.networks is not None else ()):
            value = getattr(self, param)
            if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
                raise ValueError(f"{name}: {param} must be a positive integer, got {value!r}")
        check_fraction(f"{name}: val_split", self.val_split, hint=VAL_SPLIT_HINT, error=ValueError)
        params = self.get_params()
        params.pop("random_state")
        if self._task == "regression":
            params.pop("class_weight")
        else:
            params.pop("target_log")
            if isinstance(self.class_weight, dict):  # labels -> the class codes the model trains on
                codes = {label: float(i) for i, label in enumerate(self.classes_.tolist())}
                params["class_weight"] = {codes[k]: w for k, w in self.class_weight.items() if k in codes}
        params["hidden"] = tuple(int(s) for s in sizes)
        params["epochs"] = int(self.epochs)
        if self.batch_size is not None:
            params["batch_size"] = int(self.batch_size)
        return params

    def _seed(self) -> int:
        if isinstance(self.random_state, Integral) and not isinstance(self.random_state, bool):
            return int(self.random_state)
        return int(check_random_state(self.random_state).randint(0, 2**31 - 1))

    # -------------------------------------------------------------------------------- fit

    def _train(self, x: np.ndarray, target: dict[str, np.ndarray]) -> None:
        """Train on float ``x`` with the target column(s) ``target``."""
        from ..data.table import Table

        self._frame_columns_ = None
        columns = {f"x{i}": x[:, i] for i in range(x.shape[1])}
        self._fit_table(Table.from_columns({**columns, **target}, source="<X, y>", targets=list(target)))

    def _train_frame(self, X: Any, target: list[np.ndarray]) -> None:
        """Train on the DataFrame ``X`` as ``train`` reads it, with the target column(s) ``target``."""
        from ..data.table import Table
        from ..data.table_input import as_table

        table = as_table(X)
        self._frame_columns_ = list(table.names)
        names = ["y"] if len(target) == 1 else [f"y{k}" for k in range(len(target))]
        while any(n in table.columns for n in names):  # target names that no column of X has
            names = [f"_{n}" for n in names]
        extra = Table.from_columns(dict(zip(names, target)))
        self._fit_table(Table({**table.columns, **extra.columns}, "<DataFrame X, y>", names, skipped=table.skipped))

    def _fit_table(self, table: Any) -> None:
        from ..core.errors import TorchannError
        from .tabular import train

        options = self._options()
        try:
            with _own_random_state(), warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # e.g. early stopping without held-out rows
                model = train(table, task=self._task, seed=self._seed(), **options)
        except TorchannError as err:  # scikit-learn's tools expect ValueError for bad arguments
            raise ValueError(f"{type(self).__name__}: {err}") from err
        history = model.history
        self.model_ = model
        self.network_ = model.network
        self.history_ = history
        self.n_iter_ = len(history)
        self.best_epoch_ = history.info.get("best_epoch", len(history))
        self.loss_curve_ = history.losses
        self.validation_loss_curve_ = history["val_loss"] if history.info.get("val_rows") else None

    def _fit_input(self, X: Any, y: Any, **kwargs: Any) -> tuple[Any, Any]:
        """``(X, y)`` checked: a DataFrame stays a DataFrame (its names recorded), anything else
        becomes a float array."""
        if not _is_frame(X):
            return self._check_x(X, reset=True, y=y, **kwargs)
        from sklearn.utils import check_array, check_consistent_length

        _check_frame_names(self, X, reset=True)
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y is None")
        y = check_array(y, ensure_2d=False, dtype=None if self._task == "classification" else np.float64,
                        input_name="y")
        if y.ndim > 1 and not kwargs.get("multi_output"):
            from sklearn.utils import column_or_1d

            y = column_or_1d(y, warn=True)
        check_consistent_length(X, y)
        return X, y

    def _check_x(self, X: Any, *, reset: bool, y: Any = None, **kwargs: Any) -> Any:
        if reset:
            return _validate_data(self, X, y, dtype=[np.float64, np.float32], ensure_all_finite="allow-nan",
                                  **kwargs)
        return _validate_data(self, X, reset=False, dtype=[np.float64, np.float32], ensure_all_finite="allow-nan")

    def _outputs(self, X: Any):
        check_is_fitted(self, "model_")
        names = getattr(self, "_frame_columns_", None)
        if names is None:
            x = np.asarray(self._check_x(X, reset=False), dtype=np.float64)
            return self.model_.outputs({f"x{i}": x[:, i] for i in range(x.shape[1])})
        _check_frame_names(self, X, reset=False)  # fitted on a DataFrame: the columns are found by name
        if not _is_frame(X):
            rows = np.asarray(X, dtype=object)
            if rows.ndim != 2:
                raise ValueError(f"Expected a 2-D array of rows, got shape {rows.shape}")
            X = {name: rows[:, j] for j, name in enumerate(names)}
        try:
            return self.model_.outputs(X)
        except ValueError as err:  # DataError: one line naming the column and row
            raise ValueError(f"{type(self).__name__}: {err}") from err

    def __sklearn_tags__(self):  # scikit-learn >= 1.6
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = self.fill_missing is not None
        return tags


class MLPRegressor(RegressorMixin, _MLPBase):
    """A multi-layer perceptron regressor trained with ``torchann.train``.

    Args: ``train``'s options (``torchann train --help`` lists them with their defaults):
        hidden (widths of the hidden layers, an int for one), activation, dropout, norm, epochs,
        batch_size (None: chosen from the rows), lr, optimizer, weight_decay, momentum,
        clip_grad_norm, scheduler, early_stopping (patience in epochs, 0 off), val_split (rows held
        out for early stopping), scale, fill_missing (None: a missing value is an error),
        device, precision; and random_state (the seed).

    Fitted attributes:
        model_ (the ``torchann.Model``), network_ (its ``nn.Module``), history_, n_features_in_,
        n_outputs_, n_iter_ (epochs run), best_epoch_, loss_curve_, validation_loss_curve_.

    Predictions are in the target's own units; a single target gives shape ``(n,)``.
    """

    _task = "regression"

    def fit(self, X: Any, y: Any) -> "MLPRegressor":
        X, y = self._fit_input(X, y, multi_output=True, y_numeric=True)
        y2 = np.asarray(y, dtype=np.float64)
        y2 = y2.reshape(-1, 1) if y2.ndim == 1 else y2
        self.n_outputs_ = y2.shape[1]
        if _is_frame(X):
            self._train_frame(X, [y2[:, k] for k in range(self.n_outputs_)])
            return self
        names = ["y"] if self.n_outputs_ == 1 else [f"y{k}" for k in range(self.n_outputs_)]
        self._train(np.asarray(X, dtype=np.float64), {n: y2[:, k] for k, n in enumerate(names)})
        return self

    def predict(self, X: Any) -> np.ndarray:
        raw = self._outputs(X)
        out = self.model_.preprocessor.inverse_y(raw)
        out = out.reshape(len(out), -1)
        return out.ravel() if self.n_outputs_ == 1 else out

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def _more_tags(self) -> dict[str, Any]:  # scikit-learn < 1.6
        return {"multioutput": True, "allow_nan": self.fill_missing is not None}


class MLPClassifier(ClassifierMixin, _MLPBase):
    """A multi-layer perceptron classifier trained with ``torchann.train``.

    Takes the same arguments as :class:`MLPRegressor`. Any labels work (numbers, strings,
    booleans); ``classes_`` holds them sorted, and ``predict_proba`` has one column per class in
    that order. Held-out rows for early stopping are stratified by class.

    Fitted attributes:
        model_, network_, history_, classes_, n_features_in_, n_iter_, best_epoch_, loss_curve_,
        validation_loss_curve_.
    """

    _task = "classification"

    def fit(self, X: Any, y: Any) -> "MLPClassifier":
        X, y = self._fit_input(X, y)
        check_classification_targets(y)
        self.classes_, codes = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(
                f"{type(self).__name__}: y holds only one class ({self.classes_[0]!r}); "
                f"classification needs at least two classes"
            )
        # Class codes in the order of classes_: the model's classes are 0, 1, ... in that order.
        codes = codes.reshape(-1).astype(np.float64)
        if _is_frame(X):
            self._train_frame(X, [codes])
            return self
        self._train(np.asarray(X, dtype=np.float64), {"y": codes})
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        raw = self._outputs(X)
        return self.model_.preprocessor.proba(raw)

    def predict_log_proba(self, X: Any) -> np.ndarray:
        return np.log(np.clip(self.predict_proba(X), 1e-300, None))

    def predict(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "model_")
        return self.classes_[self.predict_proba(X).argmax(axis=1)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = False
        return tags

    def _more_tags(self) -> dict[str, Any]:  # scikit-learn < 1.6
        return {"allow_nan": self.fill_missing is not None}
