"""The epoch loop: ``TrainingLoop.run`` -> ``run_epoch`` -> ``train_step``.

Everything stays on the device inside an epoch: each step's loss goes into a device tensor
(``StepLosses``), metric sums accumulate there (``MetricSums``), and the host reads them once,
at the end of the epoch. That one read is also where a non-finite loss is caught and, under
torchrun, where the ranks agree to stop on a signal.
"""

from __future__ import annotations

import signal
import time
from typing import Any

import torch
from torch import nn

from ..core.choices import Scheduler, Task
from ..core.errors import NonFiniteLoss, TrainingInterrupted
from ..runtime.interrupts import StopSignals
from .metrics import MetricSums
from .optim import SCHEDULERS_PER_STEP
from .steps import StepLosses, autocast
from .state import TrainingState

__all__ = ["TrainingLoop", "evaluate", "reduce_metrics"]


class SilentProgress:
    """What ``fit`` reports while it runs; the CLI renders it, the core never prints."""

    def on_train_start(self, *, epochs: int, steps_per_epoch: int, start_epoch: int) -> None: ...
    def on_step(self, *, epoch: int, step: int) -> None: ...
    def on_epoch_end(self, record: dict[str, Any]) -> None: ...


class TrainingLoop:
    """Runs ``state`` for ``epochs`` epochs of ``batches`` with ``train_step``.

    ``net`` is the module the step calls (``state.model``, or it wrapped by DDP or
    ``torch.compile``); ``validation`` is ``(x, y)`` on the device or None; ``checkpoint``
    a ``Checkpointing`` or None; ``world`` the ``distributed.World``.
    """

    clock = staticmethod(time.perf_counter)  # what the time budget is read from

    def __init__(self, state: TrainingState, *, net: nn.Module, train_step: Any, loss_fn: Any, batches: Any,
                 epochs: int, scheduler_kind: Any, task: Task | None, target_std: torch.Tensor | None,
                 validation: tuple[torch.Tensor, torch.Tensor] | None, checkpoint: Any, world: Any,
                 device: torch.device, compute_dtype: torch.dtype, progress: Any,
                 time_budget: float | None = None) -> None:
        self.state, self.net, self.train_step, self.loss_fn, self.batches = state, net, train_step, loss_fn, batches
        self.epochs, self.task, self.target_std, self.validation = epochs, task, target_std, validation
        self.checkpoint, self.world, self.device = checkpoint, world, device
        self.autocast = autocast(device, compute_dtype)
        self.per_step_schedule = state.scheduler is not None and scheduler_kind in SCHEDULERS_PER_STEP
        self.plateau = scheduler_kind is Scheduler.PLATEAU
        self.report = (progress if world.is_main else None) or SilentProgress()  # only rank 0 reports
        self._saved: tuple[int, int] | None = None  # the (epoch, step) last checkpointed
        self.time_budget = time_budget  # seconds; None: no limit

    def run(self) -> None:
        state = self.state
        started = self.clock()
        with StopSignals() as signals:
            self.report.on_train_start(epochs=self.epochs, steps_per_epoch=len(self.batches),
                                       start_epoch=state.epoch)
            for epoch in range(state.epoch, self.epochs):
                record = self.run_epoch(epoch, signals)
                if self.time_budget is not None:  # shown by the progress line, kept in the history
                    record["time_left"] = self.time_left(self.clock() - started)
                stop = self.end_epoch(record)
                if signals.received is not None:  # under torchrun: every rank stops here together
                    self.stop_on_signal(signals.received, epoch + 1, len(self.batches))
                if stop:
                    state.history.info["stopped_early"] = True
                    break
                if self.time_budget is not None and epoch + 1 < self.epochs and self.world.agree(
                        record["time_left"] <= 0.0, device=self.device):
                    state.history.info["stopped_by_time"] = True
                    break
        state.stopper.finish(state.model, state.history)

    def run_epoch(self, epoch: int, signals: StopSignals) -> dict[str, Any]:
        """One pass over the batches; returns the epoch's record (losses, metrics, lr, seconds)."""
        state, step_fn, n = self.state, self.train_step, len(self.batches)
        started = time.perf_counter()
        self.net.train()
        sums = MetricSums(self.task, device=self.device, target_std=self.target_std)
        losses, rows = torch.zeros(n, device=self.device), torch.zeros(n, device=self.device)
        first = state.step
        if state.partial is not None and self.world.is_main:  # a resumed epoch: rank 0 holds the sums
            losses.copy_(state.partial["losses"])
            rows.copy_(state.partial["rows"])
            sums.load_state(state.partial["metrics"])
        log = StepLosses(losses, rows, first)  # filled in blocks: no per-step kernel
        for step, batch in enumerate(self.batches.epoch(epoch, start_step=first), start=first):
            loss, out = step_fn(batch.x, batch.y, batch.loss_scale)
            if self.per_step_schedule:
                state.scheduler.step()
            log.add(loss, batch.x.shape[0])
            if self.task is not None:
                sums.update(out, batch.y)
            if signals.received is not None and not self.world.is_distributed:
                log.flush()
                state.epoch, state.step = epoch, step + 1
                state.partial = {"losses": losses, "rows": rows, "metrics": sums.state()}
                self.stop_on_signal(signals.received, epoch + 1, step + 1)
            self.report.on_step(epoch=epoch, step=step + 1)
        log.flush()
        state.step, state.partial = 0, None

        # The epoch's one host sync: the losses, the metric sums, and (torchrun) any rank's signal.
        parts = [(losses * rows).sum(), rows.sum()]
        if self.world.is_distributed:
            parts.append(torch.tensor(float(signals.received is not None), device=self.device))
        totals = self.world.all_reduce_sum(torch.stack(parts))
        if self.world.is_distributed and totals[2] > 0 and signals.received is None:
            signals.received = signal.SIGTERM  # another rank was told to stop (torchrun forwards SIGTERM)
        epoch_loss = float(totals[0] / totals[1])
        if not torch.isfinite(totals[:2]).all():  # the same on every rank, so all raise together
            self.raise_non_finite(epoch, losses, epoch_loss)
        record: dict[str, Any] = {"epoch": epoch + 1, "loss": epoch_loss}
        record.update(reduce_metrics(sums, self.world))
        if self.validation is not None:
            self.world.sync_buffers(state.model)
            net = state.model if self.world.is_distributed else self.net
            val_loss, val_metrics = evaluate(net, self.loss_fn, self.validation, self.task, self.target_std,
                                             self.autocast, self.world)
            record["val_loss"] = val_loss
            record.update({f"val_{k}": v for k, v in val_metrics.items()})
        record["lr"] = state.lr
        record["seconds"] = time.perf_counter() - started
        return record

    def time_left(self, spent: float) -> float | None:
        """Seconds of the budget left after ``spent`` seconds (None: no budget)."""
        return None if self.time_budget is None else max(0.0, self.time_budget - spent)

    def end_epoch(self, record: dict[str, Any]) -> bool:
        """Record the epoch, step an epoch schedule, decide on stopping, checkpoint; True to stop."""
        state = self.state
        state.history.append(record)
        if state.scheduler is not None and not self.per_step_schedule:
            if self.plateau:
                state.scheduler.step(record.get("val_loss", record["loss"]))
            else:
                state.scheduler.step()
        stop = self.world.agree(state.stopper.update(record, state.model), device=self.device)  # rank 0 decides
        state.epoch, state.step = record["epoch"], 0
        ck = self.checkpoint
        if ck is not None and (state.epoch % ck.every == 0 or stop or state.epoch == self.epochs):
            self.save_checkpoint()
        self.report.on_epoch_end(record)
        return stop

    def save_checkpoint(self) -> None:
        position = (self.state.epoch, self.state.step)
        if self.checkpoint is not None and self.world.is_main and position != self._saved:
            self.state.save(self.checkpoint.directory)
            self._saved = position

    def stop_on_signal(self, signum: int, epoch: int, step: int) -> None:
        """Checkpoint the state after the last finished step (if checkpointing) and raise."""
        self.save_checkpoint()
        folder = None if self.checkpoint is None else self.checkpoint.directory
        raise TrainingInterrupted(history=self.state.history, epoch=epoch, step=step, checkpoint=folder,
                                  signal=signum)

    def raise_non_finite(self, epoch: int, losses: torch.Tensor, epoch_loss: float) -> None:
        from .checkpoint import latest_checkpoint

        bad_steps = self.world.all_reduce_sum((~torch.isfinite(losses)).float()).nonzero()
        bad = int(bad_steps[0]) if bad_steps.numel() else len(self.batches) - 1
        value = float(losses[bad]) if not torch.isfinite(losses[bad]) else epoch_loss
        ck = self.checkpoint
        kept = ck is not None and latest_checkpoint(ck.directory) is not None
        raise NonFiniteLoss(history=self.state.history, epoch=epoch + 1, step=bad + 1,
                            checkpoint=ck.directory if kept else None, value=value, lr=self.state.lr)


