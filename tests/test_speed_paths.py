"""Every fast path gives the result of the plain path it replaces.

The oracles are the plain loops themselves: ``loss.backward()`` + ``torch.optim`` ``step()``
for the hand-written backward pass (MLPStep) and the direct optimiser call (DirectStep); a
``DataLoader`` loop in the same row order for ``fit`` and for streaming from files; autocast
for bf16; the eager model for ``torch.compile``. No timing is asserted here (see
benchmarks/train_throughput.py).
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Sampler, TensorDataset

import torchann
from torchann.batching.batches import epoch_permutation
from torchann.network.dropout import Dropout
from torchann.core.errors import DataError, UsageError
from torchann.training.optim import DirectStep, make_optimizer
from torchann.training.steps import AutogradStep, make_train_step
from torchann.training.mlp_step import MLPStep
from torchann.batching.stream_files import NpyBatches, ParquetBatches

CPU = torch.device("cpu")


def _data(rows=40, features=5, *, classes=None, binary=False, seed=1):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, features, generator=gen)
    if classes:
        return x, torch.randint(0, classes, (rows,), generator=gen)
    if binary:
        return x, (torch.rand(rows, 1, generator=gen) > 0.5).float()
    return x, torch.sin(x[:, :1] * 2) + x[:, 1:2] ** 2


def _plain_steps(model, loss_fn, opt, x, y, batch, epochs, autocast=None):
    """The textbook loop, the oracle: autograd and Optimizer.step()."""
    losses = []
    for _ in range(epochs):
        for s in range(0, len(x), batch):
            opt.zero_grad()
            with autocast or torch.autocast("cpu", enabled=False):
                loss = loss_fn(model(x[s : s + batch]), y[s : s + batch])
            loss.backward()
            opt.step()
            losses.append(loss.item())
    return losses


def _close(a: nn.Module, b: nn.Module, **tol):
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(p, q, msg=lambda m: f"{name}: {m}", **tol)


CASES = [
    # (model options, loss, optimizer options)
    ({}, nn.MSELoss(), {"name": "sgd"}),
    ({}, nn.MSELoss(), {"name": "sgd", "momentum": 0.9, "weight_decay": 1e-3}),
    ({}, nn.MSELoss(), {"name": "adam"}),
    ({}, nn.MSELoss(), {"name": "adamw", "weight_decay": 0.05}),
    ({"activation": "tanh"}, nn.L1Loss(), {"name": "adam"}),
    ({"activation": "sigmoid"}, nn.BCEWithLogitsLoss(), {"name": "adam"}),
    ({"activation": "gelu"}, nn.MSELoss(), {"name": "adam"}),
    ({"activation": "leaky_relu", "bias": False}, nn.MSELoss(), {"name": "adam"}),
    ({"out": 3}, nn.CrossEntropyLoss(), {"name": "adam"}),
    ({"dropout": 0.2}, nn.MSELoss(), {"name": "adamw", "weight_decay": 0.01}),
    ({"dropout": 0.5, "activation": "tanh", "out": 3}, nn.CrossEntropyLoss(), {"name": "adam"}),
]


@pytest.mark.parametrize("model_opts, loss_fn, opt_opts", CASES, ids=lambda v: str(v)[:40])
def test_mlp_step_matches_autograd_and_optimizer_step(model_opts, loss_fn, opt_opts):
    opts = dict(model_opts)
    out = opts.pop("out", 1)
    x, y = _data(classes=out if out > 1 else None, binary=isinstance(loss_fn, nn.BCEWithLogitsLoss))
    torch.manual_seed(0)
    fast = torchann.mlp(5, [16, 8], out, **opts)
    plain = copy.deepcopy(fast)
    name = opt_opts["name"]
    extra = {k: v for k, v in opt_opts.items() if k != "name"}
    opt_fast = make_optimizer(name, fast.parameters(), lr=0.01, device=CPU, **extra)
    opt_plain = make_optimizer(name, plain.parameters(), lr=0.01, device=CPU, **extra)

    step = make_train_step(fast, fast, loss_fn, opt_fast)
    assert isinstance(step, MLPStep)
    torch.manual_seed(1)  # dropout masks: both loops draw the same ones
    fast_losses = [float(step(x[s : s + 16], y[s : s + 16])[0]) for _ in range(4) for s in range(0, 40, 16)]
    torch.manual_seed(1)
    plain_losses = _plain_steps(plain, loss_fn, opt_plain, x, y, 16, 4)

    assert fast_losses == pytest.approx(plain_losses, rel=1e-6, abs=1e-7)
    assert sum(fast_losses[-3:]) < sum(fast_losses[:3])  # it trained: last epoch against the first
    _close(fast, plain, rtol=1e-6, atol=1e-7)
    for p, q in zip(opt_fast.state.values(), opt_plain.state.values()):  # the optimiser state too
        for key in p:
            torch.testing.assert_close(p[key], q[key], rtol=1e-6, atol=1e-7)


BUFFER_MODELS = {
    # in-place activations after linear layers, an activation that follows another, a GELU
    # (not in place), a 1-wide layer before the output, and a network that ends in an activation
    "relu-tanh-sigmoid": lambda: nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Tanh(), nn.Linear(16, 8),
                                               nn.Sigmoid(), nn.Linear(8, 1), nn.Linear(1, 3)),
    "gelu-to-sigmoid": lambda: nn.Sequential(nn.Linear(5, 16), nn.GELU(), nn.Linear(16, 1), nn.Sigmoid()),
    # torchann's dropout after an in-place activation, and after one that is not in place
    "dropout": lambda: nn.Sequential(nn.Linear(5, 16), nn.ReLU(), Dropout(0.3), nn.Linear(16, 8), nn.GELU(),
                                     Dropout(0.5), nn.Linear(8, 1)),
}


@pytest.mark.parametrize("bf16", [False, True], ids=["fp32", "bf16"])
@pytest.mark.parametrize("name", list(BUFFER_MODELS))
def test_mlp_step_reuses_buffers_and_equals_autograd_bit_for_bit(name, bf16):
    # MLPStep writes activations and gradients into buffers it keeps; batches of changing
    # size (growing past the buffers, then shrinking) must give exactly autograd's numbers,
    # and under bf16 exactly autocast's.
    x, _ = _data(rows=40)
    torch.manual_seed(0)
    fast = BUFFER_MODELS[name]()
    plain = copy.deepcopy(fast)
    y = torch.randn(40, fast[-1].out_features if isinstance(fast[-1], nn.Linear) else 1)
    opt_fast = make_optimizer("adam", fast.parameters(), lr=0.01, device=CPU)
    opt_plain = make_optimizer("adam", plain.parameters(), lr=0.01, device=CPU)
    step = make_train_step(fast, fast, nn.MSELoss(), opt_fast,
                           compute_dtype=torch.bfloat16 if bf16 else torch.float32)
    assert isinstance(step, MLPStep)
    auto = torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)
    outputs = []
    for i, (start, rows) in enumerate([(0, 8), (8, 16), (0, 40), (24, 3), (4, 16), (0, 40)]):
        xb, yb = x[start : start + rows], y[start : start + rows]
        torch.manual_seed(i)  # the same dropout masks for both
        loss, out = step(xb, yb)
        outputs.append(out)
        opt_plain.zero_grad()
        torch.manual_seed(i)
        with auto:
            expected_out = plain(xb)
            expected = nn.functional.mse_loss(expected_out.float(), yb)
        expected.backward()
        opt_plain.step()
        assert torch.equal(out, expected_out.float()), rows
        assert torch.equal(loss, expected.detach()), rows
        for p, q in zip(fast.parameters(), plain.parameters()):
            assert torch.equal(p, q), rows
    assert outputs[2].data_ptr() == outputs[5].data_ptr()  # the same buffer, step after step


def test_clipped_gradients_match_clip_grad_norm():
    x, y = _data()
    torch.manual_seed(0)
    fast = torchann.mlp(5, [16], 1)
    plain = copy.deepcopy(fast)
    opt_fast = make_optimizer("sgd", fast.parameters(), lr=0.1, device=CPU)
    opt_plain = make_optimizer("sgd", plain.parameters(), lr=0.1, device=CPU)
    step = make_train_step(fast, fast, nn.MSELoss(), opt_fast, clip_grad_norm=0.05)
    assert isinstance(step, MLPStep)
    for _ in range(3):
        step(x, y)
        opt_plain.zero_grad()
        nn.functional.mse_loss(plain(x), y).backward()
        norm = nn.utils.clip_grad_norm_(plain.parameters(), 0.05)
        assert norm > 0.05  # the clip is active in this test
        opt_plain.step()
    _close(fast, plain, rtol=1e-6, atol=1e-7)


def test_bf16_mlp_step_is_autocast_and_close_to_float32():
    x, y = _data(rows=64)
    torch.manual_seed(0)
    fast = torchann.mlp(5, [32, 32], 1)
    plain, fp32 = copy.deepcopy(fast), copy.deepcopy(fast)
    opts = [make_optimizer("adam", m.parameters(), lr=0.01, device=CPU) for m in (fast, plain, fp32)]
    step = make_train_step(fast, fast, nn.MSELoss(), opts[0], compute_dtype=torch.bfloat16)
    assert isinstance(step, MLPStep) and step.lower is torch.bfloat16
    fast_losses = [float(step(x[s : s + 16], y[s : s + 16])[0]) for _ in range(5) for s in range(0, 64, 16)]
    auto = torch.autocast("cpu", dtype=torch.bfloat16)
    plain_losses = _plain_steps(plain, nn.MSELoss(), opts[1], x, y, 16, 5, autocast=auto)
    fp32_losses = _plain_steps(fp32, nn.MSELoss(), opts[2], x, y, 16, 5)
    # The same as autocast, to float32 rounding of the last steps.
    assert fast_losses == pytest.approx(plain_losses, rel=1e-5)
    _close(fast, plain, rtol=1e-5, atol=1e-6)
    # bfloat16 keeps 8 bits of mantissa: the loss stays within 2% of float32's here.
    assert fast_losses[-1] == pytest.approx(fp32_losses[-1], rel=0.02)
    assert fast_losses != fp32_losses  # bf16 really ran


@pytest.mark.parametrize("model", [
    lambda: nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Dropout(0.2), nn.Linear(8, 1)),  # torch's own dropout
    lambda: torchann.mlp(5, [16], 1, norm="batch"),
    lambda: nn.Sequential(nn.Linear(5, 8), nn.PReLU(), nn.Linear(8, 1)),
], ids=["nn-dropout", "batchnorm", "prelu"])
def test_models_the_fast_step_does_not_know_take_autograd(model):
    net = model()
    opt = make_optimizer("adam", net.parameters(), lr=0.01, device=CPU)
    assert isinstance(make_train_step(net, net, nn.MSELoss(), opt), AutogradStep)


def test_hooks_and_custom_losses_take_autograd():
    net = torchann.mlp(5, [16], 1)
    opt = make_optimizer("adam", net.parameters(), lr=0.01, device=CPU)
    assert isinstance(make_train_step(net, net, nn.MSELoss(reduction="sum"), opt), AutogradStep)
    assert isinstance(make_train_step(net, net, nn.HuberLoss(), opt), AutogradStep)
    seen = []
    handle = net[0].register_forward_hook(lambda m, i, o: seen.append(o.shape))
    assert isinstance(make_train_step(net, net, nn.MSELoss(), opt), AutogradStep)
    handle.remove()
    assert isinstance(make_train_step(net, net, nn.MSELoss(), opt), MLPStep)


def test_direct_optimizer_step_matches_step_with_a_schedule():
    torch.manual_seed(0)
    for name, extra in [("adam", {}), ("adamw", {"weight_decay": 0.1}), ("sgd", {"momentum": 0.8})]:
        a = nn.Linear(4, 3)
        b = copy.deepcopy(a)
        opt_a = make_optimizer(name, a.parameters(), lr=0.1, device=CPU, **extra)
        opt_b = make_optimizer(name, b.parameters(), lr=0.1, device=CPU, **extra)
        sched_a = torch.optim.lr_scheduler.StepLR(opt_a, step_size=2, gamma=0.5)
        sched_b = torch.optim.lr_scheduler.StepLR(opt_b, step_size=2, gamma=0.5)
        direct = DirectStep(opt_a)
        for i in range(6):
            grads = [torch.full_like(p, 0.1 * (i + 1)) * (k + 1) for k, p in enumerate(a.parameters())]
            direct([g.clone() for g in grads])
            for p, g in zip(b.parameters(), grads):
                p.grad = g.clone()
            opt_b.step()
            sched_a.step()
            sched_b.step()
        assert direct._state is not None  # after the first step, the direct kernel ran
        _close(a, b, rtol=0, atol=0)
        sa, sb = opt_a.state_dict(), opt_b.state_dict()
        for k in sa["state"]:
            for key in sa["state"][k]:
                torch.testing.assert_close(sa["state"][k][key], sb["state"][k][key], rtol=0, atol=0)


class _Order(Sampler):
    """Yields fit's own per-epoch order, so a DataLoader loop sees the same batches."""

    def __init__(self, order_of_epoch, n):
        self.order_of_epoch, self.n, self.epoch = order_of_epoch, n, 0

    def __iter__(self):
        order = self.order_of_epoch(self.epoch)
        self.epoch += 1
        return iter(order.tolist())

    def __len__(self):
        return self.n


