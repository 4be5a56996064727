"""The ``[dask]`` extra: import Dask and distributed, or say in one line how to install them."""

from __future__ import annotations

from types import ModuleType

from ..core.errors import UsageError

__all__ = ["INSTALL_HINT", "require"]

INSTALL_HINT = "pip install 'torchann[dask]' (dask[dataframe] and distributed)"


def require(what: str = "scoring on a Dask cluster") -> tuple[ModuleType, ModuleType]:
    """``(dask, distributed)``, or a ``UsageError`` naming what to install."""
    try:
        import dask
        import dask.dataframe  # noqa: F401  (needs pandas: part of dask[dataframe])
        import distributed
    except ImportError as err:
        missing = (err.name or "dask").split(".")[0]
        raise UsageError(f"{what} needs {missing}, which is not installed; run: {INSTALL_HINT}") from None
    return dask, distributed
