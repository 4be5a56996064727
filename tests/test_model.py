"""One trained model, one way in: the command line, ``torchann.train`` and the scikit-learn
estimators make the same model; ``torchann.load(run)`` answers what ``torchann predict``
prints; ``evaluate`` gives scikit-learn's metrics."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sklearn import metrics as skm
from typer.testing import CliRunner

import torchann
from torchann.cli import app
from torchann.core.errors import DataError, UsageError

runner = CliRunner()
FAST = dict(hidden=[16], epochs=6, lr=1e-2, seed=3, device="cpu")
FLAGS = ["--hidden", "16", "--epochs", "6", "--lr", "0.01", "--seed", "3", "--device", "cpu", "--quiet"]


def _invoke(*args):
    result = runner.invoke(app, [str(a) for a in args])
    return result


def _ok(*args):
    result = _invoke(*args)
    assert result.exit_code == 0, result.output
    return result


def _write_csv(path, columns):
    names = list(columns)
    n = len(columns[names[0]])

    def cell(v):
        return repr(float(v)) if isinstance(v, (float, np.floating)) else str(v)

    path.write_text(",".join(names) + "\n" + "".join(",".join(cell(columns[c][i]) for c in names) + "\n"
                                                    for i in range(n)))
    return path


def _regression_columns(n=120, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)) * [1.0, 10.0, 0.1]
    y = 3 * x[:, 0] - 0.2 * x[:, 1] + 20 * x[:, 2] + rng.normal(scale=0.3, size=n) + 50
    return {"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "y": y}


def _class_columns(n=150, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2))
    label = np.where(x[:, 0] + x[:, 1] > 0.5, "high", np.where(x[:, 0] - x[:, 1] > 0.3, "mid", "low"))
    return {"u": x[:, 0], "v": x[:, 1], "kind": label}


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


# -- the three doors make the same model ---------------------------------------------------------


def test_cli_python_and_estimator_train_bit_identical_regression_models(tmp_path):
    columns = _regression_columns()
    path = _write_csv(tmp_path / "houses.csv", columns)
    _ok("train", path, "--target", "y", *FLAGS, "--out", tmp_path / "run")
    from_cli = torchann.load(tmp_path / "run")
    from_python = torchann.train(path, target="y", **FAST)
    x = np.stack([columns[c] for c in "abc"], axis=1)
    est = torchann.MLPRegressor(hidden=[16], epochs=6, lr=1e-2, random_state=3, device="cpu").fit(x, columns["y"])
    _same_weights(from_cli.network, from_python.network)
    _same_weights(from_cli.network, est.network_)
    expected = from_python.predict(path)
    np.testing.assert_array_equal(from_cli.predict(path), expected)
    np.testing.assert_array_equal(est.predict(x), expected)
    assert from_cli.history.info["best_epoch"] == from_python.history.info["best_epoch"]


def test_cli_python_and_estimator_train_bit_identical_classifiers(tmp_path):
    columns = _class_columns()
    path = _write_csv(tmp_path / "kinds.csv", columns)
    _ok("train", path, "--target", "kind", *FLAGS, "--out", tmp_path / "run")
    from_cli = torchann.load(tmp_path / "run")
    from_python = torchann.train(columns, target="kind", **FAST)  # a dict of columns this time
    x = np.stack([columns["u"], columns["v"]], axis=1)
    est = torchann.MLPClassifier(hidden=[16], epochs=6, lr=1e-2, random_state=3, device="cpu").fit(x, columns["kind"])
    _same_weights(from_cli.network, from_python.network)
    _same_weights(from_cli.network, est.network_)
    assert from_cli.classes == ["high", "low", "mid"] and list(est.classes_) == from_cli.classes
    np.testing.assert_array_equal(est.predict(x), from_cli.predict(path))
    np.testing.assert_array_equal(est.predict_proba(x), from_cli.predict_proba(path))


def test_load_predict_equals_the_cli_to_the_last_digit(tmp_path):
    columns = _regression_columns()
    path = _write_csv(tmp_path / "t.csv", columns)
    _ok("train", path, "--target", "y", *FLAGS, "--out", tmp_path / "run")
    printed = _ok("predict", tmp_path / "run", "--data", path).stdout.splitlines()
    assert printed[0] == "y"
    from_cli = np.array([float(v) for v in printed[1:]])
    np.testing.assert_array_equal(torchann.load(tmp_path / "run").predict(path), from_cli)
    # rows of numbers in feature order answer the same as the table's rows
    rows = np.stack([columns[c] for c in "abc"], axis=1)[:5]
    np.testing.assert_array_equal(torchann.load(tmp_path / "run").predict(rows), from_cli[:5])


def test_predict_keep_copies_identifier_columns_first(tmp_path):
    columns = _class_columns(n=40)
    columns = {"id": [f"row{i}" for i in range(40)], **columns}
    path = _write_csv(tmp_path / "t.csv", columns)
    _ok("train", path, "--target", "kind", "--exclude", "id", *FLAGS, "--out", tmp_path / "run")
    lines = _ok("predict", tmp_path / "run", "--data", path, "--keep", "id", "--proba").stdout.splitlines()
    assert lines[0] == "id,kind,p(high),p(low),p(mid)"
    assert [line.split(",")[0] for line in lines[1:]] == columns["id"]
    model = torchann.load(tmp_path / "run")
    assert model.feature_names == ["u", "v"]  # --exclude kept the identifier out of the features
    assert [line.split(",")[1] for line in lines[1:]] == list(model.predict(path))
    bad = _invoke("predict", tmp_path / "run", "--data", path, "--keep", "nope")
    assert bad.exit_code == 2 and "no column 'nope' to keep" in bad.output


# -- evaluate -------------------------------------------------------------------------------------


def test_evaluate_regression_equals_sklearn_metrics(tmp_path):
    columns = _regression_columns()
    model = torchann.train(columns, target="y", **FAST)
    test = _regression_columns(n=60, seed=9)
    scores = model.evaluate(test)
    pred = model.predict(test)
    assert scores["rows"] == 60
    assert scores["mse"] == pytest.approx(skm.mean_squared_error(test["y"], pred), rel=1e-12)
    assert scores["mae"] == pytest.approx(skm.mean_absolute_error(test["y"], pred), rel=1e-12)
    assert scores["r2"] == pytest.approx(skm.r2_score(test["y"], pred), rel=1e-12)
    model.save(tmp_path / "run")
    path = _write_csv(tmp_path / "test.csv", test)
    printed = json.loads(_ok("evaluate", tmp_path / "run", "--data", path, "--json").stdout)
    assert printed["rows"] == 60 and printed["r2"] == pytest.approx(scores["r2"], rel=1e-12)


def test_evaluate_classification_equals_sklearn_metrics():
    columns = _class_columns()
    model = torchann.train(columns, target="kind", **FAST)
    test = _class_columns(n=80, seed=5)
    scores = model.evaluate(test)
    proba, pred = model.predict_proba(test), model.predict(test)
    assert scores["accuracy"] == pytest.approx(skm.accuracy_score(test["kind"], pred), abs=1e-15)
    assert scores["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(test["kind"], pred), rel=1e-12)
    assert scores["log_loss"] == pytest.approx(skm.log_loss(test["kind"], proba, labels=model.classes), rel=1e-9)
    assert "auc" not in scores  # three classes


def test_evaluate_binary_auc_equals_sklearn_with_ties():
    from torchann.model.scores import roc_auc

    rng = np.random.default_rng(0)
    positive = rng.random(300) < 0.3
    score = np.round(rng.random(300) + positive * 0.3, 1)  # rounded: many ties
    assert roc_auc(positive, score) == pytest.approx(skm.roc_auc_score(positive, score), rel=1e-12)
    columns = {"x": rng.normal(size=200), "z": rng.normal(size=200)}
    columns["yes"] = np.where(columns["x"] + rng.normal(scale=0.5, size=200) > 0, "yes", "no")
    model = torchann.train(columns, target="yes", **FAST)
    p = model.predict_proba(columns)[:, model.classes.index("yes")]
    assert model.evaluate(columns)["auc"] == pytest.approx(skm.roc_auc_score(columns["yes"] == "yes", p), rel=1e-12)


def test_evaluate_needs_the_target_column():
    model = torchann.train(_regression_columns(n=40), target="y", **FAST)
    with pytest.raises(DataError, match="no target column 'y' to score against"):
        model.evaluate({"a": [1.0], "b": [2.0], "c": [3.0]})


# -- data in every shape -------------------------------------------------------------------------


def test_predict_accepts_paths_tables_dicts_arrow_and_rows(tmp_path):
    import pyarrow as pa

    columns = _class_columns(n=60)
    model = torchann.train(columns, target="kind", **FAST)
    expected = model.predict(columns)
    path = _write_csv(tmp_path / "t.csv", columns)
    np.testing.assert_array_equal(model.predict(path), expected)
    np.testing.assert_array_equal(model.predict(torchann.load_table(path)), expected)
    np.testing.assert_array_equal(model.predict(pa.table(columns)), expected)
    rows = np.stack([columns["u"], columns["v"]], axis=1)
    np.testing.assert_array_equal(model.predict(rows), expected)
    np.testing.assert_array_equal(model.predict(torch.tensor(rows)), expected)
    assert model.predict(list(rows[0])).tolist() == [expected[0]]  # one flat row
    with pytest.raises(DataError, match="rows have 3 value"):
        model.predict([[1.0, 2.0, 3.0]])


def test_train_on_arrays_and_unknown_options():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 2))
    model = torchann.train(x, x.sum(axis=1), **FAST)
    assert model.feature_names == ["x0", "x1"] and model.target_names == ["y"] and model.task == "regression"
    with pytest.raises(UsageError, match="unknown option 'epoch'; did you mean 'epochs'"):
        torchann.train(x, x.sum(axis=1), epoch=3)


def test_network_alone_skips_the_preprocessing():
    columns = _regression_columns()
    model = torchann.train(columns, target="y", **FAST)
    rows = np.stack([columns[c] for c in "abc"], axis=1)[:4].astype(np.float32)
    raw = model.network(torch.as_tensor(rows)).detach().numpy().ravel()
    assert not np.allclose(raw, model.predict(rows), rtol=0.1)  # scaled units, not the target's
    scaled = model.preprocessor.transform_x(model.table(rows))
    np.testing.assert_allclose(model.preprocessor.inverse_y(model.network(torch.as_tensor(scaled)).detach()).ravel(),
                               model.predict(rows), rtol=1e-6)


# -- inspect and the defaults --------------------------------------------------------------------


def test_inspect_explains_how_columns_became_inputs(tmp_path):
    rng = np.random.default_rng(0)
    columns = {"size": rng.normal(size=60), "colour": rng.choice(["red", "green", "blue"], size=60)}
    columns["price"] = columns["size"] * 3 + (columns["colour"] == "red")
    path = _write_csv(tmp_path / "t.csv", columns)
    _ok("train", path, "--target", "price", *FLAGS, "--out", tmp_path / "run")
    text = _ok("inspect", tmp_path / "run").stdout
    assert "features   2 column(s) -> 4 network input(s)" in text
    assert "one-hot over 3 categories (blue, green, red)" in text
    facts = json.loads(_ok("inspect", tmp_path / "run", "--json").stdout)
    assert [f["inputs"] for f in facts["features"]] == [1, 3]
    assert facts["training"]["best_epoch"] == torchann.load(tmp_path / "run").history.info["best_epoch"]


def test_defaults_are_declared_once():
    """The estimators' defaults and the train command's help come from torchann.options."""
    import typer

    from torchann.core.options import TRAIN_OPTION_NAMES, option_default, option_help
    from torchann.api.sklearn import MLPClassifier

    params = MLPClassifier().get_params()
    shared = [n for n in TRAIN_OPTION_NAMES if n in params]
    assert len(shared) >= 18
    for name in shared:
        assert params[name] == option_default(name), name
    command = typer.main.get_command(app).commands["train"]
    helps = {p.name: p.help for p in command.params}
    for name in TRAIN_OPTION_NAMES:
        if name == "scale":  # the flag is --no-scale
            continue
        assert helps[name].startswith(option_help(name)), name


def test_activations_without_out_is_a_one_line_error(tmp_path):
    _ok("demo", "--quiet", "--out", tmp_path / "demo")
    result = _invoke("activations", tmp_path / "demo", "--input", "10,11")
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "error: activations needs --out FILE.npz (one array per layer) or --out FILE.csv"]
