"""``torchann train``: a table in, a run folder out. Parses flags, calls ``torchann.train``, saves.

Every training flag's default and help come from ``torchann.options``; ``args.json`` (beside
the checkpoints, for ``--resume``) stores the same flat options.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

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
    no_scale: Annotated[bool, typer.Option("--no-scale", help="Leave numbers as they are: no quantile map "
                                                              "or standardisation of numeric features (--scaling), "
                                                              "no standardisation of regression targets.")] = False,
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
    drop_missing_target: Annotated[Optional[bool], typer.Option("--drop-missing-target", help=_h("drop_missing_target"),
                                                                show_default=False)] = None,
    ensemble: Annotated[Optional[int], typer.Option("--ensemble", min=1, help=_h("ensemble"))] = None,
    networks: Annotated[Optional[int], typer.Option("--networks", min=1, help=_h("networks"))] = None,
    ple_bins: Annotated[Optional[int], typer.Option("--ple-bins", min=0, help=_h("ple_bins"))] = None,
    num_embeddings: Annotated[Optional[str], typer.Option("--num-embeddings", help=_h("num_embeddings"))] = None,
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
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No column plan and no progress bar.")] = False,
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
        "target_log": target_log, "class_weight": class_weight, "drop_missing_target": drop_missing_target,
        "ple_bins": ple_bins, "num_embeddings": num_embeddings, "ensemble": ensemble, "networks": networks,
        "time_budget": time_budget,
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
    from ..core.errors import TorchannError
    from ..model.rundir import claim_run_dir

    if not main:
        _run_training(args, None, resume=resume, quiet=quiet, as_json=as_json, main=False, tensorboard=False)
        return
    # The folder is chosen, checked (not `.`, not someone's files, not a run without --overwrite,
    # writable, room on the disk) and locked before training; released however the run ends.
    with claim_run_dir(args.get("out"), overwrite=overwrite, resume=resume is not None, data=args["data"]) as run:
        try:
            _run_training(args, run, resume=resume, quiet=quiet, as_json=as_json, main=True, tensorboard=tensorboard)
        except (TorchannError, typer.Exit):  # a stop torchann explains: its history stays to be read
            raise
        except BaseException:  # a crash or a closed pipe (`| head`): no half-written run folder
            run.discard()
            raise


def _run_training(args: dict[str, Any], run: Any, *, resume: Optional[Path], quiet: bool, as_json: bool,
                  main: bool, tensorboard: bool) -> None:
    from ..core.errors import TrainingError
    from ..core.files import atomic_write_text
    from ..core.options import TrainOptions
    from ..model.final_save import save_final
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

        def on_plan(self, plan: dict[str, Any]) -> None:  # before training: which columns, read how
            if not quiet:
                console.print(render_plan(plan), highlight=False, markup=False, soft_wrap=True)

    with _Progress(console, enabled=not quiet, run_dir=out if main else None,
                   tensorboard=tensorboard and main) as bar:
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
                               "early_stopping": stop, "kept_epoch": history.info.get("best_epoch") or len(history)},
                              indent=2, default=str))
        return
    console.print(kept_line(history), highlight=False, markup=False)
    if history.info.get("networks"):
        console.print(networks_line(history.info["networks"]), highlight=False, markup=False)
    console.print(f"wrote {out}/ (spec.json, weights.safetensors, history.jsonl, loss.png, report.html)",
                  highlight=False, markup=False)


def kept_line(history: Any) -> str:
    """Which epoch's weights the saved model holds, and that epoch's numbers:
    ``best epoch 37 of 53 kept (val_loss 0.42; stopped early): loss 0.4, ...``. (The last
    epoch's numbers are in the progress lines above; early stopping keeps another epoch.)"""
    n = len(history)
    best = history.info.get("best_epoch")
    if best and 0 < best <= n:
        record = history.records[best - 1]
        key = "val_loss" if "val_loss" in record else "loss"
        value = record.get(key)
        why = f"{key} {value:.4g}; " if isinstance(value, float) else ""
        how = "stopped early" if history.info.get("stopped_early") else "ran every epoch"
        head = f"best epoch {best} of {n} kept ({why}{how})"
    else:
        record = history.records[-1]
        head = f"last epoch {n} of {n} kept (no early stopping)"
    from .progress import metrics_text

    return f"{head}: {metrics_text(record)}"


def networks_line(networks: list[dict[str, Any]]) -> str:
    """``4 networks answer together (seeds 0-3; kept epochs 12, 9, 15, 11)``: what ``networks``
    trained; the kept-epoch line before it, history.jsonl and the report's curves are network 1's."""
    seeds = [n["seed"] for n in networks]
    kept = ", ".join(str(n["best_epoch"]) for n in networks)
    return (f"{len(networks)} networks answer together (seeds {seeds[0]}-{seeds[-1]}; kept epochs {kept}); "
            f"the kept-epoch line above and history.jsonl are network 1's")


PLAN_ROWS = 12  # more feature columns than this: one line per kind and encoding instead of one per column


def render_plan(plan: dict[str, Any]) -> str:
    """``column_plan``'s data as the lines ``train`` prints before training: a line per column as
    ``torchann inspect`` gives them, or, past ``PLAN_ROWS`` columns, one per kind and encoding."""
    from .inspect_cmd import feature_line

    feats, dropped = plan["features"], plan["dropped"]
    lines = [f"columns: {len(feats)} feature(s) -> {plan['inputs']} network input(s); predicting "
             f"{', '.join(map(str, plan['targets']))} ({plan['task']})"]
    if len(feats) <= PLAN_ROWS:
        width = max((len(str(f["name"])) for f in feats), default=4)
        lines += [feature_line(f, width) for f in feats]
    else:
        groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for f in feats:
            groups.setdefault((f["kind"], _method(f)), []).append(f)
        for (kind, method), members in groups.items():
            names = ", ".join(str(f["name"]) for f in members[:6]) + (
                f", ... ({len(members) - 6} more)" if len(members) > 6 else "")
            lines.append(f"  {len(members):>4} {kind:<11} {sum(f['inputs'] for f in members):>4} input(s)  "
                         f"{method}: {names}")
    if dropped:
        shown = list(dropped.items())
        text = "; ".join(f"{name} ({why})" for name, why in shown[:PLAN_ROWS])
        more = f"; ... ({len(shown) - PLAN_ROWS} more)" if len(shown) > PLAN_ROWS else ""
        lines.append(f"  dropped {len(shown)}: {text}{more}")
    return "\n".join(lines)


def _method(feature: dict[str, Any]) -> str:
    """A column's encoding without its numbers, to group many columns: ``standardised``,
    ``one-hot``, ``quantile scores``, ``date``, ``as is`` (+ ``missing indicator``)."""
    text = str(feature["encoding"])
    for cut in (" (", " over "):
        text = text.split(cut)[0]
    return text + (" + missing indicator" if "missing-value indicator" in str(feature["encoding"]) else "")


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
