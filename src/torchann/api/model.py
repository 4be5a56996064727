"""``torchann.Model``: the trained model users hold, and ``torchann.load``.

A ``Model`` is a :class:`~torchann.model.BaseModel` (the network, its preprocessing and its
history, with ``predict``, ``evaluate`` and the model directory) plus what presents it: its
``save`` also writes the loss curve and the run report beside the weights, and
``export_onnx`` writes it as one ONNX file. Those views live above the model layer and ask the
model for what they show; the model never imports them.

Whatever trained it (``torchann train``, ``torchann.train``, the scikit-learn estimators) and
however it is reached (``torchann.load``, the CLI), a trained model is one of these.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..export.onnx import export_onnx
from ..model.base import BaseModel
from ..model.importance import DEFAULT_REPEATS, Importance, permutation_importance
from ..report.page import REPORT_FILE, report_html
from ..report.plots import LOSS_CURVE_FILE, loss_curve_png

__all__ = ["Model", "load"]


class Model(BaseModel):
    """A trained network with its preprocessing and history (see :class:`BaseModel`).

    Example:
        >>> model = torchann.train("houses.csv", target="price")
        >>> model.predict("new_houses.csv")          # prices, in the target's units
        >>> model.evaluate("test_houses.csv")        # {'rows': ..., 'mse': ..., 'mae': ..., 'r2': ...}
        >>> model.save("runs/houses"); torchann.load("runs/houses").predict([[3, 120.0, "north"]])
    """

    def save(self, path: str | Path, *, files: dict[str, bytes | str] | None = None) -> Path:
        """Write the model directory: ``spec.json``, ``weights.safetensors`` and, when there is
        a history, ``history.jsonl``, ``loss.png`` and ``report.html``; plus ``files``."""
        views: dict[str, bytes | str] = {}
        if len(self.history):
            views = {LOSS_CURVE_FILE: loss_curve_png(self.history), REPORT_FILE: report_html(self)}
        return super().save(path, files=views | (files or {}))

    def importance(self, data: Any, *, repeats: int = DEFAULT_REPEATS, seed: int = 0) -> Importance:
        """Permutation importance of each feature column on the labelled rows ``data``: the mean
        drop in score (r2, or accuracy) when the column is shuffled, and its spread over
        ``repeats`` shuffles (scikit-learn's shuffles for the same ``seed``; ``torchann.model.importance``)."""
        return permutation_importance(self, data, repeats=repeats, seed=seed)

    def export_onnx(self, path: str | Path, *, network_only: bool = False) -> Path:
        """Write this model as one ONNX file that answers from raw columns (``torchann.export``)."""
        return export_onnx(self, path, network_only=network_only)


def load(path: str | Path, *, device: str | torch.device = "cpu") -> Model:
    """The model stored at ``path`` (written by ``torchann train``, ``Model.save`` or
    ``torchann.save``), with its preprocessing; ``.network`` is the ``nn.Module`` in eval mode.
    JSON and safetensors only: nothing is unpickled."""
    return Model.load(path, device=device)  # type: ignore[return-value]
