"""ONNX export: onnxruntime answers from raw columns as torchann does, with no Python preprocessing."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import torchann
from torchann.cli import app
from torchann.core.errors import DataError, UsageError
from torchann.preprocess.features import Feature
from torchann.core.choices import FillMissing
from torchann.preprocess.preprocessor import Preprocessor
from torchann.core.choices import Task

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

runner = CliRunner()
RTOL = 1e-5


def _mixed(n: int, seed: int) -> dict[str, np.ndarray]:
    """Numbers (some missing), a text category (some missing), a true/false column."""
    rng = np.random.default_rng(seed)
    size = rng.uniform(20, 200, n)
    age = rng.normal(30, 10, n)
    colour = rng.choice(["blue", "green", "red"], n).astype(object)
    garden = rng.random(n) < 0.4
    price = 3 * size + 40 * (colour == "red") - 20 * (colour == "blue") + 25 * garden - age + rng.normal(0, 5, n)
    age[rng.random(n) < 0.1] = np.nan
    colour[rng.random(n) < 0.1] = None
    kind = np.where(size > 140, "big", np.where(colour == "red", "dear", "cheap")).astype(object)
    return {"size": size, "age": age, "colour": colour, "garden": garden, "price": price, "kind": kind}


def _csv(path, columns: dict[str, np.ndarray]) -> None:
    names = list(columns)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(names)
        for row in zip(*columns.values()):
            w.writerow(["" if v is None or (isinstance(v, float) and np.isnan(v)) else
                        (repr(float(v)) if isinstance(v, float) else str(v).lower() if isinstance(v, (bool, np.bool_))
                         else v) for v in row])


def _feeds(model: torchann.Model, table: torchann.Table) -> dict[str, np.ndarray]:
    """Raw columns as onnxruntime takes them: float64 numbers (NaN missing), str text ("" missing),
    1.0/0.0 for true/false."""
    feeds = {}
    for f in model.preprocessor.features:
        col = table.columns[f.name]
        if f.kind == "categorical" and f.label_kind == "str":
            feeds[f.name] = np.array(["" if v is None else str(v) for v in col], dtype=object)
        elif col.dtype == object:
            feeds[f.name] = np.array([np.nan if v is None else float(v) for v in col], dtype=np.float64)
        else:
            feeds[f.name] = col.astype(np.float64)
    return feeds


def _session(path) -> "ort.InferenceSession":
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _run(session, feeds) -> dict[str, np.ndarray]:
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, feeds)))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("export")
    train, held = _mixed(400, seed=1), _mixed(10_000, seed=2)
    _csv(folder / "train.csv", train)
    _csv(folder / "held.csv", held)
    return folder


@pytest.fixture(scope="module")
def regression(data):
    """A regression model trained by ``torchann train``, loaded back, and its ONNX file."""
    run = data / "price"
    result = runner.invoke(app, ["train", str(data / "train.csv"), "--target", "price", "--exclude", "kind",
                                 "--fill-missing", "median", "--hidden", "16,8", "--epochs", "20", "--seed", "0",
                                 "--networks", "1", "--quiet", "--out", str(run)])
    assert result.exit_code == 0, result.output
    model = torchann.load(run)
    return model, model.export_onnx(data / "price.onnx")


@pytest.fixture(scope="module")
def classifier(data):
    """A three-class model trained by ``torchann train`` (text labels), exported by ``torchann export``
    in a real process (so stdout is the process's own)."""
    run = data / "kind"
    result = runner.invoke(app, ["train", str(data / "train.csv"), "--target", "kind", "--exclude", "price",
                                 "--fill-missing", "mean", "--hidden", "16", "--epochs", "40", "--lr", "0.01", "--seed", "0",
                                 "--networks", "1", "--quiet", "--out", str(run)])
    assert result.exit_code == 0, result.output
    proc = subprocess.run([sys.executable, "-m", "torchann", "export", str(run), "--format", "onnx",
                           "--out", str(data / "kind.onnx")], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONWARNINGS": "default"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""  # the exporter's chatter never reaches stdout
    assert proc.stderr.startswith(f"wrote {data / 'kind.onnx'}") and "-> kind, probabilities" in proc.stderr
    return torchann.load(run), data / "kind.onnx"


# -- the whole model ------------------------------------------------------------------------


def test_regression_on_10000_held_out_rows_equals_predict(data, regression):
    model, path = regression
    table = torchann.load_table(data / "held.csv")
    out = _run(_session(path), _feeds(model, table))
    assert list(out) == ["price"] and out["price"].dtype == np.float64 and out["price"].shape == (10_000,)
    expected = model.predict(table)
    np.testing.assert_allclose(out["price"], expected, rtol=RTOL, atol=0)
    assert np.isnan(table.columns["age"]).sum() > 500 and sum(v is None for v in table.columns["colour"]) > 500


def test_regression_one_row_at_a_time(data, regression):
    model, path = regression
    table = torchann.load_table(data / "held.csv").take(np.arange(12))
    session = _session(path)
    feeds = _feeds(model, table)
    one = [_run(session, {k: v[i:i + 1] for k, v in feeds.items()})["price"] for i in range(12)]
    assert all(o.shape == (1,) for o in one)
    np.testing.assert_allclose(np.concatenate(one), model.predict(table), rtol=RTOL, atol=0)


def test_classifier_labels_and_probabilities_equal_torchann_predict(data, classifier):
    model, path = classifier
    result = runner.invoke(app, ["predict", str(data / "kind"), "--data", str(data / "held.csv"), "--proba"])
    assert result.exit_code == 0, result.output
    printed = list(csv.DictReader(io.StringIO(result.stdout)))
    table = torchann.load_table(data / "held.csv")
    session = _session(path)
    out = _run(session, _feeds(model, table))
    assert [o.name for o in session.get_outputs()] == ["kind", "probabilities"]
    assert out["kind"].tolist() == [row["kind"] for row in printed]  # labels identical
    assert len(set(out["kind"].tolist())) == 3
    expected = np.array([[float(row[f"p({c})"]) for c in model.classes] for row in printed])
    np.testing.assert_allclose(out["probabilities"], expected, rtol=RTOL, atol=1e-12)
    single = _run(session, {k: v[:1] for k, v in _feeds(model, table).items()})
    assert single["kind"].tolist() == [printed[0]["kind"]] and single["probabilities"].shape == (1, 3)


def test_graph_inputs_outputs_metadata_and_one_file(data, classifier):
    model, path = classifier
    from torchann.export.onnx import graph_signature
    import onnx

    sig = graph_signature(path)
    assert sig["inputs"] == [{"name": "size", "type": "float64", "shape": ["batch"]},
                             {"name": "age", "type": "float64", "shape": ["batch"]},
                             {"name": "colour", "type": "string", "shape": ["batch"]},
                             {"name": "garden", "type": "float64", "shape": ["batch"]}]
    assert sig["outputs"] == [{"name": "kind", "type": "string", "shape": ["batch"]},
                              {"name": "probabilities", "type": "float64", "shape": ["batch", 3]}]
    proto = onnx.load(str(path))
    assert all(t.data_location != onnx.TensorProto.EXTERNAL for t in proto.graph.initializer)
    assert sorted(p.name for p in path.parent.iterdir() if p.name.startswith("kind.onnx")) == ["kind.onnx"]
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["torchann.task"] == "classification" and meta["torchann.classes"] == '["big", "cheap", "dear"]'


def test_trained_defaults_are_exported_quantile_map_indicator_missing_slot(regression):
    """The fixtures' models use the defaults: quantile scaling, an indicator for the column with
    missing numbers, a missing slot for the text column; the comparisons above cover them."""
    pre = regression[0].preprocessor
    features = {f.name: f for f in pre.features}
    assert pre.scaling.value == "quantile" and features["size"].knots is not None
    assert features["age"].indicator and features["colour"].missing_slot


def test_unseen_category_answers_as_predict_does(data, classifier):
    """``predict`` warns about a category never seen in training and sets no input of its column; the
    graph sets none either (a missing category, unlike an unseen one, sets the missing slot)."""
    model, path = classifier
    rows = {"size": np.array([50.0, 150.0, 90.0]), "age": np.array([30.0, np.nan, 41.0]),
            "colour": np.array(["purple", "red", None], dtype=object), "garden": np.array([True, False, True])}
    with pytest.warns(torchann.preprocess.UnseenCategoryWarning, match="'colour': 1 row"):
        expected, proba = model.predict(rows), model.predict_proba(rows)
    out = _run(_session(path), _feeds(model, torchann.Table.from_columns(rows)))
    assert out["kind"].tolist() == expected.tolist()
    np.testing.assert_allclose(out["probabilities"], proba, rtol=RTOL, atol=1e-12)


def test_rare_categories_other_slot_and_log_target(tmp_path):
    """A text column with many values keeps the frequent ones and pools the rest in ``other`` (an
    unseen value too); a skewed positive target is learnt as log1p and answered through expm1."""
    rng = np.random.default_rng(3)

    def table(n, seed):
        rng = np.random.default_rng(seed)
        street = np.array([f"s{i}" for i in rng.integers(0, 8, n)], dtype=object)
        rare = rng.random(n) < 0.3
        street[rare] = [f"r{i}" for i in rng.integers(0, 400, rare.sum())]
        street[rng.random(n) < 0.05] = None
        x = rng.normal(0, 1, n)
        x[rng.random(n) < 0.1] = np.nan
        y = np.exp(1.5 * np.nan_to_num(x) + rng.normal(0, 0.3, n) + 0.2 * (street == "s1"))
        return {"x": x, "street": street, "y": y}

    model = torchann.train(table(600, 1), target="y", hidden=[8], epochs=3, seed=0, fill_missing="mean")
    pre = model.preprocessor
    street = pre.features[1]
    assert street.other and street.missing_slot and pre.target_log == [True] and pre.features[0].knots
    held = table(300, 2)
    held["street"][:3] = ["never-seen", None, "s1"]
    path = model.export_onnx(tmp_path / "y.onnx")
    out = _run(_session(path), _feeds(model, torchann.Table.from_columns(held)))["y"]
    np.testing.assert_allclose(out, model.predict(held), rtol=RTOL, atol=0)


# -- hand arithmetic ------------------------------------------------------------------------


def _linear_model(pre: Preprocessor, weights: list[list[float]], bias: list[float]) -> torchann.Model:
    net = torchann.mlp(len(weights[0]), [], len(weights))
    with torch.no_grad():
        net.output.weight.copy_(torch.tensor(weights))
        net.output.bias.copy_(torch.tensor(bias))
    return torchann.Model(net.eval(), pre)


def test_each_step_by_hand(tmp_path):
    """fill, scale, one-hot of text and of numbers, unscale: a linear network makes every step visible."""
    pre = Preprocessor(
        task=Task.REGRESSION, scale=True, fill_missing=FillMissing.MEAN, target_names=["y"],
        target_mean=[5.0], target_std=[2.0],
        features=[Feature("a", "numeric", mean=2.0, std=4.0, fill=10.0),
                  Feature("c", "categorical", categories=["blue", "red"], label_kind="str"),
                  Feature("k", "categorical", categories=[1, 3], label_kind="int")])
    # inputs: (a - 2) / 4, c=blue, c=red, k=1, k=3
    model = _linear_model(pre, [[1.0, 10.0, 100.0, 1000.0, 10000.0]], [0.5])
    path = model.export_onnx(tmp_path / "m.onnx")
    feeds = {"a": np.array([6.0, np.nan, -2.0]), "c": np.array(["red", "", "blue"], dtype=object),
             "k": np.array([3.0, 1.0, np.nan])}
    out = _run(_session(path), feeds)["y"]
    # row 1: 1 + 100 + 10000 + 0.5 = 10101.5 -> * 2 + 5
    # row 2: a missing -> 10 -> 2; c missing -> 0; k=1 -> 1000: 1002.5
    # row 3: -1 + 10 + 0 + 0.5 = 9.5
    assert out.tolist() == [10101.5 * 2 + 5, 1002.5 * 2 + 5, 9.5 * 2 + 5]


def test_quantile_map_indicator_other_missing_slot_and_log_by_hand(tmp_path):
    """The quantile map below, on and between the knots and past the last, the indicator, the
    ``other`` and missing slots of a category, and expm1 for a target learnt as log1p."""
    pre = Preprocessor(
        task=Task.REGRESSION, scale=True, fill_missing=FillMissing.MEAN, target_names=["y", "z"],
        target_mean=[0.0, 0.0], target_std=[1.0, 1.0], target_log=[False, True],
        features=[Feature("a", "numeric", fill=1.0, knots=[0.0, 1.0, 3.0], scores=[-1.0, 0.0, 2.0], indicator=True),
                  Feature("c", "categorical", categories=["blue", "red"], label_kind="str", other=True,
                          missing_slot=True)])
    # inputs: map(a), a missing, c=blue, c=red, c=<other>, c=<missing>
    model = _linear_model(pre, [[1.0, 10.0, 100.0, 1000.0, 10000.0, 100000.0], [1.0, 0.0, 0.0, 0.0, 0.0, 0.0]],
                          [0.0, 1e-7])
    a = np.array([-5.0, 0.0, 0.5, 1.0, 2.0, 3.0, 7.0, np.nan])
    c = np.array(["blue", "red", "", "green", "blue", "", "red", "blue"], dtype=object)
    out = _run(_session(model.export_onnx(tmp_path / "m.onnx")), {"a": a, "c": c})
    mapped = np.array([-1.0, -1.0, -0.5, 0.0, 1.0, 2.0, 2.0, 0.0])
    slots = np.array([100.0, 1000.0, 100000.0, 10000.0, 100.0, 100000.0, 1000.0, 100.0])
    assert out["y"].tolist() == (mapped + slots + 10.0 * np.isnan(a)).tolist()
    z = (mapped.astype(np.float32) + np.float32(1e-7)).astype(np.float64)
    np.testing.assert_allclose(out["z"], np.expm1(z), rtol=1e-12, atol=0)
    rows = {"a": a, "c": np.where(c == "", None, c)}
    with np.errstate(over="ignore"):  # predict takes expm1 of both columns and keeps the logged one
        expected = model.predict(rows)
    np.testing.assert_allclose(np.stack([out["y"], out["z"]], axis=1), expected, rtol=1e-7, atol=0)


def test_two_classes_from_one_logit_by_hand(tmp_path):
    pre = Preprocessor(task=Task.CLASSIFICATION, scale=False, fill_missing=None, target_names=["spam"],
                       features=[Feature("x", "numeric")], classes=[0, 1], class_kind="int")
    model = _linear_model(pre, [[2.0]], [0.0])
    out = _run(_session(model.export_onnx(tmp_path / "m.onnx")), {"x": np.array([1.0, -0.5, 0.0])})
    p1 = 1 / (1 + np.exp(-np.array([2.0, -1.0, 0.0])))
    np.testing.assert_allclose(out["probabilities"], np.stack([1 - p1, p1], axis=1), rtol=1e-12)
    assert out["spam"].dtype == np.int64 and out["spam"].tolist() == [1, 0, 0]  # a tie goes to the first class


def test_network_only_takes_the_preprocessed_matrix(data, regression, tmp_path):
    model, _ = regression
    path = model.export_onnx(tmp_path / "net.onnx", network_only=True)
    session = _session(path)
    assert [i.name for i in session.get_inputs()] == ["input"]
    assert session.get_inputs()[0].shape == ["batch", model.spec.in_features]
    table = torchann.load_table(data / "held.csv").take(np.arange(500))
    x = model.preprocessor.transform_x(table)
    (out,) = session.run(None, {"input": x})
    np.testing.assert_allclose(out, model.outputs(table).numpy(), rtol=RTOL, atol=1e-6)


# -- errors ---------------------------------------------------------------------------------


def test_without_the_extra_one_line_says_what_to_install(regression, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxscript", None)
    with pytest.raises(UsageError) as err:
        regression[0].export_onnx(tmp_path / "m.onnx")
    assert str(err.value) == "ONNX export needs the onnxscript package: pip install 'torchann[onnx]' (onnx and onnxscript)"
    assert not (tmp_path / "m.onnx").exists()


def test_cli_refuses_another_format(data, regression, tmp_path):
    result = runner.invoke(app, ["export", str(data / "price"), "--format", "tflite", "--out", str(tmp_path / "m")])
    assert result.exit_code == 2 and "unknown --format 'tflite'; choose onnx" in result.output
    assert list(tmp_path.iterdir()) == []


def test_preprocessing_the_exporter_does_not_know_is_refused(tmp_path, monkeypatch):
    """A step added to Preprocessor later must not be exported silently wrong."""
    pre = Preprocessor(task=Task.REGRESSION, scale=False, fill_missing=None, target_names=["y"],
                       features=[Feature("x", "numeric")], target_mean=[0.0], target_std=[1.0])
    model = _linear_model(pre, [[2.0]], [0.0])
    record = pre.to_dict()
    record["features"][0]["clip"] = [-3.0, 3.0]
    monkeypatch.setattr(type(pre), "to_dict", lambda self: record)
    with pytest.raises(UsageError, match=r"uses clip \(x\), which the ONNX export does not cover yet; export the "
                                         r"network alone \(--network-only\)"):
        model.export_onnx(tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


def test_date_feature_is_refused_in_one_line(tmp_path):
    pre = Preprocessor(task=Task.REGRESSION, scale=True, fill_missing=None, target_names=["y"],
                       features=[Feature("when", "date", date_format="%Y-%m-%d", date_mean=[2000.0, 6.0, 3.0, 1e4],
                                         date_std=[5.0, 3.0, 2.0, 1e3])], target_mean=[0.0], target_std=[1.0])
    model = _linear_model(pre, [[1.0, 1.0, 1.0, 1.0]], [0.0])
    with pytest.raises(UsageError, match=r"^this model's preprocessing uses feature kind 'date' \(when\), which the "
                                         r"ONNX export does not cover yet; export the network alone"):
        model.export_onnx(tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


def test_cli_keeps_an_existing_file_unless_overwrite(data, regression, tmp_path):
    from torchann.export.onnx import graph_signature

    target = tmp_path / "m.onnx"
    target.write_bytes(b"someone's file")
    result = runner.invoke(app, ["export", str(data / "price"), "--out", str(target)])
    assert result.exit_code == 2
    assert result.stderr == f"error: {target} already exists; pass --overwrite to replace it, or choose another --out\n"
    assert target.read_bytes() == b"someone's file" and list(tmp_path.iterdir()) == [target]
    result = runner.invoke(app, ["export", str(data / "price"), "--out", str(target), "--overwrite"])
    assert result.exit_code == 0, result.output
    assert graph_signature(target) == graph_signature(regression[1])  # the same graph Model.export_onnx wrote
    assert list(tmp_path.iterdir()) == [target]
