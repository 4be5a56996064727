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
    model = torchann.train(data, target="y", ple_bins=6, epochs=8, hidden=[32], seed=0)
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
