"""The public Python API misused as users misuse it: each call checks its arguments first and
raises one of torchann's errors naming the argument and the fix, or does the right thing.

Numpy integers are integers (``operator.index``) wherever a size or a count is taken; a
float64 model trains and predicts on float64 rows; a batch-norm network never meets a batch
of one row.
"""

from __future__ import annotations

import copy
import math
import warnings

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, IterableDataset, TensorDataset
from typer.testing import CliRunner

import torchann
from torchann.cli import app
from torchann.core.errors import DataError, ModelFileError, SpecError, UsageError

X = torch.randn(8, 2)
Y = torch.randn(8, 1)


def net():
    return torchann.mlp(2, [4], 1)


def meta_net():
    with torch.device("meta"):
        return torchann.mlp(2, [4], 1)


class Stream(IterableDataset):
    def __iter__(self):
        return iter(zip(X, Y))


def fit(model, x, y=None, **kw):
    return torchann.fit(model, x, y, **{"epochs": 1, "device": "cpu", **kw})


MISUSES = [
    # (what, call, error class, fragment of the message)
    ("mlp with a float width", lambda: torchann.mlp(2, [8.0], 1), SpecError, "hidden[0] must be a positive integer, got 8.0"),
    ("mlp with a bool size", lambda: torchann.mlp(True, [8], 1), SpecError, "in_features must be a positive integer, got True"),
    ("mlp with hidden as text", lambda: torchann.mlp(2, "8", 1), SpecError, "hidden must be a list of positive integers"),
    ("ModelSpec with a numpy float size", lambda: torchann.ModelSpec(np.float64(2), [4], 1), SpecError,
     "in_features must be a positive integer, got np.float64(2.0)"),
    ("fit with a 0-d target", lambda: fit(net(), X, torch.tensor(1.0)), DataError, "training data y is a single number"),
    ("fit with a 0-d input", lambda: fit(net(), torch.tensor(1.0), Y), DataError, "training data x must be 2-D"),
    ("fit with a 0-d validation target", lambda: fit(net(), X, Y, validation=(X, torch.tensor(2.0))), DataError,
     "validation data y is a single number (2.0)"),
    ("fit bce with a target below 0", lambda: fit(net(), X, torch.full((8, 1), -0.5), loss="bce"), DataError,
     "training data y holds -0.5 at row 0, column 0, but loss='bce' needs targets in [0, 1]"),
    ("fit bce on a DataLoader with a target of 3", lambda: fit(net(), DataLoader(TensorDataset(X, torch.full((8,), 3.0)),
                                                                                 batch_size=4), loss="bce"),
     DataError, "DataLoader batch 0: y holds 3 at row 0"),
    ("fit on an IterableDataset", lambda: fit(net(), Stream()), UsageError,
     "fit cannot train on an IterableDataset (Stream): it has no length"),
    ("fit on a DataLoader of an IterableDataset", lambda: fit(net(), DataLoader(Stream(), batch_size=2)), UsageError,
     "fit cannot train on an IterableDataset (Stream)"),
    ("fit batch_size 0", lambda: fit(net(), X, Y, batch_size=0), UsageError, "batch_size must be a positive integer, got 0"),
    ("fit threads 0", lambda: fit(net(), X, Y, threads=0), UsageError, "threads must be a positive integer or None"),
    ("fit a batch-norm net on one row", lambda: fit(torchann.mlp(2, [4], 1, norm="batch"), X[:1], Y[:1]), DataError,
     "the training data has 1 row(s), but the model's BatchNorm needs at least 2 rows per batch"),
    ("fit a batch-norm net in batches of one", lambda: fit(torchann.mlp(2, [4], 1, norm="batch"), X, Y, batch_size=1),
     UsageError, "batch_size 1 gives BatchNorm batches of one row"),
    ("fit a meta net", lambda: fit(meta_net(), X, Y), UsageError, "is on the meta device"),
    ("predict batch_size -1", lambda: torchann.predict(net(), X, batch_size=-1), UsageError,
     "batch_size must be a positive integer or None, got -1"),
    ("predict batch_size 0", lambda: torchann.predict(net(), X, batch_size=0), UsageError,
     "batch_size must be a positive integer or None, got 0"),
    ("predict batch_size 2.5", lambda: torchann.predict(net(), X, batch_size=2.5), UsageError, "got 2.5"),
    ("predict batch_size True", lambda: torchann.predict(net(), X, batch_size=True), UsageError, "got True"),
    ("predict block 0", lambda: torchann.predict(net(), X, block=0), UsageError, "block must be a positive integer"),
    ("predict first_row -1", lambda: torchann.predict(net(), X, block=4, first_row=-1), UsageError,
     "first_row must be an integer >= 0, got -1"),
    ("predict with a meta net", lambda: torchann.predict(meta_net(), X), UsageError, "is on the meta device"),
    ("predict with no model", lambda: torchann.predict(None, X), UsageError, "model must be a torch.nn.Module, got NoneType"),
    ("predict a 0-d input", lambda: torchann.predict(net(), torch.tensor(1.0)), DataError, "input must be 2-D"),
    ("save a meta net", lambda: torchann.save(meta_net(), "x"), UsageError, "model tensor 'linear1.weight' is on the meta device"),
    ("save to None", lambda: torchann.save(net(), None), UsageError,
     "path must be the model directory to write (a str or os.PathLike), got NoneType"),
    ("save a float64 net", lambda: torchann.save(net().double(), "x"), UsageError, "call model.float() first"),
    ("summary of a 10^12 input", lambda: torchann.summary(net(), input_size=(10**12,)), UsageError,
     "more than the limit of 1,073,741,824"),
    ("summary batch_size 0", lambda: torchann.summary(net(), input_size=(2,), batch_size=0), UsageError,
     "batch_size must be a positive integer or -1 (any), got 0"),
    ("summary batch_size 1.5", lambda: torchann.summary(net(), input_size=(2,), batch_size=1.5), UsageError, "got 1.5"),
    ("summary depth -1", lambda: torchann.summary(net(), input_size=(2,), depth=-1), UsageError,
     "depth must be a non-negative integer or None (all), got -1"),
    ("activations of a 0-d input", lambda: torchann.activations(net(), torch.tensor(1.0)), DataError,
     "the forward pass failed on input(s) of shape ()"),
    ("activations with layers=5", lambda: torchann.activations(net(), X, layers=5), UsageError,
     "layers must be a layer name or a list of names such as ['act1'], got 5"),
    ("parameters_table of a str", lambda: torchann.parameters_table("net"), UsageError, "model must be a torch.nn.Module"),
    ("load(None)", lambda: torchann.load(None), UsageError, "expected the path of a model directory, got NoneType"),
    ("read_model_dir(5)", lambda: torchann.read_model_dir(5), UsageError, "expected the path of a model directory, got int"),
    ("import_state_dict(None)", lambda: torchann.import_state_dict(None), UsageError,
     "path must be the .pth weights file (a str or os.PathLike), got NoneType"),
    ("load_table(5)", lambda: torchann.load_table(5), UsageError, "path must be a data file's path or a dataset name"),
    ("load_table('')", lambda: torchann.load_table(""), UsageError, "got an empty string"),
    ("load_dataset(5)", lambda: torchann.load_dataset(5), UsageError, "dataset name must be a str such as 'moons', got int"),
    ("split_indices of 'a' rows", lambda: torchann.split_indices("a", 0.2, seed=0), UsageError,
     "n must be an integer >= 0, got 'a'"),
    ("split_indices fraction 'a'", lambda: torchann.split_indices(10, "a", seed=0), UsageError,
     "validation fraction must be a number in [0, 1), got 'a'"),
    ("split_indices seed 'a'", lambda: torchann.split_indices(10, 0.2, seed="a"), UsageError,
     "seed must be an integer from 0 to 2**63 - 1, got 'a'"),
    ("split_indices seed -1", lambda: torchann.split_indices(10, 0.2, seed=-1), UsageError, "got -1"),
    ("train seed 'a'", lambda: torchann.train(np.ones((4, 2)), np.ones(4), seed="a", epochs=1), UsageError,
     "seed must be an integer from 0 to 2**63 - 1, got 'a'"),
    ("infer_task of a number", lambda: torchann.infer_task(5), UsageError, "infer_task needs a torchann Table"),
    ("Preprocessor.fit of a number", lambda: torchann.Preprocessor.fit(5), UsageError,
     "Preprocessor.fit needs a torchann Table"),
    ("import_state_dict of a sparse state dict", lambda: torchann.import_state_dict("sparse.pth"), ModelFileError,
     "tensor '0.weight' is sparse_coo, not a dense tensor"),
]


