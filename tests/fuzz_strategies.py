"""Hypothesis strategies for the bytes torchann reads from outside: tables, NumPy files, model
directories, checkpoints, preprocessing records and HTTP bodies.

Each strategy mixes three kinds of input: well-formed ones (so the parser's happy path and its
later stages are reached), well-formed ones with one part broken (a field replaced, a byte
flipped, the end cut off), and noise. The same strategies drive ``tests/test_fuzz_*.py`` (a
few dozen examples each) and ``benchmarks/fuzz.py`` (10,000 or more).
"""

from __future__ import annotations

import copy
import gzip
import io
import json
import struct
from typing import Any

import numpy as np
from hypothesis import strategies as st

__all__ = ["cells", "csv_files", "parquet_bytes", "npy_bytes", "npz_bytes", "json_values", "mutated",
           "safetensors_bytes", "json_bodies", "csv_bodies", "v2_bodies", "FEATURES"]

FEATURES = ["a", "b", "city"]  # the served model's columns (tests/fuzz_targets.py trains it)
CITIES = ["east", "north", "south"]

_odd_text = st.sampled_from(["", "NA", "nan", "NaN", "inf", "-inf", "1e999", "1,5", "1.234,5", ",5", '"', '""',
                             "\\", "\r", "\n", "\r\n", "\x00", "\ufeff", "2020-01-01", "2020-13-45", "true",
                             "False", "é", "\x1b[31m", "9" * 40, "-0", "0x10", "1_000", " 1 "])
cells = st.one_of(
    st.integers(-10**6, 10**6).map(str), st.integers(-10**40, 10**40).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr), st.text(max_size=6), _odd_text,
    st.sampled_from(CITIES),
)
_names = st.one_of(st.sampled_from(["a", "b", "y", "city", "x1", "", "a b", "y"]), st.text(max_size=5))


@st.composite
def _table_text(draw: Any) -> str:
    sep = draw(st.sampled_from([",", ";", "\t", "|"]))
    width = draw(st.integers(1, 5))
    header = [draw(_names) for _ in range(width)]
    rows = []
    for _ in range(draw(st.integers(0, 6))):
        n = width + draw(st.sampled_from([0, 0, 0, 0, -1, 1]))
        rows.append([draw(cells) for _ in range(max(n, 0))])
    quote = draw(st.booleans())
    fmt = (lambda c: '"' + c.replace('"', '""') + '"') if quote else (lambda c: c)
    end = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    text = end.join(sep.join(fmt(c) for c in line) for line in [header, *rows])
    return (draw(st.sampled_from(["", "\ufeff"])) + text + draw(st.sampled_from(["", end])))


@st.composite
def csv_files(draw: Any) -> tuple[str, bytes]:
    """(file name ending, bytes): a table as text, maybe gzipped, maybe cut or noise."""
    suffix = draw(st.sampled_from([".csv", ".csv", ".tsv", ".txt", ".tab", ".csv.gz"]))
    kind = draw(st.sampled_from(["table", "table", "table", "cut", "noise"]))
    if kind == "noise":
        data = draw(st.binary(max_size=300))
    else:
        data = draw(_table_text()).encode("utf-8", errors="surrogatepass")
        if kind == "cut":
            data = data[: draw(st.integers(0, len(data)))]
    if suffix.endswith(".gz") and draw(st.booleans()):
        data = gzip.compress(data, mtime=0)
    return suffix, data


def _flip(draw: Any, data: bytes) -> bytes:
    """One of: unchanged, cut at a random place, a byte replaced, a run of bytes replaced."""
    if not data:
        return data
    how = draw(st.sampled_from(["same", "cut", "byte", "run"]))
    if how == "same":
        return data
    at = draw(st.integers(0, len(data) - 1))
    if how == "cut":
        return data[:at]
    if how == "byte":
        return data[:at] + bytes([draw(st.integers(0, 255))]) + data[at + 1:]
    return data[:at] + draw(st.binary(min_size=1, max_size=16)) + data[at + 16:]


_arrow_columns = st.sampled_from(["int", "float", "text", "bool", "null", "date", "timestamp", "list", "dict",
                                  "binary", "decimal", "struct", "huge"])


