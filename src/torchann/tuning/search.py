"""``tune()``: search the network and optimiser options of ``torchann.train`` with Optuna (TPE,
seeded, pruned per epoch), continue a stopped or shared study, and end in one ``Model``: the
best trial's network, or the greedy ensemble of the best trials when that scores better on the
validation rows. ``torchann tune`` is the same call from the shell.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import TrainingError, UsageError
from . import space
from .ensemble import caruana, join, load_candidates
from .objective import Objective
from .storage import is_locked, locked, open_storage, require_optuna
from .study import fail_dead_trials, fingerprint, open_study

__all__ = ["tune", "DEFAULT_TRIALS", "DEFAULT_STUDY", "PRUNERS", "DEFAULT_PRUNER", "make_pruner"]

DEFAULT_TRIALS = 20
DEFAULT_STUDY = "torchann"
PRUNERS = ("median", "hyperband", "none")
DEFAULT_PRUNER = "median"  # measured against hyperband in docs/tune.md
SEARCHED = {"hidden", "dropout", "lr", "weight_decay", "optimizer"}  # set by the space, per trial


def tune(data: Any, target: Any = None, *, trials: int | None = None, time: float | None = None,
         out: str | Path | None = None, storage: str | None = None, study: str | None = None, seed: int = 0,
         ensemble: bool = True, finish: bool = False, artifacts: str | Path | None = None,
         pruner: str = DEFAULT_PRUNER, progress: Any = None, **options: Any) -> Any:
    """Search ``torchann.train``'s network and optimiser options on a table; return a ``Model``.

    Args:
        data, target: as for ``torchann.train`` (a path, frame, ``Table``, ... and the target column).
        trials: trials the study should hold in the end (complete or pruned, over all workers);
            default 20 when ``time`` is not given either.
        time: seconds this call may spend starting trials (a trial under way finishes).
        out: a folder for the study (``out/study.db``) and its trials (``out/trials``); None keeps
            the study in memory and the trials in a temporary folder.
        storage: an Optuna storage URL instead of ``out/study.db``: ``journal:PATH`` for several
            processes on one machine, ``postgresql://...`` for several hosts.
        study: the study's name (default ``"torchann"``); the same name continues it.
        seed: the validation split's seed, and each trial's ``seed + trial number``.
        ensemble: join the best trials greedily when that scores better on validation.
        finish: run no trial; build the model from the trials the study holds (every worker's).
        artifacts: the folder of trial networks and validation answers (every worker must reach it).
        pruner: ``"median"``, ``"hyperband"`` or ``"none"``.
        progress: an object with ``on_trial_end(record)``, called as each trial of this call ends.
        options: fixed ``torchann.train`` options for every trial (``epochs``, ``val_split``,
            ``features``, ...); the searched ones (``space.SPACE``) may not be given.

    Returns:
        a ``torchann.Model``; ``model.history.info["tune"]`` holds the trials and the choice.
    """
    trials, time = _checked_budget(trials, time, finish)
    if pruner not in PRUNERS:
        raise UsageError(f"pruner must be one of {', '.join(PRUNERS)}, got {pruner!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise UsageError(f"seed must be an integer, got {seed!r}")
    fixed = _fixed_options(options)
    optuna = require_optuna()
    name = study or DEFAULT_STUDY
    out_dir = None if out is None else Path(out)
    table, task, train_rows, val_rows, val_split = _split(data, target, fixed, seed)  # bad data: before any file
    store, where = open_storage(storage, out_dir)
    facts = {"target": list(table.targets), "table": fingerprint(table), "task": task, "val_split": val_split,
             "seed": seed, "options": json.loads(json.dumps(fixed, default=list)), "version": 1}
    epochs = int(fixed.get("epochs", _default("epochs")))
    try:
        the_study = open_study(optuna, store, name, facts, sampler=None, pruner=make_pruner(optuna, pruner, epochs),
                               where=where)
        dead = fail_dead_trials(optuna, the_study, store)
        existing = the_study.get_trials(deepcopy=False)
        shared = where.split(":", 1)[0].split("+", 1)[0] in ("journal", "postgresql", "mysql")
        # Continuing draws new points (seed + trials so far); workers sharing a study draw apart (their pid).
        the_study.sampler = optuna.samplers.TPESampler(seed=seed + len(existing) + (os.getpid() if shared else 0))
        if not existing:
            the_study.enqueue_trial(space.default_params())  # today's defaults first: never worse than them
    except Exception as err:
        _reraise_storage(err, where)
        raise
    root = _artifact_root(artifacts, out_dir, name)
    with root as folder:
        objective = Objective(table.take(train_rows), table.take(val_rows), task, seed, Path(folder), fixed)
        if not finish:
            _optimize(optuna, the_study, objective, trials, time, progress, where)
        model = _finish(optuna, the_study, objective, ensemble=ensemble, where=where, pruner=pruner, dead=dead)
    from ..data.run_rows import RunRows

    info = model.history.info
    info.update({"task": task, "source": table.source, "train_rows": int(len(train_rows)),
                 "val_rows": int(len(val_rows)),
                 "options": {**info.get("options", {}), "val_split": val_split, "seed": seed}})
    model._run_rows = RunRows(table, train_rows, val_rows)  # for the report, as train() keeps them
    return model


# -- the parts ----------------------------------------------------------------------------------


def make_pruner(optuna: Any, name: str, epochs: int) -> Any:
    """The pruner ``name`` for trials of at most ``epochs`` epochs."""
    if name == "median":  # the first 5 trials, and every trial's first 5 epochs, are never pruned
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=5)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=5, max_resource=max(epochs, 6), reduction_factor=3)
    return optuna.pruners.NopPruner()


def _checked_budget(trials: Any, time: Any, finish: bool) -> tuple[int | None, float | None]:
    if trials is not None and (isinstance(trials, bool) or not isinstance(trials, int) or trials < 1):
        raise UsageError(f"trials must be a positive integer, got {trials!r}; the study runs until it holds that "
                         f"many trials (--trials 20, say)")
    if time is not None and (isinstance(time, bool) or not isinstance(time, (int, float)) or not time > 0):
        raise UsageError(f"time must be a positive number of seconds, got {time!r}")
    if trials is None and time is None and not finish:
        trials = DEFAULT_TRIALS
    return trials, None if time is None else float(time)


def _fixed_options(options: dict[str, Any]) -> dict[str, Any]:
    from ..core.options import TrainOptions

    searched = sorted(SEARCHED & set(options))
    if searched:
        raise UsageError(f"tune searches {', '.join(searched)} itself; leave {'it' if len(searched) == 1 else 'them'} "
                         f"out (the space is in docs/tune.md)")
    if "networks" in options:
        raise UsageError("tune chooses the networks itself (trial 0: the defaults' own, then one a trial) and joins "
                         "the best trials; leave networks out")
    if "seed" in options:
        raise UsageError("give tune's seed as seed= (--seed); each trial trains with seed + its number")
    TrainOptions.from_flat(options, where="tune")  # unknown names fail here, with the closest valid one
    return {k: (tuple(v) if isinstance(v, list) else v) for k, v in sorted(options.items())}


def _default(name: str) -> Any:
    from ..core.options import option_default

    return option_default(name)


def _split(data: Any, target: Any, fixed: dict[str, Any], seed: int) -> tuple[Any, str, Any, Any, float]:
    """The table, its task, and the study's training and validation rows (as ``train`` splits)."""
    from ..preprocess.target import infer_task
    from ..data.splits import split_indices
    from ..api.tabular import MIN_ROWS_TO_HOLD_OUT, _training_table

    table = _training_table(data, target, fixed.get("target"))
    task = str(fixed.get("task") or infer_task(table).value)
    val_split = float(fixed.get("val_split", _default("val_split")))
    if not 0 < val_split < 1:
        raise UsageError(f"tune needs validation rows to compare trials on: val_split must be in (0, 1), got "
                         f"{val_split!r}")
    if table.n_rows < MIN_ROWS_TO_HOLD_OUT:
        raise UsageError(f"{table.source}: {table.n_rows} rows are too few to tune on; it needs at least "
                         f"{MIN_ROWS_TO_HOLD_OUT} to hold some out")
    labels = table.columns[table.targets[0]] if task == "classification" else None
    train_rows, val_rows = split_indices(table.n_rows, val_split, seed=seed, stratify=labels)
    return table, task, train_rows, val_rows, val_split


class _Folder:
    """The artifact folder as a context: a given one stays, a temporary one is removed after."""

    def __init__(self, path: Path | None) -> None:
        self.path, self.temp = path, None

    def __enter__(self) -> Path:
        if self.path is None:
            self.temp = tempfile.TemporaryDirectory(prefix="torchann-tune-")
            return Path(self.temp.name)
        self.path.mkdir(parents=True, exist_ok=True)
        return self.path

    def __exit__(self, *exc: Any) -> None:
        if self.temp is not None:
            self.temp.cleanup()


def _artifact_root(artifacts: str | Path | None, out: Path | None, name: str) -> _Folder:
    if artifacts is not None:
        return _Folder(Path(artifacts) / name)
    return _Folder(None if out is None else out / "trials" / name)


def _optimize(optuna: Any, study: Any, objective: Objective, trials: int | None, time: float | None,
              progress: Any, where: str) -> None:
    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    callbacks = []
    n_trials = None
    if trials is not None:
        n_trials = trials - len(study.get_trials(deepcopy=False, states=states))
        if n_trials <= 0:
            return  # the study already holds them: nothing left to run
        callbacks.append(optuna.study.MaxTrialsCallback(trials, states=states))  # counts every worker's trials
    if progress is not None:
        callbacks.append(_Reporter(progress, trials))
    try:
        study.optimize(objective, n_trials=n_trials, timeout=time, callbacks=callbacks, catch=(TrainingError,),
                       gc_after_trial=False)
    except Exception as err:
        _reraise_storage(err, where)
        raise


class _Reporter:
    """Optuna's per-trial callback turned into ``progress.on_trial_end(record)``."""

    def __init__(self, progress: Any, trials: int | None) -> None:
        self.progress, self.trials = progress, trials

    def __call__(self, study: Any, trial: Any) -> None:
        try:
            best = study.best_value
        except ValueError:  # no trial complete yet
            best = None
        done = sum(1 for t in study.get_trials(deepcopy=False) if t.state.is_finished())
        self.progress.on_trial_end({
            "number": trial.number, "state": trial.state.name.lower(), "value": trial.value, "best": best,
            "finished": done, "trials": self.trials, "params": dict(trial.params),
            "epochs": trial.user_attrs.get("epochs", trial.last_step), "seconds": trial.user_attrs.get("seconds"),
        })


def _reraise_storage(err: BaseException, where: str) -> None:
    from .storage import StorageError

    if isinstance(err, (UsageError, TrainingError, KeyboardInterrupt)):
        return
    if is_locked(err):
        raise locked(where) from None
    if type(err).__module__.startswith("sqlalchemy"):
        raise StorageError(f"storage {where} failed: {str(getattr(err, 'orig', None) or err).splitlines()[0][:300]}; "
                           f"check that it is reachable") from None


def _finish(optuna: Any, study: Any, objective: Objective, *, ensemble: bool, where: str, pruner: str,
            dead: list[int]) -> Any:
    """The model the study's trials make: the best trial, or their greedy ensemble."""
    from ..api.model import Model, load

    trials = study.get_trials(deepcopy=False)
    answers, notes = load_candidates(trials, objective.artifacts)
    if not answers:
        raise TrainingError(f"study {study.study_name!r} in {where} has no finished trial with its network in "
                            f"{objective.artifacts}; run some trials first (leave out --finish)")
    notes = [*notes, *(f"trial {n}: its worker died; marked failed" for n in dead)]
    folder = objective.artifacts
    by_number = {t.number: t for t in trials}
    best_number = min(answers, key=lambda n: (by_number[n].value, n))
    best_model = load(folder / str(by_number[best_number].user_attrs["artifact"]))
    truth = best_model.preprocessor.transform_y(objective.val_table)
    selection = caruana(answers, truth, objective.task) if ensemble and len(answers) > 1 else None
    use_ensemble = selection is not None and len(selection.counts) > 1 and selection.value < selection.best_single
    chosen = selection.members if use_ensemble else [best_number]
    weights = [float(selection.counts[n]) for n in chosen] if use_ensemble else [1.0]
    network, pre = join([folder / str(by_number[n].user_attrs["artifact"]) for n in chosen], weights, objective.task)
    info = dict(best_model.history.info)
    info["tune"] = _summary(optuna, study, trials, where=where, pruner=pruner, best=best_number,
                            selection=selection, used=use_ensemble, chosen=chosen, weights=weights, notes=notes,
                            task=objective.task)
    best_model.history.info = info
    return Model(network, pre, best_model.history)


def _value(trials: list[Any], number: int) -> float:
    return next(t.value for t in trials if t.number == number)


def _summary(optuna: Any, study: Any, trials: list[Any], *, where: str, pruner: str, best: int, selection: Any,
             used: bool, chosen: list[int], weights: list[float], notes: list[str], task: str) -> dict[str, Any]:
    """What ``history.info["tune"]`` records (and the report shows)."""
    total = float(sum(weights))
    rows = [{"number": t.number, "state": t.state.name.lower(), "value": _finite(t.value), "params": dict(t.params),
             "epochs": t.user_attrs.get("epochs", t.last_step), "seconds": t.user_attrs.get("seconds"),
             "worker": t.user_attrs.get("worker")} for t in trials]
    return {
        "study": study.study_name, "storage": where, "sampler": "TPE", "pruner": pruner,
        "metric": "log loss" if task == "classification" else "mse (scaled target)",
        "trials": rows, "best_trial": best, "best_value": _finite(_value(trials, best)),
        "ensemble": None if selection is None else {
            "value": selection.value, "path": list(selection.path),
            "members": [{"trial": n, "count": c} for n, c in sorted(selection.counts.items())]},
        "chosen": "ensemble" if used else "best trial",
        "members": [{"trial": n, "weight": w / total} for n, w in zip(chosen, weights)],
        "importance": _importance(optuna, study), "notes": notes,
    }


def _finite(value: Any) -> float | None:
    return float(value) if value is not None and np.isfinite(value) else None


def _importance(optuna: Any, study: Any) -> dict[str, float]:
    """Each parameter's importance (fANOVA; PED-ANOVA where fANOVA cannot run); {} with too few trials."""
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if len(complete) < 3:
        return {}
    for make in (lambda: None, lambda: optuna.importance.PedAnovaImportanceEvaluator()):
        try:
            found = optuna.importance.get_param_importances(study, evaluator=make())
            return {k: float(v) for k, v in found.items()}
        except Exception:  # noqa: BLE001 - importance is a nicety: a failing evaluator leaves it out
            continue
    return {}
