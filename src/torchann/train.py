"""fit(): train any ``nn.Module`` on tensors, arrays, a ``Dataset`` or a ``DataLoader``.

The loop keeps the whole step on the device: data is moved there once, batches are slices
(see ``batches.py``), each step's loss is written into a device tensor, and the host reads
the losses once per epoch. That one read is also where non-finite losses are caught.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import torch
from torch import nn

from . import checkpoint as ckpt
from . import distributed
from .batches import Batch, TensorBatches
from .choices import Loss, Precision, Scheduler, Task, parse
from .data_tensors import as_training_tensors
from .devices import resolve_device, seed_everything
from .errors import ModelFileError, TrainingError, UsageError
from .history import History
from .run_state import Stopper, check_resume_global_batch, restore, save_checkpoint
from .metrics import MetricSums
from .optim import SCHEDULERS_PER_STEP, make_loss, make_optimizer, make_scheduler
from .steps import StepLosses, make_train_step
from .streaming import StreamingBatches

__all__ = ["fit", "EarlyStopping", "Checkpointing", "TrainingInterrupted"]


@dataclass(frozen=True)
class EarlyStopping:
    """Stop when the monitored loss (validation loss if there is validation data) stalls."""

    patience: int = 10  # epochs without improvement before stopping
    min_delta: float = 0.0  # an improvement must beat the best loss by more than this
    restore_best: bool = True  # put the best epoch's weights back at the end


@dataclass(frozen=True)
class Checkpointing:
    """Write resumable training state to ``directory`` every ``every`` epochs."""

    directory: str | os.PathLike
    every: int = 1


class TrainingInterrupted(TrainingError):
    """Training stopped on Ctrl-C after a finished step; ``history`` holds what ran."""

    exit_code = 130  # the shell's code for a run ended by SIGINT


class _Progress:
    """What ``fit`` reports while it runs; the CLI renders it, the core never prints."""

    def on_train_start(self, *, epochs: int, steps_per_epoch: int, start_epoch: int) -> None: ...
    def on_step(self, *, epoch: int, step: int) -> None: ...
    def on_epoch_end(self, record: dict[str, Any]) -> None: ...


def fit(
    model: nn.Module,
    x: Any,
    y: Any = None,
    *,
    epochs: int = 10,
    batch_size: int = 32,
    lr: float = 1e-3,
    optimizer: str = "adam",
    loss: str | nn.Module = "mse",
    weight_decay: float = 0.0,
    momentum: float = 0.0,
    clip_grad_norm: float | None = None,
    scheduler: str | Callable[[torch.optim.Optimizer], Any] | None = None,
    validation: tuple[Any, Any] | None = None,
    metrics: str | Task | None = None,
    target_std: Sequence[float] | None = None,
    early_stopping: EarlyStopping | int | None = None,
    shuffle: bool = True,
    seed: int | None = None,
    device: str | torch.device = "auto",
    init_weights: Mapping[str, Any] | Sequence[Any] | None = None,
    precision: str = "fp32",
    compile: bool = False,
    checkpoint: Checkpointing | None = None,
    resume: str | os.PathLike | None = None,
    global_batch_size: int | None = None,
    progress: Any = None,
) -> History:
    """Train ``model`` in place and return its ``History``.

    Args:
        model: any ``nn.Module``; moved to ``device`` once.
        x, y: tensors, numpy arrays or nested lists (rows x features), or ``x`` a
            ``Dataset`` / ``DataLoader`` yielding ``(x, y)`` pairs (used as given; ``y`` None),
            or ``x`` a streaming source (``torchann.NpyBatches``, ``ParquetBatches``) for
            files larger than memory (``batch_size``, ``shuffle`` and ``seed`` apply to it).
        loss: ``mse`` | ``mae`` | ``cross_entropy`` (class indices) | ``bce`` (0/1 targets),
            or a loss module.
        validation: ``(x_val, y_val)``, evaluated after every epoch.
        metrics: ``"regression"`` (mse, mae, r2) or ``"classification"`` (accuracy,
            log_loss), computed on training and validation data each epoch.
        target_std: per-output standard deviation of a standardised target, so that
            regression metrics are reported in the target's own units.
        early_stopping: ``EarlyStopping(...)`` or a patience in epochs.
        seed: fixes initial order, dropout and every RNG; the same seed and data give the
            same weights on CPU. ``None`` draws one and records it in ``history.info``.
        init_weights: a state dict, or tensors in ``model.parameters()`` order, copied into
            the model before training.
        precision: ``fp32`` or ``bf16`` (autocast of forward and loss).
        compile: ``torch.compile`` the model first.
        checkpoint, resume: write resumable state every N epochs; continue from a
            checkpoint directory (bit-identical on CPU to a run that never stopped).
        global_batch_size: under ``torchrun``, the batch summed over all ranks
            (default ``batch_size * world_size``).
        progress: an object with ``on_train_start``, ``on_step``, ``on_epoch_end``.

    Returns:
        History with one record per epoch: ``epoch``, ``loss``, ``val_loss``, metrics,
        ``lr`` and ``seconds``.

    Example:
        >>> model = torchann.mlp(2, [8], 1)
        >>> history = torchann.fit(model, x, y, epochs=200, lr=1e-2, seed=0)
    """
    _check_positive_int("epochs", epochs)
    _check_positive_int("batch_size", batch_size)
    if not isinstance(model, nn.Module):
        raise UsageError(f"model must be a torch.nn.Module, got {type(model).__name__}; build one with torchann.mlp(...)")
    precision = parse(Precision, precision, name="precision")
    task = None if metrics is None else parse(Task, metrics, name="metrics task")
    if isinstance(early_stopping, int) and not isinstance(early_stopping, bool):
        _check_positive_int("early_stopping patience", early_stopping)
        early_stopping = EarlyStopping(patience=early_stopping)
    elif early_stopping is not None and not isinstance(early_stopping, EarlyStopping):
        raise UsageError(f"early_stopping must be a patience in epochs or EarlyStopping(...), got {early_stopping!r}")
    if clip_grad_norm is not None and not (_is_number(clip_grad_norm) and clip_grad_norm > 0):
        raise UsageError(f"clip_grad_norm must be a positive number, got {clip_grad_norm!r}")
    if validation is not None and not (isinstance(validation, (tuple, list)) and len(validation) == 2):
        raise UsageError("validation must be a pair (x_val, y_val) of inputs and targets")
    if checkpoint is not None and Path(checkpoint.directory).exists() and not Path(checkpoint.directory).is_dir():
        raise UsageError(f"checkpoint directory {checkpoint.directory} is a file; choose a folder for checkpoints")
    if target_std is not None:
        try:
            target_std = [float(v) for v in target_std]
        except (TypeError, ValueError):
            raise UsageError(f"target_std must be numbers, one per output, got {target_std!r}") from None

    dev = resolve_device(device)
    world = distributed.current_world()
    state = ckpt.load_state(resume) if resume is not None else None
    if state is not None:
        seed = state["seed"]  # the data order and every RNG continue from the checkpoint
    elif seed is None:
        seed = world.broadcast_int(int.from_bytes(os.urandom(4), "little") >> 1, device=dev)
    seed_everything(seed)

    model.to(dev)
    if init_weights is not None:
        _load_init_weights(model, init_weights)
    loss_fn = make_loss(loss) if not isinstance(loss, nn.Module) else loss.to(dev)
    if isinstance(loss, nn.Module):  # a weighted cross-entropy still takes class indices
        loss_kind = Loss.CROSS_ENTROPY if isinstance(loss, nn.CrossEntropyLoss) else None
    else:
        loss_kind = parse(Loss, loss, name="loss")

    batches, n_rows = _make_batches(
        model, x, y, loss_kind, dev, batch_size=batch_size, shuffle=shuffle, seed=seed,
        world=world, global_batch_size=global_batch_size,
    )
    _check_world_batches(world, batches, n_rows, global_batch_size)
    val = None
    if validation is not None:
        vx, vy = as_training_tensors(model, validation[0], validation[1], loss_kind, what="validation data")
        val = vx.to(dev), vy.to(dev)

    opt = make_optimizer(optimizer, model.parameters(), lr=lr, weight_decay=weight_decay, momentum=momentum, device=dev)
    sched, sched_kind = make_scheduler(scheduler, opt, epochs=epochs, steps_per_epoch=len(batches), lr=lr)
    net = world.wrap(model, dev)
    if compile:
        net = torch.compile(net)
    std = None if target_std is None else torch.as_tensor(target_std, dtype=torch.float64)

    history = History(info={
        "device": str(dev), "seed": seed, "rows": n_rows, "batch_size": batch_size,
        "steps_per_epoch": len(batches), "world_size": world.size,
        "global_batch_size": getattr(batches, "global_batch", batch_size * world.size), "precision": precision.value,
        "torch": str(torch.__version__),  # a plain str, not TorchVersion
    })
    stopper = Stopper(early_stopping)
    start_epoch, start_step, partial = 0, 0, None
    if state is not None:
        check_resume_global_batch(state, history)
        try:
            start_epoch, start_step, partial = restore(state, model, opt, sched, history, stopper, batch_size, n_rows)
        except KeyError as err:
            raise ModelFileError(f"{resume}: checkpoint state lacks {err}; it is damaged or from another program") from None

    report = (progress if world.is_main else None) or _Progress()  # only rank 0 reports
    autocast = (
        torch.autocast(dev.type, dtype=torch.bfloat16) if precision is Precision.BF16 else contextlib.nullcontext()
    )
    train_step = make_train_step(net, model, loss_fn, opt, autocast=autocast, bf16=precision is Precision.BF16,
                                 clip_grad_norm=clip_grad_norm)

    # Under torchrun, Ctrl-C reaches every rank at a different step: let torchrun stop the job
    # and resume from the last epoch checkpoint instead.
    with _InterruptFlag(active=not world.is_distributed) as interrupt:
        report.on_train_start(epochs=epochs, steps_per_epoch=len(batches), start_epoch=start_epoch)
        for epoch in range(start_epoch, epochs):
            started = time.perf_counter()
            net.train()
            sums = MetricSums(task, device=dev, target_std=std)
            step_losses = torch.zeros(len(batches), device=dev)
            step_rows = torch.zeros(len(batches), device=dev)
            first = start_step if epoch == start_epoch else 0
            if partial is not None and epoch == start_epoch and world.is_main:  # rank 0 holds the sums
                step_losses.copy_(partial["losses"])
                step_rows.copy_(partial["rows"])
                sums.load_state(partial["metrics"])
            step = first
            log = StepLosses(step_losses, step_rows, first)  # filled in blocks: no per-step kernel
            for step, batch in enumerate(batches.epoch(epoch, start_step=first), start=first):
                batch_loss, out = train_step(batch.x, batch.y, batch.loss_scale)
                if sched is not None and sched_kind in SCHEDULERS_PER_STEP:
                    sched.step()
                log.add(batch_loss, batch.x.shape[0])
                if task is not None:
                    sums.update(out, batch.y)
                if interrupt.requested:
                    log.flush()
                    _on_interrupt(history, checkpoint, world, model, opt, sched, stopper, seed, batch_size, n_rows,
                                  epoch, step + 1, step_losses, step_rows, sums)
                report.on_step(epoch=epoch, step=step + 1)

            # The epoch's one host sync: the losses and the metric sums.
            log.flush()
            totals = world.all_reduce_sum(torch.stack([(step_losses * step_rows).sum(), step_rows.sum()]))
            epoch_loss = float(totals[0] / totals[1])
            if not torch.isfinite(totals).all():  # the same on every rank, so all raise together
                bad_steps = world.all_reduce_sum((~torch.isfinite(step_losses)).float()).nonzero()
                bad = int(bad_steps[0]) if bad_steps.numel() else len(batches) - 1
                value = float(step_losses[bad]) if not torch.isfinite(step_losses[bad]) else epoch_loss
                raise _non_finite(history, epoch, bad, value, opt.param_groups[0]["lr"], checkpoint)
            record: dict[str, Any] = {"epoch": epoch + 1, "loss": epoch_loss}
            record.update(_reduce_metrics(sums, world))
            if val is not None:
                world.sync_buffers(model)
                val_loss, val_metrics = _evaluate(model if world.is_distributed else net, loss_fn, val, task, std,
                                                  autocast, world)
                record["val_loss"] = val_loss
                record.update({f"val_{k}": v for k, v in val_metrics.items()})
            record["lr"] = opt.param_groups[0]["lr"]
            record["seconds"] = time.perf_counter() - started
            history.append(record)
            if sched is not None and sched_kind not in SCHEDULERS_PER_STEP:
                if sched_kind is Scheduler.PLATEAU:
                    sched.step(record.get("val_loss", epoch_loss))
                else:
                    sched.step()
            stop = world.agree(stopper.update(record, model), device=dev)  # rank 0 decides for all
            if checkpoint is not None and ((epoch + 1) % checkpoint.every == 0 or stop or epoch + 1 == epochs):
                save_checkpoint(checkpoint, world, model, opt, sched, stopper, history, seed, batch_size, n_rows,
                                 epoch + 1, 0, None)
            report.on_epoch_end(record)
            if stop:
                history.info["stopped_early"] = True
                break

    stopper.finish(model, history)
    return history


# -- pieces of the loop ---------------------------------------------------------------------


class _InterruptFlag:
    """While active, Ctrl-C sets ``requested`` instead of raising mid-step (main thread only)."""

    def __init__(self, active: bool = True) -> None:
        self.active = active
        self.requested = False
        self._previous: Any = None

    def __enter__(self) -> "_InterruptFlag":
        if self.active and threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:  # a second Ctrl-C: stop at once
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc: Any) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UsageError(f"{name} must be a positive integer, got {value!r}")


def _load_init_weights(model: nn.Module, weights: Mapping[str, Any] | Sequence[Any]) -> None:
    if isinstance(weights, Mapping):
        named = dict(model.state_dict())
        missing = sorted(set(named) - set(weights))
        unexpected = sorted(set(weights) - set(named))
        if missing or unexpected:
            raise UsageError(f"init_weights keys do not match the model: missing {missing}, unexpected {unexpected}")
        pairs = [(k, named[k], weights[k]) for k in named]
    else:
        named_params = list(model.named_parameters())
        weights = list(weights)
        if len(weights) != len(named_params):
            raise UsageError(f"init_weights has {len(weights)} tensors but the model has {len(named_params)} parameters")
        pairs = [(k, p, w) for (k, p), w in zip(named_params, weights)]
    with torch.no_grad():
        for name, target, value in pairs:
            value = torch.as_tensor(value)
            if tuple(value.shape) != tuple(target.shape):
                raise UsageError(
                    f"init_weights[{name!r}] has shape {tuple(value.shape)}, the model expects {tuple(target.shape)}"
                )
            target.copy_(value)


class _LoaderBatches:
    """A user's ``DataLoader`` behind the same interface as ``TensorBatches``."""

    def __init__(self, loader: Any, device: torch.device):
        self.loader, self.device = loader, device

    def __len__(self) -> int:
        return len(self.loader)

    def epoch(self, epoch: int, *, start_step: int = 0) -> Iterator[Batch]:
        sampler = getattr(self.loader, "sampler", None)
        if hasattr(sampler, "set_epoch"):  # a DistributedSampler: a new shuffled shard per epoch
            sampler.set_epoch(epoch)
        for i, item in enumerate(self.loader):
            if i < start_step:
                continue
            if not (isinstance(item, (tuple, list)) and len(item) == 2):
                raise UsageError("a DataLoader given to fit must yield (x, y) pairs")
            xb, yb = item
            yield Batch(xb.to(self.device, non_blocking=True), yb.to(self.device, non_blocking=True))


