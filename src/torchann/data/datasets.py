"""Built-in datasets: the tutorial's adding data, a few generated ones, and scikit-learn's bundled sets.

The generated datasets are made with NumPy from a fixed seed, so they are the same on every
machine and need nothing beyond NumPy. ``sklearn:*`` datasets ship inside scikit-learn (no
download) and need ``pip install torchann[sklearn]``.

    >>> from torchann.datasets import load_dataset
    >>> load_dataset("add").columns["sum"]
    array([ 3.,  7., 11., 15.])
"""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .table import Table
from ..core.errors import DataError, UsageError

__all__ = ["load_dataset", "dataset_names", "describe_datasets", "is_dataset_name"]

SEED = 0  # every generated dataset is drawn from np.random.default_rng(SEED)


def _add() -> dict[str, np.ndarray]:
    # the tutorial's data: x = [[1, 2], [3, 4], [5, 6], [7, 8]], y = x[:, 0] + x[:, 1]
    x = np.array([[1, 2], [3, 4], [5, 6], [7, 8]], dtype=np.float64)
    return {"a": x[:, 0], "b": x[:, 1], "sum": x.sum(axis=1)}


def _moons(n: int = 200, noise: float = 0.1) -> dict[str, np.ndarray]:
    """Two interleaving half circles: label 0 around (0, 0), label 1 around (1, 0.5), radius 1."""
    rng = np.random.default_rng(SEED)
    n0 = n // 2
    t0, t1 = np.linspace(0, np.pi, n0), np.linspace(0, np.pi, n - n0)
    x = np.concatenate([np.stack([np.cos(t0), np.sin(t0)], 1), np.stack([1 - np.cos(t1), 0.5 - np.sin(t1)], 1)])
    y = np.concatenate([np.zeros(n0), np.ones(n - n0)])
    x += rng.normal(0.0, noise, x.shape)
    order = rng.permutation(n)
    return {"x1": x[order, 0], "x2": x[order, 1], "label": y[order]}


def _circles(n: int = 200, factor: float = 0.5, noise: float = 0.05) -> dict[str, np.ndarray]:
    """Two circles around the origin: label 0 of radius 1, label 1 of radius ``factor``."""
    rng = np.random.default_rng(SEED)
    n0 = n // 2
    t0 = np.linspace(0, 2 * np.pi, n0, endpoint=False)
    t1 = np.linspace(0, 2 * np.pi, n - n0, endpoint=False)
    x = np.concatenate([np.stack([np.cos(t0), np.sin(t0)], 1), factor * np.stack([np.cos(t1), np.sin(t1)], 1)])
    y = np.concatenate([np.zeros(n0), np.ones(n - n0)])
    x += rng.normal(0.0, noise, x.shape)
    order = rng.permutation(n)
    return {"x1": x[order, 0], "x2": x[order, 1], "label": y[order]}


BLOB_CENTERS = np.array([[-4.0, 0.0], [4.0, 0.0], [0.0, 5.0]])


def _blobs(n: int = 300, std: float = 1.0) -> dict[str, np.ndarray]:
    """Three Gaussian blobs (std 1) around ``BLOB_CENTERS``, labels 0, 1, 2, n/3 rows each."""
    rng = np.random.default_rng(SEED)
    y = np.arange(n) % len(BLOB_CENTERS)
    x = BLOB_CENTERS[y] + rng.normal(0.0, std, (n, 2))
    order = rng.permutation(n)
    return {"x1": x[order, 0], "x2": x[order, 1], "label": y[order].astype(np.float64)}


def friedman1_target(x: np.ndarray) -> np.ndarray:
    """Friedman #1: 10 sin(pi x0 x1) + 20 (x2 - 0.5)^2 + 10 x3 + 5 x4 (x5..x9 are noise features)."""
    return 10 * np.sin(np.pi * x[:, 0] * x[:, 1]) + 20 * (x[:, 2] - 0.5) ** 2 + 10 * x[:, 3] + 5 * x[:, 4]


