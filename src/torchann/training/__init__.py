"""``fit()`` and what it runs: the keyword arguments checked into groups (``arguments``), check
-> build -> run (``fitting``), the epoch loop (``loop``), the state a resume needs (``state``),
one step (``steps``; the written-out MLP step in ``mlp_step``), optimisers, losses and
schedules (``optim``), on-device metrics (``metrics``), the ``History``, checkpoints on disk
(``checkpoint``) and data-parallel runs under torchrun (``distributed``).
May import: ``core``, ``runtime``, ``render``, ``data``, ``network``, ``batching``.
"""

from .fitting import fit
from .arguments import EarlyStopping, Checkpointing
from .history import History

__all__ = ["fit", "EarlyStopping", "Checkpointing", "History"]
