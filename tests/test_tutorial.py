"""Every section of the tutorial, run through its example in examples/, checked against the
tutorial's own code (copied here as the oracle) run from the same initial weights and, where
batches are shuffled, in the same batch order."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
from torch.optim import SGD
from torch.utils.data import DataLoader, Dataset, Sampler

from torchann.batching.batches import epoch_permutation
from tutorial_code import MyNeuralNet

ROOT = Path(__file__).resolve().parents[1]
GOLDEN_SUMMARY = (ROOT / "tests" / "golden" / "summary_tutorial_2_4.txt").read_text(encoding="utf-8")


def load_example(name: str):
    """Import examples/<name>.py as a module (registered, so its classes can be unpickled)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


# -- the tutorial's code, the oracle -------------------------------------------------------------


def tutorial_1_1_losses() -> tuple[list[float], list[torch.Tensor]]:
    """§1.1 exactly as the tutorial writes it (without the prints and the plot)."""
    x = np.array([[1, 1]])
    y = np.array([[0]])
    x, y = [torch.tensor(i).float() for i in [x, y]]
    W = [
        np.array([[-0.0053, 0.3793],
                  [-0.5820, -0.5204],
                  [-0.2723, 0.1896]], dtype=np.float32).T,
        np.array([-0.0140, 0.5607, -0.0628], dtype=np.float32),
        np.array([[0.1528, -0.1745, -0.1135]], dtype=np.float32).T,
        np.array([-0.5516], dtype=np.float32)
    ]
    W = [torch.tensor(i, requires_grad=True) for i in W]

    def feed_forward(inputs, outputs, weights):
        pre_hidden = torch.matmul(inputs, weights[0]) + weights[1]
        hidden = 1 / (1 + torch.exp(-pre_hidden))
        out = torch.matmul(hidden, weights[2]) + weights[3]
        mean_squared_error = torch.mean(torch.square(out - outputs))
        return mean_squared_error

    lr = 0.001
    losses = []
    updated_W = [w.clone().detach().requires_grad_(True) for w in W]
    for i in range(1000):
        loss = feed_forward(x, y, updated_W)
        losses.append(loss.item())
        loss.backward()
        for i in range(len(updated_W)):
            with torch.no_grad():
                updated_W[i] -= lr * updated_W[i].grad
            updated_W[i].grad.zero_()
    return losses, [w.detach() for w in updated_W]


class MyNeuralNetWithHidden(MyNeuralNet):
    """§2.3's modified forward."""

    def forward(self, x):
        hidden_output = self.input_to_hidden_layer(x)
        hidden_output = self.hidden_layer_activation(hidden_output)
        return hidden_output, self.hidden_to_output_layer(hidden_output)


class MyDataset(Dataset):
    """§2.2's data set."""

    def __init__(self, x, y, device):
        self.x = torch.tensor(x).float().to(device)
        self.y = torch.tensor(y).float().to(device)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, ix):
        return self.x[ix], self.y[ix]


class FitOrder(Sampler):
    """Yields, on its e-th iteration, the row order torchann.fit uses in epoch e."""

    def __init__(self, n: int, seed: int):
        self.n, self.seed, self.epoch = n, seed, 0

    def __len__(self):
        return self.n

    def __iter__(self):
        order = epoch_permutation(self.n, seed=self.seed, epoch=self.epoch).tolist()
        self.epoch += 1
        return iter(order)


def with_weights(net: nn.Module, tensors: list[torch.Tensor], device) -> nn.Module:
    with torch.no_grad():
        for p, w in zip(net.parameters(), tensors, strict=True):
            p.copy_(w)
    return net.to(device)


X = [[1, 2], [3, 4], [5, 6], [7, 8]]
Y = [[3], [7], [11], [15]]