def _dataloader_fit(model, x, y, order_of_epoch, *, epochs, batch_size, lr):
    loader = DataLoader(TensorDataset(x, y), batch_size=batch_size, sampler=_Order(order_of_epoch, len(x)))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(epochs):
        for xb, yb in loader:
            opt.zero_grad()
            nn.functional.mse_loss(model(xb), yb).backward()
            opt.step()


def test_fit_with_adam_equals_the_dataloader_loop_in_the_same_order():
    x, y = _data(rows=50)
    torch.manual_seed(3)
    fast = torchann.mlp(5, [16, 16], 1)
    plain = copy.deepcopy(fast)
    torchann.fit(fast, x, y, epochs=3, batch_size=8, lr=0.01, optimizer="adam", seed=5, device="cpu", early_stopping=None)
    _dataloader_fit(plain, x, y, lambda e: epoch_permutation(50, seed=5, epoch=e), epochs=3, batch_size=8, lr=0.01)
    _close(fast, plain, rtol=1e-5, atol=1e-6)


def test_epoch_loss_over_many_blocks_of_steps_is_the_mean_loss():
    # lr ~ 0: every one of the 1,300 steps (three blocks of losses) sees the initial weights,
    # so the epoch loss is the initial model's mean loss over the rows.
    x, y = _data(rows=1300)
    model = torchann.mlp(5, [8], 1)
    with torch.no_grad():
        expected = float(((model(x) - y) ** 2).mean())
    history = torchann.fit(model, x, y, epochs=1, batch_size=1, lr=1e-30, optimizer="sgd", seed=0, early_stopping=None)
    assert history.losses[0] == pytest.approx(expected, rel=1e-5)


