"""``train()``: a table in, a trained ``Model`` out; the Python twin of ``torchann train``.

The steps: read the table, choose target and features, infer the task, hold out validation
rows (stratified for classes), fit the ``Preprocessor`` on the training rows only, build the
network from a ``ModelSpec``, and ``fit`` it with early stopping on the held-out rows.
Every option and its default is declared once in ``options.py``.
"""

from __future__ import annotations

import os
import time
from typing import Any, Sequence

import numpy as np
import torch

from ..core.choices import Loss, NumEmbeddings, Task, parse
from ..data.table import Table
from ..core.checks import VAL_SPLIT_HINT, check_fraction, check_positive_int, check_seed
from ..core.errors import DataError, UsageError
from ..core.warn import warn
from .model import Model
from ..core.options import (PERIODIC_MAX_INPUTS, PLE_MIN_DISTINCT, TrainOptions, auto_batch_size, auto_networks,
                            auto_num_embeddings, auto_ple_bins, auto_time_budget)
from ..preprocess.checks import numeric_column
from ..preprocess.features import periodic_inputs
from ..preprocess.preprocessor import Preprocessor, class_weights, infer_task
from ..data.run_rows import RunRows
from ..model.facts import column_plan
from ..network.members import MAX_MEMBERS, joined
from ..network.spec import ModelSpec
from ..data.splits import split_indices
from ..data.table_input import as_table
from ..training.fitting import EarlyStopping, fit

__all__ = ["train", "default_loss", "MIN_ROWS_TO_HOLD_OUT"]

MIN_ROWS_TO_HOLD_OUT = 10  # below this, every row trains and early stopping watches the training loss


def default_loss(task: Task) -> Loss:
    """Mean squared error for regression, cross-entropy for classification."""
    return Loss.CROSS_ENTROPY if task is Task.CLASSIFICATION else Loss.MSE


