"""String choices, parsed once where input enters so that a typo fails early."""

from __future__ import annotations

import difflib
import enum
from typing import TypeVar

from .errors import UsageError

__all__ = ["Choice", "Activation", "Norm", "Optimizer", "Loss", "Task", "Precision", "Scheduler", "NumEmbeddings", "parse"]

C = TypeVar("C", bound="Choice")


class Choice(str, enum.Enum):
    """A string enum whose members compare equal to their values."""

    def __str__(self) -> str:
        return self.value

    @classmethod
    def values(cls) -> list[str]:
        return [m.value for m in cls]


def parse(kind: type[C], value: object, *, name: str | None = None) -> C:
    """Return ``kind(value)``, or raise a ``UsageError`` listing the valid values."""
    if isinstance(value, kind):
        return value
    text = str(value).strip().lower().replace("-", "_")
    try:
        return kind(text)
    except ValueError:
        valid = kind.values()
        close = difflib.get_close_matches(text, valid, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        label = name or kind.__name__.lower()
        raise UsageError(
            f"unknown {label} {value!r}; choose one of: {', '.join(valid)}.{hint}"
        ) from None


class Activation(Choice):
    RELU = "relu"
    TANH = "tanh"
    SIGMOID = "sigmoid"
    GELU = "gelu"
    LEAKY_RELU = "leaky_relu"
    IDENTITY = "identity"


class Norm(Choice):
    NONE = "none"
    BATCH = "batch"
    LAYER = "layer"


class Optimizer(Choice):
    SGD = "sgd"
    ADAM = "adam"
    ADAMW = "adamw"


class Loss(Choice):
    MSE = "mse"
    MAE = "mae"
    CROSS_ENTROPY = "cross_entropy"
    BCE = "bce"


class Task(Choice):
    REGRESSION = "regression"
    CLASSIFICATION = "classification"


class Precision(Choice):
    AUTO = "auto"  # bf16 where the hardware runs it natively and the step is large enough, else fp32
    FP32 = "fp32"
    BF16 = "bf16"


class Scheduler(Choice):
    NONE = "none"
    COSINE = "cosine"
    STEP = "step"
    PLATEAU = "plateau"
    ONE_CYCLE = "one_cycle"


class FillMissing(Choice):
    MEAN = "mean"
    MEDIAN = "median"
    ZERO = "zero"


class NumEmbeddings(Choice):
    NONE = "none"
    PERIODIC = "periodic"


class Scaling(Choice):
    QUANTILE = "quantile"
    STANDARD = "standard"
