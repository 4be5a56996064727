"""The search space as data: each tuned parameter, its range, the default it starts from, and
where the range comes from. ``docs/tune.md`` prints ``markdown()`` of this table.

Only the network and the optimiser are searched: every trial trains on the same rows with
the same fitted preprocessing, so the best trials' networks can be averaged as one model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Param", "SPACE", "suggest", "default_params", "to_options", "markdown"]


@dataclass(frozen=True)
class Param:
    """One searched parameter."""

    name: str  # the name Optuna records (and optuna-dashboard shows)
    kind: str  # "int", "float" or "choice"
    low: float = 0.0  # range of an int or float
    high: float = 0.0
    log: bool = False  # sampled on a log scale
    choices: tuple[Any, ...] = ()  # the values of a "choice"
    meaning: str = ""  # what it sets in torchann.train
    source: str = ""  # where the range comes from

    def suggest(self, trial: Any) -> Any:
        if self.kind == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high), log=self.log)
        if self.kind == "float":
            return trial.suggest_float(self.name, self.low, self.high, log=self.log)
        return trial.suggest_categorical(self.name, list(self.choices))

    def shown_range(self) -> str:
        if self.kind == "choice":
            return "{" + ", ".join(str(c) for c in self.choices) + "}"
        scale = "LogUniform" if self.log else ("UniformInt" if self.kind == "int" else "Uniform")
        low, high = (int(self.low), int(self.high)) if self.kind == "int" else (self.low, self.high)
        return f"{scale}[{low:g}, {high:g}]"


_TABM = "TabM paper's MLP space (Gorishniy et al., 2025)"
_TABARENA = "TabArena's MLP space (Erickson et al., 2025)"

SPACE: tuple[Param, ...] = (
    Param("layers", "int", 1, 4, meaning="hidden layers (hidden = width repeated layers times)",
          source=f"{_TABM}: n_blocks; TabArena 1-5; capped at 4 for CPU budgets"),
    Param("width", "choice", choices=(64, 128, 256, 512, 1024), meaning="units in every hidden layer",
          source=f"{_TABM}: d_block 64-1024, here as powers of two"),
    Param("dropout", "float", 0.0, 0.5, meaning="dropout after each hidden layer",
          source=f"{_TABM}: dropout Uniform[0, 0.5]; {_TABARENA}: 0-0.4"),
    Param("lr", "float", 1e-4, 3e-3, log=True, meaning="AdamW learning rate",
          source=f"{_TABM}: LogUniform[3e-5, 1e-3]; {_TABARENA}: LogUniform[1e-4, 3e-2]; "
                 f"centred on torchann's default"),
    Param("weight_decay", "float", 1e-5, 1e-1, log=True, meaning="AdamW decoupled weight decay",
          source=f"{_TABM}: LogUniform[1e-4, 1e-1] or 0; widened down to 1e-5"),
)


def suggest(trial: Any) -> dict[str, Any]:
    """One point of the space, asked of an Optuna trial: ``{name: value}``."""
    return {p.name: p.suggest(trial) for p in SPACE}


def default_params() -> dict[str, Any]:
    """torchann's own defaults (``torchann.options``) as a point of the space: the first trial."""
    from ..core.options import option_default

    hidden = tuple(option_default("hidden"))
    decay = option_default("weight_decay")
    if decay is None:  # the declared default: 0.01 for adamw (optim.make_optimizer)
        decay = 0.01 if option_default("optimizer") == "adamw" else 0.0
    widths = set(hidden)
    if len(widths) != 1:  # pragma: no cover - only if the declared default changes shape
        raise ValueError(f"the default hidden {hidden} is not one width repeated; update tuning/space.py")
    return {"layers": len(hidden), "width": hidden[0], "dropout": float(option_default("dropout")),
            "lr": float(option_default("lr")), "weight_decay": float(decay)}


def to_options(params: dict[str, Any]) -> dict[str, Any]:
    """The ``torchann.train`` options a point of the space stands for."""
    return {"hidden": tuple([int(params["width"])] * int(params["layers"])), "dropout": float(params["dropout"]),
            "lr": float(params["lr"]), "weight_decay": float(params["weight_decay"]), "optimizer": "adamw"}


def markdown() -> str:
    """The space as a Markdown table (what ``docs/tune.md`` shows)."""
    defaults = default_params()
    lines = ["| parameter | range | default (first trial) | sets | source |", "|---|---|---|---|---|"]
    for p in SPACE:
        lines.append(f"| `{p.name}` | {p.shown_range()} | {defaults[p.name]:g} | {p.meaning} | {p.source} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # python -m torchann.tuning.space: the table for docs/tune.md
    print(markdown(), end="")