def train(
    data: Any,
    target: Any = None,
    *,
    val: Any = None,
    progress: Any = None,
    checkpoint: Any = None,
    resume: Any = None,
    global_batch_size: int | None = None,
    **options: Any,
) -> Model:
    """Train a network on a table and return the ``Model``.

    Args:
        data: a CSV/TSV/Parquet/.npy/.npz path or built-in dataset name, a ``Table``, a pandas or
            pyarrow frame, a dict of columns, or a 2-D array of feature rows (then ``target`` is
            the array of answers).
        target: the target column name(s), or the answers when ``data`` is an array.
        val: a validation table with the same columns; given, no rows are held out (``val_split``
            is not used).
        progress: an object with ``on_train_start`` / ``on_step`` / ``on_epoch_end``; if it has
            ``on_plan``, that gets ``column_plan(...)`` (plain data: each column's kind and
            encoding, the columns left out and why) once, just before training starts.
        checkpoint, resume: ``Checkpointing(dir, every)`` and a checkpoint folder to continue from.
        global_batch_size: under torchrun, rows per step over all processes.
        options: any of ``torchann.options`` (the ``torchann train`` flags, same names and
            defaults): ``hidden``, ``epochs``, ``batch_size``, ``lr``, ``val_split``, ``seed``, ...

    Returns:
        the trained ``Model``; ``model.history`` holds the per-epoch records.

    Example:
        >>> model = torchann.train("sklearn:diabetes", target="target", hidden=[64, 64])
        >>> model.evaluate("test.csv")
    """
    opts = TrainOptions.from_flat(options)
    d, n, f = opts.data, opts.network, opts.fit
    check_fraction("val_split", d.val_split, hint=VAL_SPLIT_HINT)
    table = _training_table(data, target, d.target)
    for note in table.notes:  # e.g. a ';' file read with decimal commas: say so where the user looks
        warn(note)
    table = table.select(None, _features(table, d.features, d.exclude))
    table = _with_target(table, drop=d.drop_missing_target)
    task = infer_task(table) if d.task is None else parse(Task, d.task, name="task")
    loss = None if f.loss is None else parse(Loss, f.loss, name="loss")
    if loss in (Loss.CROSS_ENTROPY, Loss.BCE) and task is Task.REGRESSION:
        raise UsageError(
            f"loss {loss} needs class labels, but the target was taken as a regression target; "
            f"pass task='classification' (--task classification) or a regression loss (mse, mae)"
        )
    seed = check_seed("seed", f.seed) if f.seed is not None else int.from_bytes(os.urandom(4), "little") >> 1

    train_rows, val_rows = np.arange(table.n_rows), None
    if d.val_split and val is None and table.n_rows >= MIN_ROWS_TO_HOLD_OUT:  # a val table replaces the split
        labels = table.columns[table.targets[0]] if task is Task.CLASSIFICATION else None
        train_rows, val_rows = split_indices(table.n_rows, float(d.val_split), seed=seed, stratify=labels)
    pre = Preprocessor.fit(table, task=task, scale=d.scale, fill_missing=d.fill_missing, rows=train_rows,
                           scaling=d.scaling, target_log=d.target_log, named=d.features or (),
                           ple_bins=auto_ple_bins(len(train_rows)) if d.ple_bins is None else d.ple_bins,
                           ple_min_distinct=PLE_MIN_DISTINCT if d.ple_bins is None else 0)
    for name, why in pre.dropped.items():  # identifiers: said where the user looks, kept in the history
        warn(f"{table.source}: column {name!r} left out of the features ({why})")
    x, y = pre.transform_x(table), pre.transform_y(table)
    validation, val_table = None, None
    if val_rows is not None:
        validation = (x[val_rows], y[val_rows])
    elif val is not None:
        val_table = as_table(val, names=pre.feature_names)
        if d.drop_missing_target:
            val_table = _with_target(val_table.select(pre.target_names), drop=True)
        validation = (pre.transform_x(val_table), pre.transform_y(val_table))
    for feature in pre.features:  # the range predict warns outside of: the training and validation rows
        if feature.kind == "numeric" and (val_rows is not None or val_table is not None):
            feature.widen_range(numeric_column(table, feature.name)[val_rows] if val_table is None
                                else numeric_column(val_table, feature.name))
    patience = f.early_stopping or None
    if patience and validation is None and not d.val_split:  # asked for no held-out rows
        warn(f"early stopping (patience {patience}) watches the training loss: there are no "
                      f"validation rows; set val_split or pass val=")
    embeddings = parse(NumEmbeddings, auto_num_embeddings(len(train_rows)) if n.num_embeddings is None
                       else n.num_embeddings, name="num_embeddings")
    periodic = () if embeddings is NumEmbeddings.NONE else periodic_inputs(
        pre.features, table, train_rows, limit=PERIODIC_MAX_INPUTS if n.num_embeddings is None else None)
    spec = ModelSpec(pre.in_features, tuple(n.hidden), pre.out_features, activation=n.activation,
                     dropout=n.dropout, norm=n.norm, ensemble=n.ensemble, periodic=periodic,
                     ensemble_combine="proba" if task is Task.CLASSIFICATION else "mean")
    torch.manual_seed(seed)  # the initial weights follow the seed too
    network = spec.build()
    if hasattr(progress, "watch"):  # e.g. TensorBoard draws the weights each epoch
        progress.watch(network)
    std = pre.target_std if (task is Task.REGRESSION and pre.scale) else None
    batch_size = f.batch_size if f.batch_size is not None else auto_batch_size(len(train_rows))
    budget = f.time_budget if f.time_budget is not None else auto_time_budget(len(train_rows), pre.in_features)
    loss_used: Any = (loss or default_loss(task)).value
    if f.class_weight is not None:
        given = f.class_weight
        if task is not Task.CLASSIFICATION or not (given == "balanced" or isinstance(given, dict)):
            raise UsageError(f"class_weight takes 'balanced' or a dict {{class: weight}} (for classification) or "
                             f"none, got {given!r}")
        if isinstance(given, dict):  # a weight per class label; classes not named weigh 1
            unknown = [k for k in given if k not in (pre.classes or [])]
            if unknown:
                raise UsageError(f"class_weight names {unknown[0]!r}, not a class of the target; classes are "
                                 f"{', '.join(map(repr, (pre.classes or [])[:20]))}")
            weights = torch.as_tensor([float(given.get(c, 1.0)) for c in pre.classes or []], dtype=torch.float32)
        else:
            weights = torch.as_tensor(class_weights(y[train_rows], pre.out_features), dtype=torch.float32)
        loss_used = torch.nn.CrossEntropyLoss(weight=weights)
    if hasattr(progress, "on_plan"):  # every check passed: say how each column is read (the CLI prints it)
        progress.on_plan(column_plan(pre, table.skipped))
    count = _network_count(n.networks, len(train_rows), checkpoint, resume, global_batch_size)
    fit_args = dict(
        validation=validation, metrics=task, target_std=std,
        loss=loss_used, epochs=f.epochs, batch_size=batch_size, lr=f.lr,
        optimizer=f.optimizer, weight_decay=f.weight_decay, momentum=f.momentum, clip_grad_norm=f.clip_grad_norm,
        scheduler=f.scheduler, device=f.device, precision=f.precision, threads=f.threads,
        checkpoint=checkpoint, resume=resume, global_batch_size=global_batch_size,
    )
    x_train, y_train = x[train_rows], y[train_rows]  # one copy, whatever the number of networks
    networks, histories, started = [], [], time.monotonic()
    for index in range(count):
        left = budget - (time.monotonic() - started)
        if index:  # each network its own seed; the ones after the first only while time is left
            if left <= 0:
                break
            torch.manual_seed(seed + index)
            network = spec.build()
        if hasattr(progress, "on_member") and count > 1:
            progress.on_member(index, count)
        histories.append(fit(
            network, x_train, y_train, seed=seed + index,
            early_stopping=EarlyStopping(patience=int(patience)) if patience else None,
            progress=progress if index == 0 or hasattr(progress, "on_member") else None,
            time_budget=left if index else budget, **fit_args))  # the first: the budget as given (checked by fit)
        networks.append(network)
    history = histories[0]  # the saved curves are the first network's
    history.info.update({
        "task": task.value, "train_rows": int(len(train_rows)),
        "val_rows": 0 if validation is None else int(len(validation[0])),
        "source": table.source, "options": opts.to_flat() | {"seed": seed},
        "dropped_columns": dict(pre.dropped), "target_log": pre.target_log, "time_budget": budget,
    })
    if len(networks) < count:  # the time budget ran out first
        history.info["networks_not_trained"] = count - len(networks)
        warn(f"the time budget ({budget:g} s) ran out after {len(networks)} of {count} networks; the model has "
             f"{len(networks)}")
    if len(networks) > 1:
        history.info["networks"] = [_network_facts(seed + i, h) for i, h in enumerate(histories)]
        network = joined(networks, "proba" if task is Task.CLASSIFICATION else "mean")
    network.eval()
    return Model(network, pre, history, rows=RunRows(table, train_rows, val_rows, None if val is None else val_table))


