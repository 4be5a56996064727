"""fit under misuse and at the edges: every bad option raises before anything changes,
signals stop a run cleanly and resumably, and shapes that used to crash or broadcast
(a one-row BatchNorm batch, a 1-D 0/1 target for BCE, an (n, 1, 1) target) are handled."""

from __future__ import annotations

import pickle
import random
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import torchann
from torchann.training import checkpoint as ckpt
from torchann.core.errors import DataError, NonFiniteLoss, TorchannError, TrainingInterrupted, UsageError
from torchann.training.arguments import Checkpointing, EarlyStopping
from torchann.training.fitting import fit


def _data(rows=40, features=3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, features, generator=gen)
    return x, x.sum(1, keepdim=True)


# -- a bad option changes nothing ------------------------------------------------------------------

BAD_OPTIONS = [
    ({"lr": 0}, "learning rate must be a positive number, got 0"),
    ({"lr": float("nan")}, "learning rate must be a positive number, got nan"),
    ({"lr": "0.1"}, "learning rate must be a positive number, got '0.1'"),
    ({"epochs": 0}, "epochs must be a positive integer, got 0"),
    ({"epochs": True}, "epochs must be a positive integer, got True"),
    ({"epochs": 2.5}, "epochs must be a positive integer, got 2.5"),
    ({"batch_size": -1}, "batch_size must be a positive integer, got -1"),
    ({"batch_size": False}, "batch_size must be a positive integer, got False"),
    ({"optimizer": "adamm"}, "unknown optimizer 'adamm'"),
    ({"loss": "mse2"}, "unknown loss 'mse2'"),
    ({"weight_decay": -0.1}, "weight decay must be a finite number >= 0, got -0.1"),
    ({"momentum": 1.0}, "momentum must be a number in [0, 1), got 1.0"),
    ({"clip_grad_norm": 0}, "clip_grad_norm must be a positive number, got 0"),
    ({"scheduler": "cosin"}, "unknown scheduler 'cosin'"),
    ({"validation": [1, 2, 3]}, "validation must be a pair (x_val, y_val)"),
    ({"metrics": "ranking"}, "unknown metrics task 'ranking'"),
    ({"target_std": [0.0]}, "target_std must be a positive number, got 0.0"),
    ({"early_stopping": -3}, "early_stopping must be a patience in epochs (0 for none)"),
    ({"early_stopping": EarlyStopping(patience=0)}, "early_stopping patience must be a positive integer, got 0"),
    ({"shuffle": "yes"}, "shuffle must be True or False, got 'yes'"),
    ({"seed": 1.5}, "seed must be an integer, got 1.5"),
    ({"device": "tpu"}, "unknown device 'tpu'"),
    ({"precision": "fp8"}, "unknown precision 'fp8'"),
    ({"compile": 1}, "compile must be True or False, got 1"),
    ({"fast": None}, "fast must be True or False, got None"),
    ({"global_batch_size": 0}, "global_batch_size must be a positive integer, got 0"),
    ({"progress": object()}, "progress must have the methods on_train_start, on_step, on_epoch_end"),
    ({"checkpoint": "ck"}, "checkpoint must be Checkpointing(directory, every=N)"),
    ({"checkpoint": Checkpointing("ck", every=0)}, "checkpoint every must be a positive integer, got 0"),
    ({"resume": "no-such-folder"}, "no such checkpoint directory"),
    ({"init_weights": {"linear1.weight": torch.zeros(4, 3)}}, "init_weights keys do not match the model: missing"),
    ({"init_weights": [torch.zeros(2, 2)] * 4}, "init_weights['linear1.weight'] has shape (2, 2)"),
    ({"validation": (torch.zeros(5, 7), torch.zeros(5, 1))}, "validation data x has 7 feature column(s)"),
    ({"y": torch.zeros(40, 1, 1)}, "y has shape (40, 1, 1)"),
]


@pytest.mark.parametrize("options,fragment", BAD_OPTIONS, ids=[next(iter(o)) + f"-{i}" for i, (o, _) in
                                                              enumerate(BAD_OPTIONS)])
