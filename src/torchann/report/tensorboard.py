"""TensorBoard event files for a training run: scalars and weight histograms, each epoch.

Optional (``pip install torchann[tensorboard]``); ``history.jsonl`` stays the run's record.
The files go to ``RUN/tensorboard/``; view them with ``tensorboard --logdir RUN/tensorboard``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..core.errors import UsageError

__all__ = ["TensorBoardLog", "TENSORBOARD_DIR"]

TENSORBOARD_DIR = "tensorboard"


class TensorBoardLog:
    """Per epoch: every number of the history record as a scalar (``loss/training``,
    ``loss/validation``, ``lr``...) and a histogram of each parameter of the watched network."""

    def __init__(self, run_dir: str | Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter  # needs the tensorboard package
        except ImportError:
            raise UsageError("--tensorboard needs the tensorboard package; install it with "
                             "pip install 'torchann[tensorboard]'") from None
        self._writer_class = SummaryWriter
        self.directory = Path(run_dir) / TENSORBOARD_DIR
        self._writer: Any = None
        self._network: Any = None

    def watch(self, network: Any) -> None:
        self._network = network

    def on_train_start(self, **kw: Any) -> None:
        self._writer = self._writer_class(log_dir=str(self.directory))

    def on_step(self, **kw: Any) -> None:
        return None

    def on_epoch_end(self, record: dict[str, Any]) -> None:
        if self._writer is None:
            return
        epoch = int(record["epoch"])
        for key, value in record.items():
            if key == "epoch" or not isinstance(value, (int, float)):
                continue
            name = key if key in ("lr", "seconds") else (
                f"{key.removeprefix('val_')}/validation" if key.startswith("val_") else f"{key}/training")
            self._writer.add_scalar(name, float(value), epoch)
        if self._network is not None:
            for name, p in self._network.named_parameters():
                self._writer.add_histogram(f"weights/{name}", p.detach().float().cpu(), epoch)
        self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