@torch.no_grad()
def evaluate(net: nn.Module, loss_fn: Any, data: tuple[torch.Tensor, torch.Tensor], task: Task | None,
             std: torch.Tensor | None, autocast_ctx: Any, world: Any = None,
             chunk: int = 8192) -> tuple[float, dict[str, float]]:
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
            with autocast_ctx:
                out = net(xb)
                total += loss_fn(out, yb).double() * xb.shape[0]
            sums.update(out, yb)
    finally:
        net.train(was_training)
    if sharded:
        return float(world.all_reduce_sum(total)) / rows, reduce_metrics(sums, world)
    return float(total) / max(1, rows), sums.compute()


def reduce_metrics(sums: MetricSums, world: Any) -> dict[str, float]:
    """The epoch's metrics from every rank's sums (one all-reduce under torchrun)."""
    if not sums.sums:
        return {}
    if world.size == 1:
        return sums.compute()
    keys = sorted(sums.sums)
    flat = world.all_reduce_sum(torch.cat([sums.sums[k].reshape(-1) for k in keys]))
    out, offset = {}, 0
    for k in keys:
        n = sums.sums[k].numel()
        out[k] = flat[offset : offset + n].tolist() if sums.sums[k].dim() else float(flat[offset])
        offset += n
    return sums.compute(out)
