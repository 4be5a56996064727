"""scikit-learn estimators over torchann's ``fit``: ``MLPRegressor`` and ``MLPClassifier``.

They follow scikit-learn's contract: the constructor only stores its arguments, ``fit``
validates them and the data, fitted attributes end in ``_``, and the estimators work inside
``Pipeline``, ``cross_val_score`` and ``GridSearchCV``. Features (and a regression target)
are standardised with statistics of the rows ``fit`` receives, so no ``StandardScaler`` is
needed in front; ``scale=False`` turns that off.

With ``early_stopping`` (the default) a seeded ``validation_fraction`` of the rows
(stratified for classes) is held out, training stops after ``patience`` epochs without a
lower validation loss and the best epoch's weights are kept. With fewer rows than a split
needs, the training loss is watched instead.

The same ``random_state`` and data give the same weights on CPU. ``fit`` leaves the global
random state of torch, numpy and ``random`` as it found it.

Example:
    >>> from sklearn.pipeline import make_pipeline
    >>> clf = torchann.MLPClassifier(hidden_layer_sizes=(32,), random_state=0).fit(X, y)
    >>> clf.predict_proba(X[:2])            # (2, n_classes), rows sum to 1
"""

from __future__ import annotations

import contextlib
import random
from numbers import Integral, Real
from typing import Any

import numpy as np

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    from sklearn.utils import check_random_state
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import check_is_fitted
except ImportError as err:  # pragma: no cover - depends on the environment
    from .errors import UsageError

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


