"""MLflow's scoring protocol: ``POST /invocations`` and the answer ``{"predictions": [...]}``.

Bodies (``Content-Type: application/json``), exactly one of:

* ``{"dataframe_split": {"columns": ["a", "b"], "data": [[1, "x"], [2, "y"]]}}``
* ``{"dataframe_records": [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]}``
* ``{"instances": [...]}``: records (objects), or rows of values in feature order
* ``{"inputs": ...}``: columns (``{"a": [1, 2], "b": ["x", "y"]}``), records, or rows

or a CSV table with a header line (``Content-Type: text/csv``). The answer:

``{"predictions": [...], "warnings": [{"row": 0, "column": "b", "kind": "unseen_category"}]}``
plus, on request (``?proba=true``), ``"classes"`` and ``"probabilities"`` (one list per row, in
the order of ``classes``), and with ``?std=true`` ``"std"`` (the members' spread per row).
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from ..data.table import Table
from .errors import ServerError
from .rows import SOURCE, check_names, is_records, parse_json, table_from_columns, table_from_records, \
    table_from_rows

__all__ = ["read_invocation", "invocation_answer", "media_type", "warning_list", "FORMATS"]

FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")


def media_type(content_type: str | None) -> str:
    """``"json"`` or ``"csv"`` from a Content-Type header; anything else is a 415."""
    kind = (content_type or "").split(";")[0].strip().lower()
    if kind == "application/json" or kind.endswith("+json"):
        return "json"
    if kind in ("text/csv", "application/csv"):
        return "csv"
    shown = repr(kind[:60]) if kind else "none"
    raise ServerError(415, f"Content-Type {shown} is not supported; send application/json or text/csv")


def read_invocation(body: bytes, content_type: str | None, model: Any) -> Table:
    """The rows of an ``/invocations`` body as a Table of the model's feature columns."""
    kind = media_type(content_type)
    if kind == "csv":
        return csv_table(body, model)
    return json_table(parse_json(body), list(model.feature_names))


def json_table(payload: Any, features: list[str]) -> Table:
    if not isinstance(payload, dict):
        raise ServerError(400, f"expected a JSON object with one of {', '.join(FORMATS)}")
    keys = [k for k in FORMATS if k in payload]
    if len(keys) != 1:
        found = f"found {', '.join(keys)}" if keys else "found none"
        raise ServerError(400, f"expected exactly one of {', '.join(FORMATS)} in the body ({found})")
    key = keys[0]
    value = payload[key]
    if key == "dataframe_split":
        return _split_table(value, features)
    if key == "dataframe_records":
        return table_from_records(value, features, what=key)
    if key == "inputs" and isinstance(value, dict):
        return table_from_columns(value, features, what=key)
    if is_records(value):
        return table_from_records(value, features, what=key)
    return table_from_rows(value, features, what=key)


def _split_table(value: Any, features: list[str]) -> Table:
    if not isinstance(value, dict) or not isinstance(value.get("columns"), list) or \
            not isinstance(value.get("data"), list):
        raise ServerError(400, 'dataframe_split must be {"columns": [names], "data": [[row], ...]}')
    columns = value["columns"]
    if not all(isinstance(c, str) for c in columns):
        raise ServerError(400, "dataframe_split.columns must be a list of column names")
    check_names(columns, features)
    where = {name: j for j, name in enumerate(columns)}
    data = value["data"]
    width = len(columns)
    for i, row in enumerate(data):
        if not isinstance(row, list) or len(row) != width:
            raise ServerError(422, f"dataframe_split.data row {i + 1} does not have {width} value(s), one per "
                                   f"column", code="bad_data")
    if not data:
        raise ServerError(422, "the request holds no rows; send at least one", code="bad_data")
    by_column = list(zip(*data))  # the rows' values, column by column (checked above: equal lengths)
    return Table.from_columns({n: by_column[where[n]] for n in features}, source=SOURCE)


def csv_table(body: bytes, model: Any) -> Table:
    """A CSV body with a header line; the feature columns read with the types ``predict`` uses."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    from ..model.scoring import _feature_types

    if not body.strip():
        raise ServerError(400, "the CSV body is empty; send a header line and at least one row", code="bad_csv")
    types = _feature_types(model)
    try:
        head = body.split(b"\n", 1)[0].decode("utf-8").strip().split(",")
        arrow = pacsv.read_csv(io.BytesIO(body), convert_options=pacsv.ConvertOptions(
            strings_can_be_null=True, column_types={k: v for k, v in types.items() if k in head}))
    except (pa.ArrowInvalid, UnicodeDecodeError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ServerError(400, f"the CSV body cannot be read ({first[:200]})", code="bad_csv") from None
    check_names(arrow.column_names, list(model.feature_names))
    if arrow.num_rows == 0:
        raise ServerError(422, "the request holds no rows; send at least one", code="bad_data")
    table = model.table(arrow.select(list(model.feature_names)))
    table.source = SOURCE
    return table


def warning_list(answer: Any, model: Any) -> list[dict[str, Any]]:
    """The answer's per-row facts as ``{"row", "column", "kind"}`` objects (``"range"`` for
    numbers outside the training range), in row order."""
    if not answer.facts:
        return []
    ranges = {f.name: f.training_range for f in model.preprocessor.features if f.kind == "numeric"}
    out = []
    for kind, columns in answer.facts.kinds.items():
        for column, rows in columns.items():
            extra = {"range": list(ranges[column])} if kind == "out_of_range" and ranges.get(column) else {}
            out.extend({"row": i, "column": column, "kind": kind, **extra} for i in rows.tolist())
    out.sort(key=lambda w: w["row"])
    return out


def plain(values: np.ndarray) -> list:
    """A JSON-ready list; a number that is not finite becomes null."""
    if values.dtype.kind == "f" and not np.isfinite(values).all():
        return np.where(np.isfinite(values), values, None).tolist()
    return values.tolist()


def invocation_answer(answer: Any, model: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"predictions": plain(answer.predictions), "warnings": warning_list(answer, model)}
    if answer.proba is not None:
        out["classes"] = model.classes
        out["probabilities"] = plain(answer.proba)
    if answer.std is not None:
        out["std"] = plain(answer.std)
    return out