def tutorial_batched_loop(initial, device, *, epochs, sampler) -> tuple[list[list[float]], nn.Module]:
    """§2.2's training loop (the per-step losses of each epoch, and the trained net)."""
    ds = MyDataset(X, Y, device)
    dl = DataLoader(ds, batch_size=2, sampler=sampler)
    mynet = with_weights(MyNeuralNet(), initial, device)
    loss_func = nn.MSELoss()
    opt = SGD(mynet.parameters(), lr=0.001)
    history = []
    for _ in range(epochs):
        steps = []
        for x, y in dl:
            opt.zero_grad()
            loss_value = loss_func(mynet(x), y)
            loss_value.backward()
            opt.step()
            steps.append(loss_value.item())
        history.append(steps)
    return history, mynet


# -- §1.1 ----------------------------------------------------------------------------------------


def test_1_1_gradient_and_loss_trajectory_equal_the_tutorial(tmp_path, capsys):
    result = load_example("section_1_1_autograd").main(tmp_path)
    printed = capsys.readouterr().out

    x = torch.tensor([[2.0, -1.0], [1.0, 1.0]])
    assert torch.equal(result["grad"], 2 * x)
    assert torch.equal(result["grad"], torch.tensor([[4.0, -2.0], [2.0, 2.0]]))  # the tutorial's printout
    assert "tensor([[ 4., -2.],\n        [ 2.,  2.]])" in printed

    oracle_losses, oracle_weights = tutorial_1_1_losses()
    assert len(result["losses"]) == 1000
    diff = np.abs(np.array(result["losses"]) - np.array(oracle_losses))
    assert diff.max() < 1e-6, f"step {diff.argmax()} differs by {diff.max()}"
    assert oracle_losses[-1] < 0.01 * oracle_losses[0]  # training did something to compare
    # nn.Linear stores the transpose of the tutorial's x @ W matrices.
    ours = result["weights"]
    for got, want in zip(ours, [oracle_weights[0].T, oracle_weights[1], oracle_weights[2].T, oracle_weights[3]]):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-6)

    # The loss every 20 steps, as the tutorial prints it: 50 lines, the first being step 0's.
    lines = printed.splitlines()
    start = lines.index(repr(result["losses"][0]))
    assert [float(v) for v in lines[start : start + 50]] == result["losses"][::20]
    assert result["plot"].parent == tmp_path and result["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_1_1_tutorial_weights_are_torch_default_init_after_seed_0(tmp_path):
    # The tutorial's "explicit" weights are nn.Linear(2, 3), nn.Linear(3, 1) after
    # torch.manual_seed(0), rounded to 4 decimals (docs/tutorial.md says so).
    example = load_example("section_1_1_autograd")
    torch.manual_seed(0)
    a, b = nn.Linear(2, 3), nn.Linear(3, 1)
    for got, want in zip([a.weight, a.bias, b.weight, b.bias], example.initial_weights()):
        assert torch.equal(torch.round(got.detach() * 1e4) / 1e4, want)


# -- §1.2 ----------------------------------------------------------------------------------------


def test_1_2_devices_bench_reports_naive_and_careful_timings(tmp_path, capsys):
    result = load_example("section_1_2_devices").main(tmp_path, shape="1x640x500", repeats=3, warmup=1)
    printed = capsys.readouterr().out
    report = result["report"]
    numpy_row, cpu_row = report.find("numpy"), report.find("cpu")
    assert numpy_row.dtype == cpu_row.dtype == "float32"
    for row in (numpy_row, cpu_row, report.find("numpy", "float64")):
        assert row.status == "ok"
        for value in (row.median_s, row.min_s, row.max_s, row.gflops, row.gbps):
            assert value > 0
        assert row.min_s <= row.median_s <= row.max_s
        assert row.max_rel_error < 1e-4
    naive = {t.device: t for t in report.naive}
    assert naive["numpy"].dtype == "float64" and naive["cpu"].dtype == "float32"  # the tutorial's dtypes
    assert naive["numpy"].seconds > 0 and naive["cpu"].seconds > 0
    cuda = report.find("cuda")
    if torch.cuda.is_available():
        assert cuda.status == "ok" and cuda.median_s > 0
    else:
        assert cuda.status == "absent" and "CUDA" in cuda.reason
        assert cuda.reason in printed
    assert "numpy_test (float64)" in printed and "torch_test_cpu (float32)" in printed
    assert "float64" in report.explanation[0]
    assert result["json"].parent == tmp_path and '"naive"' in result["json"].read_text(encoding="utf-8")


# -- §2.1 ----------------------------------------------------------------------------------------


def test_2_1_module_parameters_and_sgd_losses_equal_the_tutorial(tmp_path, capsys):
    result = load_example("section_2_1_module").main(tmp_path, seed=0)
    printed = capsys.readouterr().out
    device = torch.device(result["device"])

    # Same layers created in the same order: the tutorial's class after the same seed starts equal.
    torch.manual_seed(0)
    for p, w in zip(MyNeuralNet().parameters(), result["initial"], strict=True):
        assert torch.equal(p.detach(), w)

    # The tutorial's loop from those weights.
    Xt, Yt = torch.tensor(X).float().to(device), torch.tensor(Y).float().to(device)
    mynet = with_weights(MyNeuralNet(), result["initial"], device)
    loss_func = nn.MSELoss()
    first = loss_func(mynet(Xt), Yt).item()
    opt = SGD(mynet.parameters(), lr=0.001)
    loss_history = []
    for _ in range(50):
        opt.zero_grad()
        loss_value = loss_func(mynet(Xt), Yt)
        loss_value.backward()
        opt.step()
        loss_history.append(loss_value.item())

    assert result["first_loss"] == pytest.approx(first, abs=1e-6)
    assert len(result["losses"]) == 50
    diff = np.abs(np.array(result["losses"]) - np.array(loss_history))
    assert diff.max() < 1e-6 * max(1.0, max(loss_history)), f"step {diff.argmax()} differs by {diff.max()}"
    assert loss_history[-1] < loss_history[0] / 100
    for got, want in zip(result["weights"], mynet.parameters()):
        torch.testing.assert_close(got, want.detach().cpu(), rtol=1e-5, atol=1e-6)

    table = result["table"]
    assert [r.name for r in table] == ["linear1.weight", "linear1.bias", "output.weight", "output.bias"]
    assert [r.shape for r in table] == [(8, 2), (8,), (1, 8), (1,)]
    assert table.total == sum(p.numel() for p in MyNeuralNet().parameters()) == 33
    assert "33 parameters, 33 trainable" in printed
    assert result["plot"].read_bytes()[:4] == b"\x89PNG"


# -- §2.2 ----------------------------------------------------------------------------------------


def test_2_2_batches_of_two_in_fits_order_equal_the_tutorials_dataloader(tmp_path, capsys):
    seed = 0
    result = load_example("section_2_2_batches").main(tmp_path, seed=seed)
    printed = capsys.readouterr().out
    device = torch.device(result["device"])

    steps, mynet = tutorial_batched_loop(result["initial"], device, epochs=20, sampler=FitOrder(4, seed))
    tutorial_sums = [sum(s) for s in steps]  # the tutorial's loss_history: tmp += loss_value.item()
    np.testing.assert_allclose(result["epoch_sums"], tutorial_sums, rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        expected = mynet(torch.tensor([[10.0, 11.0]], device=device)).cpu()
    torch.testing.assert_close(result["prediction"], expected, rtol=0, atol=1e-5)

    # The order matters: the same loop without fit's order ends elsewhere, and fit did shuffle.
    orders = {tuple(epoch_permutation(4, seed=seed, epoch=e).tolist()) for e in range(20)}
    assert len(orders) > 1
    plain, _ = tutorial_batched_loop(result["initial"], device, epochs=20, sampler=range(4))
    assert abs(sum(plain[-1]) - tutorial_sums[-1]) > 1e-4 or abs(sum(plain[0]) - tutorial_sums[0]) > 1e-4
    # It learned to add: the tutorial printed 21.117 for its own random start.
    assert abs(float(result["prediction"]) - 21.0) < 1.5
    first_epoch = epoch_permutation(4, seed=seed, epoch=0)[:2]
    assert repr(torch.tensor(X).float()[first_epoch]) in printed


# -- §2.3 ----------------------------------------------------------------------------------------


def test_2_3_activations_equal_the_tutorials_modified_forward(tmp_path, capsys):
    result = load_example("section_2_3_activations").main(tmp_path)
    capsys.readouterr()
    mynet = with_weights(MyNeuralNetWithHidden(), result["initial"], "cpu")
    with torch.no_grad():
        hidden_output, output = mynet(result["input"])
    assert hidden_output.shape == (2, 8)
    assert (hidden_output == 0).any() and (hidden_output > 0).any()  # ReLU did cut something
    assert torch.equal(result["hidden_output"], hidden_output)
    assert torch.equal(result["output"], output)


# -- §2.4 ----------------------------------------------------------------------------------------


def test_2_4_summary_table_equals_the_tutorials_text(tmp_path, capsys):
    result = load_example("section_2_4_sequential").main(tmp_path, seed=0)
    printed = capsys.readouterr().out
    assert result["summary_text"] == GOLDEN_SUMMARY
    assert GOLDEN_SUMMARY in printed
    assert result["big_output_shape"] == (64, 10)

    # The tutorial's own nn.Sequential gives the same table.
    import torchann

    seq = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 1))
    assert str(torchann.summary(seq, input_size=(1, 2))) == GOLDEN_SUMMARY

    # The Sequential rewrite of §2.2: 50 epochs, batch size 2, fit's order.
    device = torch.device(result["device"])
    steps, net = tutorial_batched_loop(result["initial"], device, epochs=50, sampler=FitOrder(4, 0))
    np.testing.assert_allclose(result["losses"], [np.mean(s) for s in steps], rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        expected = net(torch.tensor([[8, 9], [10, 11], [1.5, 2.5]], device=device)).cpu()
    torch.testing.assert_close(result["prediction"], expected, rtol=0, atol=1e-5)
    # Near what the tutorial printed for its own random start: 16.6459, 20.3913, 4.5068.
    torch.testing.assert_close(result["prediction"], torch.tensor([[16.6459], [20.3913], [4.5068]]),
                               rtol=0, atol=0.5)


# -- §2.5 ----------------------------------------------------------------------------------------


def test_2_5_state_dict_import_and_model_dir_round_trip(tmp_path, capsys):
    example = load_example("section_2_5_save_load")
    result = example.main(tmp_path, seed=0)
    capsys.readouterr()
    val = torch.tensor([[8, 9], [10, 11], [1.5, 2.5]]).float()

    # The tutorial's way back: its class, load_state_dict(torch.load(...)), eval().
    model = MyNeuralNet()
    untrained = model(val).detach()
    model.load_state_dict(torch.load(result["weights_file"], weights_only=True))
    model.eval()
    with torch.no_grad():
        tutorial_prediction = model(val)
    assert not torch.allclose(untrained, tutorial_prediction, atol=1.0)  # the file holds trained weights

    assert torch.equal(result["expected"], tutorial_prediction)
    assert torch.equal(result["imported"], tutorial_prediction)
    assert torch.equal(result["reloaded"], result["imported"])
    assert torch.equal(result["trusted"], tutorial_prediction)
    assert sorted(p.name for p in result["model_dir"].iterdir()) == ["spec.json", "weights.safetensors"]
    assert result["refusal"] is not None and "pickle" in result["refusal"]
    assert "trust_pickle=True" in result["refusal"]

    import torchann

    with pytest.raises(torchann.ModelFileError, match="pickle"):
        torchann.load(result["pickle_file"])


def test_examples_run_as_scripts_and_write_under_the_given_folder(tmp_path):
    env = {**os.environ, "TORCHANN_TUTORIAL_OUT": str(tmp_path / "out")}
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "section_2_5_save_load.py")], env=env,
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "refused:" in done.stdout and "pickle" in done.stdout
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "complete_model.pth", "model_weights.pth", "section_2_5_model"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
