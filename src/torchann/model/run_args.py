"""A run's ``args.json``: the options ``torchann train`` ran with, read back with every field
checked against the option dataclasses (a resumed run must not trust a hand-edited file)."""

from __future__ import annotations

import dataclasses
import os
import typing
from pathlib import Path
from typing import Any, Mapping

from ..core.errors import UsageError
from ..core.files import read_json

__all__ = ["args_schema", "read_args"]


def args_schema(cls: type) -> dict[str, Any]:
    """Field name -> type hint of a dataclass (one of the option groups), for :func:`read_args`."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _fits(value: Any, hint: Any) -> bool:
    origin, params = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if origin is typing.Union or type(hint).__name__ == "UnionType":
        return any(_fits(value, p) for p in params)
    if hint is type(None):
        return value is None
    if origin in (list, tuple) or hint in (list, tuple):
        return isinstance(value, list) and all(_fits(v, params[0]) for v in value) if params else isinstance(value, list)
    if origin is dict or hint is dict:
        return isinstance(value, dict)
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True


def _hint_text(hint: Any) -> str:
    text = str(hint).replace("typing.", "")
    return hint.__name__ if isinstance(hint, type) else text


def read_args(path: str | os.PathLike, schema: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The arguments stored in a run's ``args.json``, every field checked.

    Args:
        schema: field name -> type hint (see :func:`args_schema`); when given, an unknown
            field or a value of the wrong type is refused, naming the field.

    Raises:
        UsageError: one line naming the file and the field: not a regular file, not JSON,
            truncated, not an object, NaN/Infinity, an integer too long, a wrong type.
    """
    path = Path(path)
    what = "run's args.json (written by torchann train --checkpoint-every)"
    try:
        document = read_json(path, what=what, error=UsageError, limit=1 << 20)
    except UsageError as err:
        if "not found" in str(err):
            raise UsageError(f"{path}: missing; resume a run that was trained with --checkpoint-every") from None
        raise
    if not isinstance(document, dict):
        raise UsageError(f"{path}: expected a JSON object of argument names and values, got "
                         f"{type(document).__name__}; the file is damaged: train again without --resume")
    if schema is not None:
        for key, value in document.items():
            if key not in schema:
                raise UsageError(f"{path}: unknown field {key!r}; valid fields: {', '.join(schema)}")
            if not _fits(value, schema[key]):
                raise UsageError(f"{path}: field {key!r} holds {_short(value)}, expected {_hint_text(schema[key])}; "
                                 f"fix the value or train again without --resume")
    return document


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