def _make_batches(model, x, y, loss_kind, dev, *, batch_size, shuffle, seed, world, global_batch_size):
    from torch.utils.data import DataLoader, Dataset

    if isinstance(x, DataLoader):
        return _LoaderBatches(x, dev), len(x.dataset)  # type: ignore[arg-type]
    if isinstance(x, StreamingBatches):  # larger than memory: read in chunks (streaming.py)
        return x.for_fit(model, loss_kind, batch_size=batch_size, shuffle=shuffle, seed=seed, device=dev,
                         world=world), x.rows
    if isinstance(x, Dataset):
        if world.is_distributed:
            from torch.utils.data.distributed import DistributedSampler

            # Pads each rank's share to the same length, so every rank takes the same steps.
            sampler = DistributedSampler(x, num_replicas=world.size, rank=world.rank, shuffle=shuffle, seed=seed)
            loader = DataLoader(x, batch_size=batch_size, sampler=sampler)
        else:
            gen = torch.Generator().manual_seed(seed)
            loader = DataLoader(x, batch_size=batch_size, shuffle=shuffle, generator=gen)
        return _LoaderBatches(loader, dev), len(x)  # type: ignore[arg-type]
    xt, yt = as_training_tensors(model, x, y, loss_kind, what="training data")
    batches = TensorBatches(
        xt.to(dev), yt.to(dev), batch_size=batch_size, shuffle=shuffle, seed=seed,
        rank=world.rank, world_size=world.size, global_batch_size=global_batch_size,
    )
    return batches, xt.shape[0]


