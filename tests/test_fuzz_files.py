"""Generated files for every reader of outside input: CSV/TSV tables, Parquet, ``.npy``,
``.npz``, a model directory's ``spec.json``, its ``weights.safetensors``, the preprocessing
record and the checkpoint read on ``--resume``.

The property (tests/fuzz_guard.py): each input gives a result or one of torchann's own errors
in one line; no other exception, no hang, no write outside the input's folder. Strategies are in
tests/fuzz_strategies.py; ``benchmarks/fuzz.py`` runs the same ones 10,000 times each.
"""

from __future__ import annotations

import os
import time

import pytest

from fuzz_guard import FuzzFailure, run_guarded
from fuzz_settings import context, property_test
from torchann.core.errors import DataError


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    return context(tmp_path_factory.mktemp("fuzz_files"))


def _test(name: str):
    return property_test(name, "gives_a_result_or_one_catalogued_line")


test_csv = _test("csv")
test_parquet = _test("parquet")
test_npy = _test("npy")
test_npz = _test("npz")
test_spec = _test("spec")
test_spec_text = _test("spec_text")
test_safetensors = _test("safetensors")
test_record = _test("record")
test_resume = _test("resume")


# ------------------------------------------------------------------- the harness catches what it claims to


def test_the_harness_reports_a_foreign_exception_a_hang_and_a_stray_write(tmp_path):
    folder = tmp_path / "box" / "run"
    folder.mkdir(parents=True)
    assert run_guarded(lambda: None, folder) == "ok"

    def refuse():
        raise DataError("x.csv: row 2 is bad")
    assert run_guarded(refuse, folder) == "DataError"

    def two_lines():
        raise DataError("x.csv:\nrow 2")
    with pytest.raises(FuzzFailure, match="DataError"):
        run_guarded(two_lines, folder)
    with pytest.raises(FuzzFailure, match="KeyError"):
        run_guarded(lambda: {}["k"], folder)
    with pytest.raises(FuzzFailure, match="a hang"):
        run_guarded(lambda: time.sleep(5), folder, timeout=0.2)

    def write_beside():
        (tmp_path / "box" / "stray.txt").write_text("x")
    with pytest.raises(FuzzFailure, match="wrote outside"):
        run_guarded(write_beside, folder)

    def write_inside():
        (folder / "ok.txt").write_text("x")
        os.replace(folder / "ok.txt", folder / "ok2.txt")
    assert run_guarded(write_inside, folder) == "ok"


# ------------------------------------------------------------------- cases the fuzzing found, kept as tests


@pytest.mark.parametrize("optimizer", ["adam", "adamw", "sgd"])
def test_resume_checks_the_optimiser_state_and_still_resumes_bit_identically(tmp_path, optimizer):
    """The optimiser state is tried on a copy before it is put back (torch takes a state of the
    wrong shape without a word and the run failed at its first step): a good checkpoint still
    resumes to the weights of an undisturbed run, a damaged one is one line and the weights
    stay as they were."""
    import json

    import torch

    import torchann
    from torchann.core.errors import ModelFileError
    from torchann.training.arguments import Checkpointing

    g = torch.Generator().manual_seed(0)
    x = torch.rand(12, 2, generator=g)
    y = x.sum(1, keepdim=True)

    def net():
        torch.manual_seed(0)
        return torchann.mlp(2, [4], 1)

    kw = dict(batch_size=4, lr=0.01, seed=1, optimizer=optimizer, momentum=0.9 if optimizer == "sgd" else 0.0)
    whole = net()
    torchann.fit(whole, x, y, epochs=3, **kw)
    ck = tmp_path / "ck"
    torchann.fit(net(), x, y, epochs=2, checkpoint=Checkpointing(ck), **kw)
    resumed = net()
    torchann.fit(resumed, x, y, epochs=3, resume=ck, checkpoint=Checkpointing(ck), **kw)
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name

    latest = ck / json.loads((ck / "latest.json").read_text())["name"] / "state.json"
    doc = json.loads(latest.read_text())
    moments = doc["state"]["optimizer"]["state"]
    moments["__int__0"] = moments["__int__3"]  # linear1.weight (4, 2) given output.bias's (1,) moments
    latest.write_text(json.dumps(doc))
    target = net()
    before = {k: v.clone() for k, v in target.state_dict().items()}
    with pytest.raises(ModelFileError, match="checkpoint's state cannot be put back") as err:
        torchann.fit(target, x, y, epochs=4, resume=ck, **kw)
    assert "\n" not in str(err.value)
    assert all(torch.equal(before[k], v) for k, v in target.state_dict().items())
