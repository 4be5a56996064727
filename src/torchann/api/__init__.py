"""The product's face: ``torchann.Model`` and ``load`` (``model``), ``train()`` from a table
(``tabular``), the demo's model (``demo``) and the scikit-learn estimators (``sklearn``).
May import: every layer below.
"""

from .model import Model, load
from .tabular import train
from .sklearn import MLPRegressor, MLPClassifier

__all__ = ["Model", "load", "train", "MLPRegressor", "MLPClassifier"]