def _friedman1(n: int = 500) -> dict[str, np.ndarray]:
    """Friedman #1 regression without noise: 10 uniform [0, 1) features, 5 of them used."""
    x = np.random.default_rng(SEED).uniform(0.0, 1.0, (n, 10))
    cols = {f"x{j}": x[:, j] for j in range(10)}
    cols["y"] = friedman1_target(x)
    return cols


@dataclass(frozen=True)
class _Dataset:
    make: Callable[[], dict[str, np.ndarray]] | None  # None: comes from scikit-learn
    target: str
    description: str


_SKLEARN_LOADERS = {
    "sklearn:iris": ("load_iris", "iris flowers, 4 measurements, 3 species (150 rows)"),
    "sklearn:wine": ("load_wine", "wines, 13 chemical measurements, 3 cultivars (178 rows)"),
    "sklearn:breast_cancer": ("load_breast_cancer", "breast tumours, 30 features, malignant 0 / benign 1 (569 rows)"),
    "sklearn:digits": ("load_digits", "8x8 handwritten digits, 64 pixels, 10 classes (1797 rows)"),
    "sklearn:diabetes": ("load_diabetes", "diabetes progression, 10 scaled features, regression (442 rows)"),
}

_DATASETS: dict[str, _Dataset] = {
    "add": _Dataset(_add, "sum", "the tutorial's adding data: a + b = sum (4 rows)"),
    "moons": _Dataset(_moons, "label", "two interleaving half circles, 2 classes (200 rows)"),
    "circles": _Dataset(_circles, "label", "a circle inside a circle, 2 classes (200 rows)"),
    "blobs": _Dataset(_blobs, "label", "three Gaussian blobs in 2-D, 3 classes (300 rows)"),
    "friedman1": _Dataset(_friedman1, "y", "Friedman #1 regression, 10 features, no noise (500 rows)"),
    **{name: _Dataset(None, "target", desc) for name, (_, desc) in _SKLEARN_LOADERS.items()},
}


def dataset_names() -> list[str]:
    """Names ``load_dataset`` accepts (``sklearn:*`` ones need scikit-learn)."""
    return list(_DATASETS)


def is_dataset_name(name: str) -> bool:
    return name in _DATASETS


def describe_datasets() -> list[dict[str, str | bool]]:
    """One dict per dataset: name, target, description, needs_sklearn."""
    return [
        {"name": n, "target": d.target, "description": d.description, "needs_sklearn": d.make is None}
        for n, d in _DATASETS.items()
    ]


def load_dataset(name: str) -> Table:
    """The built-in dataset ``name`` as a :class:`Table` whose ``targets`` is its target column."""
    if not isinstance(name, str):
        raise UsageError(f"dataset name must be a str such as 'moons', got {type(name).__name__}; "
                        f"available: {', '.join(_DATASETS)}")
    ds = _DATASETS.get(name)
    if ds is None:
        close = difflib.get_close_matches(name, list(_DATASETS), n=1)
        hint = f". Did you mean {close[0]!r}?" if close else ""
        raise DataError(f"unknown dataset {name!r}; available: {', '.join(_DATASETS)}{hint}")
    columns = ds.make() if ds.make is not None else _sklearn_columns(name)
    return Table.from_columns(columns, source=f"dataset {name}", targets=[ds.target])


def _sklearn_columns(name: str) -> dict[str, np.ndarray]:
    try:
        sk = importlib.import_module("sklearn.datasets")
    except ImportError:
        raise DataError(
            f"dataset {name!r} comes with scikit-learn, which is not installed; run: pip install torchann[sklearn]"
        ) from None
    bunch = getattr(sk, _SKLEARN_LOADERS[name][0])()
    x = np.asarray(bunch.data, dtype=np.float64)
    names = [str(f) for f in getattr(bunch, "feature_names", [f"x{j}" for j in range(x.shape[1])])]
    cols = {n: x[:, j] for j, n in enumerate(names)}
    cols["target"] = np.asarray(bunch.target, dtype=np.float64)
    return cols
