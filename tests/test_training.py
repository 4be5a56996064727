"""Training features end to end: metrics, splits, early stopping, schedules, weight decay,
clipping, checkpoints, seeds and target scaling, each against an independent oracle
(scikit-learn's metrics, torch's own schedulers stepped by hand, one optimiser step by hand)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn
from safetensors.torch import load_file
from sklearn import metrics as skm
from typer.testing import CliRunner

import torchann
from torchann.cli import app
from torchann.data.table import Table
from torchann.data.splits import split_indices
from torchann.api.tabular import train
from torchann.training.arguments import Checkpointing

runner = CliRunner()


def _regression_table(n=120, seed=0):
    """y in large units (thousands), so that a missing inverse scaling could not pass."""
    rng = np.random.default_rng(seed)
    a, b = rng.uniform(0, 10, n), rng.uniform(-5, 5, n)
    return Table.from_columns({"a": a, "b": b, "y": 1000 + 300 * a - 200 * b + rng.normal(0, 20, n)},
                              targets=["y"])


def _write_csv(path, table, names):
    def cell(v):
        return repr(float(v)) if isinstance(v, (float, np.floating)) else str(v)

    cols = [table.columns[n] for n in names]
    path.write_text(",".join(names) + "\n" + "".join(",".join(cell(c[i]) for c in cols) + "\n"
                                                     for i in range(table.n_rows)))


def _class_table(n=90, seed=0):
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    labels = np.where(x1 + x2 > 0.8, "high", np.where(x1 - x2 > 0.5, "mid", "low"))
    return Table.from_columns({"x1": x1, "x2": x2, "kind": labels}, targets=["kind"])


# -- metrics ------------------------------------------------------------------------------


def test_regression_metrics_equal_sklearns_on_target_units():
    table = _regression_table()
    trained = train(table, networks=1, hidden=(16,), val_split=0.25, seed=3, epochs=30, batch_size=16, lr=1e-2,
                        device="cpu", early_stopping=0, optimizer="adam")
    _, val = split_indices(table.n_rows, 0.25, seed=3)
    y_true = table.columns["y"][val]
    y_pred = trained.predict(table.take(val)).ravel()
    last = trained.history.records[-1]
    assert last["val_mse"] == pytest.approx(skm.mean_squared_error(y_true, y_pred), rel=1e-4)
    assert last["val_mae"] == pytest.approx(skm.mean_absolute_error(y_true, y_pred), rel=1e-4)
    assert last["val_r2"] == pytest.approx(skm.r2_score(y_true, y_pred), abs=1e-4)
    assert last["val_r2"] > 0.9  # trained, and in target units: mse is in thousands squared
    assert last["val_mse"] > 100
    for key in ("loss", "mse", "mae", "r2", "val_loss", "val_mse", "val_mae", "val_r2", "lr"):
        assert len(trained.history[key]) == 30


def test_training_metrics_are_those_of_the_model_that_took_the_step():
    # One epoch of one full batch: the epoch's training metrics describe the initial weights.
    table = _regression_table(n=40)
    trained = train(table, hidden=(8,), seed=1, epochs=1, batch_size=40, lr=1e-2, device="cpu", val_split=0,
                    early_stopping=0, optimizer="adam", dropout=0.0, scaling="standard")
    torch.manual_seed(1)
    initial = torchann.ModelSpec(2, (8,), 1).build()  # fit_table seeds the initial weights the same way
    pre = trained.preprocessor
    y_pred = pre.inverse_y(torchann.predict(initial, pre.transform_x(table))).ravel()
    record = trained.history.records[0]
    y = table.columns["y"]
    assert record["mse"] == pytest.approx(skm.mean_squared_error(y, y_pred), rel=1e-4)
    assert record["mae"] == pytest.approx(skm.mean_absolute_error(y, y_pred), rel=1e-4)
    assert record["r2"] == pytest.approx(skm.r2_score(y, y_pred), abs=1e-4)


def test_classification_metrics_equal_sklearns():
    table = _class_table()
    trained = train(table, networks=1, hidden=(16,), val_split=0.3, seed=0, epochs=15, batch_size=16, lr=1e-2,
                        device="cpu", early_stopping=0, optimizer="adam")
    labels = table.columns["kind"]
    _, val = split_indices(table.n_rows, 0.3, seed=0, stratify=labels)
    proba = trained.predict_proba(table.take(val))
    predicted = trained.predict(table.take(val))
    last = trained.history.records[-1]
    classes = trained.preprocessor.classes
    assert classes == ["high", "low", "mid"]
    assert last["val_accuracy"] == pytest.approx(skm.accuracy_score(labels[val], predicted), abs=1e-12)
    assert last["val_log_loss"] == pytest.approx(skm.log_loss(labels[val], proba, labels=classes), rel=1e-5)
    assert last["val_loss"] == pytest.approx(last["val_log_loss"], rel=1e-5)  # cross-entropy is the log loss
    assert 0.6 < last["val_accuracy"] <= 1.0


# -- validation split ----------------------------------------------------------------------


def test_val_split_is_stratified_and_seeded():
    labels = np.array(["a"] * 50 + ["b"] * 30 + ["c"] * 20)
    train, val = split_indices(100, 0.2, seed=7, stratify=labels)
    assert sorted(np.unique(labels[val], return_counts=True)[1].tolist()) == [4, 6, 10]  # 20% of each class
    assert len(np.intersect1d(train, val)) == 0 and len(train) + len(val) == 100
    again, _ = split_indices(100, 0.2, seed=7, stratify=labels)
    other, _ = split_indices(100, 0.2, seed=8, stratify=labels)
    assert np.array_equal(train, again) and not np.array_equal(train, other)


def test_cli_val_split_uses_the_seeded_stratified_rows(tmp_path):
    table = _class_table(n=80)
    path = tmp_path / "c.csv"
    _write_csv(path, table, ["x1", "x2", "kind"])
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", str(path), "--target", "kind", "--hidden", "8", "--epochs", "5",
                                 "--lr", "0.01", "--val-split", "0.25", "--seed", "4", "--networks", "1", "--quiet", "--json",
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["info"]["val_rows"] == 20 and report["info"]["train_rows"] == 60
    _, val = split_indices(80, 0.25, seed=4, stratify=table.columns["kind"])
    query = tmp_path / "val.csv"
    _write_csv(query, table.take(val), ["x1", "x2"])
    predicted = runner.invoke(app, ["predict", str(out), "--data", str(query)])
    assert predicted.exit_code == 0, predicted.output
    labels = predicted.stdout.splitlines()[1:]
    assert report["final"]["val_accuracy"] == pytest.approx(skm.accuracy_score(table.columns["kind"][val], labels))


# -- early stopping ------------------------------------------------------------------------


def test_early_stopping_stops_after_patience_and_restores_the_best_weights():
    table = _regression_table(n=60)
    trained = train(table, networks=1, hidden=(64, 64), val_split=0.5, seed=0, epochs=400, batch_size=8, lr=3e-2,
                        early_stopping=4, device="cpu", optimizer="adam")
    history = trained.history
    best = history.info["best_epoch"]
    val_losses = history["val_loss"]
    assert len(history) == best + 4 < 400 and history.info["stopped_early"]
    assert best == int(np.argmin(val_losses)) + 1
    # The weights kept are the best epoch's: recompute its validation loss from the model.
    _, val = split_indices(table.n_rows, 0.5, seed=0)
    pre = trained.preprocessor
    out = torchann.predict(trained.network, pre.transform_x(table.take(val)))
    loss = torch.nn.functional.mse_loss(out, torch.from_numpy(pre.transform_y(table.take(val)))).item()
    assert loss == pytest.approx(min(val_losses), rel=1e-5)
    assert loss < val_losses[-1]


# -- learning-rate schedules -----------------------------------------------------------------


def _oracle_lrs(kind, *, lr, epochs, steps, val_losses):
    """The lr of each epoch as torch's scheduler gives it, stepped by hand (as torchann documents)."""
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([param], lr=lr)
    s = torch.optim.lr_scheduler
    sched = {
        "cosine": lambda: s.CosineAnnealingLR(opt, T_max=epochs),
        "step": lambda: s.StepLR(opt, step_size=max(1, epochs // 3), gamma=0.1),
        "plateau": lambda: s.ReduceLROnPlateau(opt, factor=0.5, patience=5),
        "one_cycle": lambda: s.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps),
    }[kind]()
    lrs = []
    for epoch in range(epochs):
        if kind == "one_cycle":
            for _ in range(steps):
                opt.step()
                sched.step()
        lrs.append(opt.param_groups[0]["lr"])
        if kind == "plateau":
            sched.step(val_losses[epoch])
        elif kind != "one_cycle":
            opt.step()
            sched.step()
    return lrs


@pytest.mark.parametrize("kind", ["cosine", "step", "plateau", "one_cycle"])
def test_schedules_follow_torchs_schedulers(kind):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 3, generator=g)
    y = x.sum(1, keepdim=True)
    vx, vy = torch.randn(20, 3, generator=g), torch.randn(20, 1, generator=g)
    # plateau: an lr so small that the validation loss cannot improve by the scheduler's 1e-4
    # threshold, so the lr must be halved after 5 epochs (and not so small that its eps ignores it)
    lr = 1e-6 if kind == "plateau" else 1e-2
    history = torchann.fit(torchann.mlp(3, [8], 1), x, y, epochs=15, batch_size=10, lr=lr, scheduler=kind,
                           validation=(vx, vy), seed=0, device="cpu", optimizer="adam", early_stopping=None)
    expected = _oracle_lrs(kind, lr=lr, epochs=15, steps=4, val_losses=history["val_loss"])
    assert history["lr"] == pytest.approx(expected, rel=1e-12)
    assert len(set(history["lr"])) > 1  # the schedule changed the lr


