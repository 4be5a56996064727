"""The tuned ensemble: one model directory whose answers are its members' mean, computed here
from each member's own model directory, with a per-row spread, ONNX export and a report."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

pytest.importorskip("optuna")

import torchann  # noqa: E402
from torchann.cli import app
from torchann.network.members import EnsembleSpec, spec_from_dict
from torchann.tuning.ensemble import caruana

from tune_helpers import EPOCHS, classes_csv, regression_csv  # noqa: E402

runner = CliRunner()


def _members(run):
    """(trial model directories, weights) of the ensemble saved at ``run``, from its recorded facts."""
    info = torchann.load(run).history.info["tune"]
    folders = [run / "trials" / "torchann" / f"trial-{m['trial']:05d}" for m in info["members"]]
    return [torchann.load(f) for f in folders], np.array([m["weight"] for m in info["members"]])


@pytest.fixture(scope="module")
def regression_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("reg")
    data = regression_csv(tmp / "reg.csv")
    # seed 1's first trials are diverse enough that the greedy selection keeps several
    result = runner.invoke(app, ["tune", str(data), "--target", "y", "--out", str(tmp / "run"), "--trials", "6",
                                 "--epochs", str(EPOCHS), "--seed", "1", "--pruner", "none"])
    assert result.exit_code == 0, result.output
    return data, tmp / "run"


@pytest.fixture(scope="module")
def classes_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cls")
    data = classes_csv(tmp / "cls.csv")
    result = runner.invoke(app, ["tune", str(data), "--target", "y", "--out", str(tmp / "run"), "--trials", "6",
                                 "--epochs", str(EPOCHS), "--seed", "1", "--pruner", "none"])
    assert result.exit_code == 0, result.output
    return data, tmp / "run"


def test_regression_ensemble_is_the_weighted_mean_of_its_members(regression_run):
    data, run = regression_run
    model = torchann.load(run)
    assert model.history.info["tune"]["chosen"] == "ensemble" and model.members >= 2
    members, w = _members(run)
    assert w.sum() == pytest.approx(1.0)
    # each member's own prediction, from its own directory; regression averages in the scaled units,
    # which the (linear) target scaling maps to the mean in target units
    each = np.stack([m.predict(str(data)) for m in members])
    np.testing.assert_allclose(model.predict(str(data)), w @ each, rtol=1e-5, atol=1e-6)
    answers, spread = model.predict(str(data), return_std=True)
    np.testing.assert_allclose(answers, w @ each, rtol=1e-5, atol=1e-6)
    # the spread is over every network: a trial with several (trial 0, the defaults') adds its own
    # spread, by the law of total variance
    within = np.stack([m.predict(str(data), return_std=True)[1] if m.members > 1 else np.zeros(len(each[0]))
                       for m in members])
    np.testing.assert_allclose(spread, np.sqrt(w @ (within ** 2 + (each - w @ each) ** 2)), rtol=1e-4, atol=1e-6)
    assert spread.max() > 0


def test_classes_ensemble_averages_probabilities_and_reports_disagreement(classes_run):
    data, run = classes_run
    model = torchann.load(run)
    members, w = _members(run)
    proba = np.stack([m.predict_proba(str(data)) for m in members])
    mean = np.tensordot(w, proba, axes=1)
    assert model.members > 1  # seed 1's six trials make an ensemble of several
    np.testing.assert_allclose(model.predict_proba(str(data)), mean, rtol=1e-5, atol=1e-6)
    labels, disagreement = model.predict(str(data), return_std=True)
    chosen = mean.argmax(axis=1)
    expected = 1 - w @ np.stack([p.argmax(axis=1) == chosen for p in proba]).astype(float)
    np.testing.assert_allclose(disagreement, expected, atol=1e-9)
    assert list(labels) == list(np.array(model.classes)[chosen])
    assert disagreement.max() > 0


def test_the_model_directory_loads_without_pickle_and_round_trips(regression_run):
    _, run = regression_run
    document = json.loads((run / "spec.json").read_text())
    spec = spec_from_dict(document["model"])
    assert isinstance(spec, EnsembleSpec) and len(spec.members) == torchann.load(run).members
    assert sum(spec.weights) == pytest.approx(1.0)
    assert spec_from_dict(spec.to_dict()) == spec
    from safetensors.numpy import load_file

    keys = set(load_file(str(run / "weights.safetensors")))
    assert {k.split(".")[1] for k in keys} == {str(i) for i in range(len(spec.members))}
    assert all(k.startswith("members.") for k in keys)


def test_predict_std_and_evaluate_on_the_command_line(regression_run):
    data, run = regression_run
    result = runner.invoke(app, ["predict", str(run), "--data", str(data), "--std", "--json"])
    assert result.exit_code == 0, result.output
    columns = json.loads(result.output)
    model = torchann.load(run)
    answers, spread = model.predict(str(data), return_std=True)
    np.testing.assert_allclose(columns["y"], answers)
    np.testing.assert_allclose(columns["std(y)"], spread)
    # the streamed path (CSV to stdout, chunk by chunk) gives the same numbers
    streamed = runner.invoke(app, ["predict", str(run), "--data", str(data), "--std"])
    rows = [line.split(",") for line in streamed.output.strip().splitlines()[1:]]
    np.testing.assert_allclose([float(r[1]) for r in rows], spread)
    scores = json.loads(runner.invoke(app, ["evaluate", str(run), "--data", str(data), "--json"]).output)
    truth = np.array(torchann.load_table(str(data), target="y").columns["y"])
    assert scores["mse"] == pytest.approx(float(np.mean((answers - truth) ** 2)), rel=1e-6)


def test_a_single_network_has_no_spread(tmp_path):
    data = regression_csv(tmp_path / "reg.csv", rows=40)
    model = torchann.train(str(data), target="y", epochs=2, networks=1)
    with pytest.raises(torchann.UsageError, match="one network, so it has no spread"):
        model.predict(str(data), return_std=True)


@pytest.mark.parametrize("which", ["regression_run", "classes_run"])
def test_onnx_export_answers_as_torchann_predict(which, request):
    ort = pytest.importorskip("onnxruntime")
    data, run = request.getfixturevalue(which)
    onnx_path = run.parent / "model.onnx"
    result = runner.invoke(app, ["export", str(run), "--out", str(onnx_path)])
    assert result.exit_code == 0, result.output
    model = torchann.load(run)
    table = torchann.load_table(str(data), target="y")
    session = ort.InferenceSession(str(onnx_path))
    feeds = {i.name: np.asarray(table.columns[i.name], dtype=np.float64) for i in session.get_inputs()}
    names = [o.name for o in session.get_outputs()]
    got = dict(zip(names, session.run(None, feeds)))
    if model.task == "regression":
        np.testing.assert_allclose(np.asarray(got["y"]).ravel(), model.predict(table), rtol=1e-4, atol=1e-4)
    else:
        proba_name = next(n for n in names if "prob" in n)
        np.testing.assert_allclose(np.asarray(got[proba_name]), model.predict_proba(table), rtol=1e-4, atol=1e-5)


def test_the_report_shows_the_trials_and_the_members(regression_run):
    _, run = regression_run
    page = (run / "report.html").read_text()
    info = torchann.load(run).history.info["tune"]
    assert 'id="search"' in page and "objective by trial" in page and "best so far" in page
    assert "Parameter importance" in page and info["importance"]
    for m in info["members"]:
        assert f"{m['weight']:.3f}" in page


def test_caruana_greedy_selection_by_hand():
    # three candidates; truth 0. a alone: mse 1; b: mse 1 (opposite sign); c: mse 4.
    truth = np.zeros((4, 1))
    a, b, c = np.ones((4, 1)), -np.ones((4, 1)), 2 * np.ones((4, 1))
    chosen = caruana({0: a, 1: b, 2: c}, truth, "regression", rounds=3)
    # start with trial 0 (lowest loss, lowest number on a tie), then b cancels it: mse 0
    assert chosen.counts == {0: 1, 1: 1} and chosen.value == 0.0 and chosen.best_single == 1.0
    assert chosen.path[:2] == (1.0, 0.0)
