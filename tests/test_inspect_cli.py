"""``torchann summary`` / ``activations`` / ``inspect`` through typer's CliRunner.

Oracles: the tutorial's printed summary table (golden file), hand arithmetic from the saved
weights (relu(x W1^T + b1)), NumPy statistics of the weights, and the spec's sizes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import torchann
from torchann.cli import app

GOLDEN = Path(__file__).parent / "golden"
runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    np.random.seed(0)


@pytest.fixture
def add_dir(tmp_path):
    """The tutorial's 2-8-1 ReLU net saved as a model directory."""
    model = torchann.mlp(2, [8], 1)
    return torchann.save(model, tmp_path / "add"), model


def hidden_by_hand(model, x: np.ndarray) -> np.ndarray:
    w = model.linear1.weight.detach().numpy().astype(np.float64)
    b = model.linear1.bias.detach().numpy().astype(np.float64)
    return np.maximum(x @ w.T + b, 0.0)  # (B, 2) @ (2, 8) -> (B, 8)


# -- summary --------------------------------------------------------------------------------

def test_summary_of_model_dir_is_the_tutorial_table(add_dir):
    path, _ = add_dir
    result = invoke("summary", path)
    assert result.exit_code == 0, result.output
    # default input size (1, in_features) = the tutorial's input_size=(1, 2)
    assert result.stdout == (GOLDEN / "summary_tutorial_2_4.txt").read_text(encoding="utf-8")
    assert result.stderr == ""


