"""``fit``'s keyword arguments, checked and sorted into groups before anything is touched.

``check_fit_arguments`` reads nothing but its arguments: no file, no device, no RNG, no
weight. What it returns is plain and final, so the rest of ``fit`` never checks an option
again:

* ``StepOptions``: what one optimisation step does (loss, optimiser, schedule, clipping,
  compute dtype, compile, the fast-path switch);
* ``LoopOptions``: how many steps and in which order (epochs, batch size, shuffle, seed,
  device, global batch under torchrun);
* ``WatchOptions``: what is measured and kept along the way (validation, metrics, early
  stopping, checkpoints, resume, progress).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from ..core.checks import check_fraction, check_non_negative_number, check_positive_int, check_positive_number
from ..core.choices import Loss, Optimizer, Precision, Scheduler, Task, parse
from ..core.options import option_default
from ..core.errors import UsageError

__all__ = ["EarlyStopping", "Checkpointing", "StepOptions", "LoopOptions", "WatchOptions", "check_fit_arguments",
           "COMPUTE_DTYPES"]

# precision, as the user names it -> the dtype a step computes in (bf16: autocast).
COMPUTE_DTYPES = {Precision.FP32: torch.float32, Precision.BF16: torch.bfloat16}


@dataclass(frozen=True)
class EarlyStopping:
    """Stop when the monitored loss (validation loss if there is validation data) stalls."""

    patience: int = option_default("early_stopping")  # epochs without improvement before stopping (16)
    min_delta: float = 0.0  # an improvement must beat the best loss by more than this
    restore_best: bool = True  # put the best epoch's weights back at the end


@dataclass(frozen=True)
class Checkpointing:
    """Write resumable training state to ``directory`` every ``every`` epochs."""

    directory: str | os.PathLike
    every: int = 1


@dataclass(frozen=True)
class StepOptions:
    loss: nn.Module  # the loss module the step calls
    loss_kind: Loss | None  # its name, None for a loss module of the user's
    optimizer: Optimizer
    lr: float
    weight_decay: float | None  # None: the optimizer's default (optim.make_optimizer)
    momentum: float
    clip_grad_norm: float | None
    scheduler: Scheduler | Callable[[torch.optim.Optimizer], Any] | None  # None: no schedule
    precision: Precision
    compile: bool
    fast: bool  # the written-out MLP step and the direct optimiser kernels, together

    @property
    def compute_dtype(self) -> torch.dtype:
        return COMPUTE_DTYPES[self.precision]


@dataclass(frozen=True)
class LoopOptions:
    epochs: int
    batch_size: int | None  # None: auto_batch_size(rows)
    shuffle: bool
    seed: int | None  # None: drawn at random (and recorded)
    device: str | torch.device
    global_batch_size: int | None
    time_budget: float | None = None  # seconds: no epoch starts once training has taken this long


@dataclass(frozen=True)
class WatchOptions:
    validation: tuple[Any, Any] | None
    task: Task | None  # the metrics computed each epoch
    target_std: tuple[float, ...] | None
    early_stopping: EarlyStopping | None
    checkpoint: Checkpointing | None
    resume: Path | None
    progress: Any


def check_fit_arguments(a: dict[str, Any]) -> tuple[StepOptions, LoopOptions, WatchOptions]:
    """``fit``'s keyword arguments (as a dict), checked; raises ``UsageError`` naming the first bad one."""
    from .optim import make_loss

    loss = a["loss"] if a["loss"] is not None else Loss.MSE
    if isinstance(loss, nn.Module):
        # a weighted cross-entropy (class_weight) still takes class indices
        loss_fn, loss_kind = loss, (Loss.CROSS_ENTROPY if isinstance(loss, nn.CrossEntropyLoss) else None)
    else:
        loss_kind = parse(Loss, loss, name="loss")
        loss_fn = make_loss(loss_kind)
    scheduler = a["scheduler"]
    if scheduler is not None and not (callable(scheduler) and not isinstance(scheduler, str)):
        scheduler = parse(Scheduler, scheduler, name="scheduler")
        scheduler = None if scheduler is Scheduler.NONE else scheduler
    clip = a["clip_grad_norm"]
    step = StepOptions(
        loss=loss_fn, loss_kind=loss_kind,
        optimizer=parse(Optimizer, a["optimizer"], name="optimizer"),
        lr=check_positive_number("learning rate", a["lr"], hint="; try 1e-3"),
        weight_decay=None if a["weight_decay"] is None else check_non_negative_number("weight decay", a["weight_decay"]),
        momentum=check_fraction("momentum", a["momentum"], hint="; 0.9 is common"),
        clip_grad_norm=None if clip is None else check_positive_number("clip_grad_norm", clip),
        scheduler=scheduler,
        precision=parse(Precision, a["precision"], name="precision"),
        compile=_flag("compile", a["compile"]),
        fast=_flag("fast", a["fast"]),
    )
    seed = a["seed"]
    if seed is not None:
        seed = _integer("seed", seed)
    gbs = a["global_batch_size"]
    loop = LoopOptions(
        epochs=check_positive_int("epochs", a["epochs"]),
        batch_size=None if a["batch_size"] is None else check_positive_int("batch_size", a["batch_size"]),
        shuffle=_flag("shuffle", a["shuffle"]),
        seed=seed,
        device=a["device"] if a["device"] is not None else "auto",
        global_batch_size=None if gbs is None else check_positive_int("global_batch_size", gbs),
        time_budget=None if a.get("time_budget") is None else check_positive_number(
            "time_budget", a["time_budget"], hint="; seconds, e.g. 60"),
    )
    watch = WatchOptions(
        validation=_validation(a["validation"]),
        task=None if a["metrics"] is None else parse(Task, a["metrics"], name="metrics task"),
        target_std=_target_std(a["target_std"]),
        early_stopping=_early_stopping(a["early_stopping"]),
        checkpoint=_checkpointing(a["checkpoint"]),
        resume=None if a["resume"] is None else Path(a["resume"]),
        progress=_progress(a["progress"]),
    )
    return step, loop, watch


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise UsageError(f"{name} must be True or False, got {value!r}")
    return value


