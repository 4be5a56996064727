"""The product's face: ``torchann.Model`` and ``load`` (``model``), ``train()`` from a table
(``tabular``), the demo's model (``demo``) and the scikit-learn estimators (``sklearn``).
May import: every layer below.
"""

from typing import Any

from .model import Model, load
from .tabular import train

__all__ = ["Model", "load", "train", "MLPRegressor", "MLPClassifier"]


def __getattr__(name: str) -> Any:
    """The estimators load scikit-learn (the ``[sklearn]`` extra) only when asked for: the
    rest of the package, ``torchann demo`` included, works without it."""
    if name in ("MLPRegressor", "MLPClassifier"):
        from . import sklearn

        return getattr(sklearn, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
