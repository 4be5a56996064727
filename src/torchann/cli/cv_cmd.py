"""``torchann cv``: k-fold cross-validation of ``torchann train``'s options on one table.

The command takes ``train``'s model options (``--hidden``, ``--epochs``, ``--scaling``, ...)
as they are: its signature is built from ``train_cmd``'s own parameters, so the two can never
offer different flags, help or checks. It calls ``torchann.cross_validate`` and prints each
fold's scores with their mean and spread (``--json`` for programs).
"""

from __future__ import annotations

import inspect
import json
from typing import Annotated, Any, Optional

import typer

from ._app import app, parse_ints, stderr_console
from .train_cmd import train_cmd

# train's parameters that are not model options, or that cv declares itself.
_NOT_SHARED = {"ctx", "data", "val", "checkpoint_every", "global_batch_size", "resume", "out", "overwrite",
               "quiet", "tensorboard", "as_json", "nproc"}


def cv_cmd(
    data: Annotated[str, typer.Argument(help="CSV/TSV/Parquet/.npy/.npz file, or a built-in dataset such as "
                                             "sklearn:iris.", show_default=False)],
    folds: Annotated[int, typer.Option("--folds", "-k", min=2, help="How many folds (KFold for regression, "
                                                                   "StratifiedKFold for classes, shuffled).")] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="Print every fold's scores, the mean and std as JSON "
                                                        "on stdout.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No line per fold on stderr.")] = False,
    **flags: Any,
) -> None:
    """Cross-validate: train on k-1 folds, score the held-out fold, k times; each fold's scores, mean and std."""
    from ..api.cv import cross_validate

    options = _options(flags)
    console = stderr_console()

    def on_fold(fold: Any) -> None:
        if not quiet:
            shown = ", ".join(f"{k} {v:.4g}" for k, v in fold.scores.items())
            console.print(f"fold {fold.fold}/{folds}: {shown} ({len(fold.test_rows)} rows; {fold.epochs} epochs)",
                          highlight=False, markup=False, soft_wrap=True)

    result = cross_validate(data, folds=folds, on_fold=on_fold, **options)  # warnings: cli/_app.py prints them
    if as_json:
        typer.echo(json.dumps({"data": data, **result.to_dict()}, indent=2))
        return
    from .tables import print_table

    names = result.metrics
    rows = [[str(f.fold), *(f"{f.scores[m]:.6g}" for m in names), str(len(f.test_rows))] for f in result.folds]
    rows.append(["mean", *(f"{result.mean[m]:.6g}" for m in names), ""])
    rows.append(["std", *(f"{result.std[m]:.6g}" for m in names), ""])
    split = "StratifiedKFold" if result.stratified else "KFold"
    print_table(f"{result.task}: {len(result.folds)}-fold cross-validation of {data} ({result.rows} rows)",
                ["fold", *names, "rows"], rows,
                notes=[f"folds: scikit-learn's {split}(shuffle=True, random_state={result.seed}); "
                       f"std is over folds (ddof 0)"])


def _options(flags: dict[str, Any]) -> dict[str, Any]:
    """train's flags as ``torchann.train`` options; unset ones are left to the declared defaults."""
    options: dict[str, Any] = {}
    for name, value in flags.items():
        if name == "no_scale":
            if value:
                options["scale"] = False
        elif value is None:
            continue
        elif name in ("target", "features", "exclude"):
            options[name] = [t.strip() for t in value.split(",") if t.strip()]
        elif name == "hidden":
            options[name] = parse_ints(value, option="--hidden")
        elif name == "fill_missing" and value.strip().lower() == "none":
            options[name] = None
        else:
            options[name] = value
    return options


def _with_train_options(func: Any) -> Any:
    """``func``'s own parameters followed by train's model options (evaluated annotations)."""
    own = [p for p in inspect.signature(func, eval_str=True).parameters.values() if p.kind is not p.VAR_KEYWORD]
    shared = [p for name, p in inspect.signature(train_cmd, eval_str=True).parameters.items() if name not in _NOT_SHARED]
    names = {p.name for p in own}

    def command(**kwargs: Any) -> None:
        func(**{k: v for k, v in kwargs.items() if k in names},
             **{k: v for k, v in kwargs.items() if k not in names})

    command.__name__, command.__doc__ = func.__name__, func.__doc__
    command.__signature__ = inspect.Signature([*own, *shared])  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in (*own, *shared)}
    return command


app.command("cv", short_help="K-fold cross-validation of train's options: fold scores, mean, std.")(
    _with_train_options(cv_cmd))