def _integer(name: str, value: Any) -> int:
    import numbers

    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise UsageError(f"{name} must be an integer, got {value!r}")
    return int(value)


def _validation(value: Any) -> tuple[Any, Any] | None:
    if value is not None and not (isinstance(value, (tuple, list)) and len(value) == 2):
        raise UsageError("validation must be a pair (x_val, y_val) of inputs and targets")
    return None if value is None else (value[0], value[1])


def _target_std(value: Any) -> tuple[float, ...] | None:
    if value is None:
        return None
    try:
        return tuple(check_positive_number("target_std", v) for v in value)
    except TypeError:
        raise UsageError(f"target_std must be positive numbers, one per output, got {value!r}") from None


def _early_stopping(value: Any) -> EarlyStopping | None:
    if value is None or isinstance(value, EarlyStopping):
        rule = value
    else:
        try:
            patience = check_positive_int("early_stopping patience", value) if value != 0 else 0
        except UsageError:
            raise UsageError(f"early_stopping must be a patience in epochs (0 for none) or EarlyStopping(...), "
                             f"got {value!r}") from None
        rule = EarlyStopping(patience=patience) if patience else None
    if rule is not None:
        check_positive_int("early_stopping patience", rule.patience)
        check_non_negative_number("early_stopping min_delta", rule.min_delta)
        _flag("early_stopping restore_best", rule.restore_best)
    return rule


def _checkpointing(value: Any) -> Checkpointing | None:
    if value is None:
        return None
    if not isinstance(value, Checkpointing):
        raise UsageError(f"checkpoint must be Checkpointing(directory, every=N), got {value!r}")
    check_positive_int("checkpoint every", value.every)
    folder = Path(value.directory)
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"checkpoint directory {folder} is a file; choose a folder for checkpoints")
    return value


def _progress(value: Any) -> Any:
    needed = ("on_train_start", "on_step", "on_epoch_end")
    if value is not None and not all(callable(getattr(value, name, None)) for name in needed):
        raise UsageError(f"progress must have the methods {', '.join(needed)}, got {type(value).__name__}")
    return value
