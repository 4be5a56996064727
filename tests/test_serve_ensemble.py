"""A tuned ensemble behind the real server: ``?std=true`` answers the members' spread per row, on
both protocols, as ``torchann predict --std`` prints it for the same rows (regression), and the
members' disagreement for classes."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("optuna")

from serve_helpers import serving, split_body  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

import torchann  # noqa: E402
from torchann.cli import app  # noqa: E402

from tune_helpers import EPOCHS, classes_csv, regression_csv  # noqa: E402

runner = CliRunner()


def _tuned(tmp, make):
    data = make(tmp / "data.csv")
    # seed 1's first trials are diverse enough that the greedy selection keeps several members
    result = runner.invoke(app, ["tune", str(data), "--target", "y", "--out", str(tmp / "run"), "--trials", "6",
                                 "--epochs", str(EPOCHS), "--seed", "1", "--pruner", "none"])
    assert result.exit_code == 0, result.output
    model = torchann.load(tmp / "run")
    assert model.members > 1
    return data, tmp / "run", model


def _rows(data, n):
    table = torchann.load_table(str(data), target="y")
    names = [c for c in table.columns if c != "y"]
    return [{c: float(table.columns[c][i]) for c in names} for i in range(n)]


def test_regression_ensemble_std_equals_predict_std(tmp_path):
    data, run, model = _tuned(tmp_path, regression_csv)
    rows = _rows(data, 20)
    path = tmp_path / "query.csv"
    path.write_text(",".join(rows[0]) + "\n" + "".join(",".join(repr(r[c]) for c in r) + "\n" for r in rows))
    oracle = json.loads(runner.invoke(app, ["predict", str(run), "--data", str(path), "--std", "--json"]).output)
    assert np.ptp(oracle["std(y)"]) > 0  # the members disagree, and not by a constant
    with serving(model) as (client, _):
        got = client.post("/invocations?std=true", json=split_body(rows)).json()
        np.testing.assert_allclose(got["predictions"], oracle["y"], rtol=1e-6)
        np.testing.assert_allclose(np.ravel(got["std"]), oracle["std(y)"], rtol=1e-6)
        names = list(rows[0])
        v2 = client.post(f"/v2/models/{run.name}/infer?std=true", json={"inputs": [
            {"name": n, "datatype": "FP64", "shape": [len(rows)], "data": [r[n] for r in rows]} for n in names]})
        assert v2.status_code == 200, v2.text
        outputs = {o["name"]: o["data"] for o in v2.json()["outputs"]}
        np.testing.assert_allclose(outputs["std"], oracle["std(y)"], rtol=1e-6)
        # without the flag there is no spread in the answer
        assert "std" not in client.post("/invocations", json=split_body(rows)).json()


def test_classes_ensemble_std_is_the_members_disagreement(tmp_path):
    data, _, model = _tuned(tmp_path, classes_csv)
    rows = _rows(data, 30)
    _, spread = model.predict({k: np.array([r[k] for r in rows]) for k in rows[0]}, return_std=True)
    with serving(model) as (client, _):
        got = client.post("/invocations?std=true", json=split_body(rows)).json()
        np.testing.assert_allclose(np.ravel(got["std"]), np.ravel(spread), rtol=1e-6)
        assert got["predictions"] == list(model.predict({k: np.array([r[k] for r in rows]) for k in rows[0]}))