def _network_count(networks: Any, n_rows: int, checkpoint: Any, resume: Any, global_batch_size: Any) -> int:
    """``networks`` checked (a whole number from 1 to ``MAX_MEMBERS``), or its default: one
    network when the run checkpoints, resumes or trains under torchrun (those follow a single
    network's steps), else ``auto_networks(n_rows)``."""
    single = checkpoint is not None or resume is not None or global_batch_size is not None
    if networks is None:
        return 1 if single else auto_networks(n_rows)
    count = check_positive_int("networks", networks)
    if count > MAX_MEMBERS:
        raise UsageError(f"networks must be at most {MAX_MEMBERS}, got {count}")
    if count > 1 and single:
        raise UsageError(f"checkpoints, resuming and torchrun follow one network, but networks is {count}; "
                         f"pass networks=1 (--networks 1)")
    return count


def _network_facts(seed: int, history: Any) -> dict[str, Any]:
    """One trained network of several: its seed, epochs run, kept epoch and that epoch's
    validation loss (the training loss without validation rows)."""
    best = history.info.get("best_epoch") or len(history)
    record = history.records[best - 1] if 0 < best <= len(history) else {}
    loss = record.get("val_loss", record.get("loss"))
    return {"seed": seed, "epochs": len(history), "best_epoch": best,
            "loss": float(loss) if isinstance(loss, (int, float)) else None,
            "stopped_by_time": bool(history.info.get("stopped_by_time"))}


