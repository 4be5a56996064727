"""Periodic embeddings of numeric inputs (``num_embeddings="periodic"``): the arithmetic against
a hand computation and finite differences, the spec, which inputs ``train`` embeds, and the
embedded model through save/load, chunked scoring, a few-row pass, the ONNX export and the
estimators."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import torchann
from torchann.core.errors import SpecError, UsageError
from torchann.network.periodic import PeriodicEmbedding
from torchann.network.predict import padded_pass, predict
from torchann.network.spec import ModelSpec


def _by_hand(x: np.ndarray, columns, c: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The PLR embedding row by row and input by input in float64, as the paper writes it."""
    rows = []
    for row in x:
        parts = [row]
        for j, col in enumerate(columns):
            angle = 2 * math.pi * c[j, 0] * row[col]
            v = np.concatenate([np.cos(angle), np.sin(angle)])
            parts.append(np.maximum(v @ w[j] + b[j, 0], 0.0))
        rows.append(np.concatenate(parts))
    return np.array(rows)


def test_embedding_equals_the_formula_by_hand():
    emb = PeriodicEmbedding([0, 2], frequencies=3, dim=4, sigma=1.0).double()
    x = torch.tensor([[0.5, 9.0, -1.25], [2.0, -3.0, 0.0], [-0.1, 0.0, 3.5]], dtype=torch.float64)
    out = emb(x).detach().numpy()
    expected = _by_hand(x.numpy(), [0, 2], emb.frequencies.detach().numpy(), emb.weight.detach().numpy(),
                        emb.bias.detach().numpy())
    assert out.shape == (3, 3 + 2 * 4)
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(out[:, :3], x.numpy())  # the inputs pass through unchanged


def test_gradients_match_finite_differences():
    torch.manual_seed(1)
    emb = PeriodicEmbedding([1, 2], frequencies=2, dim=3, sigma=0.5).double()
    with torch.no_grad():
        emb.bias.add_(0.5)  # away from ReLU's kink, where a finite difference is not a derivative
    x = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: emb(v), (x,))
    params = [emb.frequencies, emb.weight, emb.bias]
    assert torch.autograd.gradcheck(lambda c, w, b: torch.func.functional_call(
        emb, {"frequencies": c, "weight": w, "bias": b}, (x.detach(),)), tuple(params))


def test_spec_counts_round_trips_and_checks():
    spec = ModelSpec(6, (8, 4), 2, periodic=(0, 3, 5), periodic_frequencies=5, periodic_dim=7)
    net = spec.build()
    assert sum(p.numel() for p in net.parameters()) == spec.num_parameters()
    # by hand: 3 inputs x (5 frequencies + 2*5*7 weights + 7 biases), then (6 + 21)-8-4-2
    assert spec.num_parameters() == 3 * (5 + 70 + 7) + (27 * 8 + 8) + (8 * 4 + 4) + (4 * 2 + 2)
    assert ModelSpec.from_json(spec.to_json()) == spec
    assert net(torch.randn(5, 6)).shape == (5, 2)
    assert "periodic" not in ModelSpec(6, (8,), 1).to_dict()  # a plain spec reads as before
    mini = ModelSpec(6, (8,), 1, periodic=(1,), ensemble=3)
    assert sum(p.numel() for p in mini.build().parameters()) == mini.num_parameters()
    with pytest.raises(SpecError, match="from 0 to 5"):
        ModelSpec(6, (8,), 1, periodic=(6,))
    with pytest.raises(SpecError, match="increasing"):
        ModelSpec(6, (8,), 1, periodic=(3, 1))
    with pytest.raises(SpecError, match="more than the limit"):  # a spec.json asking for 4 billion weights
        ModelSpec(2000, (8,), 1, periodic=range(2000), periodic_frequencies=1024, periodic_dim=1024)
    with pytest.raises(SpecError, match="periodic_dim is 4096"):
        ModelSpec(6, (8,), 1, periodic=(1,), periodic_dim=4096)
    with pytest.raises(SpecError, match="periodic_sigma"):
        ModelSpec(6, (8,), 1, periodic=(1,), periodic_sigma=0.0)


