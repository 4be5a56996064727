"""fit(): train any ``nn.Module`` on tensors, arrays, a ``Dataset`` or a ``DataLoader``.

``fit`` reads in three parts, each a screen:

1. check: every option (``fit_arguments``), the model, the data, ``init_weights`` and the
   checkpoint to resume are checked first, so that a bad value raises before the model's
   weights, its device or any random number generator change;
2. build: seed, move the model, copy ``init_weights``, make the optimiser, schedule and step,
   and gather what resuming needs into one ``TrainingState`` (``training_state``);
3. run: ``TrainingLoop(...).run()`` (``loop``), which returns when the epochs are done or
   early stopping ends them, and raises ``TrainingInterrupted`` or ``NonFiniteLoss``
   (``errors``) with the history so far when a signal or a non-finite loss stops it.

Defaults come from ``options.FitOptions``, the one place training defaults are declared.
(The module is not named ``train``: importing a submodule sets the package attribute of its
name, which would hide the ``torchann.train()`` function.)
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, replace
from typing import Any, Callable, Mapping, Sequence

import torch
from torch import nn

from . import checkpoint as ckpt
from . import distributed
from ..batching.batches import TensorBatches, global_batch_rows
from ..core.checks import key_mismatch
from ..core.choices import Precision, Scheduler
from ..data.tensors import as_training_tensors
from ..runtime.devices import bf16_step_times, resolve_device, resolve_precision, seed_everything
from ..runtime.measure import linear_shapes
from ..core.errors import ModelFileError, NonFiniteLoss, TrainingInterrupted, UsageError
from .arguments import Checkpointing, EarlyStopping, LoopOptions, StepOptions, WatchOptions, check_fit_arguments
from .history import History
from .loop import TrainingLoop
from .optim import make_optimizer, make_scheduler
from ..core.options import FitOptions, auto_batch_size
from .steps import make_train_step
from ..runtime.threads import check_threads, choose_threads, rows_per_step, step_flops, use_threads
from ..batching.sources import check_batch_norm_rows, check_training_data, on_device
from ..batching.streaming import StreamingBatches
from .state import Stopper, TrainingState, check_optimizer_state, check_resumable

__all__ = ["fit"]

_DEFAULT = FitOptions()


def fit(
    model: nn.Module,
    x: Any,
    y: Any = None,
    *,
    epochs: int = _DEFAULT.epochs,
    batch_size: int | None = _DEFAULT.batch_size,
    lr: float = _DEFAULT.lr,
    optimizer: str = _DEFAULT.optimizer,
    loss: str | nn.Module | None = _DEFAULT.loss,
    weight_decay: float | None = _DEFAULT.weight_decay,
    momentum: float = _DEFAULT.momentum,
    clip_grad_norm: float | None = _DEFAULT.clip_grad_norm,
    scheduler: str | Callable[[torch.optim.Optimizer], Any] | None = _DEFAULT.scheduler,
    validation: tuple[Any, Any] | None = None,
    metrics: str | None = None,
    target_std: Sequence[float] | None = None,
    early_stopping: EarlyStopping | int | None = _DEFAULT.early_stopping,
    shuffle: bool = True,
    seed: int | None = _DEFAULT.seed,
    device: str | torch.device = _DEFAULT.device,
    init_weights: Mapping[str, Any] | Sequence[Any] | None = None,
    precision: str = _DEFAULT.precision,
    threads: int | None = _DEFAULT.threads,
    compile: bool = False,
    fast: bool = True,
    checkpoint: Checkpointing | None = None,
    resume: str | os.PathLike | None = None,
    global_batch_size: int | None = None,
    progress: Any = None,
    time_budget: float | None = _DEFAULT.time_budget,
) -> History:
    """Train ``model`` in place and return its ``History``.

    Args:
        model: any ``nn.Module`` with parameters; moved to ``device`` once.
        x, y: tensors, numpy arrays or nested lists (rows x features), or ``x`` a
            ``Dataset`` / ``DataLoader`` yielding ``(x, y)`` pairs (used as given; ``y`` None),
            or ``x`` a streaming source (``torchann.NpyBatches``, ``ParquetBatches``) for
            files larger than memory (``batch_size``, ``shuffle`` and ``seed`` apply to it).
        batch_size: rows per step; None picks ``options.auto_batch_size(rows)`` (32 to 512).
            With BatchNorm in the model, a last batch of one row joins the batch before it.
        loss: ``mse`` (the default) | ``mae`` | ``cross_entropy`` (class indices) | ``bce``
            (0/1 targets, one logit per output), or a loss module.
        validation: ``(x_val, y_val)``, evaluated after every epoch.
        metrics: ``"regression"`` (mse, mae, r2) or ``"classification"`` (accuracy,
            log_loss), computed on training and validation data each epoch.
        target_std: per-output standard deviation of a standardised target, so that
            regression metrics are reported in the target's own units.
        early_stopping: a patience in epochs (0 or None: off) or ``EarlyStopping(...)``; it
            watches the validation loss when there is validation data, else the training loss,
            and puts the best epoch's weights back at the end.
        seed: fixes initial order, dropout and every RNG; the same seed and data give the
            same weights on CPU. ``None`` draws one and records it in ``history.info``.
        init_weights: a state dict, or tensors in ``model.parameters()`` order, copied into
            the model before training.
        precision: ``auto`` (bf16 where the hardware runs it natively, the step is large and a
            short timing of the step finds bf16 faster, else fp32; see
            ``devices.resolve_precision``), ``fp32`` or ``bf16`` (autocast of forward and loss).
            ``history.info["precision"]`` records the one used.
        threads: CPU threads during training; None chooses from the step's work, the free
            cores and, where more than one count is possible, a short timing of the step,
            unless OMP_NUM_THREADS or torch.set_num_threads set a count (``threads.py``).
            The previous count is restored after.
        compile: ``torch.compile`` the model first.
        fast: the written-out MLP backward and the direct optimiser kernels (``steps.py``);
            False takes the plain autograd step with ``optimizer.step()``, the same numbers
            more slowly: a reference when something looks wrong.
        checkpoint, resume: write resumable state every N epochs; continue from a
            checkpoint directory (bit-identical on CPU to a run that never stopped).
        global_batch_size: under ``torchrun``, the batch summed over all ranks
            (default ``batch_size * world_size``).
        progress: an object with ``on_train_start``, ``on_step``, ``on_epoch_end``.
        time_budget: seconds of training (epochs and their validation); once an epoch ends past
            it no other starts, and early stopping's best epoch is put back as after a stop
            (``history.info["stopped_by_time"]``). None: no limit.

    Returns:
        History with one record per epoch: ``epoch``, ``loss``, ``val_loss``, metrics,
        ``lr`` and ``seconds``; ``history.info`` holds device, seed, rows, batch_size,
        steps_per_epoch, world_size, global_batch_size, precision and torch (and
        best_epoch, stopped_early, resumed_from_epoch when they apply).

    Raises:
        UsageError, DataError, ModelFileError: a bad option, data or checkpoint, before
            anything changed. TrainingInterrupted: SIGINT, SIGTERM or SIGHUP stopped the run
            after a step. NonFiniteLoss: the loss became NaN or infinite.

    Example:
        >>> model = torchann.mlp(2, [8], 1)
        >>> history = torchann.fit(model, x, y, epochs=200, lr=1e-2, seed=0)
    """
    step, loop, watch = check_fit_arguments({
        "epochs": epochs, "batch_size": batch_size, "lr": lr, "optimizer": optimizer, "loss": loss,
        "weight_decay": weight_decay, "momentum": momentum, "clip_grad_norm": clip_grad_norm,
        "scheduler": scheduler, "validation": validation, "metrics": metrics, "target_std": target_std,
        "early_stopping": early_stopping, "shuffle": shuffle, "seed": seed, "device": device,
        "precision": precision, "compile": compile, "fast": fast, "checkpoint": checkpoint, "resume": resume,
        "global_batch_size": global_batch_size, "progress": progress, "time_budget": time_budget,
    })
    threads = check_threads(threads)
    run = _check_run(model, x, y, init_weights, step, loop, watch)
    # The step's work, and where it is in doubt a short timing of the step's products, decide
    # the precision and the thread count (devices.py, threads.py, measure.py).
    rows = rows_per_step(x, run.batch_size)
    work, shapes = step_flops(model, rows), linear_shapes(model)
    timing = (lambda: bf16_step_times(shapes, rows, run.device)) if shapes else None
    precision = resolve_precision(step.precision, run.device, work, timing=timing)
    if run.world.is_distributed:  # every rank trains in rank 0's choice
        precision = (Precision.FP32, Precision.BF16)[run.world.broadcast_int(int(precision is Precision.BF16),
                                                                             device=run.device)]
    step = replace(step, precision=precision)
    thread_choice = choose_threads(work, threads, run.device, shapes=shapes, rows=rows, dtype=step.compute_dtype,
                                   steps=loop.epochs * len(run.batches))
    state, training = _build(model, run, step, loop, watch)
    if thread_choice is not None:
        state.history.info["threads"] = thread_choice.threads
        if thread_choice.times:  # what the timing found, per count: milliseconds of the step's products
            state.history.info["thread_ms"] = {str(n): round(t * 1e3, 4) for n, t in thread_choice.times.items()}
    with use_threads(thread_choice):
        training.run()
    return state.history


@dataclass
class _CheckedRun:
    """What the checks found: everything ``_build`` needs; nothing of the model's has changed yet."""

    device: torch.device
    world: Any  # distributed.World
    saved: dict[str, Any] | None  # the checkpoint state to resume from
    seed: int
    rows: int
    batches: Any  # TensorBatches, LoaderBatches or a configured StreamingBatches
    validation: tuple[torch.Tensor, torch.Tensor] | None  # on the device
    init: list[tuple[str, bool, torch.Tensor]] | None  # checked init_weights
    batch_size: int
    global_batch: int


