"""Two processes, one model directory: a load during a save finds the old model or the new one.

A save into an existing directory replaces the weights, then ``spec.json``. Each test below
puts a save (or part of one) at an exact point of a load, through a hook, so that the
interleaving that a real second process produces now and then happens every time.
"""

from __future__ import annotations

import pytest
import torch

import torchann
from torchann.model import directory as modeldir
from torchann.core.errors import ModelFileError


@pytest.fixture
def models():
    torch.manual_seed(0)
    first = torchann.mlp(2, [16], 1)
    torch.manual_seed(1)
    second = torchann.mlp(2, [16], 1)
    x = torch.randn(4, 2)
    return first, second, x


def _answer(model, x):
    return model(x).detach()


def _inject_before_weights_read(monkeypatch, action, times=1):
    """Run ``action`` after the load has read spec.json and before it reads the weights."""
    real = modeldir._read_weights
    calls = {"n": 0}

    def read(path, limit):
        calls["n"] += 1
        if calls["n"] <= times:
            action()
        return real(path, limit)

    monkeypatch.setattr(modeldir, "_read_weights", read)
    return calls


def test_a_whole_save_between_reading_spec_and_weights_loads_the_new_model(tmp_path, monkeypatch, models):
    first, second, x = models
    target = tmp_path / "run"
    modeldir.save(first, target)
    calls = _inject_before_weights_read(monkeypatch, lambda: modeldir.save(second, target))
    loaded = modeldir.load(target)  # read the old spec.json, then the new weights: torn, the kept copy gone
    assert torch.equal(_answer(loaded, x), _answer(second, x))
    assert calls["n"] == 2  # the torn pair was read again


def test_without_a_second_read_the_same_interleaving_fails(tmp_path, monkeypatch, models):
    """The race the snapshot closes: one read of each file is not enough."""
    first, second, x = models
    target = tmp_path / "run"
    modeldir.save(first, target)
    monkeypatch.setattr(modeldir, "SNAPSHOT_TRIES", 1)
    _inject_before_weights_read(monkeypatch, lambda: modeldir.save(second, target))
    with pytest.raises(ModelFileError, match="contents do not match the checksum"):
        modeldir.load(target)


def test_a_save_stopped_between_weights_and_spec_loads_the_old_model(tmp_path, monkeypatch, models):
    first, second, x = models
    target = tmp_path / "run"
    modeldir.save(first, target)

    def half_save():
        import os

        replace = os.replace

        def stop_at_spec(src, dst):
            if str(dst).endswith("spec.json"):
                raise KeyboardInterrupt  # the saver stops here: new weights, old spec.json
            return replace(src, dst)

        monkeypatch.setattr(os, "replace", stop_at_spec)
        try:
            modeldir.save(second, target)
        except KeyboardInterrupt:
            pass
        monkeypatch.setattr(os, "replace", replace)

    calls = _inject_before_weights_read(monkeypatch, half_save)
    loaded = modeldir.load(target)
    assert torch.equal(_answer(loaded, x), _answer(first, x))
    assert calls["n"] == 2  # the weights, then the kept previous weights


def test_saves_between_every_read_still_load_one_of_the_models(tmp_path, monkeypatch, models):
    """A saver that alternates the two models between each of the reader's reads."""
    first, second, x = models
    target = tmp_path / "run"
    modeldir.save(first, target)
    turn = {"n": 0}

    def save_next():
        turn["n"] += 1
        modeldir.save(second if turn["n"] % 2 else first, target)

    _inject_before_weights_read(monkeypatch, save_next, times=3)
    out = _answer(modeldir.load(target), x)
    assert torch.equal(out, _answer(first, x)) or torch.equal(out, _answer(second, x))


def test_real_damage_is_reported_after_one_more_read(tmp_path, monkeypatch, models):
    first, _, _ = models
    target = tmp_path / "run"
    modeldir.save(first, target)
    data = (target / "weights.safetensors").read_bytes()
    (target / "weights.safetensors").write_bytes(data[:-4] + b"\0\0\0\0")  # same size, other bytes
    retries = []
    monkeypatch.setattr(modeldir, "_before_retry", lambda: retries.append(1))
    with pytest.raises(ModelFileError, match="contents do not match the checksum in spec.json"):
        modeldir.load(target)
    assert retries == [1]
