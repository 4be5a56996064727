"""The project's exceptions: one base class, one subclass per place where input enters.

Every message names the bad value, where it was found (file, row, column, layer) and the fix.
The command line turns these into one line on stderr: exit code 2 for bad input
(``DataError``, ``SpecError``, ``ModelFileError``, ``UsageError``), 1 for a failure while
running (``TrainingError``, ``ClusterError``). Anything else that escapes is a bug.
"""

from __future__ import annotations

import os
import signal as _signal
from typing import Any

__all__ = [
    "TorchannError",
    "UsageError",
    "DataError",
    "SpecError",
    "ModelFileError",
    "TrainingError",
    "ClusterError",
    "NonFiniteLoss",
    "TrainingInterrupted",
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


class ClusterError(TorchannError, RuntimeError):
    """A job on a Dask cluster could not finish (scheduler unreachable, workers lost)."""

    exit_code = 1


class _StoppedTraining(TrainingError):
    """What both ways of stopping mid-run carry: the run so far and where it stopped.

    Fields:
        history: the ``History`` of the epochs that finished.
        epoch: the epoch it stopped in, counted from 1.
        step: the step of that epoch, counted from 1.
        checkpoint: the checkpoint folder to resume from, or None when there is none.
    """

    def __init__(self, message: str, *, history: Any, epoch: int, step: int,
                 checkpoint: str | os.PathLike | None) -> None:
        super().__init__(message)
        self.history, self.epoch, self.step = history, epoch, step
        self.checkpoint = None if checkpoint is None else os.fspath(checkpoint)

    def _fields(self) -> dict[str, Any]:
        return {"history": self.history, "epoch": self.epoch, "step": self.step, "checkpoint": self.checkpoint}

    def __reduce__(self) -> Any:  # keyword-only fields: rebuild through the constructor
        return (_rebuild, (type(self), self._fields()))


def _rebuild(cls: type, fields: dict[str, Any]) -> Exception:
    return cls(**fields)


class NonFiniteLoss(_StoppedTraining):
    """The loss became NaN or infinite; ``value`` is that loss, ``lr`` the learning rate then."""

    def __init__(self, *, history: Any, epoch: int, step: int, checkpoint: str | os.PathLike | None,
                 value: float, lr: float) -> None:
        where = f"; the last good checkpoint is in {os.fspath(checkpoint)}" if checkpoint is not None else ""
        super().__init__(
            f"loss became {value} at epoch {epoch}, step {step}; lower the learning rate (now {lr:g}), "
            f"scale the inputs, or clip gradients{where}",
            history=history, epoch=epoch, step=step, checkpoint=checkpoint)
        self.value, self.lr = value, lr

    def _fields(self) -> dict[str, Any]:
        return {**super()._fields(), "value": self.value, "lr": self.lr}


class TrainingInterrupted(_StoppedTraining):
    """Training stopped on SIGINT (Ctrl-C), SIGTERM or SIGHUP after a finished step.

    ``signal`` is the signal's number; ``exit_code`` the shell's code for a process it ended
    (128 + the number: 130 for SIGINT, 143 for SIGTERM, 129 for SIGHUP). With checkpointing
    on, the state after that step is in ``checkpoint``: ``fit(..., resume=checkpoint)``
    continues bit-identically. ``message`` replaces the default text (which names
    ``fit(..., resume=...)``) for a caller that words the way back for its own users.
    """

    def __init__(self, message: str | None = None, *, history: Any = None, epoch: int = 0, step: int = 0,
                 checkpoint: str | os.PathLike | None = None, signal: int = _signal.SIGINT) -> None:
        if message is None:  # the default text; a caller may word it for its own users (the CLI)
            where = f"interrupted at epoch {epoch}, step {step} by {_signal.Signals(signal).name}"
            if checkpoint is not None:
                path = os.fspath(checkpoint)
                message = f"{where}; checkpoint written to {path}, continue with fit(..., resume={path!r})"
            else:
                message = f"{where}; nothing was saved: train with checkpoint=Checkpointing(folder) to resume later"
        super().__init__(message, history=history, epoch=epoch, step=step, checkpoint=checkpoint)
        self.signal = int(signal)
        self.exit_code = 128 + int(signal)

    def _fields(self) -> dict[str, Any]:
        return {**super()._fields(), "signal": self.signal, "message": str(self)}
