"""The objective: one trial trains a network with ``torchann.train`` on the study's fixed
training rows, reports the validation loss after every epoch (``trial.report``) so the pruner
can stop it early (``trial.should_prune``), and leaves its network and its validation answers
in the artifact folder, where the ensemble is later built from every worker's trials.

The objective value is the validation loss of the epoch training kept (early stopping restores
the best one): mean squared error in the scaled target units for regression, log loss for
classes. The same numbers are what the ensemble's greedy selection minimises.
"""

from __future__ import annotations

import io
import json
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import space

__all__ = ["Objective", "TrialReporter", "validation_loss", "VAL_FILE", "worker_id", "combine_space"]

VAL_FILE = "val.npy"  # a trial's validation answers: scaled outputs (regression) or probabilities


def worker_id() -> str:
    """``host:pid:start`` of this process, recorded on each trial it runs; ``start`` (the
    process's start time in clock ticks since boot, on Linux) tells a reused pid apart."""
    return f"{socket.gethostname()}:{os.getpid()}:{_start_ticks(os.getpid())}"


def _start_ticks(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read().decode("ascii", "replace")
        return stat.rsplit(")", 1)[1].split()[19]  # field 22, counted after the command name
    except (OSError, IndexError):
        return "?"


def combine_space(task: str) -> str:
    """How members combine for ``task``: ``"mean"`` of outputs, or ``"proba"`` (class probabilities)."""
    return "proba" if task == "classification" else "mean"


def validation_loss(answers: np.ndarray, truth: np.ndarray, task: str) -> float:
    """The objective for validation ``answers`` (see the module docstring) against ``truth``
    (scaled targets ``(n, k)``, or class codes ``(n,)``)."""
    if task == "classification":
        p = np.clip(answers[np.arange(len(truth)), truth.astype(np.int64)], 1e-15, 1.0)
        return float(-np.log(p).mean())
    return float(np.mean((answers.reshape(len(truth), -1) - truth.reshape(len(truth), -1)) ** 2))


class TrialReporter:
    """What ``fit`` reports to: each epoch's validation loss goes to the trial, and a trial the
    pruner gives up on stops there (``optuna.TrialPruned``)."""

    def __init__(self, trial: Any) -> None:
        self.trial = trial

    def on_train_start(self, **_: Any) -> None: ...

    def on_step(self, **_: Any) -> None: ...

    def on_epoch_end(self, record: dict[str, Any]) -> None:
        import optuna

        value = record.get("val_loss", record["loss"])
        self.trial.report(float(value), int(record["epoch"]))
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"epoch {record['epoch']}: validation loss {value:.6g}")


@dataclass
class Objective:
    """Trains one trial; see the module docstring.

    ``train_table`` and ``val_table`` are the same for every trial of the study, so every
    trial fits the same preprocessing; ``options`` are the fixed ``torchann.train`` options.
    """

    train_table: Any
    val_table: Any
    task: str
    seed: int
    artifacts: Path  # this study's folder of trials, reachable by every worker
    options: dict[str, Any] = field(default_factory=dict)

    def __call__(self, trial: Any) -> float:
        from ..api.tabular import train

        params = space.suggest(trial)
        trial.set_user_attr("worker", worker_id())
        started = time.perf_counter()
        # Trial 0 (the defaults, enqueued first) is exactly train's default model, its several
        # networks included; later trials train one network each, and the study's ensemble joins them.
        model = train(self.train_table, val=self.val_table, progress=TrialReporter(trial),
                      seed=self.seed + trial.number, networks=None if trial.number == 0 else 1,
                      **{**self.options, **space.to_options(params)})
        answers, truth = self.answers(model)
        value = validation_loss(answers, truth, self.task)
        name = f"trial-{trial.number:05d}"
        self.save(model, answers, self.artifacts / name)
        trial.set_user_attr("artifact", name)
        trial.set_user_attr("epochs", len(model.history))
        trial.set_user_attr("seconds", round(time.perf_counter() - started, 3))
        return value

    def answers(self, model: Any) -> tuple[np.ndarray, np.ndarray]:
        """The model's validation answers in the space members are averaged in, and the truth."""
        out = model.outputs(self.val_table)
        pre = model.preprocessor
        truth = pre.transform_y(self.val_table)
        if self.task == "classification":
            return pre.proba(out), truth
        return out.detach().cpu().numpy().astype(np.float64), truth

    @staticmethod
    def save(model: Any, answers: np.ndarray, folder: Path) -> None:
        """The trial's network (a model directory: ``torchann.load`` reads it) and its answers,
        written whole or not at all."""
        from ..model.directory import save

        buffer = io.BytesIO()
        np.save(buffer, answers, allow_pickle=False)
        pre = model.preprocessor
        extra = {"task": pre.task.value, "features": pre.feature_names, "targets": pre.target_names,
                 "classes": pre.classes, "preprocessor": pre.to_dict(),
                 "training": json.loads(json.dumps(model.history.info, default=lambda _: None))}
        folder.parent.mkdir(parents=True, exist_ok=True)
        save(model.network, folder, extra=extra,
             files={VAL_FILE: buffer.getvalue(), "history.jsonl": model.history.to_jsonl()})
