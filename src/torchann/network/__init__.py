"""The network as data and as a module: ``ModelSpec`` and ``build()`` (``spec``), the cheap
dropout (``dropout``), and ``predict``: outputs in eval mode, in aligned row blocks.
May import: ``core``, ``data``.
"""

from .spec import ModelSpec, MLP, mlp
from .dropout import Dropout
from .predict import predict

__all__ = ["ModelSpec", "MLP", "mlp", "Dropout", "predict"]
