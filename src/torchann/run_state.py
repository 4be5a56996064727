"""What a resumable training run carries between epochs: early-stopping state, the
checkpointed state of model, optimiser, schedule and RNGs, and how it is put back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import checkpoint as ckpt
from .errors import UsageError
from .history import History

__all__ = ["Stopper", "run_state", "save_checkpoint", "restore", "check_resume_global_batch", "check_same_schedule"]


class Stopper:
    """Early-stopping state: best loss, its epoch and weights, epochs without improvement."""

    def __init__(self, rule: Any):  # train.EarlyStopping or None
        self.rule = rule
        self.best = float("inf")
        self.best_epoch = 0
        self.wait = 0
        self.best_weights: dict[str, torch.Tensor] | None = None

    def update(self, record: dict[str, Any], model: nn.Module) -> bool:
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
        history.info["best_" + ("val_loss" if history.records and "val_loss" in history.records[-1] else "loss")] = (
            self.best)
        if self.rule.restore_best and self.best_weights is not None:
            model.load_state_dict(self.best_weights)

    def state(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait, "weights": self.best_weights}

    def load(self, state: dict[str, Any], device: torch.device) -> None:
        self.best, self.best_epoch, self.wait = state["best"], state["best_epoch"], state["wait"]
        weights = state.get("weights")
        self.best_weights = None if weights is None else {k: v.to(device) for k, v in weights.items()}


def check_resume_global_batch(state, history) -> None:
    saved = state.get("history", {}).get("info", {}).get("global_batch_size")
    now = history.info["global_batch_size"]
    if saved is not None and saved != now:
        world = state["history"]["info"].get("world_size", 1)
        raise UsageError(
            f"the checkpoint was written with a global batch of {saved} rows ({world} process(es)), this run has "
            f"{now}; resume with the same global batch (--global-batch-size {saved})"
        )


def run_state(model, opt, sched, stopper, history, seed, batch_size, n_rows, epoch, step, partial) -> dict[str, Any]:
    return {
        "epoch": epoch, "step": step, "seed": seed, "batch_size": batch_size, "rows": n_rows,
        "model": model.state_dict(), "optimizer": opt.state_dict(),
        "scheduler": None if sched is None else sched.state_dict(),
        "stopper": stopper.state(), "history": history.to_dict(), "rng": ckpt.rng_state(),
        "partial": partial,
    }


def save_checkpoint(checkpoint, world, model, opt, sched, stopper, history, seed, batch_size, n_rows, epoch, step,
                     partial) -> None:
    if world.rank != 0:
        return
    state = run_state(model, opt, sched, stopper, history, seed, batch_size, n_rows, epoch, step, partial)
    ckpt.save_state(Path(checkpoint.directory), f"epoch-{epoch:06d}-step-{step:06d}", state)


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


def restore(state, model, opt, sched, history, stopper, batch_size, n_rows):
    if state["batch_size"] != batch_size or state["rows"] != n_rows:
        raise UsageError(
            f"the checkpoint was written with batch size {state['batch_size']} on {state['rows']} rows; "
            f"resume with the same data and batch size (got {batch_size} and {n_rows})"
        )
    if sched is not None and state.get("scheduler") is not None:
        check_same_schedule(state["scheduler"], sched.state_dict())
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    if sched is not None and state.get("scheduler") is not None:
        sched.load_state_dict(state["scheduler"])
    device = next(model.parameters()).device
    stopper.load(state["stopper"], device)
    saved = History.from_dict(state["history"])
    history.records[:] = saved.records
    history.info["resumed_from_epoch"] = state["epoch"]
    ckpt.set_rng_state(state["rng"])
    partial = state.get("partial")
    if partial is not None:
        partial = {k: (v if k == "metrics" else v.to(device)) for k, v in partial.items()}
    return state["epoch"], state["step"], partial
