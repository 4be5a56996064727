"""The Open Inference Protocol (KServe / Triton "v2"): model metadata and ``infer``.

An infer request names one tensor per feature column::

    {"inputs": [{"name": "a", "shape": [2], "datatype": "FP64", "data": [1.5, 2.0]},
                {"name": "city", "shape": [2], "datatype": "BYTES", "data": ["north", "south"]}],
     "parameters": {"proba": true}}

or one tensor of shape ``[rows, n_features]`` holding the values in feature order (any name
that is not a feature's). The answer has one output per target (``BYTES``, ``INT64``,
``BOOL`` or ``FP64`` labels, or ``FP64`` numbers), ``probabilities`` ``[rows, n_classes]``
when asked (``parameters.classes`` lists the columns), ``std`` with ``?std=true``, and the
per-row warnings in ``parameters.warnings``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..data.table import Table
from .errors import ServerError
from .mlflow_protocol import plain, warning_list
from .rows import parse_json, table_from_columns, table_from_rows

__all__ = ["read_infer", "infer_answer", "model_metadata", "DATATYPES"]

DATATYPES = {"BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32",
             "FP64", "BYTES"}


def _flat(data: Any) -> list:
    """Row-major flattening of nested lists (the protocol allows either form)."""
    if not isinstance(data, list):
        raise ServerError(400, "an input's data must be a list")
    if data and isinstance(data[0], list):
        return [v for part in data for v in _flat(part)]
    return data


def _tensor(spec: Any, i: int) -> tuple[str, list[int], list]:
    if not isinstance(spec, dict):
        raise ServerError(400, f"inputs[{i}] must be an object with name, shape, datatype and data")
    name, shape, dtype = spec.get("name"), spec.get("shape"), spec.get("datatype")
    if not isinstance(name, str):
        raise ServerError(400, f"inputs[{i}].name must be a string")
    if not isinstance(shape, list) or not shape or not all(isinstance(s, int) and s >= 0 for s in shape):
        raise ServerError(400, f"inputs[{i}] ({name!r}): shape must be a list of sizes such as [2] or [2, 1]")
    if not isinstance(dtype, str) or dtype not in DATATYPES:  # (an object here was a TypeError: a 500)
        raise ServerError(400, f"inputs[{i}] ({name!r}): datatype {str(dtype)[:20]!r} is not one of "
                               f"{', '.join(sorted(DATATYPES))}")
    data = _flat(spec.get("data"))
    size = int(np.prod(shape))
    if len(data) != size:
        raise ServerError(400, f"inputs[{i}] ({name!r}): shape {shape} holds {size} value(s) but data has "
                               f"{len(data)}")
    return name, shape, data


def read_infer(body: bytes, features: list[str]) -> tuple[Table, dict[str, Any], Any]:
    """The rows of an infer body, its ``parameters`` and its ``id``."""
    payload = parse_json(body)
    if not isinstance(payload, dict) or not isinstance(payload.get("inputs"), list) or not payload["inputs"]:
        raise ServerError(400, 'expected {"inputs": [{"name", "shape", "datatype", "data"}, ...]}')
    params = payload.get("parameters") or {}
    if not isinstance(params, dict):
        raise ServerError(400, "parameters must be an object")
    tensors = [_tensor(spec, i) for i, spec in enumerate(payload["inputs"])]
    if len(tensors) == 1 and tensors[0][0] not in features and len(tensors[0][1]) == 2:
        name, shape, data = tensors[0]
        if shape[1] != len(features):
            raise ServerError(422, f"input {name!r} has {shape[1]} column(s); the model reads {len(features)} in "
                                   f"this order: {', '.join(features)}", code="bad_data")
        width = shape[1]
        return table_from_rows([data[r * width:(r + 1) * width] for r in range(shape[0])], features), params, \
            payload.get("id")
    columns = {}
    for name, shape, data in tensors:
        if len(shape) > 2 or (len(shape) == 2 and shape[1] != 1):
            raise ServerError(422, f"input {name!r} has shape {shape}; a column is [rows] or [rows, 1]",
                              code="bad_data")
        columns[name] = data
    return table_from_columns(columns, features), params, payload.get("id")


def _datatype(values: np.ndarray) -> str:
    if values.dtype == object:
        return "BOOL" if values.size and isinstance(values.flat[0], (bool, np.bool_)) else "BYTES"
    return {"b": "BOOL", "i": "INT64", "u": "UINT64"}.get(values.dtype.kind, "FP64")


def infer_answer(answer: Any, model: Any, name: str, request_id: Any) -> dict[str, Any]:
    preds = answer.predictions
    rows = len(preds)
    outputs = []
    if preds.ndim == 2:  # several regression targets: one output each
        for k, target in enumerate(model.target_names):
            outputs.append({"name": target, "datatype": "FP64", "shape": [rows], "data": plain(preds[:, k])})
    else:
        outputs.append({"name": model.target_names[0], "datatype": _datatype(preds), "shape": [rows],
                        "data": plain(preds)})
    if answer.proba is not None:
        outputs.append({"name": "probabilities", "datatype": "FP64", "shape": list(answer.proba.shape),
                        "data": plain(answer.proba.ravel()), "parameters": {"classes": model.classes}})
    if answer.std is not None:
        outputs.append({"name": "std", "datatype": "FP64", "shape": list(answer.std.shape),
                        "data": plain(np.asarray(answer.std).ravel())})
    out: dict[str, Any] = {"model_name": name, "outputs": outputs,
                           "parameters": {"warnings": warning_list(answer, model)}}
    if request_id is not None:
        out["id"] = request_id
    return out


def model_metadata(model: Any, name: str, version: str) -> dict[str, Any]:
    """``GET /v2/models/{name}``: the inputs (one per feature column) and outputs."""
    inputs = []
    for f in model.preprocessor.features:
        text = f.kind == "date" or (f.kind == "categorical" and f.label_kind in ("str",))
        dtype = "BYTES" if text else "BOOL" if f.kind == "categorical" and f.label_kind == "bool" else "FP64"
        inputs.append({"name": f.name, "datatype": dtype, "shape": [-1]})
    if model.task == "classification":
        kind = {"str": "BYTES", "int": "INT64", "bool": "BOOL"}.get(model.preprocessor.class_kind or "", "FP64")
        outputs = [{"name": model.target_names[0], "datatype": kind, "shape": [-1]},
                   {"name": "probabilities", "datatype": "FP64", "shape": [-1, len(model.classes or [])]}]
    else:
        outputs = [{"name": t, "datatype": "FP64", "shape": [-1]} for t in model.target_names]
    return {"name": name, "versions": [version], "platform": "torchann", "inputs": inputs, "outputs": outputs}
