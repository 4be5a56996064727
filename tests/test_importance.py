"""Permutation importance (``Model.importance``, ``torchann.permutation_importance``,
``torchann importance``, the report's section): scikit-learn's
``sklearn.inspection.permutation_importance`` on the same model, wrapped as an estimator that
is given the raw columns, is the oracle; the shuffles are its own for the same seed."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import torchann
from torchann.cli import app

sk_inspection = pytest.importorskip("sklearn.inspection")
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin  # noqa: E402

runner = CliRunner()
QUICK = {"hidden": [16], "epochs": 30, "early_stopping": 0, "seed": 0, "lr": 1e-2}


def _frame(n: int = 80, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    a, b, noise = rng.normal(size=n), rng.normal(size=n), rng.normal(size=n)
    zone = rng.choice(["north", "south", "east"], size=n)
    price = 3 * a + b + np.where(zone == "north", 2.0, 0.0) + 0.1 * noise
    label = np.where(a + (zone == "south") > 0.3, "yes", "no")
    return pd.DataFrame({"a": a, "b": b, "noise": noise, "zone": zone, "price": price, "label": label})


class _Wrapped(BaseEstimator):
    """A trained torchann model as a scikit-learn estimator: predict takes the raw columns."""

    def __init__(self, model=None):
        self.model = model

    def fit(self, X, y=None):
        return self

    def __sklearn_is_fitted__(self):
        return True

    def predict(self, X):
        return self.model.predict(X)


class _Regressor(RegressorMixin, _Wrapped):
    pass


class _Classifier(ClassifierMixin, _Wrapped):
    pass


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    frame = _frame()
    reg = torchann.train(frame.drop(columns=["label"]), target="price", **QUICK)
    clf = torchann.train(frame.drop(columns=["price"]), target="label", **QUICK)
    return frame, reg, clf


@pytest.mark.parametrize("task", ["regression", "classification"])
@pytest.mark.parametrize("seed", [0, 7])
def test_drops_equal_sklearns_permutation_importance(models, task, seed):
    frame, reg, clf = models
    test = _frame(60, seed=1)
    model, target, wrapper = (reg, "price", _Regressor) if task == "regression" else (clf, "label", _Classifier)
    x = test[model.feature_names]
    ours = model.importance(test, repeats=4, seed=seed)
    theirs = sk_inspection.permutation_importance(wrapper(model), x, test[target].to_numpy(), n_repeats=4,
                                                  random_state=seed)
    assert ours.metric == ("r2" if task == "regression" else "accuracy")
    assert ours.base == pytest.approx(model.evaluate(test)[ours.metric], rel=1e-12)
    by_name = {c.column: c for c in ours.columns}
    assert sorted(by_name) == sorted(model.feature_names)
    for j, name in enumerate(x.columns):
        np.testing.assert_allclose(by_name[name].drops, theirs.importances[j], rtol=1e-9, atol=1e-12)
        assert by_name[name].drop == pytest.approx(theirs.importances_mean[j], rel=1e-9, abs=1e-12)
        assert by_name[name].spread == pytest.approx(theirs.importances_std[j], rel=1e-9, abs=1e-12)
    assert [c.drop for c in ours.columns] == sorted((c.drop for c in ours.columns), reverse=True)
    if task == "regression":  # the noise column cannot matter as much as the strongest feature
        assert ours.columns[0].column == "a" and by_name["noise"].drop < ours.columns[0].drop / 10


def test_hand_computation_on_a_tiny_table(models):
    """Four rows, one repeat: the drop is the score lost when the column's rows are put in the
    order RandomState(column seed).shuffle draws, computed here by hand."""
    _, reg, _ = models
    test = _frame(4, seed=3)
    found = torchann.permutation_importance(reg, test, repeats=1, seed=5)
    column_seed = np.random.RandomState(5).randint(np.iinfo(np.int32).max + 1)
    order = np.arange(4)
    np.random.RandomState(column_seed).shuffle(order)
    truth = test["price"].to_numpy()

    def r2(pred):
        return 1 - ((truth - pred) ** 2).sum() / ((truth - truth.mean()) ** 2).sum()

    base = r2(reg.predict(test))
    for name in reg.feature_names:
        shuffled = test.copy()
        shuffled[name] = test[name].to_numpy()[order]
        want = base - r2(reg.predict(shuffled))
        got = next(c for c in found.columns if c.column == name)
        assert got.drop == pytest.approx(want, rel=1e-9, abs=1e-12)
        assert got.spread == 0.0


def test_report_section_is_the_same_computation(models):
    """The report's "Which features matter" is ``input_importance`` on the held-out rows (seed
    0, its repeats), so it equals ``Model.importance`` on those rows."""
    from torchann.report.gather import IMPORTANCE_REPEATS, gather

    _, reg, _ = models
    shown = gather(reg, reg.rows)["result"]["importance"]
    held = reg.rows.split("validation")
    again = reg.importance(held, repeats=IMPORTANCE_REPEATS, seed=0)
    assert shown["rows"] == held.n_rows == again.rows
    assert shown["base"] == again.base
    assert [(c["column"], c["drop"], c["spread"]) for c in shown["columns"]] == \
        [(c.column, c.drop, c.spread) for c in again.columns]


def test_cli_json_and_table_equal_the_python_call(models, tmp_path):
    _, _, clf = models
    clf.save(tmp_path / "run")
    test = _frame(50, seed=2).drop(columns=["price"])
    test.to_csv(tmp_path / "test.csv", index=False)
    want = torchann.load(tmp_path / "run").importance(tmp_path / "test.csv", repeats=3, seed=2)
    result = runner.invoke(app, ["importance", str(tmp_path / "run"), "--data", str(tmp_path / "test.csv"),
                                 "--repeats", "3", "--seed", "2", "--json"])
    assert result.exit_code == 0, result.output
    got = json.loads(result.stdout)
    assert got["metric"] == "accuracy" and got["repeats"] == 3 and got["seed"] == 2
    assert got["columns"] == want.to_dict()["columns"]
    plain = runner.invoke(app, ["importance", str(tmp_path / "run"), "--data", str(tmp_path / "test.csv"),
                                "--repeats", "3", "--seed", "2"])
    assert plain.exit_code == 0, plain.output
    lines = plain.stdout.splitlines()
    assert lines[0].startswith("permutation importance of") and "drop in accuracy" in lines[1]
    first = lines[2].split()
    assert first[0] == want.columns[0].column and float(first[1]) == pytest.approx(want.columns[0].drop, abs=1e-3)


def test_bad_input_is_one_line(models, tmp_path):
    _, reg, _ = models
    reg.save(tmp_path / "run")
    _frame(10).drop(columns=["price"]).to_csv(tmp_path / "unlabelled.csv", index=False)
    result = runner.invoke(app, ["importance", str(tmp_path / "run"), "--data", str(tmp_path / "unlabelled.csv")])
    assert result.exit_code == 2
    assert "no target column 'price'" in result.stderr and "Traceback" not in result.output
    result = runner.invoke(app, ["importance", str(tmp_path / "run"), "--data", str(tmp_path / "unlabelled.csv"),
                                 "--repeats", "0"])
    assert result.exit_code == 2 and "--repeats" in result.stderr
    with pytest.raises(torchann.UsageError, match="repeats must be a whole number"):
        reg.importance(_frame(10), repeats=0)


def test_cli_default_repeats_is_the_declared_one():
    import inspect

    from torchann.cli.importance_cmd import importance_cmd
    from torchann.model.importance import DEFAULT_REPEATS

    assert inspect.signature(importance_cmd).parameters["repeats"].default == DEFAULT_REPEATS
