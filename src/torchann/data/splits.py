"""Seeded train/validation splits of row indices, stratified by class when asked."""

from __future__ import annotations

import math
import numbers
from typing import Any, Iterable

import numpy as np

from ..core.checks import check_non_negative_int, check_seed
from ..core.errors import DataError, UsageError

__all__ = ["split_indices"]



def _n_val(n: int, val_fraction: float) -> int:
    if val_fraction == 0:
        return 0
    if n < 2:
        raise DataError(f"cannot hold out validation rows from a table of {n} row(s); use a validation fraction of 0")
    return min(max(int(math.floor(n * val_fraction + 0.5)), 1), n - 1)


def split_indices(n: int, val_fraction: float, *, seed: int,
                  stratify: Iterable[Any] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Seeded train/validation row indices, each sorted ascending.

    ``round(n * val_fraction)`` rows (at least 1 when the fraction is above 0, at most n - 1)
    go to validation. With ``stratify`` (one class label per row) each class contributes its
    share, rounded by largest remainder so the total stays exact; a class of one row stays in
    training, and every class keeps at least one training row.
    """
    n = check_non_negative_int("n", n)
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, numbers.Real):
        raise UsageError(f"validation fraction must be a number in [0, 1), got {val_fraction!r}")
    if not 0 <= val_fraction < 1:
        raise UsageError(f"validation fraction must be in [0, 1), got {val_fraction}; e.g. 0.2 holds out 20% of rows")
    seed = check_seed("seed", seed)
    n_val = _n_val(n, val_fraction)
    rng = np.random.default_rng(seed)
    if stratify is None:
        perm = rng.permutation(n)
        return np.sort(perm[n_val:]), np.sort(perm[:n_val])
    labels = np.asarray(list(stratify) if not isinstance(stratify, np.ndarray) else stratify)
    if len(labels) != n:
        raise DataError(f"stratify has {len(labels)} labels for {n} rows; give one label per row")
    if labels.dtype == object:
        labels = np.array([repr(v) for v in labels.tolist()])
    _, codes = np.unique(labels, return_inverse=True)
    counts = np.bincount(codes.ravel())
    quota = counts * n_val / n
    take = np.minimum(np.floor(quota).astype(np.int64), np.maximum(counts - 1, 0))
    # hand out the rest by largest remainder (ties: the class that sorts first), only to classes
    # that still keep a training row
    order = np.argsort(-(quota - np.floor(quota)), kind="stable")
    while take.sum() < n_val:
        room = [c for c in order if take[c] < counts[c] - 1]
        if not room:
            break
        for c in room[: n_val - int(take.sum())]:
            take[c] += 1
    val = [rng.permutation(np.flatnonzero(codes.ravel() == c))[: take[c]] for c in range(len(counts))]
    val_idx = np.sort(np.concatenate(val)) if val else np.empty(0, np.int64)
    train_mask = np.ones(n, bool)
    train_mask[val_idx] = False
    return np.flatnonzero(train_mask), val_idx.astype(np.int64)


