"""Model files that cannot run code, and training that keeps its work.

- A model directory is refused, with one line naming the file and the problem, when it is
  incomplete, its spec.json is malformed or impossible, or its weights are truncated,
  corrupted, or of the wrong names, shapes or dtypes. Loading never unpickles.
- A non-finite loss stops training with the epoch and step, and keeps the last good checkpoint.
- SIGINT stops after the current step, writes a checkpoint and says how to resume; the
  resumed run ends bit-identical to one that was never interrupted.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import re
import resource
import shutil
import struct
from pathlib import Path

import pytest
import torch
from safetensors.torch import save as st_save

import torchann
from torchann.training import checkpoint as ckpt
from torchann.model import directory as modeldir
from torchann.core.errors import ModelFileError, NonFiniteLoss, TrainingError
from torchann.training.arguments import Checkpointing
from torchann.training.fitting import fit

X = torch.tensor([[1.0, 2.0], [3.0, -1.0]])


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="module")
def good_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("models") / "good"
    torch.manual_seed(0)
    modeldir.save(torchann.mlp(2, [8], 1), path)
    return path


# -- helpers that damage a copy of a good model directory ---------------------------------------


def _copy(good: Path, tmp: Path) -> Path:
    target = tmp / "model"
    shutil.copytree(good, target)
    return target


def _edit_spec(change):
    def apply(d: Path) -> None:
        doc = json.loads((d / "spec.json").read_text())
        change(doc)
        (d / "spec.json").write_text(json.dumps(doc))
    return apply


def _reseal(d: Path) -> None:
    """Make spec.json vouch for whatever weights.safetensors now holds (a consistent forgery)."""
    doc = json.loads((d / "spec.json").read_text())
    doc["weights"]["sha256"] = hashlib.sha256((d / "weights.safetensors").read_bytes()).hexdigest()
    (d / "spec.json").write_text(json.dumps(doc))


def _weights(make, reseal=True):
    def apply(d: Path) -> None:
        state = torchann.mlp(2, [8], 1).state_dict()
        (d / "weights.safetensors").write_bytes(st_save(make(state)))
        if reseal:
            _reseal(d)
    return apply


def _raw_weights(data: bytes, reseal=True):
    def apply(d: Path) -> None:
        (d / "weights.safetensors").write_bytes(data)
        if reseal:
            _reseal(d)
    return apply


def _truncate(d: Path) -> None:
    data = (d / "weights.safetensors").read_bytes()
    (d / "weights.safetensors").write_bytes(data[: len(data) // 2])


def _flip_byte(offset: int, reseal: bool):
    def apply(d: Path) -> None:
        data = bytearray((d / "weights.safetensors").read_bytes())
        data[offset] ^= 0xFF
        (d / "weights.safetensors").write_bytes(bytes(data))
        if reseal:
            _reseal(d)
    return apply


def _huge_tensor_claim() -> bytes:
    header = json.dumps({"linear1.weight": {"dtype": "F32", "shape": [100_000, 100_000],
                                            "data_offsets": [0, 4 * 10**10]}}).encode()
    return struct.pack("<Q", len(header)) + header + b"\0" * 64


BROKEN_DIRS = [
    # (id, damage, message fragment, file named)
    ("no spec.json", lambda d: (d / "spec.json").unlink(), "spec.json: missing; a model directory holds", "spec.json"),
    ("no weights", lambda d: (d / "weights.safetensors").unlink(), "weights.safetensors: missing", "weights.safetensors"),
    ("spec.json not JSON", lambda d: (d / "spec.json").write_text("{not json"),
     "malformed JSON (Expecting property name enclosed in double quotes at line 1, column 2)", "spec.json"),
    ("spec.json empty", lambda d: (d / "spec.json").write_text(""), "malformed JSON (Expecting value", "spec.json"),
    ("spec.json binary", lambda d: (d / "spec.json").write_bytes(b"\xff\xfe\x00\x80"), "not UTF-8 text", "spec.json"),
    ("spec.json nested deeply", lambda d: (d / "spec.json").write_text("[" * 100_000 + "]" * 100_000),
     "JSON nested too deeply", "spec.json"),
    ("spec.json a list", lambda d: (d / "spec.json").write_text("[1, 2]"),
     "not a torchann model spec (format 'list', expected 'torchann.model/1')", "spec.json"),
    ("other format", _edit_spec(lambda doc: doc.update(format="keras/2")), "not a torchann model spec (format 'keras/2'",
     "spec.json"),
    ("model missing", _edit_spec(lambda doc: doc.pop("model")), "expected a JSON object with the model's sizes",
     "spec.json"),
    ("negative size", _edit_spec(lambda doc: doc["model"].update(hidden=[-3])),
     "hidden[0] must be a positive integer, got -3", "spec.json"),
    ("zero input width", _edit_spec(lambda doc: doc["model"].update(in_features=0)),
     "in_features must be a positive integer, got 0", "spec.json"),
    ("fractional size", _edit_spec(lambda doc: doc["model"].update(out_features=1.5)),
     "out_features must be a positive integer, got 1.5", "spec.json"),
    ("size as text", _edit_spec(lambda doc: doc["model"].update(hidden="8,8")),
     "hidden must be a list of positive integers such as [8, 8], got '8,8'", "spec.json"),
    ("unknown activation", _edit_spec(lambda doc: doc["model"].update(activation="swish")),
     "unknown activation 'swish'; choose one of: relu, tanh", "spec.json"),
    ("unknown layer field", _edit_spec(lambda doc: doc["model"].update(layers=["conv2d"])),
     "unknown field(s) layers; valid fields:", "spec.json"),
    ("unknown norm", _edit_spec(lambda doc: doc["model"].update(norm="group")), "unknown norm 'group'", "spec.json"),
    ("dropout 1", _edit_spec(lambda doc: doc["model"].update(dropout=1)), "dropout must be in [0, 1), got 1",
     "spec.json"),
    ("absurd sizes", _edit_spec(lambda doc: doc["model"].update(in_features=10**9, hidden=[10**9])),
     "the spec describes 1,000,000,002,000,000,001 parameters, more than the limit", "spec.json"),
    ("absurd depth", _edit_spec(lambda doc: doc["model"].update(hidden=[1] * 200_000)),
     "hidden lists 200,000 layers, more than the limit of 1,000", "spec.json"),
    ("weights entry a list", _edit_spec(lambda doc: doc.update(weights=[1])), "'weights' must be a JSON object",
     "spec.json"),
    ("extra a list", _edit_spec(lambda doc: doc.update(extra=[1])), "'extra' must be a JSON object", "spec.json"),
    ("weights truncated", _truncate, "contents do not match the checksum in spec.json (truncated, corrupt",
     "weights.safetensors"),
    ("weights bit flipped", _flip_byte(-5, reseal=False), "contents do not match the checksum",
     "weights.safetensors"),
    ("truncated, checksum forged", lambda d: (_truncate(d), _reseal(d)), "not a readable safetensors file",
     "weights.safetensors"),
    ("header corrupted, checksum forged", _flip_byte(12, reseal=True), "not a readable safetensors file",
     "weights.safetensors"),
    ("empty weights", _raw_weights(b""), "not a readable safetensors file (Error while deserializing: header too small)",
     "weights.safetensors"),
    ("header claims 2**62 bytes", _raw_weights(struct.pack("<Q", 2**62) + b"{}"), "header too large",
     "weights.safetensors"),
    ("tensor claims 40 GB", _raw_weights(_huge_tensor_claim()), "not a readable safetensors file",
     "weights.safetensors"),
    ("wrong names", _weights(lambda s: {"x" + k: v for k, v in s.items()}),
     "weights do not fit spec.json: missing linear1.bias, linear1.weight, output.bias, output.weight; "
     "unexpected xlinear1.bias", "weights.safetensors"),
    ("wrong shapes", _weights(lambda s: {k: torch.zeros(*[n + 1 for n in v.shape]) for k, v in s.items()}),
     "linear1.weight: expected shape (8, 2), found (9, 3)", "weights.safetensors"),
    ("float64 weights", _weights(lambda s: {k: v.double() for k, v in s.items()}),
     "linear1.bias: expected dtype torch.float32, found torch.float64", "weights.safetensors"),
    ("int weights", _weights(lambda s: {k: v.long() for k, v in s.items()}),
     "output.weight: expected dtype torch.float32, found torch.int64", "weights.safetensors"),
    ("weights is a folder", lambda d: ((d / "weights.safetensors").unlink(), (d / "weights.safetensors").mkdir()),
     "weights.safetensors is a folder, not a regular file", "weights.safetensors"),
]


@pytest.mark.parametrize("damage, fragment, named", [c[1:] for c in BROKEN_DIRS], ids=[c[0] for c in BROKEN_DIRS])
def test_broken_model_directory_is_refused_in_one_line(good_dir, tmp_path, damage, fragment, named):
    target = _copy(good_dir, tmp_path)
    damage(target)
    with pytest.raises(ModelFileError) as err:
        modeldir.load(target)
    message = str(err.value)
    assert fragment in message
    assert message.startswith(str(target / named)), message
    assert "\n" not in message and len(message) < 2000


def test_mismatched_spec_is_refused_before_allocating(good_dir, tmp_path):
    # 2,000,000,000 parameters: under the limit, 8 GB if built; the weights on disk are tiny.
    target = _copy(good_dir, tmp_path)
    _edit_spec(lambda doc: doc["model"].update(in_features=40_000, hidden=[50_000], out_features=1))(target)
    _reseal(target)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    with pytest.raises(ModelFileError, match=r"linear1.weight: expected shape \(50000, 40000\), found \(8, 2\)"):
        modeldir.load(target)
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mib < 500


def test_a_good_directory_still_loads(good_dir):
    assert modeldir.load(good_dir)(X).shape == (2, 1)


def _no_unpickling(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("unpickling attempted")

    class NoUnpickler:
        def __init__(self, *args, **kwargs):
            refuse()

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "Unpickler", NoUnpickler)
    monkeypatch.setattr(torch, "load", refuse)


def test_loading_a_model_directory_never_unpickles(good_dir, monkeypatch):
    expected = modeldir.load(good_dir)(X)
    _no_unpickling(monkeypatch)
    loaded = modeldir.read_model_dir(good_dir)
    assert torch.equal(loaded.model(X), expected)


def test_resuming_from_a_checkpoint_never_unpickles(tmp_path, monkeypatch):
    x, y = torch.randn(16, 2), torch.randn(16, 1)
    fit(torchann.mlp(2, [4], 1), x, y, epochs=2, batch_size=4, seed=1, device="cpu",
        checkpoint=Checkpointing(tmp_path / "ck"), optimizer="adam", early_stopping=None)
    _no_unpickling(monkeypatch)
    state = ckpt.load_state(tmp_path / "ck")
    assert state["epoch"] == 2
    history = fit(torchann.mlp(2, [4], 1), x, y, epochs=3, batch_size=4, device="cpu", resume=tmp_path / "ck", optimizer="adam", early_stopping=None)
    assert len(history) == 3


def test_a_pickle_renamed_to_a_model_file_is_not_run(good_dir, tmp_path):
    class FileCreator:
        def __reduce__(self):
            return (open, (str(tmp_path / "pwned"), "w"))

    target = _copy(good_dir, tmp_path)
    (target / "weights.safetensors").write_bytes(pickle.dumps(FileCreator()))
    _reseal(target)
    with pytest.raises(ModelFileError, match="not a readable safetensors file"):
        modeldir.load(target)
    (tmp_path / "model.pth").write_bytes(pickle.dumps(FileCreator()))
    with pytest.raises(ModelFileError, match="is a PyTorch pickle file, which can run code when loaded"):
        modeldir.load(tmp_path / "model.pth")
    assert not (tmp_path / "pwned").exists()


# -- checkpoints that were tampered with ---------------------------------------------------------


def _checkpoint(tmp_path) -> Path:
    fit(torchann.mlp(2, [4], 1), torch.randn(8, 2), torch.randn(8, 1), epochs=1, batch_size=4, seed=0,
        device="cpu", checkpoint=Checkpointing(tmp_path / "ck"), optimizer="adam", early_stopping=None)
    return tmp_path / "ck"


@pytest.mark.parametrize("damage, fragment", [
    (lambda ck: (ck / "latest.json").write_text('{"name": "../../etc"}'), "latest.json: unreadable or names no"),
    (lambda ck: (ck / "latest.json").write_text("[]"), "latest.json: unreadable or names no checkpoint folder"),
    (lambda ck: (ck / "latest.json").unlink(), "no latest.json here, so no complete checkpoint"),
    (lambda ck: (ck / "epoch-000001-step-000000" / "state.json").write_text("[1]"),
     "not a torchann checkpoint (format 'list'"),
    (lambda ck: (ck / "epoch-000001-step-000000" / "state.json").write_text(
        '{"format": "torchann.checkpoint/1", "state": {"__tensor__": 5}}'), "tensor 5 named in state.json is missing"),
    (lambda ck: (ck / "epoch-000001-step-000000" / "state.json").write_text(
        '{"format": "torchann.checkpoint/1", "state": {"__tuple__": 5}}'), "malformed checkpoint state"),
    (lambda ck: (ck / "epoch-000001-step-000000" / "tensors.safetensors").write_bytes(b"\0" * 7),
     "checkpoint is unreadable"),
], ids=["pointer escapes", "pointer not an object", "no pointer", "state a list", "bad tensor ref", "bad tuple",
        "tensors cut"])
def test_damaged_checkpoint_is_refused(tmp_path, damage, fragment):
    ck = _checkpoint(tmp_path)
    damage(ck)
    with pytest.raises(ModelFileError, match=re.escape(fragment)):
        ckpt.load_state(ck)


def test_checkpoints_leave_other_folders_alone(tmp_path):
    (tmp_path / "ck" / "my-notes").mkdir(parents=True)
    (tmp_path / "ck" / "my-notes" / "keep.txt").write_text("mine")
    for epochs in (1, 2):
        fit(torchann.mlp(2, [4], 1), torch.randn(8, 2), torch.randn(8, 1), epochs=epochs, batch_size=4, seed=0,
            device="cpu", checkpoint=Checkpointing(tmp_path / "ck"), optimizer="adam", early_stopping=None)
    assert (tmp_path / "ck" / "my-notes" / "keep.txt").read_text() == "mine"
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == ["epoch-000002-step-000000", "latest.json",
                                                                   "my-notes"]


def test_rewriting_the_checkpoint_latest_names_never_deletes_it_first(tmp_path):
    ck = tmp_path / "ck"
    ckpt.save_state(ck, "epoch-000001-step-000000", {"a": torch.ones(2)})
    second = ckpt.save_state(ck, "epoch-000001-step-000000", {"a": torch.zeros(2)})
    assert second.name == "epoch-000001-step-000000.1"
    assert torch.equal(ckpt.load_state(ck)["a"], torch.zeros(2))
    assert sorted(p.name for p in ck.iterdir()) == ["epoch-000001-step-000000.1", "latest.json"]


# -- non-finite losses ---------------------------------------------------------------------------


def test_exploding_loss_stops_with_epoch_step_and_keeps_last_good_checkpoint(tmp_path):
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(64, 2, generator=gen) * 3
    y = x.sum(1, keepdim=True)
    model = torchann.mlp(2, [8], 1)
    # The learning rate grows tenfold each epoch: fine at first, then the loss overflows.
    grow = lambda opt: torch.optim.lr_scheduler.ExponentialLR(opt, gamma=10.0)  # noqa: E731
    with pytest.raises(TrainingError) as err:
        fit(model, x, y, epochs=30, batch_size=8, lr=1e-3, optimizer="sgd", scheduler=grow, seed=0, device="cpu",
            checkpoint=Checkpointing(tmp_path / "ck"), early_stopping=None)
    message = str(err.value)
    found = re.fullmatch(r"loss became (inf|nan) at epoch (\d+), step (\d+); lower the learning rate .*", message)
    assert found, message
    epoch, step = int(found.group(2)), int(found.group(3))
    assert epoch >= 2 and 1 <= step <= 8
    assert f"the last good checkpoint is in {tmp_path / 'ck'}" in message
    # The history and the checkpoint hold every epoch before the bad one, all finite.
    assert len(err.value.history) == epoch - 1
    # The same facts as fields, for callers that should not read the message apart.
    assert isinstance(err.value, NonFiniteLoss)
    assert (err.value.epoch, err.value.step, err.value.checkpoint) == (epoch, step, str(tmp_path / "ck"))
    assert not torch.isfinite(torch.tensor(err.value.value)) and err.value.lr > 1e-3
    state = ckpt.load_state(tmp_path / "ck")
    assert state["epoch"] == epoch - 1
    assert all(torch.isfinite(t).all() for t in state["model"].values())
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in state["history"]["records"])