def _stats(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column means and population standard deviations; a constant column gets 1."""
    mean = a.mean(axis=0)
    std = a.std(axis=0)
    tiny = std <= 10 * np.finfo(np.float64).eps * np.maximum(1.0, np.abs(mean))
    return mean, np.where(tiny, 1.0, std)


class _MLPBase(BaseEstimator):
    """What the regressor and the classifier share; see their docstrings."""

    _task = "regression"

    def __init__(
        self,
        hidden_layer_sizes: Any = (100,),
        activation: str = "relu",
        *,
        dropout: float = 0.0,
        norm: str = "none",
        epochs: int = 200,
        batch_size: int = 32,
        lr: float = 1e-3,
        optimizer: str = "adam",
        weight_decay: float = 0.0,
        clip_grad_norm: float | None = None,
        scheduler: str | None = None,
        early_stopping: bool = True,
        patience: int = 10,
        validation_fraction: float = 0.1,
        scale: bool = True,
        random_state: Any = None,
        device: str = "cpu",
    ) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.dropout = dropout
        self.norm = norm
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.optimizer = optimizer
        self.weight_decay = weight_decay
        self.clip_grad_norm = clip_grad_norm
        self.scheduler = scheduler
        self.early_stopping = early_stopping
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.scale = scale
        self.random_state = random_state
        self.device = device

    # ------------------------------------------------------------------------------ checks

    def _check_params(self) -> tuple[int, ...]:
        """Validate the arguments that torchann's own checks would report less clearly here."""
        name = type(self).__name__
        sizes = self.hidden_layer_sizes
        sizes = (sizes,) if isinstance(sizes, Integral) else sizes
        try:
            sizes = tuple(sizes)
        except TypeError:
            raise ValueError(f"{name}: hidden_layer_sizes must be an int or a sequence of ints, "
                             f"got {self.hidden_layer_sizes!r}") from None
        if not all(isinstance(s, Integral) and not isinstance(s, bool) and s > 0 for s in sizes):
            raise ValueError(f"{name}: hidden_layer_sizes must hold positive integers, got {self.hidden_layer_sizes!r}")
        for param in ("epochs", "batch_size", "patience"):
            value = getattr(self, param)
            if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
                raise ValueError(f"{name}: {param} must be a positive integer, got {value!r}")
        fraction = self.validation_fraction
        if isinstance(fraction, bool) or not isinstance(fraction, Real) or not 0.0 <= fraction < 1.0:
            raise ValueError(f"{name}: validation_fraction must be in [0, 1), got {fraction!r}; 0.1 holds out "
                             f"a tenth of the rows for early stopping")
        return tuple(int(s) for s in sizes)

    # -------------------------------------------------------------------------------- fit

    def _fit(self, x: np.ndarray, y: np.ndarray, out_features: int, labels: np.ndarray | None) -> None:
        """Train on float64 ``x`` (already standardised) and prepared targets ``y``."""
        import torch

        from .errors import TorchannError
        from .spec import ModelSpec
        from .splits import split_indices
        from .train import EarlyStopping, fit

        sizes = self._check_params()
        seed = int(check_random_state(self.random_state).randint(0, 2**31 - 1))
        n = x.shape[0]
        train, val = np.arange(n), None
        if self.early_stopping and self.validation_fraction > 0 and n >= 2:
            train, val = split_indices(n, float(self.validation_fraction), seed=seed, stratify=labels)
            if len(val) == 0 or len(train) == 0:
                train, val = np.arange(n), None
        x32 = x.astype(np.float32)
        validation = None if val is None else (x32[val], y[val])
        std = None if self._task == "classification" or not self.scale else self.y_scale_.tolist()
        try:
            spec = ModelSpec(x.shape[1], sizes, out_features, activation=self.activation,
                             dropout=self.dropout, norm=self.norm)
            with _own_random_state():
                torch.manual_seed(seed)  # the initial weights follow random_state too
                model = spec.build()
                history = fit(
                    model, x32[train], y[train],
                    epochs=int(self.epochs), batch_size=int(min(self.batch_size, len(train))), lr=self.lr,
                    optimizer=self.optimizer,
                    loss="cross_entropy" if self._task == "classification" else "mse",
                    weight_decay=self.weight_decay, clip_grad_norm=self.clip_grad_norm, scheduler=self.scheduler,
                    validation=validation, metrics=self._task, target_std=std,
                    early_stopping=EarlyStopping(patience=int(self.patience)) if self.early_stopping else None,
                    seed=seed, device=self.device,
                )
        except TorchannError as err:  # scikit-learn's tools expect ValueError for bad arguments
            raise ValueError(f"{type(self).__name__}: {err}") from err
        model.eval()
        self.model_ = model
        self.history_ = history
        self.n_iter_ = len(history)
        self.best_epoch_ = history.info.get("best_epoch", len(history))
        self.loss_curve_ = history.losses
        self.validation_loss_curve_ = history["val_loss"] if val is not None else None

    def _scale_x(self, X: Any, *, reset: bool) -> np.ndarray:
        x = _validate_data(self, X, reset=reset, dtype=[np.float64, np.float32])
        return (np.asarray(x, dtype=np.float64) - self.x_mean_) / self.x_scale_

    def _fit_x(self, X: Any, y: Any, **kwargs: Any) -> tuple[np.ndarray, np.ndarray]:
        X, y = _validate_data(self, X, y, dtype=[np.float64, np.float32], **kwargs)
        x = np.asarray(X, dtype=np.float64)
        if self.scale:
            self.x_mean_, self.x_scale_ = _stats(x)
        else:
            self.x_mean_, self.x_scale_ = np.zeros(x.shape[1]), np.ones(x.shape[1])
        return (x - self.x_mean_) / self.x_scale_, y

    def _outputs(self, X: Any) -> np.ndarray:
        """Raw network outputs (float64) for the rows of ``X``."""
        from .inference import predict

        check_is_fitted(self, "model_")
        x = self._scale_x(X, reset=False).astype(np.float32)
        return predict(self.model_, x).double().numpy()

    # The network's class is made at run time (so that importing torchann does not import
    # torch), which pickle cannot name: pickle its spec and weights instead, and rebuild.
    def __getstate__(self) -> dict[str, Any]:
        state = dict(super().__getstate__())  # a copy: object.__getstate__ returns __dict__ itself
        model = state.get("model_")
        if model is not None:
            weights = {k: v.detach().cpu() for k, v in model.state_dict().items()}
            state["model_"] = {"spec": model.spec.to_dict(), "weights": weights}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        record = state.get("model_")
        if isinstance(record, dict) and "spec" in record:
            from .spec import ModelSpec

            model = ModelSpec.from_dict(record["spec"]).build()
            model.load_state_dict(record["weights"])
            state = {**state, "model_": model.eval()}
        super().__setstate__(state)

    def __sklearn_tags__(self):  # scikit-learn >= 1.6
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        return tags


class MLPRegressor(RegressorMixin, _MLPBase):
    """A multi-layer perceptron regressor trained with torchann (MSE loss, Adam by default).

    Args:
        hidden_layer_sizes: width of each hidden layer (an int for one layer).
        activation: ``relu``, ``tanh``, ``sigmoid``, ``gelu``, ``leaky_relu`` or ``identity``.
        dropout, norm: dropout after each hidden layer; ``none``, ``batch`` or ``layer`` normalisation.
        epochs: the most passes over the training rows.
        batch_size, lr, optimizer, weight_decay, clip_grad_norm, scheduler: as in ``torchann.fit``
            (``optimizer`` ``sgd``/``adam``/``adamw``; ``scheduler`` ``cosine``/``step``/``plateau``/``one_cycle``).
        early_stopping, patience, validation_fraction: hold out this fraction of the rows and stop
            after ``patience`` epochs without a lower validation loss, keeping the best weights.
        scale: standardise the features and the target with the training rows' statistics.
        random_state: int, ``RandomState`` or None; fixes the split, initial weights and batch order.
        device: ``cpu``, ``cuda``, ``mps`` or ``auto``.

    Fitted attributes:
        model_ (the ``nn.Module``), history_ (``torchann.History``), n_features_in_, n_outputs_,
        n_iter_ (epochs run), best_epoch_, loss_curve_, validation_loss_curve_,
        x_mean_, x_scale_, y_mean_, y_scale_.

    Predictions are in the target's own units; a single target gives shape ``(n,)``.
    """

    _task = "regression"

    def fit(self, X: Any, y: Any) -> "MLPRegressor":
        x, y = self._fit_x(X, y, multi_output=True, y_numeric=True)
        y = np.asarray(y, dtype=np.float64)
        y2 = y.reshape(-1, 1) if y.ndim == 1 else y
        self.n_outputs_ = y2.shape[1]
        if self.scale:
            self.y_mean_, self.y_scale_ = _stats(y2)
        else:
            self.y_mean_, self.y_scale_ = np.zeros(self.n_outputs_), np.ones(self.n_outputs_)
        target = ((y2 - self.y_mean_) / self.y_scale_).astype(np.float32)
        self._fit(x, target, self.n_outputs_, None)
        return self

    def predict(self, X: Any) -> np.ndarray:
        out = self._outputs(X) * self.y_scale_ + self.y_mean_
        return out.ravel() if self.n_outputs_ == 1 else out

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def _more_tags(self) -> dict[str, Any]:  # scikit-learn < 1.6
        return {"multioutput": True, "allow_nan": False}


class MLPClassifier(ClassifierMixin, _MLPBase):
    """A multi-layer perceptron classifier trained with torchann (cross-entropy, Adam by default).

    Takes the same arguments as :class:`MLPRegressor`; ``scale`` standardises the features.
    Any labels work (numbers, strings, booleans); ``classes_`` holds them sorted, and
    ``predict_proba`` has one column per class in that order (softmax of the outputs).

    Fitted attributes:
        model_, history_, classes_, n_features_in_, n_iter_, best_epoch_, loss_curve_,
        validation_loss_curve_, x_mean_, x_scale_.
    """

    _task = "classification"

    def fit(self, X: Any, y: Any) -> "MLPClassifier":
        x, y = self._fit_x(X, y)
        check_classification_targets(y)
        self.classes_, codes = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(
                f"{type(self).__name__}: y holds only one class ({self.classes_[0]!r}); "
                f"classification needs at least two classes"
            )
        codes = codes.reshape(-1).astype(np.int64)
        self._fit(x, codes, len(self.classes_), codes)
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        z = self._outputs(X)
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    def predict_log_proba(self, X: Any) -> np.ndarray:
        z = self._outputs(X)
        z = z - z.max(axis=1, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=1, keepdims=True))

    def predict(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "model_")
        return self.classes_[self._outputs(X).argmax(axis=1)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = False
        return tags

    def _more_tags(self) -> dict[str, Any]:  # scikit-learn < 1.6
        return {"allow_nan": False}