def _check_run(model: nn.Module, x: Any, y: Any, init_weights: Any, step: StepOptions, loop: LoopOptions,
               watch: WatchOptions) -> _CheckedRun:
    """Every check ``fit`` makes; reads files and data, changes nothing (data may be copied to the device)."""
    _check_model(model)
    dev = resolve_device(loop.device)
    world = distributed.current_world()
    saved = ckpt.load_state(watch.resume) if watch.resume is not None else None
    if saved is not None and "seed" in saved:
        seed = saved["seed"]  # the data order and every RNG continue from the checkpoint
    elif loop.seed is None:
        seed = world.broadcast_int(int.from_bytes(os.urandom(4), "little") >> 1, device=dev)
    else:
        seed = loop.seed
    data = check_training_data(model, x, y, step.loss_kind, world=world)
    val = None
    if watch.validation is not None:
        vx, vy = as_training_tensors(model, *watch.validation, step.loss_kind, what="validation data")
        val = on_device(model, vx, dev), on_device(model, vy, dev)
    init = None if init_weights is None else _checked_init_weights(model, init_weights)
    batch_size = data.loader_batch or loop.batch_size or auto_batch_size(data.rows)
    if data.loader_batch is None and not isinstance(data.source, StreamingBatches):
        check_batch_norm_rows(model, data.rows, batch_size, world_size=world.size)
    batches = data.batches(model, step.loss_kind, dev, batch_size=batch_size, shuffle=loop.shuffle, seed=seed,
                           world=world, global_batch_size=loop.global_batch_size)
    _check_world_batches(world, batches, data.rows)
    global_batch = getattr(batches, "global_batch", None) or global_batch_rows(batch_size, world.size)
    if saved is not None:
        check_resumable(saved, source=watch.resume, batch_size=batch_size, rows=data.rows, global_batch=global_batch,
                        schedule=_schedule_state(step, loop.epochs, len(batches)), lanes=getattr(batches, "lanes", None))
    return _CheckedRun(device=dev, world=world, saved=saved, seed=seed, rows=data.rows, batches=batches,
                       validation=val, init=init, batch_size=batch_size, global_batch=global_batch)


