"""``torchann train``: a table in, a run folder out. Parses flags, calls ``torchann.train``, saves.

Every training flag's default and help come from ``torchann.options``; ``args.json`` (beside
the checkpoints, for ``--resume``) stores the same flat options.
"""

from __future__ import annotations

import contextlib
import json
import warnings
from pathlib import Path
from typing import Annotated, Any, Iterator, Optional

import typer

from ..core.options import option_help as _h
from ._app import app, parse_ints, stderr_console

ARGS_FILE = "args.json"  # the train command's options, beside the checkpoints, for --resume
DEFAULT_OUT = "runs/<data name>"  # then -2, -3, ...: see torchann.rundir.claim_run_dir
RUN_KEYS = ("data", "val", "out", "checkpoint_every", "global_batch_size")  # not model options


def _names(text: Optional[str]) -> Optional[list[str]]:
    return None if text is None else [t.strip() for t in text.split(",") if t.strip()]


@app.command("train", short_help="Train a network on a table; write a run folder.")
def train_cmd(
    ctx: typer.Context,
    data: Annotated[Optional[str], typer.Argument(
        help="CSV/TSV/Parquet/.npy/.npz file, or a built-in dataset such as add, moons, sklearn:iris.",
        show_default=False)] = None,
    target: Annotated[Optional[str], typer.Option("--target", "-t", help=_h("target") + " Comma-separated.")] = None,
    features: Annotated[Optional[str], typer.Option("--features", help=_h("features") + " Comma-separated.")] = None,
    exclude: Annotated[Optional[str], typer.Option("--exclude", help=_h("exclude") + " Comma-separated.")] = None,
    task: Annotated[Optional[str], typer.Option("--task", help=_h("task"))] = None,
    val: Annotated[Optional[str], typer.Option("--val", help="A validation file with the same columns "
                                                            "(instead of --val-split).")] = None,
    val_split: Annotated[Optional[float], typer.Option("--val-split", help=_h("val_split"))] = None,
    no_scale: Annotated[bool, typer.Option("--no-scale", help="Do not standardise features and regression "
                                                              "targets.")] = False,
    fill_missing: Annotated[Optional[str], typer.Option("--fill-missing", help=_h("fill_missing"))] = None,
    hidden: Annotated[Optional[str], typer.Option("--hidden", help=_h("hidden"))] = None,
    activation: Annotated[Optional[str], typer.Option("--activation", help=_h("activation"))] = None,
    dropout: Annotated[Optional[float], typer.Option("--dropout", min=0.0, max=0.99, help=_h("dropout"))] = None,
    norm: Annotated[Optional[str], typer.Option("--norm", help=_h("norm"))] = None,
    epochs: Annotated[Optional[int], typer.Option("--epochs", min=1, help=_h("epochs"))] = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", min=1, help=_h("batch_size"))] = None,
    lr: Annotated[Optional[float], typer.Option("--lr", min=0.0, help=_h("lr"))] = None,
    optimizer: Annotated[Optional[str], typer.Option("--optimizer", help=_h("optimizer"))] = None,
    loss: Annotated[Optional[str], typer.Option("--loss", help=_h("loss"))] = None,
    weight_decay: Annotated[Optional[float], typer.Option("--weight-decay", min=0.0, help=_h("weight_decay"))] = None,
    momentum: Annotated[Optional[float], typer.Option("--momentum", min=0.0, help=_h("momentum"))] = None,
    clip_grad_norm: Annotated[Optional[float], typer.Option("--clip-grad-norm", min=0.0,
                                                            help=_h("clip_grad_norm"))] = None,
    scheduler: Annotated[Optional[str], typer.Option("--scheduler", help=_h("scheduler"))] = None,
    early_stopping: Annotated[Optional[int], typer.Option("--early-stopping", min=0,
                                                          help=_h("early_stopping"))] = None,
    seed: Annotated[Optional[int], typer.Option("--seed", help=_h("seed"))] = None,
    device: Annotated[Optional[str], typer.Option("--device", help=_h("device"))] = None,
    precision: Annotated[Optional[str], typer.Option("--precision", help=_h("precision"))] = None,
    threads: Annotated[Optional[int], typer.Option("--threads", min=1, help=_h("threads"))] = None,
    scaling: Annotated[Optional[str], typer.Option("--scaling", help=_h("scaling"))] = None,
    target_log: Annotated[Optional[bool], typer.Option("--target-log/--no-target-log", help=_h("target_log"),
                                                       show_default=False)] = None,
    class_weight: Annotated[Optional[str], typer.Option("--class-weight", help=_h("class_weight"))] = None,
    ensemble: Annotated[Optional[int], typer.Option("--ensemble", min=1, help=_h("ensemble"))] = None,
    ple_bins: Annotated[Optional[int], typer.Option("--ple-bins", min=0, help=_h("ple_bins"))] = None,
    time_budget: Annotated[Optional[float], typer.Option("--time-budget", min=0.0, help=_h("time_budget"),
                                                         metavar="SECONDS")] = None,
    checkpoint_every: Annotated[Optional[int], typer.Option("--checkpoint-every", min=1,
                                                            help="Write OUT/checkpoint every N epochs.")] = None,
    global_batch_size: Annotated[Optional[int], typer.Option("--global-batch-size", min=1,
                                                             help="Under torchrun: rows per step over all "
                                                                  "processes.")] = None,
    resume: Annotated[Optional[Path], typer.Option("--resume", help="Continue the run in this folder from its "
                                                                    "last checkpoint.")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help=f"Run folder to write; a new or empty folder, "
                                                                    f"or a run with --overwrite. [default: "
                                                                    f"{DEFAULT_OUT}, then -2, -3, ...]")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace the run already in --out.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    tensorboard: Annotated[bool, typer.Option("--tensorboard", help="Also write scalars and weight histograms to "
                                                                    "OUT/tensorboard/ (extra [tensorboard]).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the final metrics as JSON on stdout.")] = False,
    nproc: Annotated[Optional[int], typer.Option("--nproc", min=1, help="Data-parallel over N processes on this "
                                                 "machine (one per GPU); leave out under torchrun.")] = None,
) -> None:
    """Train a network on a table and write a run folder (model, history.jsonl, loss.png, report.html)."""
    given = {
        "data": data, "val": val, "out": None if out is None else str(out),
        "checkpoint_every": checkpoint_every, "global_batch_size": global_batch_size,
        "target": _names(target), "features": _names(features), "exclude": _names(exclude), "task": task,
        "val_split": val_split, "scale": False if no_scale else None,
        "fill_missing": fill_missing, "hidden": None if hidden is None else parse_ints(hidden, option="--hidden"),
        "activation": activation, "dropout": dropout, "norm": norm, "epochs": epochs, "batch_size": batch_size,
        "lr": lr, "optimizer": optimizer, "loss": loss, "weight_decay": weight_decay, "momentum": momentum,
        "clip_grad_norm": clip_grad_norm, "scheduler": scheduler, "early_stopping": early_stopping, "seed": seed,
        "device": device, "precision": precision, "threads": threads, "scaling": scaling,
        "target_log": target_log, "class_weight": class_weight, "ple_bins": ple_bins, "ensemble": ensemble, "time_budget": time_budget,
    }
    if fill_missing is not None and fill_missing.strip().lower() == "none":
        given["fill_missing"] = "none"
    if val is not None and val_split is not None:
        from ..core.errors import UsageError

        raise UsageError("give either --val FILE or --val-split FRACTION, not both")
    args = _merge_args(given, resume)
    from ..training import distributed
    from .relaunch import relaunch_argv

    if distributed.should_launch(nproc):  # start N workers that run this same command line
        raise typer.Exit(distributed.launch_local(nproc, relaunch_argv(ctx)))
    with distributed.session(device=args.get("device") or "auto") as world:  # joins a torchrun job, if any
        run_training(args, resume=resume, quiet=quiet or not world.is_main, as_json=as_json, main=world.is_main,
                     tensorboard=tensorboard, overwrite=overwrite)


