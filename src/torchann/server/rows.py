"""Request rows as a ``Table`` of the model's feature columns, whatever shape they came in.

Both protocols end here: columns by name, rows of values in feature order, or records (one
object per row). Only the model's feature columns are kept (others are ignored, as
``torchann predict --data`` ignores them); a missing one is a 422 that names it, the closest
name sent, and every column the model reads. Values become a ``Table`` through
``Table.from_columns`` and nothing else: no value of a request is ever taken as a path.
"""

from __future__ import annotations

import difflib
import json
from typing import Any, Sequence

from ..data.table import Table
from .errors import ServerError

__all__ = ["SOURCE", "parse_json", "table_from_columns", "table_from_rows", "table_from_records", "check_names"]

SOURCE = "request"  # the name messages give the rows (a file's name in torchann predict)
_SCALARS = (str, int, float, bool, type(None))


def _int(text: str) -> int | float:
    # a 400-digit integer would overflow float() later, deep in the column code: read it as a float now
    return int(text) if len(text) < 19 else float(text)


def parse_json(body: bytes) -> Any:
    """The JSON value of ``body``; malformed JSON is a 400 naming the line and column.

    With orjson installed (``torchann[serve]``) it parses: 2.5x faster on a 1,000-row body,
    strict JSON (no ``NaN`` literal; send ``null`` for a missing value), integers of 64 bits."""
    try:
        import orjson
    except ImportError:  # pragma: no cover - the [serve] extra brings it
        orjson = None
    if orjson is not None:
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as err:
            raise ServerError(400, f"the body is not valid JSON ({err.msg} at line {err.lineno} column {err.colno})",
                              code="bad_json") from None
    try:
        return json.loads(body, parse_int=_int)
    except json.JSONDecodeError as err:
        raise ServerError(400, f"the body is not valid JSON ({err.msg} at line {err.lineno} column {err.colno})",
                          code="bad_json") from None
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise ServerError(400, f"the body is not valid JSON ({type(err).__name__}); send UTF-8 JSON",
                          code="bad_json") from None


def check_names(given: Sequence[str], features: Sequence[str]) -> None:
    """A 422 when a feature column is missing: it, the closest name sent, and the expected ones."""
    present = set(given)
    missing = [f for f in features if f not in present]
    if not missing:
        return
    extra = [g for g in given if g not in set(features)]
    close = difflib.get_close_matches(missing[0], extra, n=1)
    hint = f" (got {close[0]!r}: misspelt?)" if close else ""
    raise ServerError(422, f"missing column(s) {', '.join(repr(m) for m in missing[:20])}{hint}; the model reads "
                           f"{', '.join(features)}", code="missing_column")


def _no_rows() -> ServerError:
    return ServerError(422, "the request holds no rows; send at least one", code="bad_data")


def table_from_columns(columns: Any, features: Sequence[str], *, what: str = "inputs") -> Table:
    """``{"name": [values], ...}`` -> a Table of the feature columns."""
    if not isinstance(columns, dict):
        raise ServerError(400, f"{what} must map column names to lists of values")
    check_names(list(columns), features)
    picked = {}
    for name in features:
        values = columns[name]
        if not isinstance(values, list):
            values = [values]  # one row given as {"a": 1, "b": 2}
        picked[name] = values
    if not picked or not len(next(iter(picked.values()))):
        raise _no_rows()
    return Table.from_columns(picked, source=SOURCE)


def table_from_rows(rows: Any, features: Sequence[str], *, what: str = "rows") -> Table:
    """``[[v1, v2, ...], ...]`` with the values in feature order -> a Table."""
    if not isinstance(rows, list):
        raise ServerError(400, f"{what} must be a list of rows")
    if not rows:
        raise _no_rows()
    if not isinstance(rows[0], list):
        rows = [rows]  # one row given flat
    width = len(features)
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != width:
            got = f"{len(row)} value(s)" if isinstance(row, list) else f"a {type(row).__name__}"
            raise ServerError(422, f"row {i + 1} has {got}; the model reads {width} column(s) in this order: "
                                   f"{', '.join(features)}", code="bad_data")
    return Table.from_columns({name: [row[j] for row in rows] for j, name in enumerate(features)}, source=SOURCE)


def table_from_records(records: Any, features: Sequence[str], *, what: str = "records") -> Table:
    """``[{"name": value, ...}, ...]`` -> a Table; a key left out of a record is a missing value."""
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise ServerError(400, f"{what} must be a list of objects, one per row")
    if not records:
        raise _no_rows()
    seen: dict[str, None] = {}
    for r in records:
        seen.update(dict.fromkeys(r))
    check_names(list(seen), features)
    return Table.from_columns({name: [r.get(name) for r in records] for name in features}, source=SOURCE)


def is_records(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and isinstance(value[0], dict)


def scalar_lists(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, _SCALARS) for v in value)