@torch.no_grad()
def _evaluate(net, loss_fn, data, task, std, autocast, world=None, chunk: int = 8192) -> tuple[float, dict[str, float]]:
    """Loss and metrics over ``data`` in eval mode; the train/eval mode is restored after.

    Under torchrun each rank evaluates its shard and the sums are all-reduced, so every rank
    gets the same numbers (and takes the same early-stopping decision).
    """
    was_training = net.training
    net.eval()
    x, y = data
    rows = x.shape[0]
    sharded = world is not None and world.is_distributed and rows >= world.size
    if sharded:
        x, y = world.shard(x), world.shard(y)
    sums = MetricSums(task, device=x.device, target_std=std)
    total = torch.zeros((), dtype=torch.float64, device=x.device)
    try:
        for start in range(0, x.shape[0], chunk):
            xb, yb = x[start : start + chunk], y[start : start + chunk]
            with autocast:
                out = net(xb)
                total += loss_fn(out, yb).double() * xb.shape[0]
            sums.update(out, yb)
    finally:
        net.train(was_training)
    if sharded:
        return float(world.all_reduce_sum(total)) / rows, _reduce_metrics(sums, world)
    return float(total) / max(1, rows), sums.compute()


def _check_world_batches(world, batches, n_rows, global_batch_size) -> None:
    if global_batch_size is not None:
        _check_positive_int("global_batch_size", global_batch_size)
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