def _merge_args(given: dict[str, Any], resume: Optional[Path]) -> dict[str, Any]:
    """What was typed, over what the resumed run stored, over nothing: unset options take the
    declared defaults inside ``torchann.train``."""
    from ..core.errors import UsageError

    from ..model.run_args import read_args

    base: dict[str, Any] = {}
    if resume is not None:
        stored = resume / "checkpoint" / ARGS_FILE
        if not stored.exists():
            raise UsageError(f"{resume}: no checkpoint/{ARGS_FILE}; resume a run that was trained with "
                             f"--checkpoint-every")
        base = read_args(stored)  # one line naming the file and the field when it is damaged
        base["out"] = str(resume)
    merged = {**base, **{k: v for k, v in given.items() if v is not None}}
    if merged.get("data") is None:
        raise UsageError("give a DATA file or dataset name, e.g. `torchann train data.csv --target price`")
    if merged.get("fill_missing") == "none":
        merged["fill_missing"] = None
    return merged


def run_training(args: dict[str, Any], *, resume: Optional[Path], quiet: bool, as_json: bool,
                 main: bool = True, tensorboard: bool = False, overwrite: bool = False) -> None:
    """Train and write the run folder; ``main`` False (ranks other than 0) trains and writes nothing."""
    from ..model.rundir import claim_run_dir

    if not main:
        _run_training(args, None, resume=resume, quiet=quiet, as_json=as_json, main=False, tensorboard=False)
        return
    # The folder is chosen, checked (not `.`, not someone's files, not a run without --overwrite,
    # writable, room on the disk) and locked before training; released however the run ends.
    with claim_run_dir(args.get("out"), overwrite=overwrite, resume=resume is not None, data=args["data"]) as run:
        _run_training(args, run, resume=resume, quiet=quiet, as_json=as_json, main=True, tensorboard=tensorboard)