def test_the_scheduled_lr_is_the_one_the_optimiser_used():
    # SGD, one full batch per epoch: each step is w -= lr * grad with the recorded lr.
    x, y = torch.tensor([[1.0, 2.0], [3.0, 4.0]]), torch.tensor([[3.0], [7.0]])
    model = torchann.mlp(2, [], 1)
    w0 = [p.detach().clone() for p in model.parameters()]
    history = torchann.fit(model, x, y, epochs=3, batch_size=2, lr=0.01, optimizer="sgd", scheduler="step",
                           seed=0, device="cpu", shuffle=False, early_stopping=None)
    assert history["lr"] == pytest.approx([0.01, 0.001, 0.0001])
    hand = torch.nn.Linear(2, 1)
    with torch.no_grad():
        hand.weight.copy_(w0[0])
        hand.bias.copy_(w0[1])
    for lr in history["lr"]:
        hand.zero_grad()
        torch.nn.functional.mse_loss(hand(x), y).backward()
        with torch.no_grad():
            for p in hand.parameters():
                p -= lr * p.grad
    assert torch.allclose(model.output.weight, hand.weight, atol=1e-6)
    assert torch.allclose(model.output.bias, hand.bias, atol=1e-6)


# -- weight decay and gradient clipping: one step by hand ----------------------------------------


