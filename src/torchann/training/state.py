"""Everything a training run carries from step to step, in one object that can be saved and
put back: ``TrainingState`` (model, optimiser, schedule, early stopping, history, seed,
position) with ``state_dict()`` / ``load_state_dict()``, as torch's optimisers have.

A checkpoint is ``state_dict()`` written by ``checkpoint.save_state``; resuming is
``load_state_dict(checkpoint.load_state(folder))`` after ``check_resumable`` has said the
run asks for the same data, batches and schedule. The layout of the dict is the checkpoint
format: ``epoch``, ``step``, ``seed``, ``batch_size``, ``rows``, ``model``, ``optimizer``,
``scheduler``, ``stopper``, ``history``, ``rng``, ``partial``.
"""

from __future__ import annotations

import math

from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import checkpoint as ckpt
from ..core.errors import ModelFileError, UsageError
from .history import History

__all__ = ["TrainingState", "Stopper", "check_resumable", "check_same_schedule"]


class Stopper:
    """Early-stopping state: best loss, its epoch and weights, epochs without improvement."""

    def __init__(self, rule: Any):  # fit_arguments.EarlyStopping or None
        self.rule = rule
        self.best = float("inf")
        self.best_epoch = 0
        self.wait = 0
        self.best_weights: dict[str, torch.Tensor] | None = None

    def update(self, record: dict[str, Any], model: nn.Module) -> bool:
        """Take the epoch's record; True when training should stop."""
        if self.rule is None:
            return False
        value = record.get("val_loss", record["loss"])
        if value < self.best - self.rule.min_delta:
            self.best, self.best_epoch, self.wait = value, record["epoch"], 0
            if self.rule.restore_best:
                self.best_weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
            return False
        self.wait += 1
        return self.wait >= self.rule.patience

    def finish(self, model: nn.Module, history: History) -> None:
        if self.rule is None:
            return
        history.info["best_epoch"] = self.best_epoch
        history.info["stopped_epoch"] = history.records[-1]["epoch"] if history.records else 0
        key = "best_val_loss" if history.records and "val_loss" in history.records[-1] else "best_loss"
        history.info[key] = self.best
        if self.rule.restore_best and self.best_weights is not None:
            model.load_state_dict(self.best_weights)

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait, "weights": self.best_weights}

    def load_state_dict(self, state: dict[str, Any], device: torch.device) -> None:
        best, best_epoch, wait = state["best"], state["best_epoch"], state["wait"]
        if not (isinstance(best, (int, float)) and not isinstance(best, bool) and not math.isnan(best)):
            raise ValueError(f"stopper.best is {_short(best)}, not a number")  # (inf before a first epoch)
        for key, value in (("best_epoch", best_epoch), ("wait", wait)):
            if not (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
                raise ValueError(f"stopper.{key} is {_short(value)}, not a whole number >= 0")
        self.best, self.best_epoch, self.wait = best, best_epoch, wait
        weights = state.get("weights")
        self.best_weights = None if weights is None else {k: v.to(device) for k, v in weights.items()}


class TrainingState:
    """A run's resumable state.

    Attributes:
        model, optimizer, scheduler (or None), stopper, history: the objects training updates.
        seed, batch_size, rows: what the data order follows; a resume must match them.
        epoch: epochs finished. step: steps finished in the epoch under way (0 between epochs).
        partial: the epoch-so-far loss and metric sums of a run stopped mid-epoch, else None.
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any, stopper: Stopper,
                 history: History, *, seed: int, batch_size: int, rows: int) -> None:
        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler
        self.stopper, self.history = stopper, history
        self.seed, self.batch_size, self.rows = seed, batch_size, rows
        self.epoch, self.step = 0, 0
        self.partial: dict[str, Any] | None = None

    @property
    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def state_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch, "step": self.step, "seed": self.seed, "batch_size": self.batch_size,
            "rows": self.rows, "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
            "stopper": self.stopper.state_dict(), "history": self.history.to_dict(), "rng": ckpt.rng_state(),
            "partial": self.partial,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Put a checkpoint's state back (checked first with ``check_resumable``), RNGs included."""
        device = next(self.model.parameters()).device
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state.get("scheduler") is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.stopper.load_state_dict(state["stopper"], device)
        self.history.records[:] = History.from_dict(state["history"]).records
        self.history.info["resumed_from_epoch"] = state["epoch"]
        ckpt.set_rng_state(state["rng"])
        self.epoch, self.step = state["epoch"], state["step"]
        partial = state.get("partial")
        self.partial = None if partial is None else {
            k: (v if k == "metrics" else v.to(device)) for k, v in partial.items()}

    def save(self, directory: str | Path) -> Path:
        """Write ``state_dict()`` as the latest checkpoint in ``directory`` (call on rank 0 only)."""
        return ckpt.save_state(Path(directory), f"epoch-{self.epoch:06d}-step-{self.step:06d}", self.state_dict())


def check_resumable(state: dict[str, Any], *, source: Any, batch_size: int, rows: int, global_batch: int,
                    schedule: dict[str, Any] | None, lanes: int | None = None) -> None:
    """Refuse, before anything changes, a checkpoint written for other data, batches or schedule."""
    try:
        saved_batch, saved_rows = state["batch_size"], state["rows"]
        for key in ("epoch", "step", "seed", "model", "optimizer", "stopper", "history", "rng"):
            state[key]
    except KeyError as err:
        raise ModelFileError(f"{source}: checkpoint state lacks {err}; it is damaged or from another program") from None
    info = state["history"].get("info", {}) if isinstance(state["history"], dict) else {}
    info = info if isinstance(info, dict) else {}  # (null here was an AttributeError)
    saved_global = info.get("global_batch_size")
    if saved_global is not None and saved_global != global_batch:
        raise UsageError(
            f"the checkpoint was written with a global batch of {saved_global} rows ({info.get('world_size', 1)} "
            f"process(es)), this run has {global_batch}; resume with the same global batch "
            f"(--global-batch-size {saved_global})"
        )
    saved_lanes = info.get("lanes")
    if saved_lanes is not None and lanes is not None and saved_lanes != lanes:
        raise UsageError(
            f"the checkpoint streamed its file in {saved_lanes} lane(s), this run in {lanes}; the order of the "
            f"remaining batches would change: resume with lanes={saved_lanes} (NpyBatches/ParquetBatches(..., "
            f"lanes={saved_lanes}))"
        )
    if saved_batch != batch_size or saved_rows != rows:
        raise UsageError(
            f"the checkpoint was written with batch size {saved_batch} on {saved_rows} rows; "
            f"resume with the same data and batch size (got {batch_size} and {rows})"
        )
    if schedule is not None and state.get("scheduler") is not None:
        check_same_schedule(state["scheduler"], schedule)


def check_same_schedule(saved: dict[str, Any], fresh: dict[str, Any]) -> None:
    """A schedule built for another number of epochs would continue the old curve (or, for
    one_cycle, fail past its last step): refuse it before anything changes."""
    for key in ("T_max", "step_size", "total_steps"):
        if key in saved and key in fresh and saved[key] != fresh[key]:
            raise UsageError(
                f"the checkpoint's learning-rate schedule has {key}={saved[key]} but this run's has {fresh[key]}; "
                f"the schedule follows the total number of epochs, so resume with the same epochs (--epochs) as the "
                f"run that wrote the checkpoint (to extend a run, train without a schedule or with plateau)"
            )


# Switches that pick other kernels or devices: a saved value unlike the optimiser's own would
# fail at the first step (capturable=True asserts a CUDA device) or train another way.
_KERNEL_SWITCHES = ("capturable", "fused", "foreach", "differentiable")


def _check_group(k: int, saved: dict, fresh: dict) -> None:
    """A saved parameter group's settings of the optimiser's own kinds: a number for a number
    (finite), as many numbers for a tuple (Adam's betas), the same kernel switches."""
    for key, want in fresh.items():
        if key == "params" or key not in saved:
            continue  # a missing setting is the step's KeyError, caught as a damaged state
        got = saved[key]
        if key in _KERNEL_SWITCHES:
            if got != want:
                raise ValueError(f"param_groups[{k}].{key} is {got!r}; this optimiser runs with {want!r}")
        elif isinstance(want, bool) or want is None:
            if not (got is None or isinstance(got, bool)):
                raise ValueError(f"param_groups[{k}].{key} is {_short(got)}, not true/false")
        elif isinstance(want, (int, float)):
            if not _finite(got):
                raise ValueError(f"param_groups[{k}].{key} is {_short(got)}, not a finite number")
        elif isinstance(want, (tuple, list)):
            if not isinstance(got, (tuple, list)) or len(got) != len(want) or not all(map(_finite, got)):
                raise ValueError(f"param_groups[{k}].{key} is {_short(got)}, not {len(want)} finite numbers")


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def check_optimizer_state(optimizer: torch.optim.Optimizer, saved: Any) -> None:
    """A saved optimiser state that fits ``optimizer``: as many parameters, and each moment a
    floating-point tensor of its parameter's shape. Raises ValueError naming the first misfit.

    torch's ``load_state_dict`` does not look: the fused and foreach kernels then write past a
    moment of the wrong shape at the first step (heap corruption, the process aborts)."""
    if not isinstance(saved, dict) or not isinstance(saved.get("state"), dict) or \
            not isinstance(saved.get("param_groups"), list):
        raise ValueError("optimizer state must hold 'state' and 'param_groups'")
    groups = saved["param_groups"]
    if len(groups) != len(optimizer.param_groups) or not all(
            isinstance(g, dict) and isinstance(g.get("params"), list) for g in groups):
        raise ValueError(f"{len(groups)} parameter group(s) saved, the optimiser has {len(optimizer.param_groups)}")
    for k, (g, fresh) in enumerate(zip(groups, optimizer.param_groups)):
        _check_group(k, g, fresh)
    ids = [i for g in groups for i in g["params"]]
    params = [p for g in optimizer.param_groups for p in g["params"]]
    if len(ids) != len(params):
        raise ValueError(f"the saved state is for {len(ids)} parameters, the model has {len(params)}")
    by_id = {}
    for i, p in zip(ids, params):
        if not isinstance(i, (int, str)) or isinstance(i, bool):
            raise ValueError(f"parameter id {i!r} is not a number")
        by_id[i] = p
    for key, entry in saved["state"].items():
        p = by_id.get(key)
        if p is None or not isinstance(entry, dict):
            raise ValueError(f"state of parameter {key!r}, which no parameter group lists")
        for name, value in entry.items():
            if name == "step":
                if isinstance(value, torch.Tensor) and value.numel() != 1:
                    raise ValueError(f"step of parameter {key} holds {value.numel()} values, not one")
                continue
            if not isinstance(value, torch.Tensor) or not value.is_floating_point() or value.shape != p.shape:
                shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
                raise ValueError(f"{name} of parameter {key} is {shape}, the parameter {tuple(p.shape)}")