def _restore(state: TrainingState, saved: dict[str, Any], *, source: Any, steps: int) -> None:
    """Put a checkpoint's state back; one that does not fit (a damaged state.json: an optimiser
    state of the wrong shape, RNG states that are not ones) is a ``ModelFileError``, and the
    model's weights are left as they were."""
    before = {k: v.detach().clone() for k, v in state.model.state_dict().items()}
    try:
        _probe_optimizer(state.optimizer, saved["optimizer"])
        _check_partial(saved.get("partial"), steps)
        state.load_state_dict(saved)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, RuntimeError, OverflowError,
            AssertionError) as err:  # (torch asserts a few settings inside the step)
        state.model.load_state_dict(before)
        first = (str(err).splitlines() or [""])[0][:160]
        raise ModelFileError(f"{source}: the checkpoint's state cannot be put back ({type(err).__name__}: {first}); "
                             f"it is damaged or from another model: train again without --resume") from None


def _check_partial(partial: Any, steps: int) -> None:
    """The sums of an epoch stopped part-way: one loss and one row count per step (a KeyError or
    a shape error came from the loop before)."""
    if partial is None:
        return
    if not isinstance(partial, dict) or not isinstance(partial.get("metrics"), dict) or not all(
            isinstance(partial.get(k), torch.Tensor) and tuple(partial[k].shape) == (steps,) for k in ("losses", "rows")):
        raise ValueError(f"partial must hold 'losses' and 'rows' of {steps} values each and 'metrics'")
    if not all(isinstance(v, torch.Tensor) for v in partial["metrics"].values()):
        raise ValueError("partial.metrics must hold tensors")