def _table(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """An hour-of-day effect a straight line cannot follow, a flag, a text column and a date."""
    rng = np.random.default_rng(seed)
    hour = rng.integers(0, 24, n).astype(float)
    load = rng.normal(0, 1, n)
    flag = (rng.random(n) < 0.5).astype(float)
    city = rng.choice(["a", "b", "c"], n).astype(object)
    day = np.array([f"2024-01-{d:02d}" for d in rng.integers(1, 29, n)], dtype=object)
    y = np.sin(hour / 24 * 2 * np.pi * 3) + 0.5 * load + 0.3 * flag + rng.normal(0, 0.1, n)
    return {"hour": hour, "load": load, "flag": flag, "city": city, "day": day, "y": y}


@pytest.fixture(scope="module")
def embedded():
    return torchann.train(_table(1600), target="y", hidden=[32, 32], epochs=6, networks=2, seed=0)


def test_train_embeds_numbers_of_three_values_and_date_parts_only(embedded):
    pre = embedded.preprocessor
    names = pre.input_names
    members = embedded.network.members
    periodic = members[0].spec.periodic
    assert [names[i] for i in periodic] == ["hour", "load", "day.year", "day.month", "day.weekday", "day.day"]
    assert all(m.spec.periodic == periodic for m in members)
    assert isinstance(members[0].periodic, PeriodicEmbedding)
    small = torchann.train(_table(300), target="y", hidden=[8], epochs=2, networks=1, seed=0)
    assert small.network.spec.periodic == ()  # under 1,000 training rows: none by default
    off = torchann.train(_table(1600), target="y", hidden=[8], epochs=2, networks=1, seed=0, num_embeddings="none")
    assert off.network.spec.periodic == ()
    wide = {f"x{i}": np.random.default_rng(i).normal(size=1600) for i in range(17)}  # 17 inputs to embed
    wide["y"] = wide["x0"] + np.sin(3 * wide["x1"])
    assert torchann.train(wide, target="y", hidden=[8], epochs=1, networks=1).network.spec.periodic == ()
    asked = torchann.train(wide, target="y", hidden=[8], epochs=1, networks=1, num_embeddings="periodic")
    assert asked.network.spec.periodic == tuple(range(0, 17 * 17, 17))  # each: the number, then its 16 bins
    with pytest.raises(UsageError, match="choose one of: none, periodic"):
        torchann.train(_table(300), target="y", epochs=1, num_embeddings="fourier")


def test_saved_model_answers_the_same_and_chunks_equal_the_whole(embedded, tmp_path):
    table = _table(700, seed=5)
    table.pop("y")
    expected = embedded.predict(table)
    embedded.save(tmp_path / "run")
    loaded = torchann.load(tmp_path / "run")
    np.testing.assert_array_equal(loaded.predict(table), expected)
    x = embedded.preprocessor.transform_x(torchann.Table.from_columns(table))
    whole = predict(loaded.network, x, block=256)
    parts = torch.cat([predict(loaded.network, x[i:i + 100], block=256, first_row=i) for i in range(0, 700, 100)])
    assert torch.equal(whole, parts)
    few = padded_pass(loaded.network, x[:5], multiple=8)  # the serving path for a few rows
    np.testing.assert_allclose(few.numpy(), whole[:5].numpy(), rtol=1e-6, atol=1e-7)


def test_onnx_export_answers_as_predict(embedded, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    model = torchann.train({k: v for k, v in _table(1600).items() if k != "day"}, target="y", hidden=[16],
                           epochs=3, networks=2, seed=0)
    assert model.network.members[0].spec.periodic
    path = model.export_onnx(tmp_path / "m.onnx")
    held = _table(500, seed=7)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {"hour": held["hour"], "load": held["load"], "flag": held["flag"],
             "city": np.array([str(v) for v in held["city"]], dtype=object)}
    out = dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))
    expected = model.predict({k: held[k] for k in feeds})
    np.testing.assert_allclose(out["y"], expected, rtol=1e-5, atol=1e-6)


def test_estimator_takes_the_option():
    from torchann.api.sklearn import MLPRegressor

    data = _table(1400)
    x = np.column_stack([data["hour"], data["load"], data["flag"]])
    est = MLPRegressor(hidden=[16], epochs=2, networks=1, random_state=0).fit(x, data["y"])
    assert est.model_.network.spec.periodic == (0, 1)
    assert MLPRegressor(num_embeddings="none").get_params()["num_embeddings"] == "none"
