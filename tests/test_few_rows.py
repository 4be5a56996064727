"""A few rows go value by value (preprocess/few_rows.py): the same inputs, bit for bit, and the
same facts as the column-wise path, for numbers (quantile and standard scaling, filled missing
values with an indicator, out of range) and text (unseen, missing, pooled rare categories); and
every case it does not handle goes to the column-wise path, errors included."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import torchann
from torchann.core.errors import DataError
from torchann.data import as_table
from torchann.preprocess.few_rows import FEW_ROWS, encode_few

CITIES = ["east", "north", "south", "west"]
CODES = [f"c{i:03d}" for i in range(150)]  # > 100 distinct: the rare ones are pooled as <other>


def _training(n=1200, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=n)
    a[rng.random(n) < 0.1] = np.nan  # missing in training: filled, with an indicator input
    city = rng.choice(CITIES, size=n).astype(object)
    city[rng.random(n) < 0.1] = None  # a missing category: its own input
    frequent = rng.choice(CODES[:20], size=n)
    rare = rng.choice(CODES[20:], size=n)
    code = np.where(rng.random(n) < 0.8, frequent, rare).astype(object)
    cols = {"a": a, "b": rng.uniform(0, 10, size=n), "k": rng.integers(0, 5, size=n).astype(np.float64),
            "city": city, "code": code}
    cols["y"] = np.nan_to_num(a) + cols["b"] / 3 + (city == "north")
    return cols


@pytest.fixture(scope="module", params=["quantile", "standard"])
def model(request):
    return torchann.train(_training(), target="y", epochs=1, seed=0, hidden=(8,), scaling=request.param)


def _queries(seed, count=300):
    rng = np.random.default_rng(seed)
    numbers = [0.3, -1.7, 5.0, 9.9, 1e6, -1e6, np.nan, 2.0]  # inside, outside, missing
    texts = CITIES + ["nowhere", None]
    codes = CODES[:5] + CODES[140:] + ["c999", None]
    for _ in range(count):
        n = int(rng.integers(1, FEW_ROWS + 1))
        yield {"a": rng.choice(numbers, size=n), "b": rng.choice(numbers, size=n),
               "k": rng.choice([0.0, 3.0, 7.0, np.nan], size=n),
               "city": np.array([texts[i] for i in rng.integers(0, len(texts), size=n)], dtype=object),
               "code": np.array([codes[i] for i in rng.integers(0, len(codes), size=n)], dtype=object)}


def _facts(facts):
    return {kind: {c: rows.tolist() for c, rows in cols.items()} for kind, cols in facts.kinds.items()}


def test_value_by_value_equals_column_by_column(model):
    pre = model.preprocessor
    assert any(f.indicator for f in pre.features) and any(f.other for f in pre.features)
    assert any(f.missing_slot for f in pre.features)
    seen_facts = set()
    for query in _queries(1):
        table = as_table(query, names=model.feature_names)
        few = encode_few(pre, table)
        assert few is not None
        whole, facts = pre._encode_columns(table)
        assert few[0].dtype == np.float32 and np.array_equal(few[0].view(np.int32), whole.view(np.int32))
        assert _facts(few[1]) == _facts(facts)
        seen_facts |= {k for k, cols in facts.kinds.items() if cols}
    assert seen_facts == {"unseen_category", "out_of_range", "missing_filled"}


def test_predict_of_a_few_rows_equals_a_large_call(model):
    queries = list(_queries(2, count=40))
    big = {k: np.concatenate([q[k] for q in queries]) for k in queries[0]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        whole = model.predict(big)
        parts = np.concatenate([model.predict(q) for q in queries])
    np.testing.assert_allclose(parts, whole, rtol=1e-6, atol=0)


@pytest.mark.parametrize("query, message", [
    ({"a": [1.0], "b": ["many"], "k": [1.0], "city": ["east"], "code": ["c001"]}, "column 'b' should hold numbers"),
    ({"a": [1.0], "b": [np.inf], "k": [1.0], "city": ["east"], "code": ["c001"]}, "replace infinite values"),
    ({"a": [1.0], "b": [2.0], "k": [1e300], "city": ["east"], "code": ["c001"]}, "leaves float32's range"),
    ({"a": [1.0], "b": [2.0], "k": [1.0], "city": ["east"]}, "missing feature column(s) code"),
])
def test_what_it_does_not_handle_is_answered_column_wise(model, query, message):
    table = as_table(query, names=model.feature_names)
    assert encode_few(model.preprocessor, table) is None
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        model.preprocessor.transform_x_facts(table)


def test_strict_refuses_an_unseen_category_with_the_column_wise_message(model):
    table = as_table({"a": [1.0], "b": [2.0], "k": [1.0], "city": ["nowhere"], "code": ["c001"]},
                     names=model.feature_names)
    assert encode_few(model.preprocessor, table, strict=True) is None
    with pytest.raises(DataError, match="column 'city' holds a category never seen in training: 'nowhere' \\(row 1\\)"):
        model.preprocessor.transform_x_facts(table, strict=True)
    # an unknown code is one more of the pooled rare ones, strict or not
    pooled = as_table({"a": [1.0], "b": [2.0], "k": [1.0], "city": ["east"], "code": ["c999"]},
                      names=model.feature_names)
    assert encode_few(model.preprocessor, pooled, strict=True) is not None


def test_more_rows_than_few_go_column_wise(model):
    query = next(_queries(3))
    many = {k: np.concatenate([v] * (FEW_ROWS + 1))[: FEW_ROWS + 1] for k, v in query.items()}
    assert encode_few(model.preprocessor, as_table(many, names=model.feature_names)) is None


def test_piecewise_linear_columns_give_the_column_wise_inputs_bit_for_bit():
    ple = torchann.train(_training(300), target="y", epochs=1, seed=0, hidden=(8,), ple_bins=4, networks=1)
    pre = ple.preprocessor
    assert any(f.bins for f in pre.features) and any(f.bins and f.indicator for f in pre.features)
    for query in _queries(4):  # missing, out-of-range and unseen values among them
        table = as_table(query, names=ple.feature_names)
        few = encode_few(pre, table)
        assert few is not None
        whole, facts = pre._encode_columns(table)
        assert np.array_equal(few[0].view(np.int32), whole.view(np.int32))
        assert _facts(few[1]) == _facts(facts)


def test_one_rows_bins_are_ple_encodes_bit_for_bit_at_the_edges():
    from torchann.preprocess.encoders import ple_encode
    from torchann.preprocess.few_rows import _ple_row, _ple_steps

    bins = [0.0, 0.1, 0.3, 1.7, 2.0]
    xs = [-0.0, 0.0, -3.0, 0.1, 0.3000000000000001, 0.2, 1.7, 1.9999999, 2.0, 5.0, 1e-300, -1e-300]
    want = ple_encode(np.asarray(xs), bins)
    got = np.asarray([_ple_row(x, _ple_steps(bins)) for x in xs])
    assert np.array_equal(got.view(np.int64), want.view(np.int64))  # -0.0 and 0.0 told apart