def test_bf16_fit_loss_within_five_percent_of_float32():
    x, y = _data(rows=512, features=8)
    runs = {}
    for precision in ("fp32", "bf16"):
        torch.manual_seed(0)
        model = torchann.mlp(8, [64, 64], 1)
        runs[precision] = torchann.fit(model, x, y, epochs=8, batch_size=64, lr=1e-2, seed=0, precision=precision, optimizer="adam", early_stopping=None)
    first = runs["fp32"].losses[0]
    assert runs["fp32"].final_loss < 0.5 * first  # both really learned
    assert runs["bf16"].final_loss == pytest.approx(runs["fp32"].final_loss, rel=0.05)
    assert runs["bf16"].final_loss != runs["fp32"].final_loss


def test_compiled_fit_matches_eager_within_float32_rounding(monkeypatch):
    # fit(compile=True) takes the general step with torch.compile's module. The test compiles
    # with the "aot_eager" backend: the same graph capture and AOTAutograd forward/backward
    # split as the default backend, without the C++ code generation that takes ~30 s cold on 2
    # cores (the default backend is timed in docs/benchmarks.md).
    import functools

    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="aot_eager"))
    x, y = _data(rows=64)
    runs = []
    for compile_ in (False, True):
        torch.manual_seed(0)
        model = torchann.mlp(5, [16], 1)
        history = torchann.fit(model, x, y, epochs=3, batch_size=16, lr=0.01, seed=0, compile=compile_, optimizer="adam", early_stopping=None)
        runs.append((history.losses, model))
    assert runs[1][0] == pytest.approx(runs[0][0], rel=1e-5)
    _close(runs[1][1], runs[0][1], rtol=1e-5, atol=1e-6)


