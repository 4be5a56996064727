"""The code MLflow runs to build the pyfunc of a torchann model ("models from code")."""

import mlflow

from torchann.mlflow.pyfunc import TorchannModel

mlflow.models.set_model(TorchannModel())
