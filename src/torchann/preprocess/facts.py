"""What the stored preprocessing noticed about new rows, row by row.

``Preprocessor.transform_x`` encodes every row it is given, but some rows are not like the
training rows: a category the model never saw (it sets no input of its column), a number
outside the training range (the network extrapolates), a missing value filled with the
training fill. :class:`InputFacts` holds, for each kind and column, the rows where that
happened. ``torchann predict`` counts the unseen categories and the numbers outside the range
from it (a warning line each, ``outside_text`` words the second); ``torchann serve`` answers
each request with the rows' facts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["InputFacts", "UNSEEN", "OUT_OF_RANGE", "FILLED", "outside_text", "UnseenCategoryWarning",
           "OutOfRangeWarning"]

UNSEEN = "unseen_category"  # a category never seen in training: no input of its column is set
OUT_OF_RANGE = "out_of_range"  # a number below the smallest or above the largest training value
FILLED = "missing_filled"  # a missing value replaced by the training fill (or its own category)
KINDS = (UNSEEN, OUT_OF_RANGE, FILLED)


class UnseenCategoryWarning(UserWarning):
    """Rows held categories the model never saw in training; they set no input of that column."""


class OutOfRangeWarning(UserWarning):
    """Rows held numbers below the smallest or above the largest training value of their column:
    the model's answers there are extrapolations."""


@dataclass
class InputFacts:
    """Row indices (0-based, into the rows given) per fact kind and column.

    Example:
        >>> x, facts = model.preprocessor.transform_x_facts(table)
        >>> facts.counts()                   # {'unseen_category': {'city': 2}}
        >>> facts.for_row(3)                 # [('city', 'unseen_category')]
    """

    rows: int
    kinds: dict[str, dict[str, np.ndarray]] = field(default_factory=lambda: {k: {} for k in KINDS})

    def add(self, kind: str, column: str, mask: np.ndarray | None) -> None:
        """Record the rows where ``mask`` is true (nothing when it is None or all false)."""
        if mask is not None and mask.any():
            self.kinds[kind][column] = np.flatnonzero(mask)

    def counts(self) -> dict[str, dict[str, int]]:
        """Kind -> column -> number of rows; kinds without rows are left out."""
        return {k: {c: int(r.size) for c, r in cols.items()} for k, cols in self.kinds.items() if cols}

    def __bool__(self) -> bool:
        return any(self.kinds.values())

    def by_row(self) -> list[list[tuple[str, str]]]:
        """One list per row of ``(column, kind)``, in column order within each kind."""
        out: list[list[tuple[str, str]]] = [[] for _ in range(self.rows)]
        for kind, cols in self.kinds.items():
            for column, rows in cols.items():
                for i in rows.tolist():
                    out[i].append((column, kind))
        return out

    def slice(self, start: int, stop: int) -> "InputFacts":
        """The facts of rows ``start:stop``, numbered from 0 again (one request of a batch)."""
        part = InputFacts(stop - start)
        for kind, cols in self.kinds.items():
            for column, rows in cols.items():
                inside = rows[(rows >= start) & (rows < stop)]
                if inside.size:
                    part.kinds[kind][column] = inside - start
        return part

    def for_row(self, i: int) -> list[tuple[str, str]]:
        return [(c, k) for k, cols in self.kinds.items() for c, rows in cols.items() if i in rows]


def outside_text(outside: dict[str, int], features: list, most: int = 5) -> str:
    """Rows outside the training range per column (``outside``) in words, the columns with the
    most rows first, each with its range (from ``features``, the preprocessor's)."""
    spans = {f.name: f.training_range for f in features if f.kind == "numeric"}
    ranked = sorted(outside.items(), key=lambda kv: -kv[1])
    parts = []
    for name, rows in ranked[:most]:
        span = spans.get(name)
        parts.append(f"{name!r}: {rows} row(s)" + (f" outside {span[0]:.6g} to {span[1]:.6g}" if span else ""))
    if len(ranked) > most:
        parts.append(f"and {len(ranked) - most} more column(s)")
    return ", ".join(parts)