# -- streaming ----------------------------------------------------------------------------------


@pytest.fixture
def table(tmp_path):
    gen = np.random.default_rng(0)
    x = gen.standard_normal((1000, 4)).astype(np.float32)
    y = (np.sin(x[:, 0]) + x[:, 1] * x[:, 2]).astype(np.float32)
    path = tmp_path / "train.npy"
    np.save(path, np.column_stack([x, y]))
    return path, torch.from_numpy(x), torch.from_numpy(y)[:, None]


def test_streaming_unshuffled_equals_in_memory_fit_bit_for_bit(table):
    path, x, y = table
    torch.manual_seed(0)
    a = torchann.mlp(4, [16], 1)
    b = copy.deepcopy(a)
    # chunks of 96 rows and batches of 40: batches straddle chunk boundaries
    ha = torchann.fit(a, NpyBatches(path, target=-1, chunk_rows=96), epochs=2, batch_size=40, shuffle=False, seed=0, optimizer="adam", early_stopping=None)
    hb = torchann.fit(b, x, y, epochs=2, batch_size=40, shuffle=False, seed=0, optimizer="adam", early_stopping=None)
    assert ha.losses == hb.losses
    _close(a, b, rtol=0, atol=0)


def test_streaming_shuffled_fit_equals_the_dataloader_loop_in_its_order(table):
    path, x, y = table
    source = NpyBatches(path, target=-1, chunk_rows=128)
    torch.manual_seed(0)
    a = torchann.mlp(4, [16], 1)
    b = copy.deepcopy(a)
    torchann.fit(a, source, epochs=2, batch_size=32, lr=0.01, seed=9, optimizer="adam", early_stopping=None)
    order = source.configured(seed=9).order
    _dataloader_fit(b, x, y, order, epochs=2, batch_size=32, lr=0.01)
    _close(a, b, rtol=1e-5, atol=1e-6)


