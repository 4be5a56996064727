"""Encoding, scaling, task inference and JSON round trips (torchann.preprocess)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from torchann.core.choices import Task
from torchann.data.table import Table
from torchann.data.readers import load_table
from torchann.data.splits import split_indices
from torchann.core.errors import DataError, ModelFileError, UsageError
from torchann.preprocess.preprocessor import UnseenCategoryWarning, Preprocessor
from torchann.preprocess.target import infer_task


def mixed_table(n=40, seed=0):
    rng = np.random.default_rng(seed)
    return Table.from_columns({
        "age": rng.normal(40, 12, n),
        "income": rng.lognormal(10, 1, n),
        "const": np.full(n, 0.1),
        "colour": rng.choice(["red", "green", "blue"], n),
        "member": rng.random(n) < 0.5,
        "price": rng.normal(100, 30, n),
    }, source="houses.csv", targets=["price"])


def test_numeric_scaling_equals_standard_scaler():
    t = mixed_table()
    pre = Preprocessor.fit(t, features=["age", "income", "const"])
    x = np.stack([t.columns[n] for n in ["age", "income", "const"]], 1)
    sk = StandardScaler().fit(x)
    d = pre.to_dict()["features"]
    np.testing.assert_allclose([f["mean"] for f in d], sk.mean_, rtol=1e-13)
    np.testing.assert_allclose([f["std"] for f in d], sk.scale_, rtol=1e-13)
    assert d[2]["std"] == 1.0  # constant column: no division by ~0
    out = pre.transform_x(t)
    assert out.dtype == np.float32 and out.shape == (40, 3)
    np.testing.assert_allclose(out, sk.transform(x), atol=1e-6)
    np.testing.assert_array_equal(out[:, 2], 0.0)


def test_one_hot_equals_one_hot_encoder_and_column_order():
    t = mixed_table()
    pre = Preprocessor.fit(t, features=["colour", "age", "member"])
    enc = OneHotEncoder(sparse_output=False).fit(np.stack([t.columns["colour"], t.columns["member"]], 1))
    assert pre.features[0].categories == list(enc.categories_[0]) == ["blue", "green", "red"]
    assert pre.features[2].categories == [False, True]
    assert pre.in_features == 3 + 1 + 2 and pre.out_features == 1
    assert pre.input_names == ["colour=blue", "colour=green", "colour=red", "age", "member=False", "member=True"]
    out = pre.transform_x(t)
    ref = enc.transform(np.stack([t.columns["colour"], t.columns["member"]], 1))
    np.testing.assert_array_equal(out[:, :3], ref[:, :3])
    np.testing.assert_array_equal(out[:, 4:], ref[:, 3:])
    age = t.columns["age"]
    np.testing.assert_allclose(out[:, 3], (age - age.mean()) / age.std(), atol=1e-6)


def test_statistics_from_training_rows_categories_from_all_rows():
    t = Table.from_columns({"x": [1.0, 2.0, 3.0, 100.0], "c": ["a", "a", "a", "z"], "y": [0.0, 1, 2, 3]})
    pre = Preprocessor.fit(t, target="y", rows=[0, 1, 2])
    f = pre.features[0]
    assert f.mean == 2.0 and f.std == pytest.approx(np.sqrt(2 / 3), rel=1e-15)
    assert pre.features[1].categories == ["a", "z"]
    assert pre.target_mean == [1.0] and pre.target_std[0] == pytest.approx(np.sqrt(2 / 3), rel=1e-15)
    out = pre.transform_x(t)
    assert out[3, 0] == pytest.approx((100 - 2) / np.sqrt(2 / 3), rel=1e-6)
    np.testing.assert_array_equal(out[:, 1:], [[1, 0], [1, 0], [1, 0], [0, 1]])


def test_regression_targets_scale_and_invert():
    t = load_table("add")
    pre = Preprocessor.fit(t)
    assert pre.task == Task.REGRESSION and pre.target_names == ["sum"] and pre.feature_names == ["a", "b"]
    # sums 3, 7, 11, 15: mean 9, population std sqrt(20)
    assert pre.target_mean == [9.0] and pre.target_std[0] == pytest.approx(np.sqrt(20.0), rel=1e-15)
    y = pre.transform_y(t)
    assert y.dtype == np.float32 and y.shape == (4, 1)
    np.testing.assert_allclose(y[:, 0], (np.array([3, 7, 11, 15]) - 9) / np.sqrt(20), rtol=1e-6)
    np.testing.assert_allclose(pre.inverse_y(np.array([[0.0], [1.0]])), [[9.0], [9 + np.sqrt(20)]], rtol=1e-15)
    assert pre.inverse_y(torch.tensor([0.0])).tolist() == [9.0]
    raw = Preprocessor.fit(t, scale=False)
    np.testing.assert_array_equal(raw.transform_y(t)[:, 0], [3, 7, 11, 15])
    np.testing.assert_array_equal(raw.transform_x(t), [[1, 2], [3, 4], [5, 6], [7, 8]])


def test_two_regression_targets():
    t = Table.from_columns({"x": [0.0, 1, 2, 3], "u": [1.0, 2, 3, 4], "v": [10.0, 10, 20, 20]})
    pre = Preprocessor.fit(t, target=["u", "v"])
    assert pre.task == Task.REGRESSION and pre.out_features == 2
    assert pre.target_mean == [2.5, 15.0] and pre.target_std == [pytest.approx(np.sqrt(1.25)), 5.0]
    y = pre.transform_y(t)
    np.testing.assert_allclose(y[:, 1], [-1, -1, 1, 1])
    np.testing.assert_allclose(pre.inverse_y(y), np.stack([t.columns["u"], t.columns["v"]], 1), rtol=1e-6)


def test_classification_labels_codes_and_probabilities():
    t = Table.from_columns({"x": [0.0, 1, 2, 3, 4, 5], "kind": ["cat", "dog", "ant", "dog", "cat", "ant"]})
    pre = Preprocessor.fit(t, target="kind")
    assert pre.task == Task.CLASSIFICATION and pre.classes == ["ant", "cat", "dog"] and pre.out_features == 3
    y = pre.transform_y(t)
    assert y.dtype == np.int64 and y.tolist() == [1, 2, 0, 2, 1, 0]
    logits = np.array([[0.0, 3.0, 1.0], [2.0, -1.0, 0.5]])
    assert pre.inverse_y(logits).tolist() == ["cat", "ant"]
    p = pre.proba(torch.tensor(logits))
    np.testing.assert_allclose(p, torch.softmax(torch.tensor(logits, dtype=torch.float64), 1).numpy(), rtol=1e-12)
    with pytest.raises(DataError, match=r"logits have 2 column\(s\) but there are 3 classes"):
        pre.proba(np.zeros((1, 2)))


def test_binary_integer_labels_and_single_logit():
    t = Table.from_columns({"x": np.arange(8.0), "y": [0, 1] * 4})
    pre = Preprocessor.fit(t, target="y")
    assert pre.classes == [0, 1] and all(type(c) is int for c in pre.classes)
    p = pre.proba(np.array([[0.0], [np.log(3.0)]]))
    np.testing.assert_allclose(p, [[0.5, 0.5], [0.25, 0.75]], rtol=1e-12)
    assert pre.inverse_y(np.array([[-1.0], [2.0]])).tolist() == [0, 1]
    with pytest.raises(UsageError, match=r"only for classification"):
        Preprocessor.fit(load_table("add")).proba(np.zeros((1, 1)))


@pytest.mark.parametrize(
    "values, expected",
    [
        (["a", "b"] * 5, Task.CLASSIFICATION),  # text
        ([True, False] * 5, Task.CLASSIFICATION),  # boolean
        ([0, 1, 2] * 50, Task.CLASSIFICATION),  # iris-like: 3 integers, 150 rows
        ([3, 7, 11, 15], Task.REGRESSION),  # the adding data: 4 distinct in 4 rows
        ([0.5, 1.5] * 10, Task.REGRESSION),  # not integers
        (list(range(21)) * 3, Task.REGRESSION),  # 21 distinct > 20
        ([1] * 10, Task.REGRESSION),  # one value: nothing to classify
    ],
)
def test_task_inference_rule(values, expected):
    t = Table.from_columns({"x": np.zeros(len(values)), "y": values})
    assert infer_task(t, "y") == expected


def test_task_inference_on_datasets_and_override():
    assert infer_task(load_table("sklearn:iris")) == Task.CLASSIFICATION
    assert infer_task(load_table("sklearn:diabetes")) == Task.REGRESSION
    assert infer_task(load_table("moons")) == Task.CLASSIFICATION
    t = Table.from_columns({"x": [0.0, 1, 2, 3], "y": [0, 1, 0, 1], "z": [1, 0, 1, 0]})
    assert infer_task(t, ["y", "z"]) == Task.REGRESSION  # several targets: regression
    pre = Preprocessor.fit(t, target="y", features=["x"], task="regression")
    assert pre.task == Task.REGRESSION and pre.target_mean == [0.5]
    with pytest.raises(UsageError, match=r"unknown task 'clasification'.*Did you mean 'classification'"):
        Preprocessor.fit(t, target="y", task="clasification")
    with pytest.raises(DataError, match=r"classification takes one target column, got y, z"):
        Preprocessor.fit(t, target=["y", "z"], task="classification")


def test_missing_values_error_or_fill():
    t = Table.from_columns({"a": [1.0, np.nan, 3.0, 8.0], "c": ["x", None, "y", "x"], "y": [1.0, 2, 3, 4]},
                           source="m.csv")
    with pytest.raises(DataError) as err:
        Preprocessor.fit(t, target="y")
    msg = str(err.value)
    assert all(s in msg for s in ["m.csv", "column 'a'", "row 2", "--fill-missing mean|median|zero"])
    for how, fill in [("mean", 4.0), ("median", 3.0), ("zero", 0.0)]:
        pre = Preprocessor.fit(t, target="y", fill_missing=how, scale=False)
        out = pre.transform_x(t)
        assert out[1, 0] == fill and out[0, 0] == 1.0
        assert pre.input_names == ["a", "a.missing", "c=x", "c=y", "c=<missing>"]
        np.testing.assert_array_equal(out[:, 1], [0, 1, 0, 0])  # the indicator of a missing number
        np.testing.assert_array_equal(out[:, 2:], [[1, 0, 0], [0, 0, 1], [0, 1, 0], [1, 0, 0]])  # missing text: own slot
    scaled = Preprocessor.fit(t, target="y", fill_missing="mean")
    sk = StandardScaler().fit(t.columns["a"][:, None])  # ignores NaN like we do
    assert scaled.features[0].mean == pytest.approx(sk.mean_[0], rel=1e-15)
    assert scaled.features[0].std == pytest.approx(sk.scale_[0], rel=1e-15)
    assert scaled.transform_x(t)[1, 0] == 0.0  # mean-filled value scales to 0
    pre = Preprocessor.fit(t.take([0, 2, 3]), target="y")
    with pytest.raises(DataError, match=r"m.csv: column 'a' has a missing value in row 2 \(1 missing in all\)"):
        pre.transform_x(t)


def test_missing_target_and_rows_after_take():
    t = Table.from_columns({"a": [1.0, 2, 3, 4], "y": [1.0, 2, np.nan, 4]}, source="t.csv")
    with pytest.raises(DataError, match=r"t.csv: target 'y' is missing in row 3 .*drop rows without a target"):
        Preprocessor.fit(t, target="y")
    sub = t.take([3, 2])
    pre = Preprocessor.fit(t.take([0, 1]), target="y")
    with pytest.raises(DataError, match=r"target 'y' is missing in row 3"):
        pre.transform_y(sub)


def test_predict_table_by_name_extra_columns_and_unknown_category():
    train = Table.from_columns({"n": [1.0, 2, 3, 4], "c": ["a", "b", "a", "b"], "y": [1.0, 2, 3, 4]})
    pre = Preprocessor.fit(train, target="y")
    other = Table.from_columns({"extra": ["q", "q"], "c": ["b", "a"], "n": [2.0, 3.0]})
    np.testing.assert_array_equal(pre.transform_x(other), pre.transform_x(train.take([1, 2])))
    bad = Table.from_columns({"n": [1.0, 2, 3], "c": ["a", "a", "zebra"]}, source="new.csv")
    with pytest.warns(UnseenCategoryWarning, match=r"new.csv: categories never seen in training \('c': 1 row"):
        out = pre.transform_x(bad)
    assert pre.unseen == {"c": 1}
    np.testing.assert_array_equal(out[2, 1:], [0, 0])  # the unseen code: no input of the column set
    np.testing.assert_array_equal(out[:1], pre.transform_x(train.take([0])))
    with pytest.raises(DataError) as err:
        pre.transform_x(bad, strict=True)
    assert all(s in str(err.value) for s in ["new.csv", "column 'c'", "row 3", "'zebra'", "known: 'a', 'b'"])
    with pytest.raises(DataError, match=r"missing feature column\(s\) n, c that the model was trained on"):
        pre.transform_x(Table.from_columns({"y": [1.0]}))


def test_labels_in_another_type_still_match(tmp_path):
    # fitted on integer codes, applied to a file where the same codes are text and labels floats
    train = Table.from_columns({"zip": [10.0, 20, 10, 30], "y": ["no", "yes", "no", "yes"]})
    pre = Preprocessor.fit(train, target="y", categorical=["zip"])
    assert pre.features[0].categories == [10, 20, 30] and pre.in_features == 3
    f = tmp_path / "p.csv"
    f.write_text("zip,y\n30,yes\n10,no\n")
    t = load_table(f)
    np.testing.assert_array_equal(pre.transform_x(t), [[0, 0, 1], [1, 0, 0]])
    assert pre.transform_y(t).tolist() == [1, 0]
    text = Table.from_columns({"zip": ["20", "x"]}, source="q.csv")
    with pytest.raises(DataError, match=r"q.csv: column 'zip' row 2 holds 'x', an unknown category"):
        pre.transform_x(text)


def test_text_in_numeric_feature_and_infinite_values():
    pre = Preprocessor.fit(Table.from_columns({"a": [1.0, 2.0], "y": [0.0, 1.0]}), target="y", task="regression")
    with pytest.raises(DataError, match=r"p.csv: column 'a' should hold numbers, but row 2 holds 'abc'"):
        pre.transform_x(Table.from_columns({"a": ["1", "abc"]}, source="p.csv"))
    np.testing.assert_allclose(pre.transform_x(Table.from_columns({"a": ["1.5"]}))[:, 0], [0.0])
    with pytest.raises(DataError, match=r"column 'a' row 1 is inf; replace infinite values"):
        pre.transform_x(Table.from_columns({"a": [np.inf]}))


def test_identifier_like_text_column_is_left_out_and_recorded():
    n = 120
    t = Table.from_columns({"id": [f"user{i}" for i in range(n)], "x": np.arange(n, dtype=float) % 10,
                            "y": np.arange(n, dtype=float)})  # x % 10: a plain row number is an identifier too
    pre = Preprocessor.fit(t, target="y")
    assert pre.feature_names == ["x"] and pre.in_features == 1
    assert "120 distinct values in 120 rows, none seen 5 times" in pre.dropped["id"]
    assert Preprocessor.from_dict(json.loads(json.dumps(pre.to_dict()))).dropped == pre.dropped
    with pytest.raises(DataError, match=r"no usable feature column: 'id' left out \(120 distinct"):
        Preprocessor.fit(t, target="y", features=["id"])


def test_single_class_and_overlap_errors():
    t = Table.from_columns({"x": [1.0, 2.0], "y": ["a", "a"]})
    with pytest.raises(DataError, match=r"target 'y' has only the value 'a'; classification needs at least two"):
        Preprocessor.fit(t, target="y")
    with pytest.raises(DataError, match=r"column 'x' is both a target and a feature"):
        Preprocessor.fit(t, target="x", features=["x"])
    with pytest.raises(DataError, match=r"no target column given; name one with target= \(--target\)"):
        Preprocessor.fit(Table.from_columns({"x": [1.0]}))


@pytest.mark.parametrize("features", [None, ["age", "member"]])
def test_json_round_trip_is_exact(features):
    t = mixed_table(seed=5)
    t.columns["colour"][3] = None
    tr, va = split_indices(t.n_rows, 0.25, seed=0)
    pre = Preprocessor.fit(t, features=features, fill_missing="median", rows=tr)
    text = json.dumps(pre.to_dict())
    back = Preprocessor.from_dict(json.loads(text))
    assert back == pre and back.to_dict() == pre.to_dict() and json.dumps(back.to_dict()) == text
    for a, b in zip(pre.features, back.features):
        assert (a.mean, a.std, a.fill, a.categories) == (b.mean, b.std, b.fill, b.categories)
        assert [type(c) for c in a.categories or []] == [type(c) for c in b.categories or []]
    assert back.target_mean == pre.target_mean and back.target_std == pre.target_std
    np.testing.assert_array_equal(back.transform_x(t.take(va)), pre.transform_x(t.take(va)))
    np.testing.assert_array_equal(back.transform_y(t), pre.transform_y(t))
    assert Preprocessor.fit(t, features=features, fill_missing="median", rows=va) != pre


def test_classification_round_trip_keeps_label_types():
    t = Table.from_columns({"x": np.arange(6.0), "y": [True, False] * 3})
    pre = Preprocessor.fit(t, target="y")
    back = Preprocessor.from_dict(json.loads(json.dumps(pre.to_dict())))
    assert back.classes == [False, True] and type(back.classes[1]) is bool
    assert back.inverse_y(np.array([[0.0, 1.0]])).tolist() == [True]
    iris = load_table("sklearn:iris")
    pi = Preprocessor.fit(iris)
    assert Preprocessor.from_dict(json.loads(json.dumps(pi.to_dict()))).classes == [0, 1, 2]


def test_from_dict_rejects_damaged_records():
    with pytest.raises(ModelFileError, match=r"not a torchann preprocessor record"):
        Preprocessor.from_dict({"format": "something else"})
    d = Preprocessor.fit(load_table("add")).to_dict()
    del d["features"]
    with pytest.raises(ModelFileError, match=r"preprocessor record: field features is missing"):
        Preprocessor.from_dict(d)


def test_empty_column_and_nan_in_a_hand_made_text_column(tmp_path):
    f = tmp_path / "e.csv"
    f.write_text("a,b,y\n1,,1\n2,,2\n")
    t = load_table(f)
    assert t.columns["b"].dtype == np.float64 and np.isnan(t.columns["b"]).all()
    with pytest.raises(DataError, match=r"e.csv: feature column 'b' has no values in the training rows"):
        Preprocessor.fit(t, target="y")
    hand = Table({"c": np.array(["a", np.nan, "b"], dtype=object), "y": np.array([1.0, 2.0, 3.0])})
    pre = Preprocessor.fit(hand, target="y", fill_missing="zero")
    assert pre.features[0].categories == ["a", "b"]
    np.testing.assert_array_equal(pre.transform_x(hand), [[1, 0, 0], [0, 0, 1], [0, 1, 0]])  # NaN: the missing slot
