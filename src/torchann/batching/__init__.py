"""What a training step eats, cut without per-sample Python: per-epoch shuffled slices of
on-device tensors (``batches``), any ``Dataset``/``DataLoader`` checked into batches
(``sources``), and files larger than memory streamed in chunks (``streaming``,
``stream_files``) and lanes across ranks (``lanes``).
May import: ``core``, ``runtime``, ``data``, ``network``.
"""

from .batches import TensorBatches, epoch_permutation
from .streaming import StreamingBatches
from .stream_files import NpyBatches, ParquetBatches

__all__ = ["TensorBatches", "epoch_permutation", "StreamingBatches", "NpyBatches", "ParquetBatches"]