def test_every_bad_option_raises_before_the_model_device_or_rngs_change(options, fragment, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    x, y = _data()
    options = dict(options)
    y = options.pop("y", y)
    model = torchann.mlp(3, [4], 1, dropout=0.1)
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    torch.manual_seed(1234)
    np.random.seed(99)
    random.seed(7)
    rngs = (torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate())
    with pytest.raises(TorchannError) as err:
        fit(model, x, y, **{"epochs": 2, "device": "cpu", **options})
    assert fragment in str(err.value) and "\n" not in str(err.value)
    assert all(torch.equal(v, weights[k]) for k, v in model.state_dict().items())
    assert {p.device.type for p in model.parameters()} == {"cpu"}
    assert torch.equal(torch.get_rng_state(), rngs[0])
    assert np.array_equal(np.random.get_state()[1], rngs[1]) and random.getstate() == rngs[2]
    assert list(tmp_path.iterdir()) == []  # no checkpoint folder appeared


def test_a_good_run_after_those_checks_trains():
    x, y = _data()
    model = torchann.mlp(3, [4], 1)
    before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
    history = fit(model, x, y, epochs=2, device="cpu")
    assert len(history) == 2 and not torch.equal(before, torch.cat([p.detach().flatten() for p in model.parameters()]))


@pytest.mark.parametrize("optimizer,precision", [("adam", "fp32"), ("sgd", "fp32"), ("adamw", "bf16")])
def test_the_fast_switch_changes_the_speed_not_the_numbers(optimizer, precision):
    x, y = _data(rows=50)
    runs = []
    for fast in (True, False):
        torch.manual_seed(0)
        model = torchann.mlp(3, [8, 8], 1)
        history = fit(model, x, y, epochs=3, batch_size=8, lr=1e-2, optimizer=optimizer, momentum=0.0,
                      precision=precision, device="cpu", fast=fast)
        runs.append((history.losses, torch.cat([p.detach().flatten() for p in model.parameters()])))
    if precision == "fp32":  # the written-out backward is autograd's own kernels, in its order
        assert runs[0][0] == runs[1][0] and torch.equal(runs[0][1], runs[1][1])
    else:  # bf16: the same casts as autocast; float32 sums may round differently
        torch.testing.assert_close(runs[0][1], runs[1][1], rtol=1e-2, atol=1e-3)


# -- misuse of the API ---------------------------------------------------------------------------


def test_numpy_integer_sizes_are_accepted_and_equal_plain_ints():
    x, y = _data()
    runs = []
    for size, epochs in ((32, 3), (np.int64(32), np.int32(3))):
        torch.manual_seed(0)
        model = torchann.mlp(3, [4], 1)
        history = fit(model, x, y, epochs=epochs, batch_size=size, device="cpu", early_stopping=np.int64(0))
        runs.append((history.losses, history.info["batch_size"], type(history.info["batch_size"])))
    assert runs[0] == runs[1] and runs[0][2] is int


@pytest.mark.parametrize("make,fragment", [
    (lambda: (torch.zeros(8, 3, dtype=torch.complex64), torch.zeros(8, 1)), "is complex (torch.complex64)"),
    (lambda: (np.zeros((8, 3), dtype=np.complex128), np.zeros((8, 1))), "is complex (complex128)"),
    (lambda: (torch.empty(8, 3, device="meta"), torch.zeros(8, 1)), "is a meta tensor"),
])
def test_complex_and_meta_data_are_refused_in_one_line(make, fragment):
    x, y = make()
    with pytest.raises(DataError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        fit(torchann.mlp(3, [4], 1), x, y, epochs=1, device="cpu")


def test_longdouble_data_trains_as_its_float64_values():
    x, y = _data()
    runs = []
    for cast in (lambda t: t.numpy().astype(np.float64), lambda t: t.numpy().astype(np.longdouble)):
        torch.manual_seed(0)
        runs.append(fit(torchann.mlp(3, [4], 1), cast(x), cast(y), epochs=2, device="cpu").losses)
    assert runs[0] == runs[1]


def test_models_fit_cannot_train_are_refused():
    x, y = _data()
    with pytest.raises(UsageError, match="has no parameters to train"):
        fit(nn.Sequential(nn.ReLU()), x, y, epochs=1)
    with torch.device("meta"):
        meta = nn.Sequential(nn.Linear(3, 1))
    with pytest.raises(UsageError, match="'0.weight' is on the meta device"):
        fit(meta, x, y, epochs=1)
    with pytest.raises(UsageError, match="model must be a torch.nn.Module, got str"):
        fit("mlp", x, y, epochs=1)


def test_a_dataloader_of_the_wrong_width_is_refused_with_the_batch():
    x = torch.randn(16, 5)
    loader = DataLoader(TensorDataset(x, x.sum(1)), batch_size=8)
    with pytest.raises(DataError, match=r"DataLoader batch 0: x has shape \(8, 5\) but the model takes rows of 3"):
        fit(torchann.mlp(3, [4], 1), loader, epochs=1, device="cpu")


# -- shapes that used to crash or broadcast ----------------------------------------------------------


def test_batch_norm_with_a_one_row_last_batch_trains_it_with_the_batch_before():
    x, y = _data(rows=33)
    torch.manual_seed(0)
    model = torchann.mlp(3, [4], 1, norm="batch")
    history = fit(model, x, y, epochs=1, batch_size=32, shuffle=False, optimizer="sgd", lr=0.1, device="cpu",
                  early_stopping=0)
    assert history.info["steps_per_epoch"] == 1  # 33 rows in one step, not 32 + 1
    # Oracle: one plain SGD step on all 33 rows.
    torch.manual_seed(0)
    ref = torchann.mlp(3, [4], 1, norm="batch")
    opt = torch.optim.SGD(ref.parameters(), lr=0.1)
    loss = nn.functional.mse_loss(ref(x), y)
    loss.backward()
    opt.step()
    assert history.losses == [pytest.approx(float(loss.detach()), rel=1e-6)]
    for a, b in zip(model.state_dict().values(), ref.state_dict().values()):
        torch.testing.assert_close(a, b)
    # Without BatchNorm nothing merges: 32 + 1.
    plain = fit(torchann.mlp(3, [4], 1), x, y, epochs=1, batch_size=32, device="cpu")
    assert plain.info["steps_per_epoch"] == 2


def test_only_models_with_batch_norm_merge_a_short_last_batch_also_over_ranks():
    from torchann.batching.batches import TensorBatches

    x = torch.arange(49.0)[:, None]
    # 49 rows in global batches of 16 over 2 ranks: 16, 16, 16 and a last batch of 1 row.
    plain = [TensorBatches(x, x, batch_size=8, shuffle=False, rank=r, world_size=2) for r in (0, 1)]
    assert [[b.x.shape[0] for b in t.epoch(0)] for t in plain] == [[8, 8, 8, 1], [8, 8, 8, 0]]
    # With BatchNorm (2 rows per rank at least) the 1 row joins the third batch: 17 rows, 9 + 8.
    merged = [TensorBatches(x, x, batch_size=8, shuffle=False, rank=r, world_size=2, min_rows=2) for r in (0, 1)]
    assert [[b.x.shape[0] for b in t.epoch(0)] for t in merged] == [[8, 8, 9], [8, 8, 8]]
    assert torch.equal(torch.cat([b.x for t in merged for b in t.epoch(0)]).sort(0).values, x)


@pytest.mark.parametrize("shape", ["(n,)", "(n, 1)", "loader (n,)"])
def test_bce_on_a_one_output_network_equals_the_hand_computed_loss(shape):
    x, _ = _data(rows=16)
    labels = (x[:, 0] > 0).long()
    torch.manual_seed(0)
    model = torchann.mlp(3, [4], 1)
    with torch.no_grad():
        z = model(x)[:, 0].double()
    t = labels.double()
    # BCE with logits by hand: mean of log(1 + e^z) - t z.
    expected = float((torch.log1p(torch.exp(z)) - t * z).mean())
    if shape == "loader (n,)":
        data = (DataLoader(TensorDataset(x, labels), batch_size=16),)
    else:
        data = (x, labels if shape == "(n,)" else labels[:, None])
    history = fit(model, *data, loss="bce", epochs=1, batch_size=16, lr=1e-12, optimizer="sgd", device="cpu",
                  shuffle=False, metrics="classification")
    assert history.losses[0] == pytest.approx(expected, rel=1e-5)
    assert history.records[0]["log_loss"] == pytest.approx(expected, rel=1e-5)


def test_a_target_beyond_float32_is_refused_with_the_fix():
    x, y = _data()
    y = y.double()
    y[5, 0] = 1e308
    with pytest.raises(DataError, match=r"y holds 1e\+308 at row 5, column 0, beyond float32's range.*rescale it"):
        fit(torchann.mlp(3, [4], 1), x, y, epochs=1, device="cpu")


# -- errors carry their facts ---------------------------------------------------------------------


def test_stop_errors_pickle_with_their_fields():
    history = torchann.History(records=[{"epoch": 1, "loss": 0.5}])
    err = TrainingInterrupted(history=history, epoch=2, step=3, checkpoint="ck", signal=signal.SIGTERM)
    back = pickle.loads(pickle.dumps(err))
    assert (back.epoch, back.step, back.checkpoint, back.signal, back.exit_code) == (2, 3, "ck", 15, 143)
    assert str(back) == str(err) and back.history.records == history.records
    bad = pickle.loads(pickle.dumps(NonFiniteLoss(history=history, epoch=1, step=2, checkpoint=None, value=float("inf"),
                                                  lr=0.1)))
    assert (bad.epoch, bad.step, bad.checkpoint, bad.value, bad.lr) == (1, 2, None, float("inf"), 0.1)
    assert str(bad) == "loss became inf at epoch 1, step 2; lower the learning rate (now 0.1), scale the inputs, " \
                       "or clip gradients"


# -- signals -----------------------------------------------------------------------------------------

_CHILD = textwrap.dedent("""
    import os, signal, sys
    import torch, torchann
    from torchann.core.errors import TrainingInterrupted
    from torchann.training import Checkpointing, fit

    folder, signum = sys.argv[1], int(sys.argv[2])
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(48, 3, generator=gen)
    y = x.sum(1, keepdim=True)

    class Progress:  # sends the signal to this very process after step 3 of the second epoch
        def on_train_start(self, **kw): pass
        def on_epoch_end(self, record): pass
        def on_step(self, *, epoch, step):
            if (epoch, step) == (1, 3):
                os.kill(os.getpid(), signum)

    torch.manual_seed(123)
    model = torchann.mlp(3, [16], 1, dropout=0.2)
    try:
        fit(model, x, y, epochs=5, batch_size=8, lr=1e-2, seed=5, device="cpu", early_stopping=3,
            checkpoint=Checkpointing(folder, every=100), progress=Progress())
    except TrainingInterrupted as err:
        print(err.epoch, err.step, err.checkpoint, err.signal, len(err.history), flush=True)
        print(err, file=sys.stderr)
        sys.exit(err.exit_code)
""")


def _reference(**options):
    torch.manual_seed(123)
    model = torchann.mlp(3, [16], 1, dropout=0.2)
    x, y = _data(48, 3, seed=1)
    history = fit(model, x, y, epochs=5, batch_size=8, lr=1e-2, seed=5, device="cpu", early_stopping=3, **options)
    return model, history


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)],
                         ids=["SIGINT", "SIGTERM", "SIGHUP"])
