"""Small files that claim to be huge: every claim is checked against the file (or the spec)
before anything is allocated or read, and the peak memory of refusing it is measured."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

import torchann
from torchann.model import directory as modeldir
from torchann.core.errors import ModelFileError
from torchann.inspect.summary import summary, summary_of_spec
from torchann.network.spec import ModelSpec


def _peak_kib(code: str, *args: str) -> tuple[str, int]:
    """Run ``code`` in a fresh process; its output and how much its peak RSS grew (KiB) while it ran."""
    wrapped = ("import resource, sys\nimport torch, torchann\n"
               "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n" + code +
               "\nprint(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)")
    out = subprocess.run([sys.executable, "-c", wrapped, *args], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    *lines, grew = out.stdout.strip().splitlines()
    return "\n".join(lines), int(grew)


def test_summary_of_a_tiny_spec_declaring_an_8_gb_layer_allocates_nothing(tmp_path):
    spec_text = json.dumps({"in_features": 46000, "hidden": [46000], "out_features": 1})
    assert len(spec_text) < 70
    (tmp_path / "spec.json").write_text(spec_text)
    code = ("from torchann.inspect.summary import summary_of_spec\nfrom torchann.model.pth import read_spec_file\n"
            "s = summary_of_spec(read_spec_file(sys.argv[1]))\nprint(s.total_params)")
    printed, grew = _peak_kib(code, str(tmp_path / "spec.json"))
    assert int(printed) == 46000 * 46000 + 46000 + 46000 + 1  # hand arithmetic: W1, b1, W2, b2
    assert grew < 100_000  # KiB; the weights would be 8,464,736,004 bytes


def test_the_summary_command_of_a_spec_declaring_8_gb_of_weights_answers_without_allocating(tmp_path):
    code = ("import json, contextlib, io\nfrom torchann.cli import app\nbuf = io.StringIO()\n"
            "with contextlib.redirect_stdout(buf):\n    app(['summary', sys.argv[1], '--json', '--input-size', "
            "'1000,2'], standalone_mode=False)\nprint(json.loads(buf.getvalue())['total_params'])")
    grown = {}
    for name, hidden in [("small", [4]), ("wide", [46000, 46000])]:
        (tmp_path / f"{name}.json").write_text(json.dumps({"in_features": 2, "hidden": hidden, "out_features": 1}))
        printed, grown[name] = _peak_kib(code, str(tmp_path / f"{name}.json"))
    assert int(printed) == 2 * 46000 + 46000 + 46000 * 46000 + 46000 + 46000 + 1  # W1, b1, W2, b2, W3, b3
    # the command's own imports cost the same for both; the weights would be 8,464,920,004 bytes
    assert grown["wide"] - grown["small"] < 50_000  # KiB


def test_summary_of_spec_matches_the_summary_of_the_built_network():
    spec = ModelSpec(in_features=3, hidden=(5, 4), out_features=2)
    on_meta = summary_of_spec(spec)
    real = summary(spec.build(), input_size=(1, 3))
    assert str(on_meta) == str(real)
    assert summary_of_spec(ModelSpec(in_features=3, hidden=(5,), out_features=1, norm="batch")).total_params == \
        3 * 5 + 5 + 2 * 5 + 5 + 1


def test_weights_linked_to_a_huge_sparse_file_are_refused_unread(tmp_path):
    target = tmp_path / "m"
    modeldir.save(torchann.mlp(2, [4], 1), target)
    sparse = tmp_path / "sparse.bin"
    with open(sparse, "wb") as f:
        f.truncate(30 * 2**30)  # 30 GiB that take no disk
    (target / "weights.safetensors").unlink()
    (target / "weights.safetensors").symlink_to(sparse)
    code = ("from torchann.model import directory as modeldir\ntry:\n    modeldir.load(sys.argv[1])\n"
            "except Exception as e:\n    print(e)")
    printed, grew = _peak_kib(code, str(target))
    limit = modeldir.weights_size_limit(ModelSpec(in_features=2, hidden=(4,), out_features=1))
    assert printed == (f"{target}/weights.safetensors: 32,212,254,720 bytes, but the network in spec.json needs at "
                       f"most {limit:,}; the file is not this model's weights (save the model again)")
    assert grew < 20_000


def test_weights_size_limit_is_the_tensors_plus_a_header():
    spec = ModelSpec(in_features=2, hidden=(4,), out_features=1)
    assert modeldir.weights_size_limit(spec) == 4 * (2 * 4 + 4 + 4 + 1) + 8 + 65536 + 256 * 4


def test_a_preprocessor_with_ten_million_categories_for_two_inputs_is_refused(tmp_path):
    from torchann.preprocess.preprocessor import Preprocessor

    record = {"format": "torchann.preprocessor", "version": 1, "task": "regression", "scale": True,
              "fill_missing": None, "targets": ["y"], "target_mean": [0.0], "target_std": [1.0],
              "classes": None, "class_kind": None,
              "features": [{"name": "a", "kind": "categorical", "categories": list(range(10**7)),
                            "label_kind": "int"}]}
    with pytest.raises(ModelFileError, match=r"x/spec.json extra.preprocessor: field features\[0\].categories holds "
                                             r"a list of 10,000,000 item\(s\); expected a list of 1 to 2 values"):
        Preprocessor.from_dict(record, source="x/spec.json extra.preprocessor", in_features=2, out_features=1)


def test_a_model_directory_whose_weights_file_was_swapped_for_a_bigger_one(tmp_path):
    from safetensors.torch import save_file

    target = tmp_path / "m"
    modeldir.save(torchann.mlp(2, [4], 1), target)
    big = {f"t{i}": torch.zeros(1000, 100) for i in range(3)}
    save_file(big, str(target / "weights.safetensors"))
    with pytest.raises(ModelFileError, match=r"weights.safetensors: 1,200,\d+ bytes, but the network in spec.json "
                                             r"needs at most"):
        modeldir.load(target)