def _arrow_column(kind: str, n: int, draw: Any) -> Any:
    import datetime
    import decimal

    import pyarrow as pa

    floats = st.floats(allow_nan=True, allow_infinity=True) | st.none()
    if kind == "int":
        return pa.array(draw(st.lists(st.integers(-2**63, 2**63 - 1) | st.none(), min_size=n, max_size=n)),
                        type=pa.int64())
    if kind == "float":
        return pa.array(draw(st.lists(floats, min_size=n, max_size=n)), type=pa.float64())
    if kind == "text":
        return pa.array(draw(st.lists(cells | st.none(), min_size=n, max_size=n)), type=pa.string())
    if kind == "bool":
        return pa.array(draw(st.lists(st.booleans() | st.none(), min_size=n, max_size=n)), type=pa.bool_())
    if kind == "null":
        return pa.nulls(n)
    if kind == "date":
        return pa.array([datetime.date(2000, 1, 1) + datetime.timedelta(days=i) for i in range(n)])
    if kind == "timestamp":
        return pa.array([datetime.datetime(2000, 1, 1, i % 24) for i in range(n)])
    if kind == "list":
        return pa.array([[1.0, 2.0]] * n)
    if kind == "dict":
        return pa.array(draw(st.lists(st.sampled_from(CITIES), min_size=n, max_size=n))).dictionary_encode()
    if kind == "binary":
        return pa.array(draw(st.lists(st.binary(max_size=4), min_size=n, max_size=n)), type=pa.binary())
    if kind == "decimal":
        return pa.array([decimal.Decimal("1.50")] * n, type=pa.decimal128(5, 2))
    if kind == "struct":
        return pa.array([{"u": 1}] * n)
    return pa.array([float(10**300)] * n, type=pa.float64())


@st.composite
def parquet_bytes(draw: Any) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=300))
    n = draw(st.integers(0, 5))
    kinds = draw(st.lists(_arrow_columns, min_size=1, max_size=4))
    names = draw(st.lists(_names, min_size=len(kinds), max_size=len(kinds)))
    table = pa.table({f"{name}{i}" if names.count(name) > 1 else name: _arrow_column(kind, n, draw)
                      for i, (name, kind) in enumerate(zip(names, kinds))})
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return _flip(draw, sink.getvalue())


_npy_dtypes = st.sampled_from(["<f4", "<f8", "<f2", ">f8", "<i1", "<i8", "<u8", "|b1", "<c8", "<U3", "|S3",
                               "<M8[D]", "<m8[s]", "[('x', '<f8'), ('y', '<i4')]", "|V4", "O"])
_header_values = st.one_of(st.sampled_from(["'<f8'", "'<f4'", "'O'", "'|b1'", "'<U3'", "True", "False", "()",
                                            "(2,)", "(2, 2)", "(-1, 2)", "(10**12, 2)", "(1000000000000, 2)",
                                            "(2.5,)", "'x'", "None", "{}", "[]", "(2, 2, 2, 2, 2)"]),
                           st.text(max_size=10).map(repr), st.integers().map(str))


@st.composite
def _npy_header(draw: Any) -> bytes:
    """A NumPy header written by hand: magic, version, length, dict text, then some data."""
    fields = {"descr": draw(_header_values), "fortran_order": draw(_header_values), "shape": draw(_header_values)}
    keys = draw(st.lists(st.sampled_from(["descr", "fortran_order", "shape", "extra"]), unique=True, max_size=4))
    text = "{" + "".join(f"'{k}': {fields.get(k, '1')}, " for k in keys) + "}"
    major = draw(st.sampled_from([1, 2, 3, 0, 9]))
    body = text.encode("latin-1", errors="replace")
    size = struct.pack("<H", len(body)) if major == 1 else struct.pack("<I", len(body))
    if draw(st.booleans()):
        size = struct.pack("<H" if major == 1 else "<I", draw(st.integers(0, 65535)))
    return b"\x93NUMPY" + bytes([major, 0]) + size + body + draw(st.binary(max_size=64))


@st.composite
def _npy_array(draw: Any) -> np.ndarray:
    descr = draw(_npy_dtypes)
    dtype = np.dtype(eval(descr)) if descr.startswith("[") else np.dtype(descr)  # noqa: S307 - our own literal
    shape = tuple(draw(st.lists(st.integers(0, 4), max_size=3)))
    if dtype.kind == "O":
        arr = np.empty(shape, dtype=object)
        arr.fill("x")
        return arr
    raw = draw(st.binary(min_size=int(np.prod(shape)) * dtype.itemsize, max_size=int(np.prod(shape)) * dtype.itemsize))
    return np.frombuffer(raw, dtype=dtype).reshape(shape) if dtype.itemsize else np.zeros(shape, dtype=dtype)


def _npy_of(arr: np.ndarray) -> bytes:
    sink = io.BytesIO()
    np.save(sink, arr, allow_pickle=True)
    return sink.getvalue()


@st.composite
def npy_bytes(draw: Any) -> bytes:
    kind = draw(st.sampled_from(["array", "array", "header", "noise"]))
    if kind == "noise":
        return b"\x93NUMPY" * draw(st.integers(0, 1)) + draw(st.binary(max_size=200))
    if kind == "header":
        return draw(_npy_header())
    return _flip(draw, _npy_of(draw(_npy_array())))