def test_a_signal_stops_after_the_step_checkpoints_and_resumes_bit_identically(tmp_path, sig, code):
    folder = tmp_path / "ck"
    done = subprocess.run([sys.executable, "-c", _CHILD, str(folder), str(int(sig))], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == code, done.stderr
    # The signal arrived during step 3's report; the step after it (4) finished, then fit stopped.
    epoch, step, where, signum, finished = done.stdout.split()
    assert (int(epoch), int(step), where, int(signum), int(finished)) == (2, 4, str(folder), int(sig), 1)
    assert done.stderr.strip() == (
        f"interrupted at epoch 2, step 4 by {sig.name}; checkpoint written to {folder}, "
        f"continue with fit(..., resume={str(folder)!r})")
    state = ckpt.load_state(folder)
    assert (state["epoch"], state["step"]) == (1, 4) and state["partial"] is not None

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        resumed, history = _reference(checkpoint=Checkpointing(folder, every=100), resume=folder)
        reference, ref_history = _reference()
    finally:
        torch.set_num_threads(threads)
    for (name, a), b in zip(resumed.state_dict().items(), reference.state_dict().values()):
        assert torch.equal(a, b), name
    assert history.losses == ref_history.losses and len(history) == 5


def test_importing_fit_leaves_torchann_train_the_function():
    import subprocess as sp

    code = ("import torchann; torchann.fit; import torchann.training.fitting; from torchann.api.tabular import train; "
            "print(torchann.train is train)")
    assert sp.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stdout.strip() == "True"
