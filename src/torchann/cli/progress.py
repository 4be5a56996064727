"""A rich progress bar on stderr that ``fit`` drives through its progress hooks."""

from __future__ import annotations

import time
from typing import Any

from ..core.options import EPOCH_FACTS

BAR_WIDTH = 20


def metrics_text(record: dict[str, Any], sep: str = ", ") -> str:
    """An epoch record's losses and metrics as ``loss 0.4, val_loss 0.42``: what the kept-epoch
    line and ``inspect`` show of an epoch (the run's facts, :data:`EPOCH_FACTS`, left out)."""
    return sep.join(f"{k} {v:.4g}" for k, v in record.items() if isinstance(v, float) and k not in EPOCH_FACTS)


class RichProgress:
    """Epochs as one bar, steps inside a long epoch as a second; live loss and metrics.

    Updates are throttled to a few per second so that drawing never slows training.
    """

    def __init__(self, console: Any, *, enabled: bool = True, refresh_s: float = 0.2, label: str = "epochs") -> None:
        self.console = console
        self.label = label  # the bar's name; each on_train_start adds a bar under the current label
        self.enabled = enabled
        self.refresh_s = refresh_s
        self._bar: Any = None
        self._last = 0.0

    def __enter__(self) -> "RichProgress":
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._bar = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(bar_width=BAR_WIDTH), MofNCompleteColumn(),
                TimeRemainingColumn(), TextColumn("{task.fields[info]}"),
                console=self.console, transient=False,
            )
            self._bar.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.stop()

    def on_train_start(self, *, epochs: int, steps_per_epoch: int, start_epoch: int) -> None:
        if self._bar is None:
            return
        self._total = epochs
        self._epochs = self._bar.add_task(self.label, total=epochs, completed=start_epoch, info="")
        self._steps = (
            self._bar.add_task("steps", total=steps_per_epoch, info="") if steps_per_epoch >= 200 else None
        )

    def on_step(self, *, epoch: int, step: int) -> None:
        if self._bar is None or self._steps is None:
            return
        now = time.monotonic()
        if now - self._last >= self.refresh_s:
            self._last = now
            self._bar.update(self._steps, completed=step)

    def on_epoch_end(self, record: dict[str, Any]) -> None:
        if self._bar is None:
            return
        self._bar.update(self._epochs, completed=record["epoch"], info=self._info(record))
        if self._steps is not None:
            self._bar.reset(self._steps)

    def _info(self, record: dict[str, Any]) -> str:
        """Losses first, then metrics, cut to the room the other columns leave on one line.

        (Left to rich, a long text squeezes the bar and the counts out of a narrow terminal.)
        """
        numbers = {k: v for k, v in record.items() if k not in EPOCH_FACTS and isinstance(v, float)}
        order = sorted(numbers, key=lambda k: (k.removeprefix("val_") != "loss", k.removeprefix("val_"), k))
        text = "  ".join(f"{k} {numbers[k]:.4g}" for k in order)
        digits = len(str(self._total))
        used = len(self.label) + BAR_WIDTH + (2 * digits + 1) + len("-:--:--") + 5  # columns and their gaps
        room = max(12, self.console.width - used)
        return text if len(text) <= room else text[: room - 1] + "…"


class PlainProgress:
    """One plain, flushed line per epoch on a stream that is not a terminal (``2> train.log``,
    a batch job), and a line every ``every_s`` seconds inside a long epoch, so a long job is
    never silent until it ends."""

    def __init__(self, stream: Any, *, enabled: bool = True, every_s: float = 10.0, label: str = "",
                 min_interval_s: float = 0.0) -> None:
        self.stream = stream
        self.enabled = enabled
        self.every_s = every_s
        self.label = label  # a prefix such as "start 2/3"
        self.min_interval_s = min_interval_s  # > 0: epoch lines at most this often (first and last always)
        self._epochs = 0
        self._steps = 0
        self._last = 0.0
        self._clock = time.monotonic

    def __enter__(self) -> "PlainProgress":
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def _line(self, text: str) -> None:
        if self.enabled:
            self.stream.write(text + "\n")
            self.stream.flush()

    def on_train_start(self, *, epochs: int, steps_per_epoch: int, start_epoch: int) -> None:
        self._epochs, self._steps, self._last = epochs, steps_per_epoch, self._clock()
        where = f", resuming after epoch {start_epoch}" if start_epoch else ""
        self._line(f"{self._prefix()}training: {epochs} epochs of {steps_per_epoch} steps{where}")

    def on_step(self, *, epoch: int, step: int) -> None:
        now = self._clock()
        if now - self._last >= self.every_s:
            self._last = now
            self._line(f"{self._prefix()}epoch {epoch + 1}/{self._epochs}: step {step}/{self._steps}")

    def _prefix(self) -> str:
        return f"{self.label}: " if self.label else ""

    def on_epoch_end(self, record: dict[str, Any]) -> None:
        now = self._clock()
        edge = record["epoch"] in (1, self._epochs)
        if not edge and now - self._last < self.min_interval_s:
            return
        self._last = now
        numbers = {k: v for k, v in record.items() if (k not in EPOCH_FACTS or k == "lr") and isinstance(v, float)}
        shown = "  ".join(f"{k} {v:.4g}" for k, v in numbers.items())
        self._line(f"{self._prefix()}epoch {record['epoch']}/{self._epochs}: {shown}  "
                   f"({record.get('seconds', 0.0):.2f} s)")