@st.composite
def npz_bytes(draw: Any) -> bytes:
    import zipfile

    if draw(st.integers(0, 9)) == 0:
        return b"PK\x03\x04" + draw(st.binary(max_size=200))
    sink = io.BytesIO()
    compression = draw(st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED]))
    with zipfile.ZipFile(sink, "w", compression=compression) as zf:
        names = draw(st.lists(st.sampled_from(["x.npy", "y.npy", "X.npy", "a.npy", "x", "../up.npy", "dir/x.npy",
                                               "y.txt"]), unique=True, max_size=3))
        for name in names:
            kind = draw(st.sampled_from(["array", "array", "header"]))
            zf.writestr(name, _npy_of(draw(_npy_array())) if kind == "array" else draw(_npy_header()))
    return _flip(draw, sink.getvalue())


_scalars = st.one_of(st.none(), st.booleans(), st.integers(-3, 12), st.sampled_from([10**9, 2**62, 10**30, -1]),
                     st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8),
                     st.sampled_from(["relu", "numeric", "categorical", "date", "str", "float", "standard",
                                      "regression", "classification", "mean", "torchann.model/1", "a", "b"]))
json_values = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
    st.text(max_size=6) | st.sampled_from(["name", "kind", "mean", "std", "shape", "dtype"]), inner, max_size=3),
    max_leaves=10)


def _paths(doc: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out.extend(_paths(v, prefix + (k,)))
    elif isinstance(doc, list):
        for i, v in enumerate(doc[:8]):
            out.extend(_paths(v, prefix + (i,)))
    return out


@st.composite
def mutated(draw: Any, document: Any, *, edits: int = 3) -> Any:
    """``document`` (JSON data) with up to ``edits`` places replaced, deleted or grown."""
    doc = copy.deepcopy(document)
    for _ in range(draw(st.integers(1, edits))):
        paths = _paths(doc)
        path = draw(st.sampled_from(paths))
        if not path:
            if draw(st.integers(0, 9)) == 0:
                doc = draw(json_values)
            continue
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        key = path[-1]
        how = draw(st.sampled_from(["replace", "replace", "delete", "extra"]))
        if how == "replace":
            parent[key] = draw(json_values)
        elif how == "delete":
            del parent[key]
        elif isinstance(parent, dict):
            parent[draw(st.text(max_size=6))] = draw(json_values)
        else:
            parent.append(draw(json_values))
    return doc


_st_dtypes = st.sampled_from(["F32", "F32", "F64", "F16", "BF16", "I64", "I8", "U8", "BOOL", "F8_E4M3", "C64",
                              "f32", "", "X"])


@st.composite
def safetensors_bytes(draw: Any, valid: bytes) -> bytes:
    """A weights file: the valid one with its header edited, a header written by hand, or noise."""
    kind = draw(st.sampled_from(["edit", "edit", "hand", "flip", "noise"]))
    if kind == "noise":
        return draw(st.binary(max_size=64))
    if kind == "flip":
        return _flip(draw, valid)
    (n,) = struct.unpack("<Q", valid[:8])
    header, data = json.loads(valid[8:8 + n]), valid[8 + n:]
    if kind == "edit":
        header = draw(mutated(header, edits=2))
    else:
        header = {}
        for name in draw(st.lists(st.sampled_from(["linear1.weight", "linear1.bias", "output.weight", "output.bias",
                                                  "x", "", "__metadata__"]), unique=True, max_size=4)):
            lo = draw(st.integers(-2, 300) | st.sampled_from([2**63, 2**64 + 1]))
            header[name] = {"dtype": draw(_st_dtypes), "shape": draw(st.lists(st.integers(-1, 8) | st.just(2**40),
                                                                              max_size=3)),
                            "data_offsets": [lo, lo + draw(st.integers(-4, 64))]}
        data = draw(st.binary(max_size=300))
    text = json.dumps(header, allow_nan=True).encode()
    pad = draw(st.sampled_from([b"", b" " * 3]))
    length = len(text) + len(pad)
    if draw(st.integers(0, 5)) == 0:
        length = draw(st.integers(0, 2**64 - 1))
    return struct.pack("<Q", length) + text + pad + data


# --------------------------------------------------------------------------- HTTP bodies

_values = st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.integers(-10**30, 10**30),
                    st.sampled_from(CITIES), st.text(max_size=4), st.none(), st.booleans(),
                    st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=2), st.integers(), max_size=1))
_good_values = {"a": st.floats(-3, 3), "b": st.floats(0, 10), "city": st.sampled_from(CITIES)}
_cols = st.one_of(st.sampled_from(FEATURES), st.sampled_from(["bb", "A", "y", ""]), st.text(max_size=3))