def test_summary_json_and_spec_files(add_dir, tmp_path):
    path, model = add_dir
    result = invoke("summary", path / "spec.json", "--input-size", "2", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["total_params"] == 33 == sum(p.numel() for p in model.parameters())
    assert [(r["name"], r["params"], r["output_shape"]) for r in data["rows"]] == [
        ("linear1", 2 * 8 + 8, [[-1, 8]]), ("act1", 0, [[-1, 8]]), ("output", 8 + 1, [[-1, 1]])]

    bare = tmp_path / "bare.json"
    bare.write_text(torchann.ModelSpec(4, [16, 8], 3, norm="batch").to_json())
    result = invoke("summary", bare, "--json", "--batch-size", "32")
    data = json.loads(result.stdout)
    # 4*16+16 + 2*16 (norm) + 16*8+8 + 2*8 + 8*3+3
    assert data["total_params"] == 80 + 32 + 136 + 16 + 27 == 291
    assert data["rows"][0]["output_shape"] == [[32, 16]]  # batch-norm nets default to (in_features,)
    assert data["input_size_mb"] == pytest.approx(32 * 4 * 4 / 1024**2)

    folded = json.loads(invoke("summary", bare, "--depth", "0", "--json").stdout)
    assert [(r["type"], r["params"]) for r in folded["rows"]] == [("MLP", 291)]


@pytest.mark.parametrize(
    "content,fragment",
    [
        ("{not json", "not valid JSON"),
        ('{"in_features": 2, "hidden": [8]}', "missing field(s) out_features"),
        ('{"format": "torchann.model/1", "model": {"in_features": 0, "hidden": [], "out_features": 1}}',
         "in_features must be a positive integer"),
    ],
)
def test_summary_bad_spec_files(tmp_path, content, fragment):
    bad = tmp_path / "spec.json"
    bad.write_text(content)
    result = invoke("summary", bad)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith("error: ") and fragment in result.stderr


def test_summary_wrong_input_size_and_missing_path(add_dir, tmp_path):
    path, _ = add_dir
    result = invoke("summary", path, "--input-size", "3")
    assert result.exit_code == 2 and "forward pass failed on input(s) of shape (2, 3)" in result.stderr
    result = invoke("summary", path, "--input-size", "x")
    assert result.exit_code == 2 and "--input-size expects comma-separated integers" in result.stderr
    result = invoke("summary", tmp_path / "nowhere")
    assert result.exit_code == 2 and "no such model directory" in result.stderr


# -- activations ----------------------------------------------------------------------------

def test_activations_from_input_rows_to_npz(add_dir, tmp_path):
    path, model = add_dir
    out = tmp_path / "acts.npz"
    result = invoke("activations", path, "--input", "10,11", "--input", "1.5,2.5", "--layer", "act1",
                    "--layer", "output", "--out", out)
    assert result.exit_code == 0, result.output
    assert "wrote 2 row(s) x 2 layer(s)" in result.stderr and result.stdout == ""
    with np.load(out) as arrays:
        assert sorted(arrays.files) == ["act1", "output"]
        x = np.array([[10, 11], [1.5, 2.5]])
        hidden = hidden_by_hand(model, x)
        np.testing.assert_allclose(arrays["act1"], hidden, rtol=1e-5, atol=1e-5)
        w2 = model.output.weight.detach().numpy().astype(np.float64)
        b2 = model.output.bias.detach().numpy().astype(np.float64)
        np.testing.assert_allclose(arrays["output"], hidden @ w2.T + b2, rtol=1e-5, atol=1e-5)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp files left


def test_activations_from_csv_to_csv(add_dir, tmp_path):
    path, model = add_dir
    data = tmp_path / "rows.csv"
    data.write_text("a,label,b\n1,x,2\n3,y,4\n-5,z,6\n")  # the text column is not an input
    out = tmp_path / "acts.csv"
    result = invoke("activations", path, "--data", data, "--out", out, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report == {"out": str(out), "rows": 3, "layers": {"linear1": 8, "act1": 8, "output": 1}}
    lines = out.read_text().splitlines()
    assert lines[0].split(",")[:9] == ["linear1:0", *(f"linear1:{j}" for j in range(1, 8)), "act1:0"]
    table = np.loadtxt(out, delimiter=",", skiprows=1)
    assert table.shape == (3, 17)
    np.testing.assert_allclose(table[:, 8:16], hidden_by_hand(model, np.array([[1, 2], [3, 4], [-5, 6]])),
                               rtol=1e-6, atol=1e-6)


def test_activations_uses_recorded_feature_names(tmp_path):
    model = torchann.mlp(2, [3], 1)
    path = torchann.save(model, tmp_path / "m", extra={"features": ["b", "a"]})
    data = tmp_path / "rows.csv"
    data.write_text("a,b,c\n1,2,3\n4,5,6\n")
    out = tmp_path / "acts.npz"
    result = invoke("activations", path, "--data", data, "--layer", "linear1", "--out", out)
    assert result.exit_code == 0, result.output
    w, b = model.linear1.weight.detach().numpy(), model.linear1.bias.detach().numpy()
    with np.load(out) as arrays:  # columns b, a in that order; c ignored
        np.testing.assert_allclose(arrays["linear1"], np.array([[2, 1], [5, 4]]) @ w.T + b, rtol=1e-5, atol=1e-6)


def test_activations_apply_the_stored_scaling(tmp_path):
    from torchann.data.table import Table
    from torchann.preprocess.preprocessor import Preprocessor

    train = {"a": [1.0, 2.0, 3.0, 6.0], "b": [10.0, 0.0, 5.0, 5.0], "y": [0.0, 1.0, 2.0, 3.0]}
    pre = Preprocessor.fit(Table.from_columns(train, source="train"), target="y", task="regression")
    model = torchann.mlp(2, [4], 1)
    path = torchann.save(model, tmp_path / "m", extra={"preprocessor": pre.to_dict()})
    data = tmp_path / "rows.csv"
    data.write_text("b,a,y\n4,2,0\n-1,7,0\n")
    raw = np.array([[2.0, 4.0], [7.0, -1.0]])  # columns a, b
    mean = np.array([np.mean(train["a"]), np.mean(train["b"])])
    std = np.array([np.std(train["a"]), np.std(train["b"])])  # population std
    w, b = model.linear1.weight.detach().numpy(), model.linear1.bias.detach().numpy()
    expected = np.maximum(((raw - mean) / std) @ w.T + b, 0.0)
    for source in (["--data", data], ["--input", "2,4", "--input", "7,-1"]):
        out = tmp_path / "acts.npz"
        result = invoke("activations", path, *source, "--layer", "act1", "--out", out)
        assert result.exit_code == 0, result.output
        with np.load(out) as arrays:
            np.testing.assert_allclose(arrays["act1"], expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "args,fragment",
    [
        (["--input", "1,2,3"], "--input rows need 2 values (x0, x1), got 3"),
        ([], "give exactly one of --data FILE.csv or --input"),
        (["--input", "1,2", "--layer", "act9"], "unknown layer name(s) 'act9'; valid names: linear1, act1, output"),
        (["--input", "1,x"], "--input expects comma-separated numbers"),
    ],
)
def test_activations_usage_errors(add_dir, tmp_path, args, fragment):
    path, _ = add_dir
    out = tmp_path / "acts.npz"
    result = invoke("activations", path, *args, "--out", out)
    assert result.exit_code == 2, result.output
    assert fragment in result.stderr
    assert not out.exists()


def test_activations_file_errors(add_dir, tmp_path):
    path, _ = add_dir
    wide = tmp_path / "wide.csv"
    wide.write_text("a,b,c\n1,2,3\n")
    result = invoke("activations", path, "--data", wide, "--out", tmp_path / "o.npz")
    assert result.exit_code == 2
    assert "the model takes 2 numeric input column(s), the table has 3 (a, b, c)" in result.stderr
    holes = tmp_path / "holes.csv"
    holes.write_text("a,b\n1,2\n3,\n")
    result = invoke("activations", path, "--data", holes, "--out", tmp_path / "o.npz")
    assert result.exit_code == 2 and "column 'b' has a missing value in row 2" in result.stderr
    result = invoke("activations", path, "--input", "1,2", "--out", tmp_path / "o.parquet")
    assert result.exit_code == 2 and "use a name ending in .npz or .csv" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["add", "holes.csv", "wide.csv"]


# -- inspect --------------------------------------------------------------------------------

def test_inspect_words_and_table(add_dir):
    path, model = add_dir
    result = invoke("inspect", path)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert "network    2 inputs -> 8 (relu) -> 1 output, 33 parameters" in lines
    assert "features   2 column(s) -> 2 network input(s)" in lines
    head = next(i for i, line in enumerate(lines) if line.split()[:3] == ["name", "shape", "count"])
    assert [line.split()[0] for line in lines[head + 2:head + 6]] == [
        "linear1.weight", "linear1.bias", "output.weight", "output.bias"]
    assert lines[-1] == "33 parameters, 33 trainable"


def test_inspect_json_statistics(add_dir):
    path, model = add_dir
    data = json.loads(invoke("inspect", path, "--json").stdout)
    assert data["network"] == "2 inputs -> 8 (relu) -> 1 output, 33 parameters"
    assert [f["name"] for f in data["features"]] == ["x0", "x1"] and data["task"] == "regression"
    assert data["spec"]["hidden"] == [8] and data["total"] == 33
    for row, (name, p) in zip(data["parameters"], model.named_parameters()):
        arr = p.detach().numpy().astype(np.float64)
        assert row["name"] == name and row["shape"] == list(arr.shape)
        assert row["mean"] == pytest.approx(arr.mean()) and row["std"] == pytest.approx(arr.std())
        assert (row["min"], row["max"]) == (pytest.approx(arr.min()), pytest.approx(arr.max()))


def test_describe_spec_in_words():
    from torchann.inspect.layers import describe_spec

    spec = torchann.ModelSpec(30, [64, 32], 2, activation="tanh", dropout=0.1, norm="batch", bias=False)
    # 30*64 + 64*32 + 32*2 weights, 2*(64+32) batch-norm parameters
    assert describe_spec(spec) == (
        "30 inputs -> 64 (tanh) -> 32 (tanh) -> 2 outputs, 4,224 parameters (batch norm, dropout 0.1, no bias)"
    )
    assert describe_spec(torchann.ModelSpec(1, [], 1)) == "1 input -> 1 output, 2 parameters"


def test_real_subprocess_summary(add_dir):
    path, _ = add_dir
    proc = subprocess.run(
        [sys.executable, "-m", "torchann", "summary", str(path), "--json"],
        capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "120"},
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["total_params"] == 33
