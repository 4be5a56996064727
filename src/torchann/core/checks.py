"""The argument checks every entry point repeats, written once.

Each ``check_*`` returns the value in its plain Python form (a numpy integer becomes an
``int``) or raises the given error class with a message that names the argument, the value
and what would be accepted. ``key_mismatch`` compares the keys a state dict should have with
the keys it has, for every place that loads weights.
"""

from __future__ import annotations

import math
import numbers
import operator
from typing import Any, Iterable

from .errors import UsageError

__all__ = ["check_positive_int", "check_non_negative_int", "check_optional_positive_int", "check_positive_number",
           "check_non_negative_number", "check_fraction", "check_path", "check_seed", "as_integer", "key_mismatch"]


def as_integer(value: Any) -> int | None:
    """``value`` as an int when it is an integer (``operator.index``: numpy integers and 0-d integer
    tensors included), else None; bools, floats and strings are not integers."""
    if isinstance(value, (bool, str, bytes)) or getattr(value, "dtype", None) is not None and "bool" in str(value.dtype):
        return None
    try:
        return operator.index(value)
    except TypeError:
        return None


_integer = as_integer


def _real(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    return float(value)


def check_positive_int(name: str, value: Any, *, error: type[Exception] = UsageError) -> int:
    number = _integer(value)
    if number is None or number < 1:
        raise error(f"{name} must be a positive integer, got {value!r}")
    return number


def check_optional_positive_int(name: str, value: Any, *, hint: str = "", error: type[Exception] = UsageError) -> int | None:
    """None, or a positive integer."""
    if value is None:
        return None
    number = _integer(value)
    if number is None or number < 1:
        raise error(f"{name} must be a positive integer or None, got {value!r}{hint}")
    return number


def check_non_negative_int(name: str, value: Any, *, error: type[Exception] = UsageError) -> int:
    number = _integer(value)
    if number is None or number < 0:
        raise error(f"{name} must be an integer >= 0, got {value!r}")
    return number


def check_positive_number(name: str, value: Any, *, hint: str = "", error: type[Exception] = UsageError) -> float:
    number = _real(value)
    if number is None or not math.isfinite(number) or number <= 0:
        raise error(f"{name} must be a positive number, got {value!r}{hint}")
    return number


def check_non_negative_number(name: str, value: Any, *, hint: str = "", error: type[Exception] = UsageError) -> float:
    number = _real(value)
    if number is None or not math.isfinite(number) or number < 0:
        raise error(f"{name} must be a finite number >= 0, got {value!r}{hint}")
    return number


VAL_SPLIT_HINT = "; 0.2 holds out a fifth of the rows for early stopping"


def check_fraction(name: str, value: Any, *, hint: str = "", error: type[Exception] = UsageError) -> float:
    """A number in [0, 1)."""
    number = _real(value)
    if number is None or not 0 <= number < 1:
        raise error(f"{name} must be a number in [0, 1), got {value!r}{hint}")
    return number


def check_path(name: str, value: Any, *, what: str = "a path", error: type[Exception] = UsageError) -> "Path":
    """``value`` as a ``Path``: a ``str`` or ``os.PathLike``; anything else (None, a number) is refused."""
    import os
    from pathlib import Path

    if isinstance(value, (str, os.PathLike)) and str(value) != "":
        return Path(value)
    shown = "an empty string" if value == "" else type(value).__name__
    raise error(f"{name} must be {what} (a str or os.PathLike), got {shown}")


def check_seed(name: str, value: Any, *, error: type[Exception] = UsageError) -> int:
    """A random seed: an integer in [0, 2**63) (numpy's and torch's generators take no negative seed)."""
    number = _integer(value)
    if number is None or not 0 <= number < 2**63:
        raise error(f"{name} must be an integer from 0 to 2**63 - 1, got {value!r}")
    return number


def key_mismatch(expected: Iterable[str], found: Iterable[str]) -> str | None:
    """``None`` when the keys agree, else ``"missing [...], unexpected [...]"`` (each sorted)."""
    expected, found = set(expected), set(found)
    missing, unexpected = sorted(expected - found), sorted(found - expected)
    if not missing and not unexpected:
        return None
    return f"missing {missing}, unexpected {unexpected}"
