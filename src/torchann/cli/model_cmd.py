"""``torchann train`` and ``torchann predict``: tables in, run folders and predictions out."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ._app import app, parse_floats, parse_ints, stderr_console

ARGS_FILE = "args.json"  # the train command's arguments, beside the checkpoints, for --resume


@dataclass
class TrainArgs:
    """Every choice of ``torchann train``; stored with checkpoints so ``--resume DIR`` needs nothing else."""

    data: Optional[str] = None
    target: Optional[list[str]] = None
    features: Optional[list[str]] = None
    val: Optional[str] = None
    val_split: float = 0.0
    task: Optional[str] = None
    scale: bool = True
    fill_missing: Optional[str] = None
    hidden: list[int] = (64, 64)  # type: ignore[assignment]
    activation: str = "relu"
    dropout: float = 0.0
    norm: str = "none"
    epochs: int = 100
    batch_size: int = 32
    lr: float = 1e-3
    optimizer: str = "adam"
    loss: Optional[str] = None
    weight_decay: float = 0.0
    clip_grad_norm: Optional[float] = None
    scheduler: Optional[str] = None
    early_stopping: Optional[int] = None
    seed: int = 0
    device: str = "auto"
    precision: str = "fp32"
    checkpoint_every: Optional[int] = None
    global_batch_size: Optional[int] = None
    out: str = "runs/train"


def _split_names(text: Optional[str]) -> Optional[list[str]]:
    return None if text is None else [t.strip() for t in text.split(",") if t.strip()]


@app.command("train")
def train_cmd(
    ctx: typer.Context,
    data: Annotated[Optional[str], typer.Argument(
        help="CSV/TSV/Parquet/.npy/.npz file, or a built-in dataset such as add, moons, sklearn:iris.",
        show_default=False)] = None,
    target: Annotated[Optional[str], typer.Option("--target", "-t", help="Target column(s), comma-separated.")] = None,
    features: Annotated[Optional[str], typer.Option("--features", help="Feature columns, comma-separated [default: all others].")] = None,
    hidden: Annotated[Optional[str], typer.Option("--hidden", help="Hidden layer widths, e.g. 64,64. [default: 64,64]")] = None,
    activation: Annotated[Optional[str], typer.Option("--activation", help="relu, tanh, sigmoid, gelu, leaky_relu, identity. [default: relu]")] = None,
    dropout: Annotated[Optional[float], typer.Option("--dropout", min=0.0, max=0.99, help="Dropout after each hidden layer. [default: 0]")] = None,
    norm: Annotated[Optional[str], typer.Option("--norm", help="none, batch or layer normalisation. [default: none]")] = None,
    epochs: Annotated[Optional[int], typer.Option("--epochs", min=1, help="Passes over the training rows. [default: 100]")] = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", min=1, help="Rows per step. [default: 32]")] = None,
    lr: Annotated[Optional[float], typer.Option("--lr", min=0.0, help="Learning rate. [default: 0.001]")] = None,
    optimizer: Annotated[Optional[str], typer.Option("--optimizer", help="sgd, adam or adamw. [default: adam]")] = None,
    loss: Annotated[Optional[str], typer.Option("--loss", help="mse, mae, cross_entropy or bce [default: mse for regression, cross_entropy for classification].")] = None,
    weight_decay: Annotated[Optional[float], typer.Option("--weight-decay", min=0.0, help="L2 penalty (decoupled for adamw).")] = None,
    clip_grad_norm: Annotated[Optional[float], typer.Option("--clip-grad-norm", min=0.0, help="Clip the gradient norm to this value.")] = None,
    scheduler: Annotated[Optional[str], typer.Option("--scheduler", help="none, cosine, step, plateau or one_cycle.")] = None,
    val: Annotated[Optional[str], typer.Option("--val", help="A validation file with the same columns.")] = None,
    val_split: Annotated[Optional[float], typer.Option("--val-split", min=0.0, max=0.9, help="Fraction of rows held out for validation (stratified for classes).")] = None,
    early_stopping: Annotated[Optional[int], typer.Option("--early-stopping", min=1, help="Stop after this many epochs without a better validation loss; restores the best weights.")] = None,
    task: Annotated[Optional[str], typer.Option("--task", help="regression or classification [default: inferred from the target].")] = None,
    no_scale: Annotated[bool, typer.Option("--no-scale", help="Do not standardise features and regression targets.")] = False,
    fill_missing: Annotated[Optional[str], typer.Option("--fill-missing", help="mean, median or zero for missing values [default: missing values are an error].")] = None,
    seed: Annotated[Optional[int], typer.Option("--seed", help="Random seed for the split, initial weights and order. [default: 0]")] = None,
    device: Annotated[Optional[str], typer.Option("--device", help="auto, cpu, cuda, cuda:N or mps. [default: auto]")] = None,
    precision: Annotated[Optional[str], typer.Option("--precision", help="fp32 or bf16 (autocast). [default: fp32]")] = None,
    checkpoint_every: Annotated[Optional[int], typer.Option("--checkpoint-every", min=1, help="Write OUT/checkpoint every N epochs.")] = None,
    global_batch_size: Annotated[Optional[int], typer.Option("--global-batch-size", min=1, help="Under torchrun: rows per step over all processes.")] = None,
    resume: Annotated[Optional[Path], typer.Option("--resume", help="Continue the run in this folder from its last checkpoint.")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Run folder to write. [default: runs/train]")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the final metrics as JSON on stdout.")] = False,
    nproc: Annotated[Optional[int], typer.Option("--nproc", min=1, help="Data-parallel over N processes on this machine (one per GPU), started through torch.distributed.run; leave out under torchrun.")] = None,
) -> None:
    """Train a network on a table and write a run folder (model, history.jsonl, loss.png)."""
    given = {
        "data": data, "target": _split_names(target), "features": _split_names(features),
        "hidden": None if hidden is None else parse_ints(hidden, option="--hidden"),
        "activation": activation, "dropout": dropout, "norm": norm, "epochs": epochs, "batch_size": batch_size,
        "lr": lr, "optimizer": optimizer, "loss": loss, "weight_decay": weight_decay,
        "clip_grad_norm": clip_grad_norm, "scheduler": scheduler, "val": val, "val_split": val_split,
        "early_stopping": early_stopping, "task": task, "scale": False if no_scale else None,
        "fill_missing": fill_missing, "seed": seed, "device": device, "precision": precision,
        "checkpoint_every": checkpoint_every, "global_batch_size": global_batch_size,
        "out": None if out is None else str(out),
    }
    args = _merge_args(given, resume)
    from .. import distributed

    if distributed.should_launch(nproc):  # start N workers that run this same command line
        raise typer.Exit(distributed.launch_local(nproc, distributed.relaunch_argv(ctx)))
    with distributed.session(device=args.device) as world:  # joins a torchrun job, if any
        run_training(args, resume=resume, quiet=quiet or not world.is_main, as_json=as_json, main=world.is_main)


def _merge_args(given: dict[str, Any], resume: Optional[Path]) -> TrainArgs:
    from ..errors import UsageError

    base: dict[str, Any] = {}
    if resume is not None:
        stored = resume / "checkpoint" / ARGS_FILE
        if not stored.is_file():
            raise UsageError(f"{resume}: no checkpoint/{ARGS_FILE}; resume a run that was trained with --checkpoint-every")
        base = json.loads(stored.read_text())
        base["out"] = str(resume)
    merged = {**asdict(TrainArgs()), **base, **{k: v for k, v in given.items() if v is not None}}
    if merged["data"] is None:
        raise UsageError("give a DATA file or dataset name, e.g. `torchann train data.csv --target price`")
    known = {f.name for f in fields(TrainArgs)}
    return TrainArgs(**{k: v for k, v in merged.items() if k in known})


def run_training(args: TrainArgs, *, resume: Optional[Path], quiet: bool, as_json: bool, main: bool = True) -> None:
    """Train and write the run folder; ``main`` False (ranks other than 0) trains and writes nothing."""
    from ..data import load_table
    from ..errors import TrainingError
    from ..files import atomic_write_text
    from ..plots import loss_curve_png
    from ..tabular import fit_table
    from ..train import Checkpointing, EarlyStopping, TrainingInterrupted
    from .progress import RichProgress

    console = stderr_console()
    out = Path(args.out)
    table = load_table(args.data, target=args.target, features=args.features)
    val_table = load_table(args.val, target=args.target, features=args.features) if args.val else None
    checkpoint = Checkpointing(out / "checkpoint", args.checkpoint_every) if args.checkpoint_every else None

    class _Progress(RichProgress):
        def on_train_start(self, **kw: Any) -> None:
            # Reached only after every input check passed: the first moment a file may appear.
            if checkpoint is not None:
                atomic_write_text(Path(checkpoint.directory) / ARGS_FILE, json.dumps(asdict(args), indent=2))
            super().on_train_start(**kw)

    with _Progress(console, enabled=not quiet) as bar:
        try:
            trained = fit_table(
                table, hidden=args.hidden, task=args.task, scale=args.scale, fill_missing=args.fill_missing,
                val_split=args.val_split, val_table=val_table, loss=args.loss, seed=args.seed,
                spec_options={"activation": args.activation, "dropout": args.dropout, "norm": args.norm},
                epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, optimizer=args.optimizer,
                weight_decay=args.weight_decay, clip_grad_norm=args.clip_grad_norm, scheduler=args.scheduler,
                early_stopping=args.early_stopping, device=args.device, precision=args.precision,
                checkpoint=checkpoint, resume=(out / "checkpoint") if resume is not None else None,
                global_batch_size=args.global_batch_size, progress=bar,
            )
        except TrainingError as err:
            history = getattr(err, "history", None)
            if main and history is not None and len(history) and out.is_dir():
                atomic_write_text(out / "history.jsonl", history.to_jsonl())
            if isinstance(err, TrainingInterrupted) and checkpoint is not None:
                raise TrainingInterrupted(
                    f"{str(err).split(';')[0]}; checkpoint written, continue with: torchann train --resume {out}"
                ) from None
            raise
    history = trained.history
    if not main:
        return
    trained.save(out, files={"history.jsonl": history.to_jsonl(), "loss.png": loss_curve_png(history)})
    final = history.records[-1]
    if as_json:
        typer.echo(json.dumps({"out": str(out), "epochs": len(history), "final": final, "info": history.info}, indent=2))
    else:
        shown = ", ".join(f"{k} {v:.4g}" for k, v in final.items() if isinstance(v, float) and k != "seconds")
        console.print(f"epoch {final['epoch']}: {shown}")
        console.print(f"wrote {out}/ (spec.json, weights.safetensors, history.jsonl, loss.png)")


@app.command("predict")
def predict_cmd(
    model_dir: Annotated[Path, typer.Argument(help="A model directory written by train, demo or save.", show_default=False)],
    rows: Annotated[Optional[list[str]], typer.Option("--input", "-i", help="One input row such as 10,11 (features in training order); repeat for more rows.")] = None,
    data: Annotated[Optional[Path], typer.Option("--data", help="A table; the model's feature columns are picked by name, others ignored.")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Write the CSV here instead of stdout.")] = None,
    proba: Annotated[bool, typer.Option("--proba", help="Add one probability column per class (classification).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print predictions as JSON instead of CSV.")] = False,
) -> None:
    """Predict with a saved model; CSV with one column named after each target, on stdout or --out."""
    from ..errors import UsageError

    if (rows is None) == (data is None):
        raise UsageError("give either --input ROW (repeatable) or --data FILE")
    columns = predict_columns(model_dir, rows=rows, data=data, proba=proba)
    if as_json:
        text = json.dumps({k: list(v) for k, v in columns.items()}, default=_plain) + "\n"
    else:
        text = _csv(columns)
    if out is None:
        sys.stdout.write(text)
    else:
        from ..files import atomic_write_text

        atomic_write_text(out, text)
        stderr_console().print(f"wrote {len(next(iter(columns.values())))} predictions to {out}")


def predict_columns(model_dir: Path, *, rows: Optional[list[str]], data: Optional[Path], proba: bool) -> dict[str, list]:
    """Prediction columns (name -> values) for raw rows or a table."""
    import numpy as np

    from ..data import Table, load_table
    from ..errors import UsageError
    from ..modeldir import read_model_dir
    from ..inference import predict
    from ..preprocess import Preprocessor

    loaded = read_model_dir(model_dir)
    extra = loaded.extra
    feature_names = extra.get("features") or [f"x{i}" for i in range(loaded.spec.in_features)]
    targets = extra.get("targets") or (["output"] if loaded.spec.out_features == 1 else
                                       [f"output{i}" for i in range(loaded.spec.out_features)])
    record = extra.get("preprocessor")
    pre = Preprocessor.from_dict(record) if record is not None else None
    if proba and (pre is None or pre.task.value != "classification"):
        raise UsageError(f"--proba needs a classifier, but {model_dir} predicts {', '.join(targets)} as numbers "
                         f"(regression); leave out --proba")
    if rows is not None:
        values = [parse_floats(r, option="--input") for r in rows] if pre is None else [
            [v.strip() for v in r.split(",")] for r in rows]
        names = pre.feature_names if pre is not None else feature_names
        bad = [r for r in values if len(r) != len(names)]
        if bad:
            raise UsageError(f"--input rows need {len(names)} values ({', '.join(names)}), got {len(bad[0])}")
        table = Table.from_columns({n: np.array([_number(r[i]) for r in values]) for i, n in enumerate(names)},
                                   source="--input")
    else:
        table = load_table(data)
    if pre is None:
        missing = [n for n in feature_names if n not in table.columns]
        if missing and extra.get("features"):
            raise UsageError(f"{data}: missing feature column(s) {', '.join(missing)}; the model was trained on "
                             f"{', '.join(feature_names)}")
        names = feature_names if not missing else [n for n in table.names][: loaded.spec.in_features]
        x = np.stack([np.asarray(table.columns[n], dtype=np.float32) for n in names], axis=1)
        outputs = predict(loaded.model, x).numpy()
        return {t: outputs[:, i].tolist() for i, t in enumerate(targets)}
    logits = predict(loaded.model, pre.transform_x(table))
    answers = pre.inverse_y(logits)
    if pre.task.value == "regression":
        answers = answers.reshape(len(answers), -1)
        cols = {t: answers[:, i].tolist() for i, t in enumerate(pre.target_names)}
    else:
        cols = {pre.target_names[0]: list(answers)}
        if proba:
            p = pre.proba(logits)
            cols.update({f"p({c})": p[:, i].tolist() for i, c in enumerate(pre.classes)})
    return cols


def _number(text: str) -> Any:
    try:
        return float(text)
    except ValueError:
        return text


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else str(value)


def _csv(columns: dict[str, list]) -> str:
    import csv
    import io

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in zip(*columns.values()):
        writer.writerow([repr(v) if isinstance(v, float) else _plain(v) for v in row])
    return buf.getvalue()