def _training_table(data: Any, target: Any, option_target: Sequence[str] | None) -> Table:
    """The table to train on, with its target chosen."""
    if target is not None and option_target is not None:
        raise UsageError("give the target once: as train(data, target) or as target=..., not both")
    target = target if target is not None else option_target
    if target is not None and _is_rows(data):  # arrays: data are the feature rows, target the answers
        x = np.asarray(data.detach().cpu().numpy() if hasattr(data, "detach") else data)
        y = np.asarray(target.detach().cpu().numpy() if hasattr(target, "detach") else target)
        if x.ndim != 2:
            raise UsageError(f"with an array of answers as target, data must be rows x features (2-D), "
                             f"got shape {x.shape}")
        y = y.reshape(len(y), -1) if y.ndim > 1 else y.reshape(-1, 1)
        if len(y) != len(x):
            raise UsageError(f"data has {len(x)} rows but target has {len(y)} answers; give one answer per row")
        columns = {f"x{i}": x[:, i] for i in range(x.shape[1])}
        names = ["y"] if y.shape[1] == 1 else [f"y{i}" for i in range(y.shape[1])]
        columns.update({name: y[:, i] for i, name in enumerate(names)})
        return Table.from_columns(columns, source="<arrays>", targets=names)
    table = as_table(data)
    if target is None:
        if not table.targets:
            raise UsageError(f"{table.source}: no target column given; name one with target= (--target); "
                             f"columns are: {', '.join(table.names[:20])}")
        return table
    return table.select(list(target) if not isinstance(target, str) else target)


def _with_target(table: Table, *, drop: bool) -> Table:
    """``table`` when every row has its target(s); else, with ``drop``, the rows that have them
    (one warning says how many were left out), without it the error naming the first such row."""
    from ..data.columns import missing_mask
    from ..preprocess.target import no_missing_target

    missing = np.zeros(table.n_rows, dtype=bool)
    for name in table.targets:
        miss = missing_mask(table.columns[name])
        if miss.any() and not drop:
            no_missing_target(table, name, miss, np.arange(table.n_rows))
        missing |= miss
    if not missing.any():
        return table
    if missing.all():
        raise DataError(f"{table.source}: every row's target ({', '.join(table.targets)}) is missing; "
                        f"there is nothing to train on")
    warn(f"{table.source}: left out {int(missing.sum())} of {table.n_rows} rows without a target "
         f"({', '.join(table.targets)})")
    return table.take(np.flatnonzero(~missing))


def _is_rows(data: Any) -> bool:
    """Rows of numbers (array, tensor, nested list) rather than a table, frame, path or dict."""
    if isinstance(data, (str, os.PathLike, Table, dict)):
        return False
    module = type(data).__module__
    return not (module.startswith("pandas") or module.startswith("pyarrow"))


def _features(table: Table, features: Sequence[str] | None, exclude: Sequence[str]) -> list[str] | None:
    if features is None and not exclude:
        return None
    chosen = list(features) if features is not None else table.feature_names
    for name in exclude:
        table.column_name(name, role="excluded")  # an unknown name fails with the valid ones
    return [c for c in chosen if c not in set(exclude)]
