"""MLflow interop: a torchann model as an MLflow ``pyfunc`` model (``pip install torchann[mlflow]``).

``torchann.mlflow.log_model(model, name="model")`` logs it to the active MLflow run;
``save_model(model, path)`` writes it to a folder. Either way ``mlflow.pyfunc.load_model``,
``mlflow models serve`` and the MLflow registry take it. The MLflow model holds the torchann
model directory as an artifact (``spec.json`` + ``weights.safetensors``) and a short code file
(MLflow's "models from code"), so loading it unpickles nothing.

May import: ``api`` and the layers below it; nothing in torchann imports it. MLflow is imported
only when these functions are called.
"""

from __future__ import annotations

from typing import Any

__all__ = ["log_model", "save_model"]


def log_model(model: Any, name: str = "model", **kwargs: Any) -> Any:
    """Log ``model`` (a ``torchann.Model`` or a model directory) to the active MLflow run; returns
    MLflow's ``ModelInfo`` (``.model_uri`` loads it back). ``kwargs`` go to
    ``mlflow.pyfunc.log_model`` (e.g. ``registered_model_name``, ``input_example``)."""
    from .pyfunc import log_model as _log

    return _log(model, name, **kwargs)


def save_model(model: Any, path: str, **kwargs: Any) -> None:
    """Write ``model`` as an MLflow pyfunc model folder at ``path`` (which must not exist)."""
    from .pyfunc import save_model as _save

    _save(model, path, **kwargs)