def _one_sgd_step(*, lr, weight_decay=0.0, clip=None):
    torch.manual_seed(0)
    x = torch.randn(16, 3) * 5
    y = x @ torch.tensor([[2.0], [-1.0], [0.5]]) * 10
    model = torchann.mlp(3, [4], 1)
    start = [p.detach().clone() for p in model.parameters()]
    torchann.fit(model, x, y, epochs=1, batch_size=16, lr=lr, optimizer="sgd", weight_decay=weight_decay,
                 clip_grad_norm=clip, seed=0, device="cpu", early_stopping=None)
    # by hand: gradient of the mean squared error at the start weights
    params = [p.clone().requires_grad_(True) for p in start]
    h = torch.relu(x @ params[0].T + params[1])
    loss = ((h @ params[2].T + params[3] - y) ** 2).mean()
    grads = torch.autograd.grad(loss, params)
    return model, start, grads


def test_weight_decay_adds_decay_times_weight_to_the_gradient():
    lr, wd = 1e-4, 0.5
    model, start, grads = _one_sgd_step(lr=lr, weight_decay=wd)
    for p, w0, g in zip(model.parameters(), start, grads):
        assert torch.allclose(p, w0 - lr * (g + wd * w0), atol=1e-6)
    plain, _, _ = _one_sgd_step(lr=lr)
    assert not torch.allclose(plain.linear1.weight, model.linear1.weight, atol=1e-6)