@pytest.mark.parametrize("call, error, fragment", [pytest.param(c, e, f, id=w) for w, c, e, f in MISUSES])
def test_a_misused_call_raises_one_line_naming_the_argument(call, error, fragment, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    state = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1)).state_dict()
    bad = torch.sparse_coo_tensor(torch.tensor([[0, 50], [0, 1]]), torch.tensor([1.0, 2.0]), (8, 2),
                                  check_invariants=False)
    torch.save({**state, "0.weight": bad}, "sparse.pth")
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(error) as err:
        call()
    assert fragment in str(err.value)
    assert "\n" not in str(err.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing half-written


def test_numpy_integers_are_integers_everywhere_a_size_or_count_is_taken():
    i = np.int64
    model = torchann.mlp(i(2), [i(8)], np.int32(1))
    assert model.spec == torchann.ModelSpec(2, (8,), 1)
    assert all(type(v) is int for v in model.spec.sizes)  # plain ints: spec.json can be written
    assert torchann.ModelSpec.from_json(model.spec.to_json()) == model.spec
    assert torchann.ModelSpec(2, np.array([4, 3]), 1).hidden == (4, 3)
    assert torchann.ModelSpec(2, [4], 1, dropout=np.float32(0.5), bias=np.bool_(False)).bias is False
    s = torchann.summary(model, input_size=(i(1), i(2)), batch_size=i(4), depth=i(1))
    assert s.total_params == sum(p.numel() for p in model.parameters()) == 2 * 8 + 8 + 8 + 1
    assert s.batch_size == 4 and type(s.batch_size) is int
    x = torch.randn(10, 2)
    assert torch.equal(torchann.predict(model, x, batch_size=i(3)), torchann.predict(model, x, batch_size=3))
    a, b = torchann.split_indices(i(10), np.float64(0.2), seed=i(5)), torchann.split_indices(10, 0.2, seed=5)
    assert a[0].tolist() == b[0].tolist() and a[1].tolist() == b[1].tolist()
    runs = []
    for kind in (int, i):
        torch.manual_seed(0)
        m = torchann.mlp(2, [4], 1)
        torchann.fit(m, x, x.sum(1), epochs=kind(2), batch_size=kind(4), threads=kind(1), seed=kind(3),
                     device="cpu", early_stopping=kind(1))
        runs.append(m.state_dict())
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])


