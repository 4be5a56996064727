"""K-fold splits of row indices, the same folds as scikit-learn's for the same seed.

``k_folds(n, k, seed=s)`` gives the folds of ``KFold(k, shuffle=True, random_state=s)`` and
``k_folds(n, k, seed=s, stratify=labels)`` those of ``StratifiedKFold(k, shuffle=True,
random_state=s)``: the same row indices in every fold (the tests compare them with
scikit-learn's). The algorithms are written out here so that ``torchann cv`` needs no
scikit-learn (an optional extra that takes seconds to import):

* plain: shuffle ``0..n-1`` with ``RandomState(seed).shuffle``; fold ``i`` is the ``i``-th
  consecutive slice, the first ``n % k`` slices one row longer;
* stratified: classes are numbered by first appearance; each fold's count of each class is
  dealt round-robin over the rows sorted by class; each class's fold numbers (in blocks) are
  shuffled with the same ``RandomState``, class by class, and assigned to its rows in order.

Every fold's indices are sorted ascending, training rows too.
"""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from ..core.warn import warn
from ..core.errors import DataError, UsageError

__all__ = ["k_folds", "first_appearance_codes"]


def k_folds(n: int, k: int, *, seed: int, stratify: Iterable[Any] | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """``k`` pairs ``(train_rows, test_rows)`` of sorted int64 row indices covering ``0..n-1``;
    every row is a test row in exactly one fold."""
    n = int(n)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 2:
        raise UsageError(f"folds must be a whole number, 2 or more, got {k!r}")
    if k > n:
        raise DataError(f"{k} folds need at least {k} rows, the table has {n}; use fewer folds")
    rng = np.random.RandomState(seed)
    if stratify is None:
        order = np.arange(n)
        rng.shuffle(order)
        sizes = np.full(k, n // k, dtype=np.int64)
        sizes[: n % k] += 1
        fold_of = np.empty(n, dtype=np.int64)
        fold_of[order] = np.repeat(np.arange(k), sizes)
    else:
        codes = first_appearance_codes(stratify)
        if len(codes) != n:
            raise DataError(f"stratify has {len(codes)} labels for {n} rows; give one label per row")
        counts = np.bincount(codes)
        if np.all(counts < k):
            raise DataError(f"{k} folds need at least {k} rows of some class, the largest class has "
                            f"{counts.max()}; use fewer folds")
        if counts.min() < k:
            warn(f"the smallest class has {counts.min()} row(s), fewer than the {k} folds: some folds "
                 f"hold none of it")
        by_class = np.sort(codes)
        allocation = np.asarray([np.bincount(by_class[i::k], minlength=len(counts)) for i in range(k)])
        fold_of = np.empty(n, dtype=np.int64)
        for c in range(len(counts)):
            folds_for_class = np.arange(k).repeat(allocation[:, c])
            rng.shuffle(folds_for_class)
            fold_of[codes == c] = folds_for_class
    rows = np.arange(n, dtype=np.int64)
    return [(rows[fold_of != i], rows[fold_of == i]) for i in range(k)]


def first_appearance_codes(labels: Iterable[Any]) -> np.ndarray:
    """One int per label: 0 for the first distinct label met, 1 for the next, ... (as
    scikit-learn numbers the classes of ``StratifiedKFold``)."""
    seen: dict[Any, int] = {}
    values = labels.tolist() if isinstance(labels, np.ndarray) else list(labels)
    return np.asarray([seen.setdefault(v, len(seen)) for v in values], dtype=np.int64)