def test_gradient_clipping_scales_the_step_to_the_norm():
    lr, clip = 1e-3, 0.5
    model, start, grads = _one_sgd_step(lr=lr, clip=clip)
    norm = torch.sqrt(sum((g**2).sum() for g in grads))
    assert norm > 10 * clip  # the clip is active
    scale = clip / (norm + 1e-6)  # torch.nn.utils.clip_grad_norm_'s rule
    for p, w0, g in zip(model.parameters(), start, grads):
        assert torch.allclose(p, w0 - lr * g * scale, atol=1e-6)
    moved = torch.sqrt(sum(((p.detach() - w0) ** 2).sum() for p, w0 in zip(model.parameters(), start)))
    assert float(moved) == pytest.approx(lr * clip, rel=1e-3)


# -- checkpoints, resume and seeds --------------------------------------------------------------


class _StopAfter:
    """A progress hook that interrupts training after ``epoch`` (the checkpoint is written first)."""

    def __init__(self, epoch):
        self.epoch = epoch

    def on_train_start(self, **_):
        pass

    def on_step(self, **_):
        pass

    def on_epoch_end(self, record):
        if record["epoch"] == self.epoch:
            raise KeyboardInterrupt


@pytest.mark.parametrize("scheduler", ["cosine", "one_cycle", "plateau"])
def test_interrupted_and_resumed_run_with_a_schedule_is_bit_identical(tmp_path, scheduler):
    table = _class_table(n=60)
    options = dict(hidden=(8,), val_split=0.2, seed=2, epochs=7, batch_size=8, lr=1e-2, scheduler=scheduler,
                   early_stopping=5, device="cpu", optimizer="adam")
    spec_options = {"dropout": 0.2, "networks": 1}  # a checkpointed run trains one network
    full = train(table, **spec_options, **options)
    ck = Checkpointing(tmp_path / "ck", every=1)
    with pytest.raises(KeyboardInterrupt):
        train(table, **spec_options, checkpoint=ck, progress=_StopAfter(4), **options)
    resumed = train(table, **spec_options, checkpoint=ck, resume=tmp_path / "ck", **options)
    for (name, a), b in zip(full.network.state_dict().items(), resumed.network.state_dict().values()):
        assert torch.equal(a, b), name
    assert resumed.history.records[-1]["lr"] == full.history.records[-1]["lr"]
    assert [r["val_loss"] for r in resumed.history] == [r["val_loss"] for r in full.history]


def _train_cli(tmp_path, out, *extra):
    data = tmp_path / "cls.csv"
    if not data.exists():
        _write_csv(data, _class_table(n=64, seed=5), ["x1", "x2", "kind"])
    args = ["train", str(data), "--target", "kind", "--hidden", "8,8", "--batch-size", "8", "--lr", "0.01",
            "--val-split", "0.25", "--early-stopping", "3", "--dropout", "0.1", "--networks", "1", "--quiet",
            "--out", str(out), *extra]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return load_file(str(out / "weights.safetensors"))


def test_cli_stopped_then_resumed_ends_with_the_uninterrupted_weights(tmp_path):
    full = _train_cli(tmp_path, tmp_path / "full", "--epochs", "6", "--seed", "3")
    _train_cli(tmp_path, tmp_path / "part", "--epochs", "2", "--seed", "3", "--checkpoint-every", "1")
    assert (tmp_path / "part" / "checkpoint" / "latest.json").is_file()
    resumed = runner.invoke(app, ["train", "--resume", str(tmp_path / "part"), "--epochs", "6", "--quiet"])
    assert resumed.exit_code == 0, resumed.output
    after = load_file(str(tmp_path / "part" / "weights.safetensors"))
    assert full.keys() == after.keys()
    assert all(torch.equal(full[k], after[k]) for k in full)
    lines = (tmp_path / "part" / "history.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3, 4, 5, 6]


@pytest.mark.parametrize("scheduler", ["cosine", "step", "one_cycle"])
def test_resuming_a_schedule_with_other_epochs_is_refused_and_changes_nothing(tmp_path, scheduler):
    # These schedules are built for the run's total epochs; a resumed run with another total
    # would follow the old curve (one_cycle would fail past its last step).
    _train_cli(tmp_path, tmp_path / "part", "--epochs", "3", "--scheduler", scheduler, "--checkpoint-every", "1")
    before = {p: p.read_bytes() for p in (tmp_path / "part").rglob("*") if p.is_file()}
    result = runner.invoke(app, ["train", "--resume", str(tmp_path / "part"), "--epochs", "6", "--quiet"])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: the checkpoint's learning-rate schedule has ")
    assert "resume with the same epochs (--epochs)" in result.stderr and len(result.stderr.splitlines()) == 1
    assert {p: p.read_bytes() for p in (tmp_path / "part").rglob("*") if p.is_file()} == before


def test_seeded_runs_are_reproducible(tmp_path):
    a = _train_cli(tmp_path, tmp_path / "a", "--epochs", "3", "--seed", "11")
    b = _train_cli(tmp_path, tmp_path / "b", "--epochs", "3", "--seed", "11")
    c = _train_cli(tmp_path, tmp_path / "c", "--epochs", "3", "--seed", "12")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["linear1.weight"], c["linear1.weight"])


