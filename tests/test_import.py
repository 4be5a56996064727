"""Importing tutorial-style ``.pth`` files (section 2.5) without running code from them.

Oracles: the tutorial's own models (nn.Sequential and its MyNeuralNet class) give the
expected outputs; the imported torchann MLP must give exactly the same numbers. A pickle
whose payload creates a file shows, by that file's absence, that nothing was unpickled.
"""

from __future__ import annotations

import json
import os
import pickle
from collections import OrderedDict

import pytest
import torch
from torch import nn

import torchann
from torchann.model import directory as modeldir
from torchann.core.errors import ModelFileError, SpecError, UsageError
from torchann.model.pth import import_state_dict, infer_spec, read_spec_file, read_state_dict
from torchann.network.spec import ModelSpec
from tutorial_code import MyNeuralNet


class FileCreator:
    """A pickle payload: unpickling it opens (creates) ``path`` for writing."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


X = torch.tensor([[8.0, 9.0], [10.0, 11.0], [1.5, 2.5], [-3.0, 0.25]])


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def tutorial_sequential() -> nn.Sequential:
    return nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 1))


def test_sequential_state_dict_imports_with_inferred_sizes(tmp_path):
    model = tutorial_sequential()
    torch.save(model.to("cpu").state_dict(), tmp_path / "model_weights.pth")  # the tutorial's line
    imported = import_state_dict(tmp_path / "model_weights.pth")
    assert imported.spec == ModelSpec(2, (8,), 1, activation="relu")
    assert torch.equal(imported(X), model(X))
    assert torch.equal(imported.linear1.weight, model[0].weight)
    assert torch.equal(imported.output.bias, model[2].bias)


def test_my_neural_net_keys_map_by_order(tmp_path):
    net = MyNeuralNet()
    torch.save(net.state_dict(), tmp_path / "w.pth")
    imported = import_state_dict(tmp_path / "w.pth", ModelSpec(2, [8], 1))
    assert torch.equal(imported(X), net(X))


def test_import_then_save_then_load_round_trip(tmp_path):
    net = MyNeuralNet()
    torch.save(net.state_dict(), tmp_path / "w.pth")
    modeldir.save(import_state_dict(tmp_path / "w.pth"), tmp_path / "run")
    loaded = modeldir.load(tmp_path / "run")
    assert torch.equal(loaded(X), net(X))


def test_activation_and_hidden_given(tmp_path):
    model = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 2))
    torch.save(model.state_dict(), tmp_path / "w.pth")
    imported = import_state_dict(tmp_path / "w.pth", hidden=[5, 4], activation="tanh")
    assert imported.spec.sizes == (3, 5, 4, 2)
    x = torch.randn(6, 3)
    assert torch.equal(imported(x), model(x))
    # With the default (relu) the same weights give other numbers: the activation matters.
    relu = import_state_dict(tmp_path / "w.pth")
    assert not torch.equal(relu(x), model(x))


def test_no_bias_and_batch_norm_are_inferred(tmp_path):
    model = nn.Sequential(nn.Linear(4, 6, bias=False), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 1, bias=False))
    model.train()
    model(torch.randn(16, 4))  # move the running statistics away from their start
    model.eval()
    torch.save(model.state_dict(), tmp_path / "bn.pth")
    imported = import_state_dict(tmp_path / "bn.pth")
    assert imported.spec.norm.value == "batch" and imported.spec.bias is False
    x = torch.randn(5, 4)
    assert torch.equal(imported(x), model(x))


def test_wrapped_checkpoint_dict_is_unwrapped(tmp_path):
    model = tutorial_sequential()
    torch.save({"epoch": 3, "model_state_dict": model.state_dict(), "loss": 0.5}, tmp_path / "ckpt.pt")
    assert torch.equal(import_state_dict(tmp_path / "ckpt.pt")(X), model(X))


def test_float64_weights_are_converted_to_float32(tmp_path):
    model = tutorial_sequential().double()
    torch.save(model.state_dict(), tmp_path / "w.pth")
    imported = import_state_dict(tmp_path / "w.pth")
    assert imported.linear1.weight.dtype == torch.float32
    assert torch.equal(imported.linear1.weight, model[0].weight.float())


def test_spec_from_file_bare_and_model_dir(tmp_path):
    (tmp_path / "bare.json").write_text(json.dumps({"in_features": 2, "hidden": [8], "out_features": 1}))
    assert read_spec_file(tmp_path / "bare.json") == ModelSpec(2, [8], 1)
    modeldir.save(torchann.mlp(2, [8], 1, activation="tanh"), tmp_path / "d")
    assert read_spec_file(tmp_path / "d").activation.value == "tanh"
    assert read_spec_file(tmp_path / "d" / "spec.json").sizes == (2, 8, 1)
    (tmp_path / "bad.json").write_text('{"in_features": 2, "hidden": [8], "out_features": 1, "layers": 3}')
    with pytest.raises(SpecError, match=r"bad.json: unknown field\(s\) layers"):
        read_spec_file(tmp_path / "bad.json")


def test_mismatch_lists_every_key_sorted_with_shapes(tmp_path):
    torch.save(tutorial_sequential().state_dict(), tmp_path / "w.pth")
    with pytest.raises(ModelFileError) as err:
        import_state_dict(tmp_path / "w.pth", ModelSpec(3, [8, 4], 1))
    message = str(err.value)
    assert message == (
        f"{tmp_path / 'w.pth'}: the weights do not fit the spec 3-8-4-1: "
        "0.weight -> linear1.weight: expected shape (8, 3), found (8, 2); "
        "2.bias -> linear2.bias: expected shape (4,), found (1,); "
        "2.weight -> linear2.weight: expected shape (4, 8), found (1, 8); "
        "missing output.bias (1,); missing output.weight (1, 4)"
    )
    assert "\n" not in message


def test_unexpected_layers_are_listed(tmp_path):
    model = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 1))
    torch.save(model.state_dict(), tmp_path / "w.pth")
    with pytest.raises(ModelFileError, match=r"unexpected 4.bias \(1,\); unexpected 4.weight \(1, 8\)"):
        import_state_dict(tmp_path / "w.pth", ModelSpec(2, [8], 1))


def test_integer_weights_are_refused(tmp_path):
    state = OrderedDict([("0.weight", torch.ones(8, 2, dtype=torch.int64)), ("0.bias", torch.zeros(8)),
                         ("2.weight", torch.ones(1, 8)), ("2.bias", torch.zeros(1))])
    torch.save(state, tmp_path / "w.pth")
    with pytest.raises(ModelFileError, match=r"0.weight -> linear1.weight: expected dtype torch.float32, found torch.int64"):
        import_state_dict(tmp_path / "w.pth")


def test_broken_chain_is_refused_when_inferring(tmp_path):
    state = OrderedDict([("a.weight", torch.ones(8, 2)), ("b.weight", torch.ones(1, 7))])
    torch.save(state, tmp_path / "w.pth")
    with pytest.raises(ModelFileError, match="b.weight takes 7 inputs but a.weight gives 8"):
        import_state_dict(tmp_path / "w.pth")


def test_spec_and_activation_together_is_a_usage_error(tmp_path):
    torch.save(tutorial_sequential().state_dict(), tmp_path / "w.pth")
    with pytest.raises(UsageError, match="either a spec or hidden/activation"):
        import_state_dict(tmp_path / "w.pth", ModelSpec(2, [8], 1), activation="tanh")


# -- pickles ---------------------------------------------------------------------------------


def test_whole_pickled_model_is_refused_with_why_and_how(tmp_path):
    torch.save(tutorial_sequential(), tmp_path / "complete_model.pth")  # tutorial section 2.5
    with pytest.raises(ModelFileError) as err:
        import_state_dict(tmp_path / "complete_model.pth")
    message = str(err.value)
    assert "a whole pickled model (torch.nn.modules.container.Sequential)" in message
    assert "a pickle can run any code when it is loaded" in message
    assert "torch.save(model.state_dict(), PATH)" in message and "--trust-pickle" in message


def test_whole_pickled_model_loads_when_trusted(tmp_path):
    model = tutorial_sequential()
    torch.save(model, tmp_path / "complete_model.pth")
    imported = import_state_dict(tmp_path / "complete_model.pth", trust_pickle=True)
    assert torch.equal(imported(X), model(X))


def test_pickled_class_from_a_script_explains_what_to_do_when_trusted(tmp_path):
    # A class defined in the user's script cannot be found by another program.
    payload = (
        b"\x80\x02c__main__\nMyScriptNet\nq\x00)\x81q\x01."  # protocol 2: __main__.MyScriptNet()
    )
    (tmp_path / "m.pkl").write_bytes(payload)
    with pytest.raises(ModelFileError, match="needs code that is not importable here .*save model.state_dict"):
        read_state_dict(tmp_path / "m.pkl", trust_pickle=True)


@pytest.mark.parametrize("writer", ["torch", "pickle"])
def test_malicious_pickle_runs_nothing(tmp_path, writer):
    marker = tmp_path / "pwned"
    if writer == "torch":
        torch.save({"0.weight": torch.ones(2, 2), "x": FileCreator(str(marker))}, tmp_path / "evil.pth")
    else:
        (tmp_path / "evil.pth").write_bytes(pickle.dumps(FileCreator(str(marker)), protocol=2))
    with pytest.raises(ModelFileError, match="not only tensors: refused, because a pickle can run any code"):
        import_state_dict(tmp_path / "evil.pth")
    assert not marker.exists()
    # The payload is live: trusting the file runs it (which is why the default refuses).
    with pytest.raises(ModelFileError):
        import_state_dict(tmp_path / "evil.pth", trust_pickle=True)
    assert marker.exists()


@pytest.mark.parametrize("content, fragment", [
    (b"", "(the file is empty)"),
    (b"hello world" * 10, "unexpected bytes for a torch.save file"),
    (None, "failed finding central directory"),  # a truncated torch.save zip
])
def test_unreadable_files(tmp_path, content, fragment):
    path = tmp_path / "w.pth"
    if content is None:
        torch.save(tutorial_sequential().state_dict(), path)
        content = path.read_bytes()[: path.stat().st_size // 2]
    path.write_bytes(content)
    with pytest.raises(ModelFileError) as err:
        import_state_dict(path)
    assert fragment in str(err.value) and str(err.value).startswith(str(path))
    assert "\n" not in str(err.value)


def test_missing_file_and_non_dict(tmp_path):
    with pytest.raises(ModelFileError, match="does not exist; give the .pth file"):
        import_state_dict(tmp_path / "nope.pth")
    torch.save([torch.ones(2)], tmp_path / "list.pth")
    with pytest.raises(ModelFileError, match="holds a list, not a state dict of named tensors"):
        import_state_dict(tmp_path / "list.pth")


def test_safetensors_input(tmp_path):
    from safetensors.torch import save_file

    model = tutorial_sequential()
    save_file(model.state_dict(), str(tmp_path / "w.safetensors"))
    assert torch.equal(import_state_dict(tmp_path / "w.safetensors")(X), model(X))


def test_infer_spec_linear_model():
    state = OrderedDict([("fc.weight", torch.ones(3, 5)), ("fc.bias", torch.ones(3))])
    assert infer_spec(state).sizes == (5, 3)


# -- the command -----------------------------------------------------------------------------


def _cli():
    from typer.testing import CliRunner

    from torchann.cli import app

    return CliRunner(), app


def test_cli_import_writes_a_model_directory(tmp_path):
    runner, app = _cli()
    model = tutorial_sequential()
    torch.save(model.state_dict(), tmp_path / "model_weights.pth")
    result = runner.invoke(app, ["import", str(tmp_path / "model_weights.pth"), "--out", str(tmp_path / "run"), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["mapping"] == {"0.weight": "linear1.weight", "0.bias": "linear1.bias",
                                 "2.weight": "output.weight", "2.bias": "output.bias"}
    assert report["parameters"] == 2 * 8 + 8 + 8 + 1 and report["activation_assumed"] is True
    assert "assumed relu" in result.stderr
    assert torch.equal(modeldir.load(tmp_path / "run")(X), model(X))


def test_cli_import_with_spec_file(tmp_path):
    runner, app = _cli()
    net = MyNeuralNet()
    torch.save(net.state_dict(), tmp_path / "w.pth")
    (tmp_path / "spec.json").write_text(json.dumps({"in_features": 2, "hidden": [8], "out_features": 1}))
    result = runner.invoke(app, ["import", str(tmp_path / "w.pth"), "--spec", str(tmp_path / "spec.json"),
                                 "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert "assumed" not in result.stderr
    assert torch.equal(modeldir.load(tmp_path / "run")(X), net(X))


def test_cli_refuses_pickle_and_runs_nothing(tmp_path):
    runner, app = _cli()
    marker = tmp_path / "pwned"
    torch.save({"x": FileCreator(str(marker))}, tmp_path / "evil.pth")
    before = sorted(os.listdir(tmp_path))
    result = runner.invoke(app, ["import", str(tmp_path / "evil.pth"), "--out", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert "a pickle can run any code" in result.stderr and "Traceback" not in result.output
    assert sorted(os.listdir(tmp_path)) == before and not marker.exists()


def test_cli_trust_pickle_imports_whole_model(tmp_path):
    runner, app = _cli()
    model = tutorial_sequential()
    torch.save(model, tmp_path / "complete_model.pth")
    result = runner.invoke(app, ["import", str(tmp_path / "complete_model.pth"), "--trust-pickle",
                                 "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert "runs any code" in result.stderr
    assert torch.equal(modeldir.load(tmp_path / "run")(X), model(X))


def test_cli_refuses_to_overwrite(tmp_path):
    runner, app = _cli()
    torch.save(tutorial_sequential().state_dict(), tmp_path / "w.pth")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "notes.txt").write_text("keep me")
    result = runner.invoke(app, ["import", str(tmp_path / "w.pth"), "--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and "already exists and is not empty" in result.stderr
    assert os.listdir(tmp_path / "run") == ["notes.txt"]
