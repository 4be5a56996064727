"""The foundation: ModelSpec, fit, predict, save/load, each checked against an oracle."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import torchann
from torchann.batching.batches import TensorBatches, epoch_permutation
from torchann.api.demo import DEMO_QUERIES, train_demo
from torchann.core.errors import DataError, SpecError, UsageError


# -- ModelSpec ------------------------------------------------------------------------------

def test_spec_builds_named_layers_with_counted_parameters():
    spec = torchann.ModelSpec(30, (64, 32), 2, dropout=0.1, norm="batch")
    model = spec.build()
    names = [n for n, _ in model.named_children()]
    assert names == ["linear1", "norm1", "act1", "dropout1", "linear2", "norm2", "act2", "dropout2", "output"]
    # hand count: 30*64+64 + 64*32+32 + 32*2+2 + batch norm 2*(64+32)
    assert spec.num_parameters() == 1984 + 2080 + 66 + 192
    assert spec.num_parameters() == sum(p.numel() for p in model.parameters())


def test_spec_json_round_trip_is_exact():
    spec = torchann.ModelSpec(4, [16, 8], 3, activation="tanh", dropout=0.25, norm="layer", bias=False)
    again = torchann.ModelSpec.from_json(spec.to_json())
    assert again == spec
    assert json.loads(spec.to_json())["hidden"] == [16, 8]


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        (dict(in_features=0, hidden=[8], out_features=1), "in_features must be a positive integer, got 0"),
        (dict(in_features=2, hidden=[-3], out_features=1), "hidden[0] must be a positive integer, got -3"),
        (dict(in_features=2, hidden=[8], out_features=1, activation="rleu"), "Did you mean 'relu'?"),
        (dict(in_features=2, hidden=[8], out_features=1, dropout=1.5), "dropout must be in [0, 1)"),
        (dict(in_features=10**6, hidden=[10**6], out_features=1), "more than the limit"),
    ],
)
def test_spec_errors_name_the_value_and_fix(kwargs, fragment):
    with pytest.raises(SpecError) as info:
        torchann.ModelSpec(**kwargs)
    assert fragment in str(info.value)


def test_mlp_matches_a_hand_written_forward():
    model = torchann.mlp(2, [3], 1, activation="sigmoid")
    x = torch.randn(5, 2)
    w1, b1, w2, b2 = (p.detach() for p in model.parameters())
    expected = torch.sigmoid(x @ w1.T + b1) @ w2.T + b2
    torch.testing.assert_close(model(x), expected)


# -- fit ------------------------------------------------------------------------------------

def test_demo_predicts_the_sum_on_every_seed_tried_and_untrained_does_not():
    # Seed 5 trains starts 15, 16 and 17; start 17 begins with its ReLU units dead.
    for seed in (0, 1, 5):
        model = train_demo(seed)
        pred = float(model.predict([DEMO_QUERIES[0]])[0])
        assert abs(pred - 21.0) < 0.5, (seed, pred)
        assert model.history.final_loss < 1e-2
        assert pred == float(torchann.predict(model.network, [DEMO_QUERIES[0]]))  # identity preprocessing
    untrained = torchann.mlp(2, [8], 1)
    assert abs(float(torchann.predict(untrained, [[10.0, 11.0]])) - 21.0) > 0.5


def test_fit_equals_the_plain_dataloader_loop_with_the_same_order(add_data):
    """The fast batching path gives the same weights as DataLoader + a by-hand loop."""
    x, y = add_data
    x = torch.cat([x, x + 0.5, x * 2])  # 12 rows, 3 uneven batches of 5
    y = x.sum(1, keepdim=True)
    torch.manual_seed(3)
    fast = torchann.mlp(2, [8], 1)
    slow = torchann.mlp(2, [8], 1)
    slow.load_state_dict(fast.state_dict())
    torchann.fit(fast, x, y, epochs=4, batch_size=5, lr=0.01, optimizer="sgd", seed=11, device="cpu", early_stopping=None)

    class Order(torch.utils.data.Sampler):
        def __init__(self):
            self.epoch = 0

        def __iter__(self):
            order = epoch_permutation(len(x), seed=11, epoch=self.epoch)
            self.epoch += 1
            return iter(order.tolist())

        def __len__(self):
            return len(x)

    loader = DataLoader(TensorDataset(x, y), batch_size=5, sampler=Order())
    opt = torch.optim.SGD(slow.parameters(), lr=0.01)
    for _ in range(4):
        for xb, yb in loader:
            opt.zero_grad()
            nn.functional.mse_loss(slow(xb), yb).backward()
            opt.step()
    for a, b in zip(fast.parameters(), slow.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


def test_epoch_loss_is_the_row_weighted_mean_of_step_losses(add_data):
    x, y = add_data
    model = torchann.mlp(2, [8], 1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    history = torchann.fit(model, x, y, epochs=1, batch_size=3, lr=1e-9, optimizer="sgd", shuffle=False, early_stopping=None)
    # lr ~ 0: both steps see the initial weights; batches are rows 0-2 and row 3.
    ref = torchann.mlp(2, [8], 1)
    ref.load_state_dict(before)
    with torch.no_grad():
        l1 = nn.functional.mse_loss(ref(x[:3]), y[:3]).item()
        l2 = nn.functional.mse_loss(ref(x[3:]), y[3:]).item()
    assert history.losses[0] == pytest.approx((3 * l1 + 1 * l2) / 4, rel=1e-5)


def test_same_seed_same_weights_different_seed_different(add_data):
    x, y = add_data
    runs = []
    for seed in (7, 7, 8):
        torch.manual_seed(0)
        model = torchann.mlp(2, [8], 1, dropout=0.2)
        torchann.fit(model, x, y, epochs=5, batch_size=2, seed=seed, optimizer="adam", early_stopping=None)
        runs.append(torch.cat([p.flatten() for p in model.parameters()]))
    assert torch.equal(runs[0], runs[1])
    assert not torch.equal(runs[0], runs[2])


def test_fit_accepts_numpy_dataset_and_dataloader(add_data):
    x, y = add_data
    for data in (dict(x=x.numpy(), y=y.numpy()), dict(x=TensorDataset(x, y)), dict(x=DataLoader(TensorDataset(x, y), batch_size=2))):
        history = torchann.fit(torchann.mlp(2, [8], 1), epochs=3, lr=1e-3, batch_size=32, optimizer="adam",
                               early_stopping=None, **data)
        assert len(history) == 3 and all(np.isfinite(history.losses))


def test_fit_trains_any_module_and_records_history(add_data):
    x, y = add_data

    class Net(nn.Module):  # the tutorial's MyNeuralNet
        def __init__(self):
            super().__init__()
            self.input_to_hidden_layer = nn.Linear(2, 8)
            self.hidden_layer_activation = nn.ReLU()
            self.hidden_to_output_layer = nn.Linear(8, 1)

        def forward(self, v):
            return self.hidden_to_output_layer(self.hidden_layer_activation(self.input_to_hidden_layer(v)))

    history = torchann.fit(Net(), x, y, epochs=50, batch_size=2, lr=1e-2, optimizer="adam", seed=0, early_stopping=None)
    assert history.losses[-1] < history.losses[0]
    assert history.info["device"] == "cpu" and history.info["seed"] == 0
    lines = [json.loads(line) for line in history.to_jsonl().splitlines()]
    assert [r["epoch"] for r in lines] == list(range(1, 51))


def test_wrong_input_width_names_expected_and_given(add_data):
    model = torchann.mlp(2, [8], 1)
    with pytest.raises(DataError, match="3 feature column\\(s\\) but the model expects 2"):
        torchann.predict(model, [[1.0, 2.0, 3.0]])
    with pytest.raises(DataError, match="but the model expects 2"):
        torchann.fit(model, torch.ones(4, 3), torch.ones(4, 1), epochs=1, batch_size=32, optimizer="adam", early_stopping=None)


def test_nan_in_data_names_row_and_column():
    x = torch.ones(5, 2)
    x[3, 1] = float("nan")
    with pytest.raises(DataError, match="row 3, column 1"):
        torchann.fit(torchann.mlp(2, [4], 1), x, torch.ones(5, 1), epochs=1, batch_size=32, optimizer="adam", early_stopping=None)


def test_bad_option_values_are_usage_errors(add_data):
    x, y = add_data
    with pytest.raises(UsageError, match="choose one of: sgd, adam, adamw"):
        torchann.fit(torchann.mlp(2, [8], 1), x, y, optimizer="adamm", epochs=10, batch_size=32, early_stopping=None)
    with pytest.raises(UsageError, match="epochs must be a positive integer, got 0"):
        torchann.fit(torchann.mlp(2, [8], 1), x, y, epochs=0, batch_size=32, optimizer="adam", early_stopping=None)


def test_early_stopping_restores_the_best_epoch():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 3, generator=g)
    y = x.sum(1, keepdim=True)
    vx, vy = torch.randn(32, 3, generator=g), torch.randn(32, 1, generator=g)  # noise: val loss won't improve long
    model = torchann.mlp(3, [32], 1)
    history = torchann.fit(model, x, y, epochs=200, batch_size=16, lr=1e-2, validation=(vx, vy),
                           early_stopping=torchann.EarlyStopping(patience=3), seed=0, optimizer="adam")
    best = history.info["best_epoch"]
    assert len(history) == best + 3 < 200
    with torch.no_grad():
        restored = nn.functional.mse_loss(model(vx), vy).item()
    assert restored == pytest.approx(history["val_loss"][best - 1], rel=1e-5)


def test_resume_from_checkpoint_is_bit_identical(tmp_path):
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(40, 3, generator=g), torch.randn(40, 1, generator=g)
    options = dict(epochs=6, batch_size=8, lr=1e-2, seed=5, device="cpu", optimizer="adam", early_stopping=None)
    torch.manual_seed(0)
    full = torchann.mlp(3, [16], 1, dropout=0.1)
    start = {k: v.clone() for k, v in full.state_dict().items()}
    torchann.fit(full, x, y, **options)

    part = torchann.mlp(3, [16], 1, dropout=0.1)
    part.load_state_dict(start)
    ck = torchann.training.Checkpointing(tmp_path / "ck", every=1)
    torchann.fit(part, x, y, **{**options, "epochs": 3}, checkpoint=ck)
    again = torchann.mlp(3, [16], 1, dropout=0.1)  # fresh weights: all state comes from the checkpoint
    history = torchann.fit(again, x, y, **options, checkpoint=ck, resume=tmp_path / "ck")
    for a, b in zip(full.parameters(), again.parameters()):
        assert torch.equal(a, b)
    assert len(history) == 6


# -- save / load ----------------------------------------------------------------------------

def test_save_load_round_trip_predicts_identically_without_pickle(tmp_path, add_data, monkeypatch):
    x, y = add_data
    model = torchann.mlp(2, [8], 1)
    torchann.fit(model, x, y, epochs=20, lr=1e-2, batch_size=32, optimizer="adam", early_stopping=None)
    path = torchann.save(model, tmp_path / "m")
    assert sorted(p.name for p in path.iterdir()) == ["spec.json", "weights.safetensors"]

    def refuse(*a, **k):
        raise AssertionError("loading a model directory must not unpickle")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    loaded = torchann.load(path)
    q = torch.tensor([[10.0, 11.0], [0.5, -2.0]])
    assert torch.equal(torchann.predict(loaded.network, q), torchann.predict(model, q))
    assert not loaded.network.training
    # A bare network's preprocessing is the identity: predict answers what the network does.
    np.testing.assert_allclose(loaded.predict(q.numpy()), torchann.predict(model, q).numpy()[:, 0], rtol=1e-6)


def test_save_needs_a_spec_for_foreign_modules(tmp_path):
    with pytest.raises(UsageError, match="needs the model's ModelSpec"):
        torchann.save(nn.Linear(2, 1), tmp_path / "m")
    assert not (tmp_path / "m").exists()


def test_tampered_weights_are_refused(tmp_path):
    path = torchann.save(torchann.mlp(2, [8], 1), tmp_path / "m")
    data = bytearray((path / "weights.safetensors").read_bytes())
    data[-3] ^= 0xFF
    (path / "weights.safetensors").write_bytes(bytes(data))
    with pytest.raises(torchann.ModelFileError, match="do not match the checksum"):
        torchann.load(path)


def test_tensor_batches_shard_the_global_order_evenly():
    x = torch.arange(10.0)[:, None]
    shards = [list(TensorBatches(x, x, batch_size=2, seed=1, rank=r, world_size=2).epoch(0)) for r in (0, 1)]
    assert len(shards[0]) == len(shards[1]) == 3  # every rank takes the same number of steps
    seen = torch.cat([b.x for s in shards for b in s]).flatten().sort().values
    assert torch.equal(seen, torch.arange(10.0))  # each row exactly once per epoch
    # scales: 4 rows split 2+2, 4 rows 2+2, last 2 rows 1+1 -> loss_scale = n_local * world / n_global
    assert [b.loss_scale for b in shards[0]] == [1.0, 1.0, 1.0]