# -- target scaling --------------------------------------------------------------------------


def test_regression_target_scaling_uses_training_rows_and_predicts_in_target_units(tmp_path):
    table = _regression_table(n=200, seed=1)
    path = tmp_path / "r.csv"
    _write_csv(path, table, ["a", "b", "y"])
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", str(path), "--target", "y", "--hidden", "16", "--epochs", "40",
                                 "--batch-size", "16", "--lr", "0.01", "--val-split", "0.2", "--seed", "0",
                                 "--scaling", "standard", "--quiet", "--out", str(out)])
    assert result.exit_code == 0, result.output
    pre = json.loads((out / "spec.json").read_text())["extra"]["preprocessor"]
    train, _ = split_indices(200, 0.2, seed=0)
    y_train = table.columns["y"][train]
    assert pre["target_mean"] == pytest.approx([y_train.mean()], rel=1e-12)
    assert pre["target_std"] == pytest.approx([y_train.std()], rel=1e-12)
    assert pre["features"][0]["mean"] == pytest.approx(table.columns["a"][train].mean(), rel=1e-12)
    predicted = runner.invoke(app, ["predict", str(out), "--input", "5,0", "--input", "2,4", "--json"])
    assert predicted.exit_code == 0, predicted.output
    values = json.loads(predicted.stdout)["y"]
    # by hand: standardise the raw rows, run the network, undo the target's standardisation
    feats = pre["features"]
    raw = np.array([[5.0, 0.0], [2.0, 4.0]])
    x = (raw - [f["mean"] for f in feats]) / [f["std"] for f in feats]
    out_std = torchann.predict(torchann.load(out).network, x.astype(np.float32)).double().numpy().ravel()
    assert values == pytest.approx(out_std * pre["target_std"][0] + pre["target_mean"][0], rel=1e-6)
    assert values == pytest.approx([1000 + 1500, 1000 + 600 - 800], abs=150)  # near the truth, in its units


def test_adamw_decays_by_default_and_an_explicit_zero_turns_it_off():
    # AdamW's update with decay: w <- w - lr * wd * w - lr * adam_step; on a zero gradient
    # (a bias-free layer fed zeros) the adam step is 0, so one step leaves w * (1 - lr * wd).
    from torchann.training.optim import make_optimizer

    cpu = torch.device("cpu")
    for wd, expected in [(None, 0.01), (0.0, 0.0), (0.3, 0.3)]:
        layer = nn.Linear(3, 2, bias=False)
        w0 = layer.weight.detach().clone()
        opt = make_optimizer("adamw", layer.parameters(), lr=0.1, weight_decay=wd, device=cpu)
        assert opt.param_groups[0]["weight_decay"] == expected
        layer(torch.zeros(4, 3)).sum().backward()
        opt.step()
        torch.testing.assert_close(layer.weight.detach(), w0 * (1 - 0.1 * expected))
    for name in ("sgd", "adam"):
        opt = make_optimizer(name, nn.Linear(3, 2).parameters(), lr=0.1, device=cpu)
        assert opt.param_groups[0]["weight_decay"] == 0.0