def _run_training(args: dict[str, Any], run: Any, *, resume: Optional[Path], quiet: bool, as_json: bool,
                  main: bool, tensorboard: bool) -> None:
    from ..core.errors import TrainingError
    from ..core.files import atomic_write_text
    from ..core.options import TrainOptions
    from ..model.rundir import save_final
    from ..training.fitting import Checkpointing, TrainingInterrupted
    from ..api.tabular import train
    from .progress import TrainProgress

    console = stderr_console()
    out = run.path if run is not None else Path(args.get("out") or "runs/train")
    options = {k: v for k, v in args.items() if k not in RUN_KEYS}
    every = args.get("checkpoint_every")
    checkpoint = Checkpointing(out / "checkpoint", every) if every else None

    class _Progress(TrainProgress):
        def on_train_start(self, **kw: Any) -> None:
            # Reached only after every input check passed: the first moment a file may appear.
            if checkpoint is not None:  # every option, defaults resolved: a resume trains the same way
                stored = {**TrainOptions.from_flat(options).to_flat(), **{k: args.get(k) for k in RUN_KEYS},
                          "out": str(out)}
                atomic_write_text(Path(checkpoint.directory) / ARGS_FILE, json.dumps(stored, indent=2))
            super().on_train_start(**kw)

    with _Progress(console, enabled=not quiet, run_dir=out if main else None,
                   tensorboard=tensorboard and main) as bar, warnings_to(console):
        try:
            model = train(args["data"], val=args.get("val"), progress=bar, checkpoint=checkpoint,
                          resume=(out / "checkpoint") if resume is not None else None,
                          global_batch_size=args.get("global_batch_size"), **options)
        except TrainingError as err:
            history = getattr(err, "history", None)
            if main and history is not None and len(history) and out.is_dir():
                atomic_write_text(out / "history.jsonl", history.to_jsonl())
            if isinstance(err, TrainingInterrupted) and checkpoint is not None:
                raise TrainingInterrupted(
                    f"interrupted at epoch {err.epoch}, step {err.step}; checkpoint written, continue with: "
                    f"torchann train --resume {out}", history=err.history, epoch=err.epoch, step=err.step,
                    checkpoint=err.checkpoint, signal=err.signal) from None
            raise
    if not main:
        return
    save_final(model.save, run, checkpoint=out / "checkpoint")  # a full disk keeps the model elsewhere
    history = model.history
    final = history.records[-1]
    stop = stopping_line(history)
    if as_json:
        typer.echo(json.dumps({"out": str(out), "epochs": len(history), "final": final, "info": history.info,
                               "early_stopping": stop}, indent=2, default=str))
        return
    shown = ", ".join(f"{k} {v:.4g}" for k, v in final.items() if isinstance(v, float) and k not in ("seconds", "lr"))
    console.print(f"epoch {final['epoch']}: {shown}", highlight=False)
    if stop:
        console.print(stop, highlight=False)
    console.print(f"wrote {out}/ (spec.json, weights.safetensors, history.jsonl, loss.png, report.html)",
                  highlight=False)


def stopping_line(history: Any) -> str | None:
    """``stopped at epoch 10, restored epoch 8 (best val_loss 0.42)``, or None without early stopping."""
    best = history.info.get("best_epoch")
    if not best:
        return None
    record = history.records[best - 1] if 0 < best <= len(history) else {}
    key = "val_loss" if "val_loss" in record else "loss"
    value = record.get(key)
    best_text = f" (best {key} {value:.4g})" if isinstance(value, float) else ""
    if history.info.get("stopped_early"):
        return f"stopped at epoch {len(history)}, restored epoch {best}{best_text}"
    return f"trained every epoch ({len(history)}), kept epoch {best}{best_text}"


@contextlib.contextmanager
def warnings_to(console: Any) -> Iterator[None]:
    """Show Python warnings raised while training as one ``warning:`` line each on stderr."""
    previous = warnings.showwarning

    def show(message: Any, category: Any, filename: str, lineno: int, file: Any = None, line: Any = None) -> None:
        console.print(f"warning: {message}", highlight=False, markup=False, soft_wrap=True)

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = previous
