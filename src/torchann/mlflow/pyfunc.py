"""The pyfunc wrapper: ``TorchannModel.predict`` answers a pandas frame as ``Model.predict`` does.

``params={"proba": True}`` (MLflow's inference params) answers a frame instead: the label
column and one ``p(<class>)`` column per class, as ``torchann predict --proba``.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from ..core.errors import UsageError

try:
    import mlflow
    import mlflow.pyfunc
except ImportError:  # pragma: no cover - the [mlflow] extra brings it
    raise UsageError("torchann.mlflow needs MLflow; install torchann[mlflow]") from None

__all__ = ["TorchannModel", "log_model", "save_model", "ARTIFACT"]

ARTIFACT = "torchann_model"  # the model directory's name among the MLflow model's artifacts
CODE = Path(__file__).with_name("model_code.py")  # what MLflow runs to build the pyfunc (no pickle)


class TorchannModel(mlflow.pyfunc.PythonModel):
    """An MLflow pyfunc over a torchann model directory."""

    def load_context(self, context):  # no type hints: MLflow would read them as a schema
        from ..api.model import load

        self.model = load(context.artifacts[ARTIFACT])

    def predict(self, context, model_input, params=None):
        if (params or {}).get("proba"):
            import pandas as pd

            return pd.DataFrame(self.model.predictions(model_input, proba=True))
        return self.model.predict(model_input)


def _model_dir(model: Any, folder: Path) -> Path:
    """A model directory to copy into the MLflow model: the one ``model`` was loaded from, or a
    fresh save."""
    if isinstance(model, (str, Path)):
        return Path(model)
    if getattr(model, "path", None) is not None and (Path(model.path) / "spec.json").is_file():
        return Path(model.path)
    return Path(model.save(folder / "model"))


def signature(model: Any) -> Any:
    """``proba`` as an inference parameter (classifiers). No input schema: MLflow's would refuse
    an integer sent for a number column; the model checks its columns itself."""
    from mlflow.models.signature import ModelSignature
    from mlflow.types.schema import ParamSchema, ParamSpec

    if model.task != "classification":
        return None
    return ModelSignature(inputs=None, params=ParamSchema([ParamSpec("proba", "boolean", False)]))


def _arguments(model: Any, folder: Path) -> dict[str, Any]:
    if isinstance(model, (str, Path)):
        from ..api.model import load

        model = load(model)
    source = _model_dir(model, folder)
    copy = folder / ARTIFACT
    shutil.copytree(source, copy, ignore=shutil.ignore_patterns("checkpoint", "*.previous", "report.html",
                                                                "loss.png", "tensorboard"))
    return {"python_model": str(CODE), "artifacts": {ARTIFACT: str(copy)}, "signature": signature(model)}


def log_model(model: Any, name: str, **kwargs: Any) -> Any:
    with tempfile.TemporaryDirectory() as tmp:
        return mlflow.pyfunc.log_model(name=name, **_arguments(model, Path(tmp)), **kwargs)


def save_model(model: Any, path: str, **kwargs: Any) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        mlflow.pyfunc.save_model(path, **_arguments(model, Path(tmp)), **kwargs)