def test_a_float64_model_trains_on_float64_rows_as_a_hand_written_loop_does():
    torch.manual_seed(0)
    x = torch.randn(16, 2)  # float32 values: the same numbers in both dtypes
    y = x[:, :1] * 2 - x[:, 1:]
    model = torchann.mlp(2, [4], 1).double()
    ref = copy.deepcopy(model)
    torchann.fit(model, x, y, epochs=3, batch_size=16, shuffle=False, optimizer="sgd", lr=0.1, momentum=0.0,
                 early_stopping=None, device="cpu", seed=0)
    xd, yd = x.double(), y.double()
    for _ in range(3):  # the oracle: full-batch gradient descent on the mean squared error, in float64
        ref.zero_grad()
        ((ref(xd) - yd) ** 2).mean().backward()
        with torch.no_grad():
            for p in ref.parameters():
                p -= 0.1 * p.grad
    for (name, p), q in zip(model.named_parameters(), ref.parameters()):
        assert p.dtype == torch.float64
        assert torch.allclose(p, q, rtol=0, atol=1e-12), name
    out = torchann.predict(model, x)
    assert torch.allclose(out.double(), ref(xd).detach().float().double(), atol=1e-6)


def test_batch_norm_one_row_last_batch_joins_the_one_before_and_is_said_once():
    torch.manual_seed(0)
    x, y = torch.randn(33, 3), torch.randn(33, 1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = torchann.fit(torchann.mlp(3, [4], 1, norm="batch"), x, y, epochs=3, batch_size=32, device="cpu")
    said = [w for w in caught if "BatchNorm cannot train on" in str(w.message)]
    assert len(said) == 1  # once per fit, not once per epoch
    assert "each epoch ends with a step of 33 rows" in str(said[0].message)
    assert history.info["steps_per_epoch"] == 1 and "33 rows" in history.info["last_batch"]


def test_batch_norm_on_a_dataset_leaves_out_a_one_row_last_batch():
    torch.manual_seed(0)
    data = TensorDataset(torch.randn(9, 3), torch.randn(9, 1))
    history = torchann.fit(torchann.mlp(3, [4], 1, norm="batch"), data, epochs=2, batch_size=4, device="cpu")
    assert history.info["steps_per_epoch"] == 2  # 4 + 4; the ninth row waits for another epoch's order
    assert all(math.isfinite(r["loss"]) for r in history.records)


def test_train_cli_with_batch_norm_and_a_one_row_last_batch_writes_the_whole_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "t.csv").write_text("a,b,y\n" + "".join(f"{i},{i % 3},{2 * i}\n" for i in range(33)))
    result = CliRunner().invoke(app, ["train", "t.csv", "--target", "y", "--norm", "batch", "--val-split", "0",
                                      "--batch-size", "32", "--epochs", "2", "--quiet", "--out", "run"])
    assert result.exit_code == 0, result.output
    assert result.stderr.count("BatchNorm cannot train on") == 1
    # the report's layer table runs the batch-norm network on (in_features,) samples
    assert {"spec.json", "weights.safetensors", "report.html", "loss.png"} <= {p.name for p in (tmp_path / "run").iterdir()}


def _huge_row_table():
    y = np.arange(40, dtype=np.float64)
    y[3] = 1e308
    return np.stack([np.arange(40.0), np.arange(40.0) % 3], axis=1), y


def test_a_huge_target_in_a_held_out_row_is_refused_before_it_becomes_inf():
    x, y = _huge_row_table()
    with pytest.raises(DataError, match=r"target 'y' row 4 holds 1e\+308, which scaled by the training rows' mean "
                                         r"and std leaves float32's range"):
        torchann.train(x, y, epochs=1, seed=0)  # seed 0 holds row 4 out: the scaling never saw it


def test_a_positive_target_of_1e308_is_learnt_as_log1p_without_overflow():
    x, y = _huge_row_table()
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no "overflow encountered in square"
        model = torchann.train(x, y, epochs=2, seed=0, val_split=0)  # the 1e308 row trains
        scores = model.evaluate({"x0": x[:, 0], "x1": x[:, 1], "y": y})
    assert model.preprocessor.target_log == [True]
    assert math.isfinite(model.preprocessor.target_std[0])
    assert math.isfinite(scores["r2"]) and math.isfinite(scores["mae"])
