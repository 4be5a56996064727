"""torchann: build, train, inspect, save, load and benchmark feed-forward networks.

The public names below are imported lazily, so that ``import torchann`` (and the
``torchann --help`` command) stays fast and does not import torch until it is needed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    # spec.py
    "ModelSpec": "spec",
    "mlp": "spec",
    # train.py / history.py / inference.py
    "fit": "fitting",
    "EarlyStopping": "fitting",
    "History": "history",
    "predict": "inference",
    # model.py / tabular.py: the trained model, and training on a table
    "Model": "model",
    "load": "model",
    "train": "tabular",
    "TrainOptions": "options",
    # tune/: a search that ends in one Model (pip install torchann[tune])
    "tune": "tune",
    # modeldir.py / checkpoint.py
    "save": "modeldir",
    "read_model_dir": "modeldir",
    "ModelDir": "modeldir",
    "import_state_dict": "imports",
    # inspect.py
    "summary": "inspect",
    "Summary": "inspect",
    "activations": "inspect",
    "parameters_table": "inspect",
    # data.py
    "load_table": "data",
    "Table": "data",
    "split_indices": "data",
    "Preprocessor": "preprocess",
    "infer_task": "preprocess",
    "load_dataset": "datasets",
    "dataset_names": "datasets",
    # streaming.py
    "NpyBatches": "streaming",
    "ParquetBatches": "streaming",
    # sklearn.py
    "MLPRegressor": "sklearn",
    "MLPClassifier": "sklearn",
    # errors.py
    "TorchannError": "errors",
    "UsageError": "errors",
    "DataError": "errors",
    "SpecError": "errors",
    "ModelFileError": "errors",
    "TrainingError": "errors",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'torchann' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from .errors import DataError, ModelFileError, SpecError, TorchannError, TrainingError, UsageError
    from .history import History
    from .model import Model, load
    from .modeldir import ModelDir, read_model_dir, save
    from .options import TrainOptions
    from .tabular import train
    from .tune import tune
    from .inference import predict
    from .spec import ModelSpec, mlp
    from .fitting import EarlyStopping, fit
