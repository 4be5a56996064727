"""Piecewise-linear encodings of numeric columns, and the training time budget.

The encoding's values are checked against a hand computation from the formula of Gorishniy
et al. (NeurIPS 2022); a model with it must answer the same after a save/load round trip and
through ONNX (onnxruntime) as ``predict`` does.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import torchann
from torchann.core.errors import ModelFileError, UsageError
from torchann.preprocess.encoders import fit_ple_bins, ple_encode
from torchann.preprocess.preprocessor import Preprocessor


def test_ple_values_for_known_bins_match_a_hand_computation():
    bins = [0.0, 1.0, 3.0, 4.0]  # three bins: [0, 1), [1, 3), [3, 4]
    x = np.array([-1.0, 0.0, 0.5, 1.0, 2.0, 3.5, 4.0, 6.0, np.nan])
    got = ple_encode(x, bins)
    want = np.array([
        [-1.0, 0.0, 0.0],  # below the first edge: the first input goes negative, the others 0
        [0.0, 0.0, 0.0],
        [0.5, 0.0, 0.0],
        [1.0, 0.0, 0.0],
        [1.0, 0.5, 0.0],  # (2 - 1) / (3 - 1)
        [1.0, 1.0, 0.5],
        [1.0, 1.0, 1.0],
        [1.0, 1.0, 3.0],  # past the last edge: the last input goes past 1 ((6 - 3) / 1)
    ])
    np.testing.assert_array_equal(got[:-1], want)
    assert np.isnan(got[-1]).all()


def test_ple_bins_are_distinct_training_quantiles():
    x = np.arange(101, dtype=np.float64)  # quantiles at 0, 25, 50, 75, 100
    assert fit_ple_bins(x, 4) == [0.0, 25.0, 50.0, 75.0, 100.0]
    # tied quantiles merge: a column of 0s and 1s has one bin, which adds nothing to its value
    assert fit_ple_bins(np.array([0.0] * 50 + [1.0] * 50), 8) is None
    assert fit_ple_bins(np.array([0.0] * 60 + [1.0] * 20 + [2.0] * 20), 4) == [0.0, 1.0, 2.0]


def _table(n: int = 300, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    size = rng.exponential(50.0, n)
    age = rng.normal(30, 10, n)
    rooms = rng.integers(1, 4, n).astype(np.float64)
    colour = rng.choice(["blue", "green", "red"], n).astype(object)
    y = np.sqrt(size) + 0.1 * age + rooms + 2.0 * (colour == "red") + rng.normal(0, 0.1, n)
    age[rng.random(n) < 0.1] = np.nan
    return {"size": size, "age": age, "rooms": rooms, "colour": colour, "y": y}


def test_preprocessor_appends_the_encoding_after_the_scaled_value():
    from torchann.data.table_input import as_table

    data = _table()
    table = as_table(data).select("y")
    pre = Preprocessor.fit(table, task="regression", fill_missing="mean", scaling="quantile", ple_bins=4)
    size = next(f for f in pre.features if f.name == "size")
    age = next(f for f in pre.features if f.name == "age")
    assert size.bins is not None and len(size.bins) == 5
    ordered = np.sort(data["size"])  # the observed value at or below each quarter's position
    assert size.bins == [float(ordered[int(q * (len(ordered) - 1))]) for q in (0, 0.25, 0.5, 0.75, 1.0)]
    names = pre.input_names
    start = names.index("size")
    assert names[start : start + 5] == ["size", "size.bin1", "size.bin2", "size.bin3", "size.bin4"]
    assert names[names.index("age.bin4") + 1] == "age.missing"  # the indicator stays last
    x = pre.transform_x(table)
    np.testing.assert_allclose(x[:, start + 1 : start + 5], ple_encode(data["size"], size.bins), rtol=1e-6,
                               atol=1e-6)
    # a missing age is encoded from its fill value, as the scaled value is
    filled = np.where(np.isnan(data["age"]), age.fill, data["age"])
    a = names.index("age")
    np.testing.assert_allclose(x[:, a + 1 : a + 5], ple_encode(filled, age.bins), rtol=1e-6, atol=1e-6)
    # the record holds the bins and reads back equal
    again = Preprocessor.from_dict(json.loads(json.dumps(pre.to_dict())), in_features=pre.in_features)
    assert again == pre
    np.testing.assert_array_equal(again.transform_x(table), x)


def test_a_record_with_bad_bins_is_refused():
    from torchann.data.table_input import as_table

    pre = Preprocessor.fit(as_table(_table()).select("y"), task="regression", fill_missing="mean", ple_bins=4)
    record = pre.to_dict()
    record["features"][0]["bins"] = [3.0, 2.0, 1.0]
    with pytest.raises(ModelFileError, match=r"features\[0\]\.bins"):
        Preprocessor.from_dict(record, in_features=pre.in_features - 1)


@pytest.fixture(scope="module")
def ple_model():
    data = _table()
    model = torchann.train(data, target="y", ple_bins=6, epochs=8, hidden=[32], seed=0, networks=1)
    return data, model


def test_model_with_bins_saves_loads_and_answers_the_same(ple_model, tmp_path):
    data, model = ple_model
    assert model.spec.in_features == model.preprocessor.in_features
    assert model.preprocessor.in_features > 6  # the bins are inputs
    model.save(tmp_path / "m")
    loaded = torchann.load(tmp_path / "m")
    assert [f.bins for f in loaded.preprocessor.features] == [f.bins for f in model.preprocessor.features]
    np.testing.assert_array_equal(loaded.predict(data), model.predict(data))


def test_onnx_with_bins_answers_as_predict(ple_model, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    data, model = ple_model
    path = model.export_onnx(tmp_path / "m.onnx")
    session = ort.InferenceSession(str(path))
    # values outside the training range too: the open first and last bins
    feeds = {k: v for k, v in data.items() if k != "y"}
    feeds["size"] = feeds["size"].copy()
    feeds["size"][:5] = [-10.0, 0.0, 1e3, 5e3, np.nan]
    (answers,) = session.run(None, feeds)
    rows = dict(feeds)
    np.testing.assert_allclose(answers.reshape(-1), model.predict(rows), rtol=1e-5, atol=1e-5)


def test_time_budget_stops_after_the_epoch_that_spends_it(monkeypatch):
    """A fake clock that moves 1 s per read: with a budget of 2.5 s training ends after a few
    epochs though 50 were asked for, and keeps the best epoch."""
    from torchann.training import loop

    ticks = iter(range(10_000))
    monkeypatch.setattr(loop.TrainingLoop, "clock", staticmethod(lambda: float(next(ticks))))
    model = torchann.train(_table(), target="y", epochs=50, hidden=[8], seed=0, time_budget=2.5)
    history = model.history
    assert history.info["stopped_by_time"] is True
    assert len(history) == 3  # the clock reads 1, 2, 3 after epochs 1, 2, 3: the third reaches 2.5
    assert [r["time_left"] for r in history.records] == [1.5, 0.5, 0.0]


def test_time_budget_must_be_positive():
    with pytest.raises(UsageError, match="time_budget"):
        torchann.train(_table(), target="y", epochs=2, time_budget=0)


# -- shared-weight ensembles (TabM-mini) ---------------------------------------------------


def test_tabmini_members_match_a_loop_over_members():
    """Each member is the shared MLP on ``x * r_k`` with its own output layer; eval mode answers
    their mean (regression) or the log of their mean probabilities (classes)."""
    import torch

    from torchann.network.spec import ModelSpec

    torch.manual_seed(0)
    for combine, out in (("mean", 2), ("proba", 3), ("proba", 1)):
        net = ModelSpec(5, (8, 6), out, ensemble=3, ensemble_combine=combine).build().eval()
        x = torch.randn(7, 5)
        by_hand = []
        for k in range(3):
            h = x * net.adapter[k]
            h = torch.relu(net.backbone.linear1(h))
            h = torch.relu(net.backbone.linear2(h))
            by_hand.append(h @ net.head_weight[k] + net.head_bias[k])
        each = torch.stack(by_hand)
        torch.testing.assert_close(net.member_outputs(x), each)
        if combine == "mean":
            want = each.mean(0)
        elif out == 1:
            p = torch.sigmoid(each).mean(0)
            want = torch.log(p / (1 - p))
        else:
            want = torch.log(torch.softmax(each, -1).mean(0))
        torch.testing.assert_close(net(x), want, rtol=1e-5, atol=1e-5)
        assert sum(p.numel() for p in net.parameters()) == net.spec.num_parameters()
        net.train()
        assert net(x).shape == (3, 7, out)  # training: every member, for the mean of their losses


def test_training_loss_is_the_mean_of_the_members_losses():
    import torch

    from torchann.network.spec import ModelSpec
    from torchann.training.steps import AutogradStep

    torch.manual_seed(0)
    net = ModelSpec(4, (6,), 1, ensemble=3).build()
    x, y = torch.randn(10, 4), torch.randn(10, 1)
    each = net.member_outputs(x).detach()
    want = torch.stack([torch.nn.functional.mse_loss(each[k], y) for k in range(3)]).mean()
    step = AutogradStep(net, torch.nn.MSELoss(), torch.optim.SGD(net.parameters(), lr=0.0))
    loss, out = step(x, y)
    torch.testing.assert_close(loss, want)
    torch.testing.assert_close(out, each.mean(0))


@pytest.fixture(scope="module")
def ensemble_models():
    data = _table()
    labels = dict(data, y=np.where(data["y"] > np.median(data["y"]), "high", "low").astype(object))
    three = dict(data, y=np.digitize(data["y"], np.quantile(data["y"], [0.33, 0.66])).astype(str).astype(object))
    options = {"ensemble": 4, "epochs": 6, "hidden": [16], "seed": 0, "ple_bins": 4}
    return data, [torchann.train(d, target="y", **options) for d in (data, labels, three)], [data, labels, three]


def test_ensemble_spread_is_the_members_std_in_target_units(ensemble_models, tmp_path):
    import torch

    data, (model, _, _), _ = ensemble_models
    answers, spread = model.predict(data, return_std=True)
    np.testing.assert_array_equal(answers, model.predict(data))
    x = torch.from_numpy(model.preprocessor.transform_x(_as_table(data)))
    with torch.no_grad():
        each = model.network.member_outputs(x).numpy()  # (K, n, 1)
    values = np.stack([model.preprocessor.inverse_y(e).reshape(-1) for e in each])
    np.testing.assert_allclose(spread, values.std(axis=0), rtol=1e-4, atol=1e-6)
    assert spread.min() > 0  # random-sign adapters: the members differ
    model.save(tmp_path / "m")
    loaded = torchann.load(tmp_path / "m")
    assert loaded.members == 4
    again, again_spread = loaded.predict(data, return_std=True)
    np.testing.assert_array_equal(again, answers)
    np.testing.assert_array_equal(again_spread, spread)


def _as_table(data):
    from torchann.data.table_input import as_table

    return as_table({k: v for k, v in data.items() if k != "y"})


def test_ensemble_onnx_gives_answers_and_spread_as_predict(ensemble_models, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    _, models, tables = ensemble_models
    for i, (model, data) in enumerate(zip(models, tables)):
        session = ort.InferenceSession(str(model.export_onnx(tmp_path / f"m{i}.onnx")))
        feeds = {k: v for k, v in data.items() if k != "y"}
        names = [o.name for o in session.get_outputs()]
        got = dict(zip(names, session.run(None, feeds)))
        answers, spread = model.predict(feeds, return_std=True)
        if i == 0:
            assert names == ["y", "std(y)"]
            np.testing.assert_allclose(got["y"], answers, rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(got["std(y)"], spread, rtol=1e-5, atol=1e-5)
        else:
            assert names == ["y", "probabilities", "disagreement"]
            assert list(got["y"]) == list(answers)
            np.testing.assert_allclose(got["probabilities"], model.predict_proba(feeds), rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(got["disagreement"], spread, rtol=0, atol=1e-9)


def test_predict_std_on_the_command_line_for_an_ensemble(ensemble_models, tmp_path):
    from typer.testing import CliRunner

    from torchann.cli import app

    data, (model, _, _), _ = ensemble_models
    model.save(tmp_path / "m")
    rows = tmp_path / "rows.csv"
    import csv

    with rows.open("w", newline="") as fh:
        writer = csv.writer(fh)
        names = [k for k in data if k != "y"]
        writer.writerow(names)
        for i in range(20):
            writer.writerow(["" if isinstance(data[k][i], float) and np.isnan(data[k][i]) else data[k][i]
                             for k in names])
    result = CliRunner().invoke(app, ["predict", str(tmp_path / "m"), "--data", str(rows), "--std", "--json"])
    assert result.exit_code == 0, result.output
    columns = json.loads(result.stdout)
    answers, spread = model.predict(str(rows), return_std=True)
    np.testing.assert_allclose(columns["y"], answers, rtol=1e-6)
    np.testing.assert_allclose(columns["std(y)"], spread, rtol=1e-6)


def test_serve_answers_an_ensembles_spread_with_bins(tmp_path):
    pytest.importorskip("fastapi")
    from serve_helpers import query_rows, serving, split_body, training_columns

    columns = training_columns()
    columns["y"] = 2 * columns["a"] + np.sqrt(columns["b"]) + (columns["city"] == "east")
    model = torchann.train(columns, target="y", ensemble=3, ple_bins=4, epochs=4, hidden=[16], seed=0, networks=1)
    rows = query_rows(6)
    with serving(model) as (client, _):
        r = client.post("/invocations?std=true", json=split_body(rows))
        assert r.status_code == 200, r.text
        body = r.json()
        assert client.get("/metadata").json()["members"] == 3
    frame = {k: np.asarray([row[k] for row in rows], dtype=object if k == "city" else float) for k in rows[0]}
    answers, spread = model.predict(frame, return_std=True)
    np.testing.assert_allclose(body["predictions"], answers, rtol=1e-6)
    np.testing.assert_allclose(body["std"], spread, rtol=1e-6)


def _auto_table(n: int) -> dict:
    rng = np.random.default_rng(3)
    wide = rng.normal(size=n)  # n distinct values
    few = rng.integers(0, 10, size=n).astype(float)  # 10 distinct values
    return {"wide": wide, "few": few, "y": wide + 0.1 * few}


def test_default_bins_go_to_wide_columns_of_tables_with_enough_training_rows():
    from torchann.core.options import PLE_BINS, PLE_MIN_ROWS, auto_ple_bins

    assert (auto_ple_bins(PLE_MIN_ROWS - 1), auto_ple_bins(PLE_MIN_ROWS)) == (0, PLE_BINS)
    n = 1300  # 1,040 training rows after the default 20% validation split
    model = torchann.train(_auto_table(n), target="y", epochs=1, hidden=[8], seed=0)
    bins = {f.name: f.bins for f in model.preprocessor.features}
    train_rows = model.history.info["train_rows"]
    assert train_rows >= PLE_MIN_ROWS
    wide = np.asarray(_auto_table(n)["wide"])[model.rows.train]
    assert bins["wide"] == fit_ple_bins(wide, PLE_BINS)  # the training rows' 16 quantile bins
    assert bins["few"] is None  # 10 distinct values: no more than PLE_MIN_DISTINCT
    small = torchann.train(_auto_table(600), target="y", epochs=1, hidden=[8], seed=0)
    assert all(f.bins is None for f in small.preprocessor.features)  # 480 training rows: none
    off = torchann.train(_auto_table(n), target="y", epochs=1, hidden=[8], seed=0, ple_bins=0)
    assert all(f.bins is None for f in off.preprocessor.features)
    asked = torchann.train(_auto_table(600), target="y", epochs=1, hidden=[8], seed=0, ple_bins=4)
    assert {f.name: f.bins is not None for f in asked.preprocessor.features} == {"wide": True, "few": True}
