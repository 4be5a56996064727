"""The project's exceptions: one base class, one subclass per place where input enters.

Every message names the bad value, where it was found (file, row, column, layer) and the fix.
The command line turns these into one line on stderr: exit code 2 for bad input
(``DataError``, ``SpecError``, ``ModelFileError``, ``UsageError``), 1 for a failure while
running (``TrainingError``). Anything else that escapes is a bug.
"""

from __future__ import annotations

__all__ = [
    "TorchannError",
    "UsageError",
    "DataError",
    "SpecError",
    "ModelFileError",
    "TrainingError",
]


class TorchannError(Exception):
    """Base class of every error torchann raises on purpose."""

    exit_code = 2


class UsageError(TorchannError, ValueError):
    """An argument to a function or command is invalid."""


class DataError(TorchannError, ValueError):
    """A table, array or tensor given as data is unusable (shape, type, missing values)."""


class SpecError(TorchannError, ValueError):
    """A model specification describes a network that cannot be built."""


class ModelFileError(TorchannError):
    """A model directory, weights file or checkpoint is missing, corrupt or unsafe."""


class TrainingError(TorchannError, RuntimeError):
    """Training could not go on (non-finite loss, interrupted run, ...)."""

    exit_code = 1
