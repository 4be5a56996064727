"""torchann: build, train, inspect, save, load and benchmark feed-forward networks.

The public names below are imported lazily, so that ``import torchann`` (and the
``torchann --help`` command) stays fast and does not import torch until it is needed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .core.version import __version__

# public name -> module that defines it
_EXPORTS = {
    # spec.py
    "ModelSpec": "network.spec",
    "mlp": "network.spec",
    # train.py / history.py / inference.py
    "fit": "training.fitting",
    "EarlyStopping": "training.arguments",
    "History": "training.history",
    "predict": "network.predict",
    # model.py / tabular.py: the trained model, and training on a table
    "Model": "api.model",
    "load": "api.model",
    "train": "api.tabular",
    "cross_validate": "api.cv",
    "CrossValidation": "api.cv",
    "permutation_importance": "model.importance",
    "Importance": "model.importance",
    "TrainOptions": "core.options",
    # tuning/: a search that ends in one Model (pip install torchann[tune])
    "tune": "tuning.search",
    # modeldir.py / checkpoint.py
    "save": "model.directory",
    "read_model_dir": "model.directory",
    "ModelDir": "model.directory",
    "import_state_dict": "model.pth",
    # inspect.py
    "summary": "inspect.layers",
    "Summary": "inspect.summary",
    "activations": "inspect.layers",
    "parameters_table": "inspect.layers",
    # data.py
    "load_table": "data.readers",
    "Table": "data.table",
    "split_indices": "data.splits",
    "Preprocessor": "preprocess.preprocessor",
    "infer_task": "preprocess.target",
    "load_dataset": "data.datasets",
    "dataset_names": "data.datasets",
    # streaming.py
    "NpyBatches": "batching.stream_files",
    "ParquetBatches": "batching.stream_files",
    # sklearn.py
    "MLPRegressor": "api.sklearn",
    "MLPClassifier": "api.sklearn",
    # server/: the HTTP server (pip install torchann[serve])
    "serve": "server",
    # errors.py
    "TorchannError": "core.errors",
    "UsageError": "core.errors",
    "DataError": "core.errors",
    "SpecError": "core.errors",
    "ModelFileError": "core.errors",
    "TrainingError": "core.errors",
}

_SUBPACKAGES = ("mlflow",)  # reached as torchann.mlflow without an import of their own

__all__ = ["__version__", *_EXPORTS, *_SUBPACKAGES]


def __getattr__(name: str) -> Any:
    if name in _SUBPACKAGES:
        return importlib.import_module(f".{name}", __name__)
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'torchann' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from .core.errors import DataError, ModelFileError, SpecError, TorchannError, TrainingError, UsageError
    from .training.history import History
    from .api.model import Model, load
    from .model.directory import ModelDir, read_model_dir, save
    from .core.options import TrainOptions
    from .api.tabular import train
    from .api.cv import CrossValidation, cross_validate
    from .model.importance import Importance, permutation_importance
    from .network.predict import predict
    from .network.spec import ModelSpec, mlp
    from .training.fitting import EarlyStopping, fit
    from .tuning.search import tune