def _reduce_metrics(sums: MetricSums, world: "distributed.World") -> dict[str, float]:
    if not sums.sums:
        return {}
    if world.size == 1:
        return sums.compute()
    keys = sorted(sums.sums)
    flat = torch.cat([sums.sums[k].reshape(-1) for k in keys])
    flat = world.all_reduce_sum(flat)
    out, offset = {}, 0
    for k in keys:
        n = sums.sums[k].numel()
        out[k] = flat[offset : offset + n].tolist() if sums.sums[k].dim() else float(flat[offset])
        offset += n
    return sums.compute(out)


def _non_finite(history, epoch, step, value, lr, checkpoint) -> TrainingError:
    kept = checkpoint is not None and ckpt.latest_checkpoint(checkpoint.directory) is not None
    where = f"; the last good checkpoint is in {checkpoint.directory}" if kept else ""
    err = TrainingError(
        f"loss became {value} at epoch {epoch + 1}, step {step + 1}; lower the learning rate "
        f"(now {lr:g}), scale the inputs, or clip gradients{where}"
    )
    err.history = history  # type: ignore[attr-defined]
    return err


def _on_interrupt(history, checkpoint, world, model, opt, sched, stopper, seed, batch_size, n_rows, epoch, step,
                  step_losses, step_rows, sums) -> None:
    where = ""
    if checkpoint is not None:
        partial = {"losses": step_losses, "rows": step_rows, "metrics": sums.state()}
        save_checkpoint(checkpoint, world, model, opt, sched, stopper, history, seed, batch_size, n_rows, epoch,
                         step, partial)
        where = f"; checkpoint written to {checkpoint.directory}, continue with fit(..., resume=that folder)"
    err = TrainingInterrupted(f"interrupted at epoch {epoch + 1}, step {step}{where}")
    err.history = history  # type: ignore[attr-defined]
    raise err