def test_streaming_order_is_a_new_permutation_each_epoch_and_resumes_mid_epoch(table):
    path, x, y = table
    s = NpyBatches(path, target=-1, chunk_rows=128, batch_size=50, seed=1)
    o0, o1 = s.order(0), s.order(1)
    assert sorted(o0.tolist()) == list(range(1000)) == sorted(o1.tolist())
    assert not torch.equal(o0, o1)
    assert torch.equal(o0, s.order(0)) and not torch.equal(o0, s.configured(seed=2).order(0))
    batches = list(s.epoch(1))
    assert len(batches) == len(s) == 20 and all(len(bt.x) == 50 for bt in batches)
    torch.testing.assert_close(torch.cat([bt.x for bt in batches]), x[o1], rtol=0, atol=0)
    torch.testing.assert_close(torch.cat([bt.y for bt in batches]), y[o1], rtol=0, atol=0)
    resumed = list(s.epoch(1, start_step=7))
    assert len(resumed) == 13
    torch.testing.assert_close(resumed[0].x, batches[7].x, rtol=0, atol=0)


def test_parquet_streams_the_same_rows_as_npy(table, tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    path, x, y = table
    file = tmp_path / "train.parquet"
    columns = {f"f{i}": x[:, i].numpy() for i in range(4)}
    pq.write_table(pa.table({**columns, "target": y[:, 0].numpy()}), file, row_group_size=100)
    p = ParquetBatches(file, target="target", chunk_rows=200, batch_size=64, seed=4)
    assert p.chunks == [(s, s + 200) for s in range(0, 1000, 200)]
    order = p.order(3)
    got = list(p.epoch(3))
    torch.testing.assert_close(torch.cat([bt.x for bt in got]), x[order], rtol=0, atol=0)
    torch.testing.assert_close(torch.cat([bt.y for bt in got]), y[order], rtol=0, atol=0)
    npy = NpyBatches(path, target=-1, chunk_rows=200, batch_size=64, seed=4)
    assert torch.equal(npy.order(3), order)  # same chunks, same seed: the same order


def test_streaming_separate_target_file_and_class_indices(tmp_path):
    gen = np.random.default_rng(1)
    x = gen.standard_normal((300, 3))  # float64 on disk: read as float32
    labels = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 1)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", labels)
    torch.manual_seed(0)
    model = torchann.mlp(3, [16], 3)
    history = torchann.fit(model, NpyBatches(tmp_path / "x.npy", tmp_path / "y.npy"), loss="cross_entropy",
                           epochs=8, batch_size=32, lr=0.02, seed=0, optimizer="adam", early_stopping=None)
    assert history.final_loss < 0.6 * history.losses[0]
    pred = model(torch.from_numpy(x).float()).argmax(1).numpy()
    assert (pred == labels).mean() > 0.85