class HistoryLog:
    """Appends each epoch's record to ``RUN/history.jsonl`` as training runs (one flushed JSON
    line per epoch); the run folder is created when training starts. The final save rewrites
    the file whole."""

    def __init__(self, run_dir: Any, file_name: str = "history.jsonl") -> None:
        from pathlib import Path

        self.path = Path(run_dir) / file_name

    def on_train_start(self, *, epochs: int, steps_per_epoch: int, start_epoch: int) -> None:
        from ..core.errors import UsageError
        from ..core.files import atomic_write_text

        run = self.path.parent
        if run.exists() and not run.is_dir():
            raise UsageError(f"{run} exists and is not a folder; choose another place to write to")
        blocker = next((p for p in run.parents if p.exists() and not p.is_dir()), None)
        if blocker is not None:
            raise UsageError(f"cannot write {run}: {blocker} is a file, not a folder; choose another place")
        kept = []
        if start_epoch and self.path.is_file():  # a resumed run keeps the epochs it already ran
            kept = self.path.read_text(encoding="utf-8").splitlines(keepends=True)[:start_epoch]
        atomic_write_text(self.path, "".join(kept))  # creates the run folder

    def on_step(self, *, epoch: int, step: int) -> None:
        return None

    def on_epoch_end(self, record: dict[str, Any]) -> None:
        import json

        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()


class TrainProgress:
    """What ``torchann train`` passes to ``train``: the display (a rich bar on a terminal, plain
    lines otherwise) plus listeners (the per-epoch history log, TensorBoard)."""

    def __init__(self, console: Any, *, enabled: bool = True, run_dir: Any = None, tensorboard: bool = False) -> None:
        self.display: Any = display_for(console, enabled=enabled)
        self.listeners: list[Any] = []
        self._member = 0  # the network being trained, when train trains several (on_member)
        if run_dir is not None:
            self.listeners.append(HistoryLog(run_dir))
        if tensorboard:
            from ..report.tensorboard import TensorBoardLog

            self.listeners.append(TensorBoardLog(run_dir))

    def __enter__(self) -> "TrainProgress":
        self.display.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.display.__exit__(*exc)
        for listener in self.listeners:
            getattr(listener, "close", lambda: None)()

    def watch(self, network: Any) -> None:
        """The network being trained (TensorBoard draws its weights)."""
        for listener in self.listeners:
            getattr(listener, "watch", lambda _: None)(network)

    def on_member(self, index: int, count: int) -> None:
        """Network ``index`` of ``count`` (``networks``) starts: the display names it; the
        listeners (history log, TensorBoard) follow the first network only, whose epochs the
        saved history holds."""
        self._member = index
        if hasattr(self.display, "label"):
            self.display.label = f"network {index + 1}/{count}"

    def on_train_start(self, **kw: Any) -> None:
        if not self._member:
            for listener in self.listeners:
                listener.on_train_start(**kw)
        self.display.on_train_start(**kw)

    def on_step(self, **kw: Any) -> None:
        self.display.on_step(**kw)

    def on_epoch_end(self, record: dict[str, Any]) -> None:
        if not self._member:
            for listener in self.listeners:
                listener.on_epoch_end(record)
        self.display.on_epoch_end(record)


def display_for(console: Any, *, enabled: bool = True, min_interval_s: float = 0.0) -> Any:
    """A rich bar on a terminal, plain flushed lines when stderr is a file or a pipe."""
    if console.is_terminal:
        return RichProgress(console, enabled=enabled)
    return PlainProgress(console.file, enabled=enabled, min_interval_s=min_interval_s)


class StartsProgress:
    """One bar (or line prefix) per start when a run trains several starts and keeps one (the
    demo): ``start 1/3``, ``start 2/3``, ... so the display shows every run it reports."""

    def __init__(self, display: Any, starts: int) -> None:
        self.display = display
        self.starts = starts
        self._start = 0

    def __enter__(self) -> "StartsProgress":
        self.display.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.display.__exit__(*exc)

    def on_train_start(self, **kw: Any) -> None:
        self._start += 1
        self.display.label = f"start {self._start}/{self.starts}"
        self.display.on_train_start(**kw)

    def on_step(self, **kw: Any) -> None:
        self.display.on_step(**kw)

    def on_epoch_end(self, record: dict[str, Any]) -> None:
        self.display.on_epoch_end(record)
