"""``torchann tune``: search a table's network and optimiser options; write one model directory.

Parses the flags, calls ``torchann.tune``, prints one line per finished trial (rich on a
terminal, a plain flushed line in a log) and saves the model into ``--out`` beside the study
(``study.db``) and the trials (``trials/``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ..core.options import option_help as _h
from ._app import app, stderr_console


@app.command("tune", short_help="Search a network's options with Optuna; write the best model or ensemble.")
def tune_cmd(
    data: Annotated[str, typer.Argument(help="CSV/TSV/Parquet file, or a built-in dataset such as sklearn:iris.",
                                        show_default=False)],
    target: Annotated[Optional[str], typer.Option("--target", "-t", help=_h("target") + " Comma-separated.")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Model directory to write; it also holds the study "
                                                          "(study.db) and the trials (trials/).",
                                      show_default=False)] = Path("runs/tune"),
    trials: Annotated[Optional[int], typer.Option(
        "--trials", help="Trials the study should hold, over all workers [default: 20 unless --time].")] = None,
    time: Annotated[Optional[float], typer.Option("--time", help="Seconds to spend starting trials.")] = None,
    storage: Annotated[Optional[str], typer.Option(
        "--storage", help="Optuna storage URL instead of OUT/study.db: journal:PATH (several processes on one "
                          "machine), postgresql://USER:PASSWORD@HOST/DB (several hosts).")] = None,
    study: Annotated[Optional[str], typer.Option("--study", help="Study name; the same name continues it "
                                                                 "[default: torchann].")] = None,
    artifacts: Annotated[Optional[Path], typer.Option(
        "--artifacts", help="Folder for the trials' networks and validation answers, reachable by every worker "
                            "[default: OUT/trials].")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the validation split and the search.")] = 0,
    no_ensemble: Annotated[bool, typer.Option("--no-ensemble", help="Keep the best trial alone.")] = False,
    finish: Annotated[bool, typer.Option("--finish", help="Run no trial: build the model from every worker's "
                                                          "trials in the study.")] = False,
    epochs: Annotated[Optional[int], typer.Option("--epochs", min=1, help=_h("epochs"))] = None,
    val_split: Annotated[Optional[float], typer.Option("--val-split", min=0.01, max=0.9, help=_h("val_split"))] = None,
    pruner: Annotated[Optional[str], typer.Option("--pruner", help="median, hyperband or none "
                                                                   "[default: median].")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the outcome as JSON on stdout.")] = False,
) -> None:
    """Search with Optuna (TPE, pruned per epoch); the study continues where it stopped."""
    from ..core.errors import UsageError
    from ..tuning.search import tune
    from ..tuning.search import DEFAULT_PRUNER

    if trials is not None and trials < 1:
        raise UsageError(f"--trials must be at least 1, got {trials}; the study runs until it holds that many trials")
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} exists and is not a directory; choose another --out")
    fixed: dict[str, Any] = {k: v for k, v in (("epochs", epochs), ("val_split", val_split)) if v is not None}
    console = stderr_console()
    lines = TrialLines(console)
    model = tune(data, target=[t.strip() for t in target.split(",")] if target else None, trials=trials,
                 time=time, out=out, storage=storage, study=study, seed=seed, ensemble=not no_ensemble,
                 finish=finish, artifacts=artifacts, pruner=pruner or DEFAULT_PRUNER, progress=lines, **fixed)
    model.save(out)
    info = model.history.info["tune"]
    val = model._run_rows.split("validation")  # noqa: SLF001 - the rows tune compared the trials on
    scores = model.evaluate(val) if val is not None else {}
    finished = sum(1 for t in info["trials"] if t["state"] in ("complete", "pruned"))
    if as_json:
        typer.echo(json.dumps({"out": str(out), "chosen": info["chosen"], "members": info["members"],
                               "best_trial": info["best_trial"], "best_value": info["best_value"],
                               "ensemble_value": (info["ensemble"] or {}).get("value"), "trials": finished,
                               "study": info["study"], "storage": info["storage"], "validation": scores}, indent=2))
        return
    what = (f"an ensemble of {len(info['members'])} trials ({', '.join(str(m['trial']) for m in info['members'])})"
            if info["chosen"] == "ensemble" else f"trial {info['best_trial']}")
    main = "accuracy" if "accuracy" in scores else "r2"
    shown = f", validation {main} {scores[main]:.4g}" if main in scores else ""
    console.print(f"{finished} trials in study {info['study']!r}; kept {what}{shown}; wrote {out}",
                  highlight=False, soft_wrap=True)


class TrialLines:
    """One line per finished trial: a coloured one on a terminal, a plain flushed one in a log."""

    def __init__(self, console: Any, stream: Any = None) -> None:
        self.console = console
        self.stream = stream if stream is not None else sys.stderr
        self.terminal = bool(getattr(self.stream, "isatty", lambda: False)())

    def on_trial_end(self, record: dict[str, Any]) -> None:
        of = f"/{record['trials']}" if record.get("trials") else ""
        value = "" if record.get("value") is None else f" value {record['value']:.5g}"
        best = "" if record.get("best") is None else f" best {record['best']:.5g}"
        params = " ".join(f"{k}={_short(v)}" for k, v in record.get("params", {}).items())
        text = (f"trial {record['number']} ({record['finished']}{of}) {record['state']}{value}{best} "
                f"epochs {record.get('epochs')} {params}")
        if self.terminal:
            colour = {"complete": "green", "pruned": "yellow"}.get(record["state"], "red")
            self.console.print(f"[{colour}]{text}[/{colour}]", highlight=False, soft_wrap=True)
        else:
            self.stream.write(text + "\n")
            self.stream.flush()


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)