def test_streaming_errors_name_the_place_and_the_fix(table, tmp_path):
    path, x, y = table
    with pytest.raises(DataError, match=r"4 feature column\(s\) but the model expects 3"):
        torchann.fit(torchann.mlp(3, [4], 1), NpyBatches(path, target=-1), epochs=1, batch_size=32, optimizer="adam", early_stopping=None)
    with pytest.raises(UsageError, match="target 7 is not a column index"):
        NpyBatches(path, target=7)
    with pytest.raises(UsageError, match="either as a second .npy file"):
        NpyBatches(path)
    bad = np.column_stack([x.numpy(), y.numpy()])
    bad[613, 2] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    with pytest.raises(DataError, match="non-finite value .* at row 613, column 2"):
        torchann.fit(torchann.mlp(4, [4], 1), NpyBatches(tmp_path / "nan.npy", target=-1, chunk_rows=100), epochs=1, batch_size=32, optimizer="adam", early_stopping=None)
    np.save(tmp_path / "labels.npy", np.full(1000, 5))
    with pytest.raises(DataError, match=r"class index 5 at row 0 is outside \[0, 3\)"):
        torchann.fit(torchann.mlp(5, [4], 3), NpyBatches(path, tmp_path / "labels.npy"), loss="cross_entropy",
                     epochs=1, batch_size=32, optimizer="adam", early_stopping=None)


def test_batches_the_fast_step_cannot_take_go_through_autograd_with_the_same_result():
    x, y = _data(rows=12)
    torch.manual_seed(0)
    fast = torchann.mlp(5, [8], 1)
    plain = copy.deepcopy(fast)
    step = make_train_step(fast, fast, nn.MSELoss(), make_optimizer("sgd", fast.parameters(), lr=0.1, device=CPU))
    assert isinstance(step, MLPStep)
    opt = make_optimizer("sgd", plain.parameters(), lr=0.1, device=CPU)
    x3, y3 = x[:, None, :], y[:, None, :]  # (rows, 1, features): 3-D batches
    loss, _ = step(x3, y3)
    opt.zero_grad()
    expected = nn.functional.mse_loss(plain(x3), y3)
    expected.backward()
    opt.step()
    assert float(loss) == pytest.approx(expected.item(), rel=1e-6)
    _close(fast, plain, rtol=1e-6, atol=1e-7)
