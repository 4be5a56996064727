"""The network as data and as a module: ``ModelSpec`` and ``build()`` (``spec``), the cheap
dropout (``dropout``), ``predict``: outputs in eval mode, in aligned row blocks, and
``eval_pass``: a few rows through a plain sequential network without ``nn.Module``'s per-call work.
May import: ``core``, ``data``.
"""

from .spec import ModelSpec, MLP, mlp
from .dropout import Dropout
from .predict import predict

__all__ = ["ModelSpec", "MLP", "mlp", "Dropout", "predict"]
