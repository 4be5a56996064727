"""Post-hoc ensembling: Caruana's greedy selection on the trials' validation answers, and the
chosen trials' networks joined into one model (``EnsembleSpec`` / ``Members``).

Greedy selection with replacement (Caruana et al., "Ensemble selection from libraries of
models", ICML 2004): start from the best trial, then ``rounds`` times add whichever trial (again,
if it helps most) makes the averaged answers' validation loss lowest. The counts become the
members' weights. The average is taken where members combine (``members.py``): scaled outputs
for regression, class probabilities for classes.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .objective import VAL_FILE, combine_space, validation_loss

__all__ = ["Selection", "caruana", "load_candidates", "join", "ROUNDS", "CANDIDATES"]

ROUNDS = 25  # additions after the first member (AutoGluon's and TabArena's post-hoc ensembles use 25-40)
CANDIDATES = 20  # the best trials the selection may draw from


@dataclass(frozen=True)
class Selection:
    """The outcome of the greedy selection."""

    counts: dict[int, int]  # trial number -> times chosen
    value: float  # validation loss of the weighted average
    best_single: float  # validation loss of the best trial alone
    path: tuple[float, ...]  # the loss after each addition

    @property
    def members(self) -> list[int]:
        return sorted(self.counts, key=lambda n: (-self.counts[n], n))


def caruana(answers: dict[int, np.ndarray], truth: np.ndarray, task: str, *, rounds: int = ROUNDS) -> Selection:
    """Greedy selection with replacement over ``answers`` (trial number -> validation answers)."""
    if not answers:
        raise ValueError("no trials to choose from")
    numbers = sorted(answers)
    losses = {n: validation_loss(answers[n], truth, task) for n in numbers}
    first = min(numbers, key=lambda n: (losses[n], n))
    picks, path = [first], [losses[first]]
    total = answers[first].astype(np.float64).copy()
    for size in range(2, rounds + 2):
        value, chosen = min((validation_loss((total + answers[n]) / size, truth, task), n) for n in numbers)
        total += answers[chosen]
        picks.append(chosen)
        path.append(value)
    best_size = int(np.argmin(path)) + 1  # later additions that did not help are dropped again
    counts = dict(Counter(picks[:best_size]))
    return Selection(counts=counts, value=float(path[best_size - 1]), best_single=losses[first], path=tuple(path))


def load_candidates(trials: Sequence[Any], root: Path, *, limit: int = CANDIDATES) -> tuple[dict[int, np.ndarray],
                                                                                          list[str]]:
    """The validation answers of the best ``limit`` complete trials that left an artifact under
    ``root``; also a note for each trial whose artifact could not be read."""
    done = sorted((t for t in trials if t.value is not None and "artifact" in t.user_attrs),
                  key=lambda t: (t.value, t.number))[:limit]
    answers, notes = {}, []
    for t in done:
        path = root / str(t.user_attrs["artifact"]) / VAL_FILE
        try:
            answers[t.number] = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as err:
            notes.append(f"trial {t.number}: no validation answers at {path} ({type(err).__name__}); left out")
    return answers, notes


def join(folders: Sequence[Path], weights: Sequence[float], task: str) -> tuple[Any, Any]:
    """``(network, preprocessor)`` of the trials in ``folders`` joined with ``weights``; every
    trial must have the same preprocessing (the study fixes it), or this raises. A trial that is
    itself an ensemble (trial 0, the defaults' networks) adds its members, its weight shared by
    them as in its own answer, so the joined network answers as the weighted trials do."""
    from ..core.errors import ModelFileError
    from ..network.members import Members, joined
    from ..api.model import load

    models = [load(f) for f in folders]
    record = models[0].preprocessor.to_dict()
    for f, m in zip(folders[1:], models[1:]):
        if m.preprocessor.to_dict() != record:
            raise ModelFileError(f"{f}: its preprocessing differs from {folders[0]}'s, so the two cannot be averaged; "
                                 f"were they trained on the same table?")
    if len(models) == 1:
        return models[0].network, models[0].preprocessor
    networks, shares = [], []
    for m, weight in zip(models, weights):  # a trial with several networks (trial 0) adds each of them
        inner = m.network.members if isinstance(m.network, Members) else [m.network]
        inner_weights = m.network.spec.weights if isinstance(m.network, Members) else [1.0]
        networks.extend(inner)
        shares.extend(float(weight) * float(w) for w in inner_weights)
    network = joined(networks, combine_space(task), weights=shares)
    return network, models[0].preprocessor