@st.composite
def _rows(draw: Any) -> tuple[list[str], list[list]]:
    good = draw(st.booleans())
    columns = list(FEATURES) if good else draw(st.lists(_cols, max_size=4))
    if good and draw(st.booleans()):
        columns = draw(st.permutations(columns))
    rows = []
    for _ in range(draw(st.integers(0, 4))):
        width = len(columns) + (0 if good or draw(st.booleans()) else draw(st.integers(-1, 1)))
        rows.append([draw(_good_values.get(columns[j], _values) if good and j < len(columns) else _values)
                     for j in range(max(width, 0))])
    return columns, rows


@st.composite
def json_bodies(draw: Any) -> bytes:
    """An /invocations JSON body in one of the four shapes, a broken one, or noise."""
    kind = draw(st.sampled_from(["dataframe_split", "dataframe_records", "instances", "inputs", "inputs_columns",
                                 "value", "noise", "cut"]))
    columns, rows = draw(_rows())
    records = [dict(zip(columns, r)) for r in rows]
    if kind == "dataframe_split":
        payload: Any = {kind: {"columns": columns, "data": rows}}
    elif kind == "dataframe_records":
        payload = {kind: records}
    elif kind == "instances":
        payload = {kind: draw(st.sampled_from([records, rows]))}
    elif kind == "inputs":
        payload = {kind: draw(st.sampled_from([records, rows, rows[0] if rows else []]))}
    elif kind == "inputs_columns":
        payload = {"inputs": {c: [r[j] if j < len(r) else None for r in rows] for j, c in enumerate(columns)}}
    elif kind == "value":
        payload = draw(json_values)
    else:
        payload = None
    if payload is not None and draw(st.integers(0, 3)) == 0:
        payload = draw(mutated(payload, edits=2))
    if kind == "noise":
        return draw(st.binary(max_size=120))
    text = _dumps(payload, allow_nan=True if kind == "value" else draw(st.booleans()))
    if kind == "cut":
        text = json.dumps({"dataframe_records": records}).encode()
        text = text[: draw(st.integers(0, len(text)))]
    return text


def _dumps(payload: Any, *, allow_nan: bool) -> bytes:
    """``payload`` as JSON: strict JSON when asked and possible (a payload holding inf or NaN is
    written with them), ``{}`` when it cannot be written at all."""
    for allow in dict.fromkeys((allow_nan, True)):
        try:
            return json.dumps(payload, allow_nan=allow).encode()
        except (ValueError, TypeError):
            continue
    return b"{}"


@st.composite
def csv_bodies(draw: Any) -> bytes:
    kind = draw(st.sampled_from(["table", "table", "noise"]))
    if kind == "noise":
        return draw(st.binary(max_size=120))
    columns, rows = draw(_rows())
    sep = draw(st.sampled_from([",", ",", ",", ";"]))
    lines = [sep.join(columns)] + [sep.join("" if v is None else str(v) for v in r) for r in rows]
    text = "\n".join(lines) + draw(st.sampled_from(["", "\n"]))
    return text.encode("utf-8", errors="surrogatepass")


_v2_types = st.sampled_from(["FP64", "FP32", "BYTES", "INT64", "BOOL", "fp64", "STRING", "", None])


@st.composite
def v2_bodies(draw: Any) -> bytes:
    """A v2 infer body: one tensor per column, one [rows, n] tensor, broken ones, or noise."""
    kind = draw(st.sampled_from(["columns", "matrix", "value", "noise"]))
    if kind == "noise":
        return draw(st.binary(max_size=120))
    if kind == "value":
        return json.dumps(draw(json_values), allow_nan=True).encode()
    columns, rows = draw(_rows())
    n = len(rows)
    if kind == "columns":
        inputs = [{"name": c, "shape": draw(st.sampled_from([[n], [n, 1], [n, 2], [], [-1], [n + 1]])),
                   "datatype": draw(_v2_types), "data": [r[j] if j < len(r) else None for r in rows]}
                  for j, c in enumerate(columns)]
    else:
        flat = [v for r in rows for v in r]
        width = len(columns)
        inputs = [{"name": "x", "shape": draw(st.sampled_from([[n, width], [n, 3], [width, n], [0, 3]])),
                   "datatype": draw(_v2_types), "data": draw(st.sampled_from([flat, rows]))}]
    payload: Any = {"inputs": inputs}
    if draw(st.booleans()):
        payload["parameters"] = draw(st.sampled_from([{}, {"proba": True}, {"std": True}, {"proba": "yes"}, [], 1]))
    if draw(st.integers(0, 3)) == 0:
        payload = draw(mutated(payload, edits=2))
    return _dumps(payload, allow_nan=True)
