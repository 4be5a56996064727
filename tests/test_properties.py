"""Property-based checks: for generated inputs torchann works or raises its own error, nothing else.

Hypothesis generates spec JSON (random dicts and values), small CSV tables (random text) and
argument values for ``mlp`` and ``fit``. The property: the call returns, or it raises a
``TorchannError`` subclass (whose message is one line). When it returns, the result is
checked against an independent count (parameters from the sizes alone, rows of the text).
Examples are few and small, so the whole file runs in seconds.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import torchann
from torchann.model import directory as modeldir
from torchann.core.errors import TorchannError
from torchann.network.spec import ModelSpec

FIELDS = ["in_features", "hidden", "out_features", "activation", "dropout", "norm", "bias", "output_activation"]
SETTINGS = settings(max_examples=60, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

# Sizes: mostly small, sometimes absurd (these must be refused before anything is allocated).
sizes = st.one_of(st.integers(-3, 12), st.sampled_from([10**9, 10**12, 2**62]))
scalars = st.one_of(
    st.none(), st.booleans(), sizes, st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8), st.sampled_from(["relu", "tanh", "batch", "layer", "none", "identity", "8", "RELU"]),
)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
    st.text(max_size=5), inner, max_size=3), max_leaves=8)
hidden_values = st.one_of(st.lists(sizes, max_size=4), sizes, json_values)
spec_dicts = st.fixed_dictionaries(
    {},
    optional={
        "in_features": st.one_of(sizes, json_values), "hidden": hidden_values,
        "out_features": st.one_of(sizes, json_values), "activation": json_values, "dropout": json_values,
        "norm": json_values, "bias": json_values, "output_activation": json_values,
    },
).flatmap(lambda d: st.dictionaries(st.sampled_from(FIELDS + ["layers", "kind", ""]), json_values, max_size=1)
          .map(lambda extra: {**d, **extra}))


def _one_line(err: TorchannError) -> None:
    assert str(err) and "\n" not in str(err), repr(str(err))


def _check_built(spec: ModelSpec) -> None:
    """A spec that is accepted builds a network with exactly the parameters its sizes say."""
    if spec.num_parameters() > 200_000:
        return
    model = spec.build()
    assert sum(p.numel() for p in model.parameters()) == spec.num_parameters()
    widths = (spec.in_features, *spec.hidden, spec.out_features)
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == list(zip(widths, widths[1:]))


@SETTINGS
@given(data=spec_dicts)
def test_spec_dicts_build_or_raise_spec_error(data):
    try:
        spec = ModelSpec.from_dict(data, source="spec.json")
    except TorchannError as err:
        _one_line(err)
        return
    _check_built(spec)
    assert ModelSpec.from_dict(json.loads(spec.to_json())) == spec  # JSON round trip


@SETTINGS
@given(text=st.text(max_size=60) | spec_dicts.map(json.dumps))
def test_spec_text_parses_or_raises_spec_error(text):
    try:
        spec = ModelSpec.from_json(text, source="spec.json")
    except TorchannError as err:
        _one_line(err)
        return
    _check_built(spec)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("prop") / "good"
    modeldir.save(torchann.mlp(2, [3], 1), path)
    return path


@SETTINGS
@given(model=spec_dicts, document_extra=st.dictionaries(st.sampled_from(["weights", "extra", "format"]),
                                                        json_values, max_size=2))
def test_model_directories_with_generated_spec_json_load_or_raise(model_dir, tmp_path, model, document_extra):
    target = tmp_path / "m"
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(model_dir, target)
    doc = json.loads((target / "spec.json").read_text())
    doc["model"] = model
    doc.update(document_extra)
    (target / "spec.json").write_text(json.dumps(doc))
    try:
        loaded = modeldir.read_model_dir(target)
    except TorchannError as err:
        _one_line(err)
        assert str(target) in str(err)  # the message names the file
        return
    assert loaded.spec.sizes == (2, 3, 1)  # only a spec matching the weights on disk can load


# -- tables -------------------------------------------------------------------------------------

cells = st.one_of(
    st.integers(-5, 5).map(str), st.floats(-10, 10, allow_nan=False).map(lambda v: f"{v:.3g}"),
    st.sampled_from(["", "nan", "inf", "-inf", "x", "cat", "dog", "true", "false", '"a,b"', " 1", "1e400", "NA"]),
)
csv_texts = st.one_of(
    st.integers(1, 4).flatmap(lambda width: st.lists(
        st.lists(cells, min_size=width, max_size=width + (1 if width > 1 else 0)), min_size=1, max_size=8,
    ).map(lambda rows: ",".join(f"c{i}" for i in range(width)) + "\n" + "".join(",".join(r) + "\n" for r in rows))),
    st.text(alphabet="ab,;\t\n\"1.-e ", max_size=40),
)


@SETTINGS
@given(text=csv_texts)
def test_small_tables_load_and_train_or_raise_data_errors(tmp_path, text):
    from torchann.data.readers import load_table
    from torchann.api.tabular import train

    path = tmp_path / "t.csv"
    path.write_text(text)
    try:
        table = load_table(path)
    except TorchannError as err:
        _one_line(err)
        return
    lines = [line for line in text.split("\n")[1:] if line.strip()]
    assert 1 <= table.n_rows <= len(lines) + text.count('"')  # quoted fields may hold newlines
    try:
        trained = train(table, target=table.names[-1], hidden=[3], epochs=1, batch_size=4, device="cpu",
                        task="regression" if table.kind(table.names[-1]) == "numeric" else None)
    except TorchannError as err:
        _one_line(err)
        return
    assert len(trained.history) == 1 and math.isfinite(trained.history.losses[0])


# -- arguments to mlp() and fit() ----------------------------------------------------------------

numbers = st.one_of(st.integers(-2, 6), st.floats(allow_nan=True, allow_infinity=True), st.booleans(), st.none())
choices = st.one_of(st.text(max_size=6), st.sampled_from(
    ["relu", "tanh", "gelu", "batch", "layer", "none", "sgd", "adam", "adamw", "mse", "mae", "cross_entropy", "bce",
     "fp32", "bf16", "cpu", "cosine", "step", "plateau", "one_cycle", "regression", "classification"]))


@SETTINGS
@given(in_features=sizes | numbers, hidden=hidden_values, out_features=sizes | numbers, activation=choices,
       dropout=numbers, norm=choices, bias=numbers)
def test_mlp_arguments_build_or_raise(in_features, hidden, out_features, activation, dropout, norm, bias):
    try:
        model = torchann.mlp(in_features, hidden, out_features, activation=activation, dropout=dropout, norm=norm,
                             bias=bias)
    except TorchannError as err:
        _one_line(err)
        return
    _check_built(model.spec)


X = torch.randn(12, 2, generator=torch.Generator().manual_seed(0))
Y = X.sum(1, keepdim=True)
YC = (X[:, :1] > 0).long().squeeze(1)


@SETTINGS
@given(epochs=st.integers(-1, 3) | numbers, batch_size=st.integers(-1, 20) | numbers,
       lr=st.floats(-1, 10) | numbers, optimizer=choices, loss=choices, weight_decay=st.floats(0, 1) | st.just(-1.0),
       clip=st.none() | st.floats(-1, 10), seed=st.none() | st.integers(0, 2**40), precision=choices,
       metrics=st.none() | choices, early=st.none() | st.integers(1, 3), shuffle=st.booleans(),
       scheduler=st.none() | choices)
def test_fit_arguments_train_or_raise(epochs, batch_size, lr, optimizer, loss, weight_decay, clip, seed, precision,
                                      metrics, early, shuffle, scheduler):
    from torchann.training.fitting import fit

    model = torchann.mlp(2, [3], 2)
    classes = str(loss).strip().lower().replace("-", "_") == "cross_entropy"
    y = YC if classes else torch.cat([Y, Y], 1)
    try:
        history = fit(model, X, y, epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer, loss=loss,
                      weight_decay=weight_decay, clip_grad_norm=clip, seed=seed, precision=precision,
                      metrics=metrics, early_stopping=early, shuffle=shuffle, scheduler=scheduler, device="cpu")
    except TorchannError as err:
        _one_line(err)
        return
    assert 1 <= len(history) <= epochs
    assert all(isinstance(r["loss"], float) for r in history)
