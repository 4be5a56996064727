"""The torchann modules below the public API that this package uses, imported in this one place.

``torchann.load``, ``Model`` and the error classes are public; atomic writes, careful reads and
chunked file scoring are not, and their modules move when the package's layout does.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Iterator

from ..core.errors import ClusterError, DataError, ModelFileError, TorchannError, UsageError
from ..core.files import (JSON_LIMIT, StorageError, atomic_dir, atomic_write_text, file_mode, is_storage_full,
                          read_file_bytes)
from ..data.readers import _sniff as sniff_delimiter  # the delimiter torchann predict would guess
from ..model.scoring import score_file
from ..preprocess.facts import OutOfRangeWarning

__all__ = ["ClusterError", "DataError", "ModelFileError", "TorchannError", "UsageError", "JSON_LIMIT",
           "StorageError", "atomic_dir", "atomic_write_text", "file_mode", "is_storage_full", "read_file_bytes",
           "score_file", "sniff_delimiter", "OutOfRangeWarning", "quiet_range"]


@contextlib.contextmanager
def quiet_range() -> Iterator[None]:
    """A block in which the out-of-range warning is not shown: on a worker it would reach no one
    but the worker's log (``torchann predict`` without ``--cluster`` gives it)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OutOfRangeWarning)
        yield