def _probe_optimizer(opt: torch.optim.Optimizer, saved: Any) -> None:
    """One step of a copy of ``opt`` from the saved state, on copies of the parameters with zero
    gradients: torch's ``load_state_dict`` takes an optimiser state of missing keys or wrong
    shapes without a word, and the run failed at its first step (KeyError 'exp_avg', or an
    abort from heap corruption for a moment of the wrong shape)."""
    import copy

    check_optimizer_state(opt, saved)  # shapes first: a step over a moment of the wrong shape corrupts memory
    probe = copy.deepcopy(opt)  # its own copies of the parameters; the model's are not touched
    for group in probe.param_groups:
        for p in group["params"]:
            p.grad = torch.zeros_like(p)
    probe.load_state_dict(copy.deepcopy(saved))
    probe.step()


def _build(model: nn.Module, run: _CheckedRun, step: StepOptions, loop: LoopOptions,
           watch: WatchOptions) -> tuple[TrainingState, TrainingLoop]:
    """Seed, move the model, make optimiser, schedule, state and step: from here on things change."""
    dev, world = run.device, run.world
    seed_everything(run.seed)
    model.to(dev)
    step.loss.to(dev)  # a loss with weights (class_weight) computes beside the model
    if run.init is not None:
        _copy_init_weights(model, run.init)
    opt = make_optimizer(step.optimizer, model.parameters(), lr=step.lr, weight_decay=step.weight_decay,
                         momentum=step.momentum, device=dev)
    sched, sched_kind = make_scheduler(step.scheduler, opt, epochs=loop.epochs, steps_per_epoch=len(run.batches),
                                       lr=step.lr)
    history = History(info={
        "device": str(dev), "seed": run.seed, "rows": run.rows, "batch_size": run.batch_size,
        "steps_per_epoch": len(run.batches), "world_size": world.size, "global_batch_size": run.global_batch,
        "precision": step.precision.value, "torch": str(torch.__version__),  # a plain str, not TorchVersion
        **({"lanes": lanes} if (lanes := getattr(run.batches, "lanes", None)) is not None else {}),  # streamed
    })
    if getattr(run.batches, "merged_last", False):  # said once, here: BatchNorm cannot train on one row
        last = run.batches.bounds[-1]
        note = (f"the last batch would hold 1 row, which BatchNorm cannot train on: it joins the batch before it "
                f"(each epoch ends with a step of {last[1] - last[0]} rows)")
        history.info["last_batch"] = note
        if world.rank == 0:
            warnings.warn(note, stacklevel=3)
    state = TrainingState(model, opt, sched, Stopper(watch.early_stopping), history, seed=run.seed,
                          batch_size=run.batch_size, rows=run.rows)
    if run.saved is not None:
        _restore(state, run.saved, source=watch.resume, steps=len(run.batches))
    net = world.wrap(model, dev)
    if step.compile:
        net = torch.compile(net)
    train_step = make_train_step(net, model, step.loss, opt, compute_dtype=step.compute_dtype,
                                 clip_grad_norm=step.clip_grad_norm, fast=step.fast)
    std = None if watch.target_std is None else torch.as_tensor(watch.target_std, dtype=torch.float64)
    training = TrainingLoop(
        state, net=net, train_step=train_step, loss_fn=step.loss, batches=run.batches, epochs=loop.epochs,
        scheduler_kind=sched_kind, task=watch.task, target_std=std, validation=run.validation,
        checkpoint=watch.checkpoint, world=world, device=dev, compute_dtype=step.compute_dtype,
        progress=watch.progress, time_budget=loop.time_budget,
    )
    return state, training


