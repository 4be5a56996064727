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
from hypothesis import given
from hypothesis import strategies as st

from fuzz_guard import FuzzFailure, run_guarded
from fuzz_settings import SUITE, check, context
from fuzz_targets import TARGETS
from torchann.core.errors import DataError


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    return context(tmp_path_factory.mktemp("fuzz_files"))


def _test(name: str):
    @SUITE
    @given(data=st.data())
    def test(ctx, data):
        example = data.draw(TARGETS[name][0](ctx), label=name)
        check(name, example, ctx)
    test.__name__ = f"test_{name}_gives_a_result_or_one_catalogued_line"
    return test


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
