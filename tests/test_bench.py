"""bench.py and `torchann bench matmul`: the tutorial's §1.2 timing, done right.

Numbers are checked against hand arithmetic and the tutorial's own code; no test compares
speeds (which backend is faster depends on the machine and its load).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from torchann.bench import matmul as bench
from torchann.bench.matmul import MatmulRow, bench_matmul, matmul_inputs, peak_gflops
from torchann.bench.timing import Timing, bf16_supported, time_call
from torchann.bench import naive as naive_timing
from torchann.bench.naive import parse_shape
from torchann.core.errors import UsageError

SHAPE = (64, 128, 96)
FLOPS = 2 * 64 * 128 * 96                      # 1_572_864
BYTES32 = (64 * 128 + 128 * 96 + 64 * 96) * 4  # 26_624 numbers of 4 bytes = 106_496


@pytest.fixture(scope="module")
def report():
    return bench_matmul("64x128x96", devices="numpy,cpu,cuda,mps", repeats=3, warmup=1)


def _timed(rows: list[MatmulRow]) -> list[MatmulRow]:
    return [r for r in rows if r.median_s is not None]


def test_every_reported_number_is_positive_and_ordered(report):
    timed = _timed(report.rows + report.reference)
    assert {(r.device, r.dtype) for r in timed} == {("numpy", "float32"), ("cpu", "float32"), ("numpy", "float64")}
    for r in timed:
        assert r.status == "ok", r.reason
        for name in ("median_s", "min_s", "max_s", "q1_s", "q3_s", "first_call_s", "gflops", "gbps"):
            value = getattr(r, name)
            assert value > 0 and math.isfinite(value), (r.device, name, value)
        assert r.min_s <= r.q1_s <= r.median_s <= r.q3_s <= r.max_s
        assert r.samples == 3 and r.number >= 1
    naive = {t.device: t for t in report.naive}
    assert naive["numpy"].seconds > 0 and naive["cpu"].seconds > 0


def test_numpy_and_torch_get_the_same_dtype(report):
    assert report.find("numpy").dtype == report.find("cpu").dtype == report.dtype == "float32"
    # numpy as a view of the same torch inputs: identical numbers, identical dtype
    x, y = matmul_inputs(SHAPE, "float32")
    assert x.dtype == torch.float32 and x.numpy().dtype == np.float32
    assert np.array_equal(x.numpy(), matmul_inputs(SHAPE, "float32")[0].numpy())


def test_float64_run_keeps_float64_everywhere_and_explains_with_float32():
    rep = bench_matmul((8, 16, 4), dtype="fp64", devices=["numpy", "cpu"], repeats=2, warmup=0)
    assert [(r.device, r.dtype) for r in rep.rows] == [("numpy", "float64"), ("cpu", "float64")]
    assert [(r.device, r.dtype) for r in rep.reference] == [("numpy", "float32")]
    assert rep.bytes == (8 * 16 + 16 * 4 + 8 * 4) * 8


def test_bfloat16_is_unsupported_on_numpy_only():
    rep = bench_matmul((8, 16, 4), dtype="bfloat16", devices="numpy,cpu", repeats=2, warmup=0)
    numpy_row, cpu_row = rep.rows
    assert numpy_row.status == "unsupported" and "bfloat16" in numpy_row.reason
    assert cpu_row.status == "ok" and cpu_row.dtype == "bfloat16" and cpu_row.max_rel_error <= 1e-2


def test_naive_timing_uses_the_tutorials_dtypes(report):
    # the tutorial's own data: np.random.random((1, 6400)) and torch.rand(1, 6400)
    tutorial_numpy, tutorial_torch = np.random.random((1, 6400)).dtype, torch.rand(1, 6400).dtype
    naive = {t.device: t for t in report.naive}
    assert naive["numpy"].dtype == str(tutorial_numpy) == "float64"
    assert naive["cpu"].dtype == str(tutorial_torch).removeprefix("torch.") == "float32"
    assert [t.device for t in report.naive] == ["numpy", "cuda", "mps", "cpu"]  # the tutorial's order


def test_both_naive_and_careful_are_reported_and_explained(report):
    np64, np32 = report.find("numpy", "float64"), report.find("numpy", "float32")
    text = " ".join(report.explanation)
    # the dtype sentence quotes the measured medians
    assert f"numpy takes {np64.median_s * 1e3:.3g} ms in float64 and {np32.median_s * 1e3:.3g} ms in float32" in text
    naive_np = next(t for t in report.naive if t.device == "numpy")
    assert f"reading of numpy (float64) gave {naive_np.seconds * 1e3:.3g} ms" in text
    assert "torch.cpu > np > torch.gpu" in report.explanation[-1]


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_is_reported_absent_not_an_error(report):
    row = report.find("cuda")
    assert row.status == "absent" and "CUDA" in row.reason and row.median_s is None
    naive = next(t for t in report.naive if t.device == "cuda")
    assert naive.status == "absent" and naive.seconds is None
    assert any("CUDA is absent here" in s and "stated, not measured" in s for s in report.explanation)


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="this machine has MPS")
def test_mps_is_reported_absent(report):
    assert report.find("mps").status == "absent" and "MPS" in report.find("mps").reason


def test_gflops_and_gbps_by_hand(report):
    assert report.flops == 1_572_864 == FLOPS
    assert report.bytes == 106_496 == BYTES32
    for r in _timed(report.rows):
        assert r.gflops == pytest.approx(1_572_864 / r.median_s / 1e9, rel=1e-12)
        assert r.gbps == pytest.approx(106_496 / r.median_s / 1e9, rel=1e-12)
    r64 = report.find("numpy", "float64")
    assert r64.gbps == pytest.approx(2 * 106_496 / r64.median_s / 1e9, rel=1e-12)


def test_the_timed_product_is_the_right_one(report):
    x, y = matmul_inputs(SHAPE, "float32")
    by_numpy, by_torch = np.matmul(x.numpy(), y.numpy()), (x @ y).numpy()
    np.testing.assert_allclose(by_numpy, by_torch, rtol=1e-5)
    np.testing.assert_allclose(by_numpy, x.double().numpy() @ y.double().numpy(), rtol=1e-5)
    for r in _timed(report.rows + report.reference):
        assert 0 <= r.max_rel_error <= 1e-4


def test_a_wrong_product_is_flagged(monkeypatch):
    real = np.matmul
    monkeypatch.setattr(np, "matmul", lambda a, b: real(a, b) + 1)
    rep = bench_matmul((4, 8, 2), devices="numpy", repeats=2, warmup=0)
    assert rep.rows[0].status == "mismatch"
    assert "differs from the exact product" in rep.rows[0].reason


def test_accelerator_path_runs_with_the_cpu_standing_in(monkeypatch):
    # No GPU here: run the CUDA/MPS code path (copy timing, launch timing, unsynchronised naive
    # reading and its sentences) with the CPU standing in as an "accelerator".
    monkeypatch.setattr(naive_timing, "ACCELERATORS", ("cpu",))
    rep = bench_matmul((8, 16, 4), devices="cpu", repeats=3, warmup=1)
    row = rep.find("cpu")
    assert row.status == "ok" and row.copy_s > 0 and row.launch_s > 0
    assert row.copy_gbps == pytest.approx((8 * 16 + 16 * 4) * 4 / row.copy_s / 1e9, rel=1e-12)
    naive = rep.naive[0]
    assert naive.setup_s > 0 and naive.done_s >= naive.seconds > 0
    text = " ".join(rep.explanation)
    assert f"A warm cpu call returns after {row.launch_s * 1e3:.3g} ms" in text
    assert f"Copying x and y from the host to cpu takes {row.copy_s * 1e3:.3g} ms" in text


def test_explanation_of_a_measured_gpu_run_quotes_its_numbers():
    ok = dict(status="ok", samples=5, min_s=0.0009, max_s=0.0012, gflops=1.0, gbps=1.0)
    rep = bench.MatmulReport(
        (1, 6400, 5000), "float32", 5, 1, 0, 64_000_000, 128_025_600,
        rows=[MatmulRow("numpy", "float32", median_s=0.004, **ok), MatmulRow("cpu", "float32", median_s=0.002, **ok),
              MatmulRow("cuda", "float32", device_name="GPU", median_s=0.001, copy_s=0.03, copy_gbps=4.3,
                        launch_s=0.00002, **ok)],
        naive=[bench.NaiveTiming("numpy", "float64", "ok", seconds=0.008),
               bench.NaiveTiming("cuda", "float32", "ok", seconds=0.021, done_s=0.025, setup_s=0.4),
               bench.NaiveTiming("cpu", "float32", "ok", seconds=0.004)],
        reference=[MatmulRow("numpy", "float64", median_s=0.008, **ok)],
        machine={"cpu_count": 2, "load_average_1min": 0.0})
    text = " ".join(bench.explain(rep))
    assert "numpy takes 8 ms in float64 and 4 ms in float32 (2x): the dtype alone is enough" in text
    assert "numpy float64 against torch CPU float32, is 8 ms against 2 ms (4x)" in text
    assert "unsynchronised reading gave 21 ms, but the result was ready only 25 ms" in text
    assert "took 400 ms" in text and "the first call paid 24 ms of start-up" in text
    assert "A warm cuda call returns after 0.02 ms, before its work is done (1 ms)" in text
    assert "takes 30 ms (4.3 GB/s), 30x the product itself" in text
    assert "Other work shared the CPU" not in text
    assert text.endswith("is: cuda 1 ms, cpu 2 ms, numpy 4 ms.")


# ------------------------------------------------------------------------ timing helpers

def test_timing_statistics_by_hand():
    t = Timing((5.0, 1.0, 4.0, 2.0, 3.0), number=1)
    assert (t.median, t.min, t.max) == (3.0, 1.0, 5.0)
    assert t.quartiles == (2.0, 4.0) and t.iqr == 2.0
    assert Timing((7.0,), 1).quartiles == (7.0, 7.0)


def test_time_call_counts_calls_and_excludes_warmup():
    calls = []
    timing = time_call(lambda: calls.append(1) or time.sleep(0.002), repeats=4, warmup=2)
    assert timing.number == 1 and len(timing.samples) == 4
    assert len(calls) == 2 + 1 + 4  # warm-up, one calibration sample, four timed samples
    assert timing.min >= 0.002  # a 2 ms sleep cannot take less than 2 ms


def test_peak_gflops_arithmetic(monkeypatch):
    monkeypatch.setattr(bench, "time_call", lambda fn, **kw: Timing((0.5, 0.25, 1.0), 1))
    assert peak_gflops("float32", size=100) == pytest.approx(2 * 100**3 / 0.5 / 1e9)


def test_peak_gflops_measures_float32_and_bf16_where_supported():
    assert peak_gflops("float32", size=128, repeats=2) > 0
    if bf16_supported("cpu"):
        assert peak_gflops("bf16", size=128, repeats=2) > 0
    else:
        with pytest.raises(UsageError, match="bfloat16"):
            peak_gflops("bfloat16", size=128)


@pytest.mark.parametrize("call, fragments", [
    (lambda: parse_shape("1x2"), ["'1x2'", "MxKxN", "1x6400x5000"]),
    (lambda: parse_shape((1, 0, 3)), ["(1, 0, 3)", "positive"]),
    (lambda: bench_matmul((2, 2, 2), dtype="int8"), ["'int8'", "float32", "bfloat16"]),
    (lambda: bench_matmul((2, 2, 2), devices="numpy,tpu"), ["'tpu'", "numpy, cpu, cuda, mps"]),
    (lambda: bench_matmul((2, 2, 2), devices="gpu"), ["'gpu'", "'cuda'"]),
    (lambda: bench_matmul((2, 2, 2), repeats=0), ["repeats", "0"]),
    (lambda: peak_gflops("float32", size=0), ["size", "0"]),
])
def test_bad_arguments_raise_usage_errors(call, fragments):
    with pytest.raises(UsageError) as info:
        call()
    for fragment in fragments:
        assert fragment in str(info.value)


def test_parse_shape_forms():
    assert parse_shape("1x6400x5000") == parse_shape("1X6400X5000") == parse_shape([1, 6400, 5000]) == (1, 6400, 5000)


# ------------------------------------------------------------------------ command line

runner = CliRunner()


def _cli(*args: str):
    from torchann.cli import app

    return runner.invoke(app, ["bench", "matmul", *args])


def test_cli_json_is_the_whole_report():
    result = _cli("--shape", "16x32x8", "--repeats", "2", "--warmup", "0", "--devices", "numpy,cpu,cuda", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["shape"] == [16, 32, 8] and data["flops"] == 2 * 16 * 32 * 8 == 8192
    assert [r["device"] for r in data["rows"]] == ["numpy", "cpu", "cuda"]
    cpu = data["rows"][1]
    assert cpu["gflops"] == pytest.approx(8192 / cpu["median_s"] / 1e9, rel=1e-9)
    assert data["explanation"] and all(isinstance(s, str) for s in data["explanation"])


def test_cli_table_and_explanation():
    result = _cli("--shape", "16x32x8", "--repeats", "2", "--warmup", "0", "--devices", "numpy,cpu,cuda")
    assert result.exit_code == 0, result.output
    out = result.stdout
    for fragment in ("device", "median ms", "min-max ms", "GFLOP/s", "GB/s", "naive ms", "float64", "absent"):
        assert fragment in out
    assert "1. The tutorial's numpy arrays come from np.random.random" in out


@pytest.mark.parametrize("args, fragment", [
    (["--shape", "1x2"], "shape '1x2' is not MxKxN"),
    (["--shape", "ax6400x5000"], "1x6400x5000"),
    (["--dtype", "int8"], "unknown dtype 'int8'; choose one of: float32, float64, bfloat16, float16"),
    (["--devices", "numpy,gpu"], "unknown device 'gpu'"),
])
def test_cli_bad_arguments_exit_2_with_the_message(args, fragment):
    result = _cli(*args)
    assert result.exit_code == 2
    assert fragment in result.stderr and result.stdout == ""


def test_cli_runs_as_a_real_process():
    proc = subprocess.run(
        [sys.executable, "-m", "torchann", "bench", "matmul", "--shape", "4x8x2", "--repeats", "2",
         "--devices", "cpu", "--json"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["rows"][0]["dtype"] == "float32"


def test_cpu_capability_and_both_dtypes_are_reported():
    from torchann.runtime.devices import cpu_capability

    rep = bench_matmul((8, 16, 4), dtype="float32", devices="cpu", repeats=2, warmup=0)
    assert rep.capability == cpu_capability().describe() and "bf16" in rep.capability
    assert [(r.device, r.dtype) for r in rep.other_dtype] == [("cpu", "bfloat16")]
    other = rep.find("cpu", "bfloat16")
    assert other is rep.other_dtype[0] and other.gflops == pytest.approx(2 * 8 * 16 * 4 / other.median_s / 1e9)
    assert other.max_rel_error <= 1e-2  # the bf16 product of the same inputs, checked against float64
    back = bench_matmul((8, 16, 4), dtype="bf16", devices="cpu", repeats=2, warmup=0)
    assert [(r.device, r.dtype) for r in back.other_dtype] == [("cpu", "float32")]
    assert bench_matmul((8, 16, 4), dtype="fp64", devices="cpu", repeats=2, warmup=0).other_dtype == []
    assert bench_matmul((8, 16, 4), devices="numpy", repeats=2, warmup=0).other_dtype == []


def test_cli_shows_the_capability_and_both_dtypes():
    from torchann.cli import app

    result = CliRunner().invoke(app, ["bench", "matmul", "--shape", "8x16x4", "--devices", "cpu", "--repeats", "2"])
    assert result.exit_code == 0, result.output
    assert "CPU capability: " in result.output and "bf16" in result.output
    lines = [line.split() for line in result.output.splitlines()]
    assert any(p[:2] == ["cpu", "float32"] for p in lines) and any(p[:2] == ["cpu", "bfloat16"] for p in lines)
    data = json.loads(CliRunner().invoke(app, ["bench", "matmul", "--shape", "8x16x4", "--devices", "cpu",
                                               "--repeats", "2", "--json"]).stdout)
    assert data["capability"] and [r["dtype"] for r in data["other_dtype"]] == ["bfloat16"]
