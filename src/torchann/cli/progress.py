"""A rich progress bar on stderr that ``fit`` drives through its progress hooks."""

from __future__ import annotations

import time
from typing import Any


BAR_WIDTH = 20


class RichProgress:
    """Epochs as one bar, steps inside a long epoch as a second; live loss and metrics.

    Updates are throttled to a few per second so that drawing never slows training.
    """

    def __init__(self, console: Any, *, enabled: bool = True, refresh_s: float = 0.2) -> None:
        self.console = console
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
        self._epochs = self._bar.add_task("epochs", total=epochs, completed=start_epoch, info="")
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
        numbers = {k: v for k, v in record.items() if k not in ("epoch", "seconds", "lr") and isinstance(v, float)}
        order = sorted(numbers, key=lambda k: (k.removeprefix("val_") != "loss", k.removeprefix("val_"), k))
        text = "  ".join(f"{k} {numbers[k]:.4g}" for k in order)
        digits = len(str(self._total))
        used = len("epochs") + BAR_WIDTH + (2 * digits + 1) + len("-:--:--") + 5  # columns and their gaps
        room = max(12, self.console.width - used)
        return text if len(text) <= room else text[: room - 1] + "…"
