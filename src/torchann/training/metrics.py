"""Per-epoch metrics accumulated on the device, read once at the end of the epoch.

Regression: mse, mae and r2, reported in the target's own units when the target was
standardised (``target_std``). Classification: accuracy and log loss.
"""

from __future__ import annotations

from typing import Mapping

import torch

from ..core.choices import Task

__all__ = ["MetricSums", "metric_names"]


def metric_names(task: Task | None) -> tuple[str, ...]:
    if task is Task.REGRESSION:
        return ("mse", "mae", "r2")
    if task is Task.CLASSIFICATION:
        return ("accuracy", "log_loss")
    return ()


class MetricSums:
    """Running sums from which the epoch's metrics follow; ``update`` never syncs."""

    def __init__(self, task: Task | None, *, device: torch.device, target_std: torch.Tensor | None = None):
        self.task = task
        self.device = device
        self.target_std = target_std
        self.sums: dict[str, torch.Tensor] = {}

    def _add(self, name: str, value: torch.Tensor) -> None:
        value = value.detach().double()
        if name in self.sums:
            self.sums[name] += value
        else:
            self.sums[name] = value.clone()

    @torch.no_grad()
    def update(self, out: torch.Tensor, y: torch.Tensor) -> None:
        if self.task is None or y.shape[0] == 0:
            return
        out = out.float()
        self._add("n", torch.tensor(float(y.shape[0]), device=out.device))
        if self.task is Task.REGRESSION:
            y = y.reshape(out.shape).float()
            err = out - y
            self._add("sse", err.square().sum(0))  # (k,)
            self._add("sae", err.abs().sum(0))
            self._add("sy", y.sum(0))
            self._add("syy", y.square().sum(0))
        else:
            if out.shape[-1] == 1:  # one logit: binary with BCE
                prob1 = torch.sigmoid(out.squeeze(-1))
                labels = y.reshape(-1)
                self._add("correct", ((prob1 > 0.5).long() == labels.long()).sum())
                p = torch.where(labels > 0.5, prob1, 1 - prob1).clamp_min(1e-15)
                self._add("nll", -p.log().sum())
            else:
                labels = y.reshape(-1).long()
                self._add("correct", (out.argmax(-1) == labels).sum())
                self._add("nll", torch.nn.functional.cross_entropy(out, labels, reduction="sum"))

    def state(self) -> dict[str, torch.Tensor]:
        return dict(self.sums)

    def load_state(self, sums: Mapping[str, torch.Tensor]) -> None:
        self.sums = {k: v.to(self.device) for k, v in sums.items()}

    def compute(self, sums: Mapping[str, float | list[float]] | None = None) -> dict[str, float]:
        """Metrics from the sums (given as plain numbers, e.g. after an all-reduce)."""
        if sums is None:
            sums = {k: v.tolist() for k, v in self.sums.items()}
        if not sums or not sums.get("n"):
            return {}
        n = float(sums["n"])
        if self.task is Task.REGRESSION:
            sse = torch.tensor(sums["sse"], dtype=torch.float64)
            sae = torch.tensor(sums["sae"], dtype=torch.float64)
            sy = torch.tensor(sums["sy"], dtype=torch.float64)
            syy = torch.tensor(sums["syy"], dtype=torch.float64)
            sst = syy - sy.square() / n
            # A constant target has no variance to explain: like scikit-learn's r2_score
            # (force_finite), report 1 for a perfect fit and 0 otherwise.
            flat = sst <= 1e-12 * syy.clamp_min(1.0)
            r2 = torch.where(flat, (sse == 0).double(), 1.0 - sse / torch.where(flat, torch.ones_like(sst), sst))
            std = torch.ones_like(sse) if self.target_std is None else self.target_std.double().cpu().reshape(-1)
            return {
                "mse": float((sse * std.square()).mean() / n),
                "mae": float((sae * std).mean() / n),
                "r2": float(r2.mean()),
            }
        return {"accuracy": float(sums["correct"]) / n, "log_loss": float(sums["nll"]) / n}