# -- checks ---------------------------------------------------------------------------------


def _check_model(model: Any) -> None:
    if not isinstance(model, nn.Module):
        raise UsageError(f"model must be a torch.nn.Module, got {type(model).__name__}; build one with torchann.mlp(...)")
    params = list(model.named_parameters())
    if not params:
        raise UsageError(f"the {type(model).__name__} has no parameters to train; give fit a model with layers, "
                         f"e.g. torchann.mlp(2, [8], 1)")
    for name, tensor in [*params, *model.named_buffers()]:
        if tensor.is_meta:
            raise UsageError(f"model tensor {name!r} is on the meta device (a shape without values); "
                             f"materialise it first with model.to_empty(device=...) and initialise it")
        if tensor.is_complex():
            raise UsageError(f"model tensor {name!r} is {tensor.dtype}; fit trains real-valued models")


def _checked_init_weights(model: nn.Module, weights: Any) -> list[tuple[str, bool, torch.Tensor]]:
    """``(name, is_state_dict_key, value)`` for each tensor to copy, every key and shape checked."""
    if isinstance(weights, Mapping):
        targets = dict(model.state_dict())
        mismatch = key_mismatch(targets, weights)
        if mismatch:
            raise UsageError(f"init_weights keys do not match the model: {mismatch}")
        pairs = [(k, True, weights[k]) for k in targets]
    else:
        targets = dict(model.named_parameters())
        weights = list(weights)
        if len(weights) != len(targets):
            raise UsageError(f"init_weights has {len(weights)} tensors but the model has {len(targets)} parameters")
        pairs = [(k, False, w) for k, w in zip(targets, weights)]
    checked = []
    for name, in_state, value in pairs:
        value = torch.as_tensor(value)
        expected = tuple(targets[name].shape)
        if tuple(value.shape) != expected:
            raise UsageError(f"init_weights[{name!r}] has shape {tuple(value.shape)}, the model expects {expected}")
        if value.is_complex():
            raise UsageError(f"init_weights[{name!r}] is {value.dtype}; give real-valued tensors")
        checked.append((name, in_state, value))
    return checked


def _copy_init_weights(model: nn.Module, checked: list[tuple[str, bool, torch.Tensor]]) -> None:
    state, params = model.state_dict(), dict(model.named_parameters())  # looked up after the move
    with torch.no_grad():
        for name, in_state, value in checked:
            (state if in_state else params)[name].copy_(value)


def _schedule_state(step: StepOptions, epochs: int, steps_per_epoch: int) -> dict[str, Any] | None:
    """The state of the schedule this run will build, made on a stand-in optimiser."""
    if not isinstance(step.scheduler, Scheduler):
        return None  # no schedule, or a user's callable
    stand_in = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=step.lr)
    sched, _ = make_scheduler(step.scheduler, stand_in, epochs=epochs, steps_per_epoch=steps_per_epoch, lr=step.lr)
    return sched.state_dict()


def _check_world_batches(world: Any, batches: Any, n_rows: int) -> None:
    if not world.is_distributed or not isinstance(batches, TensorBatches):
        return
    # Every rank needs rows in each epoch, or its metric sums would skip the all-reduce.
    if batches.global_batch < world.size:
        raise UsageError(
            f"the global batch of {batches.global_batch} rows is smaller than the {world.size} processes; "
            f"use a global batch of at least {world.size}"
        )
    if n_rows < world.size:
        raise UsageError(f"{n_rows} training rows cannot be shared by {world.size} processes; use fewer processes")
