"""precision="auto": bf16 only where the hardware runs it natively, the step is large and a
timing of the step finds bf16 faster.

The CPU's capability is read from a fake /proc/cpuinfo and the environment, so the decision
is checked on any machine; every timing involved (the step's fp32 and bf16 times, the cost
quoted by the bf16 warning) is injected.
"""

from __future__ import annotations

import warnings

import pytest
import torch

import torchann
from torchann.runtime import devices
from torchann.core.choices import Precision
from torchann.runtime.devices import BF16_GAIN, BF16_MIN_FLOPS, bf16_step_times, cpu_capability, resolve_precision
from torchann.runtime.measure import MeasuredCache

CPU = torch.device("cpu")


def _cpuinfo(tmp_path, flags):
    path = tmp_path / "cpuinfo"
    path.write_text(f"processor\t: 0\nmodel name\t: Test CPU\nflags\t\t: fpu sse2 {flags}\n\n"
                    f"processor\t: 1\nflags\t\t: fpu\n")
    return str(path)


@pytest.mark.parametrize("flags, environ, native", [
    ("avx2 avx512f avx512_bf16 amx_bf16 amx_tile", {}, True),      # Sapphire Rapids and later
    ("avx2 avx512f avx512_bf16", {}, True),                        # Cooper Lake, Zen 4
    ("avx2 avx512f", {}, False),                                   # Skylake-SP: bf16 through float32
    ("avx2 fma", {}, False),                                       # AVX2 only
    ("avx2 avx512f avx512_bf16 amx_bf16", {"ONEDNN_MAX_CPU_ISA": "AVX2"}, False),  # oneDNN held below bf16
    ("avx2 avx512f avx512_bf16 amx_bf16", {"ONEDNN_MAX_CPU_ISA": "avx512_core_amx"}, True),
])
def test_native_bf16_from_cpu_flags(tmp_path, flags, environ, native):
    cap = cpu_capability(cpuinfo=_cpuinfo(tmp_path, flags), environ=environ, torch_isa="AVX512")
    assert cap.native_bf16 is native
    assert cap.describe().startswith("AVX512 (") and cap.describe().endswith("native bf16")
    assert ("no native" in cap.describe()) is (not native)


def test_no_cpuinfo_means_no_native_bf16(tmp_path):
    cap = cpu_capability(cpuinfo=str(tmp_path / "missing"), environ={}, torch_isa="DEFAULT")
    assert not cap.native_bf16 and cap.flags == frozenset()


@pytest.mark.parametrize("native, flops, times, expected", [
    (True, BF16_MIN_FLOPS, (1.0, 0.5), Precision.BF16),                  # native, large, timed 2x faster
    (True, BF16_MIN_FLOPS, (BF16_GAIN, 1.0), Precision.BF16),            # just the margin
    (True, BF16_MIN_FLOPS, (BF16_GAIN - 0.01, 1.0), Precision.FP32),     # faster, but within the margin
    (True, 1e12, (1.0, 1.26), Precision.FP32),                           # native but timed slower: fp32
    (True, BF16_MIN_FLOPS - 1, None, Precision.FP32),   # small layers: the casts cost more; nothing timed
    (False, 100 * BF16_MIN_FLOPS, None, Precision.FP32),  # no native bf16: never, and nothing timed
])
def test_auto_picks_bf16_only_native_large_and_timed_faster(native, flops, times, expected):
    calls = []

    def timing():
        calls.append(1)
        assert times is not None, "timed a step that the native or work check already settled"
        return times

    assert resolve_precision("auto", CPU, flops, native=native, timing=timing, measure=_no_measure) is expected
    assert len(calls) == (times is not None)


def test_auto_never_picks_bf16_on_a_cpu_without_it_however_fast_bf16_times(monkeypatch, tmp_path):
    # An AVX2-only CPU (an EPYC without AVX512): the flags as /proc/cpuinfo gives them.
    cap = cpu_capability(cpuinfo=_cpuinfo(tmp_path, "avx avx2 fma"), environ={}, torch_isa="AVX2")
    monkeypatch.setattr(devices, "cpu_capability", lambda: cap)
    for flops in (BF16_MIN_FLOPS, 1e15):
        assert resolve_precision("auto", CPU, flops, timing=lambda: (10.0, 1.0)) is Precision.FP32
    assert resolve_precision("auto", CPU, 1e15) is Precision.FP32  # and without a timing at all


def test_auto_without_a_timing_keeps_fp32():
    assert resolve_precision("auto", CPU, 1e12, native=True, timing=None) is Precision.FP32


def _fake_timer(seconds, calls):
    """``measure.step_timer`` without a clock: a step takes ``seconds[dtype]``."""

    def make(shapes, rows, device):
        calls.append((shapes, rows))
        return lambda dtype: seconds[dtype]

    return make


def test_bf16_step_times_measures_once_per_shape_and_caches(monkeypatch):
    calls = []
    monkeypatch.setattr(devices, "step_timer", _fake_timer({torch.float32: 3.0, torch.bfloat16: 1.0}, calls))
    cache = MeasuredCache()
    shapes = ((32, 256), (256, 1))
    assert bf16_step_times(shapes, 1024, CPU, cache=cache) == (3.0, 1.0)
    assert bf16_step_times(shapes, 1024, CPU, cache=cache) == (3.0, 1.0)
    assert calls == [(shapes, 1024)]  # the second answer came from the cache
    assert bf16_step_times(shapes, 32, CPU, cache=cache) == (3.0, 1.0)  # another row count: timed again
    assert calls == [(shapes, 1024), (shapes, 32)]
    cache.clear()
    bf16_step_times(shapes, 1024, CPU, cache=cache)
    assert len(calls) == 3


def _no_measure():
    raise AssertionError("no cost to measure here")


def test_explicit_choices_stay(monkeypatch):
    monkeypatch.setattr(devices, "_warned_bf16", False)
    assert resolve_precision("fp32", CPU, 1e12, native=True, measure=_no_measure) is Precision.FP32
    assert resolve_precision("bf16", CPU, 1.0, native=True, measure=_no_measure) is Precision.BF16
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert resolve_precision("bf16", torch.device("cuda"), 1.0, native=False, measure=_no_measure) is Precision.BF16


def test_explicit_bf16_without_native_support_warns_once_with_the_measured_cost(monkeypatch):
    monkeypatch.setattr(devices, "_warned_bf16", False)
    with pytest.warns(RuntimeWarning, match=r"precision='bf16' on a CPU without native bfloat16 .*runs at 5 "
                                            r"GFLOP/s in bf16 against 120 in fp32 here \(24\.0x slower\); use "
                                            r"precision='auto' or 'fp32'"):
        assert resolve_precision("bf16", CPU, 1.0, native=False, measure=lambda: (120.0, 5.0)) is Precision.BF16
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the second time: silent
        assert resolve_precision("bf16", CPU, 1.0, native=False, measure=_no_measure) is Precision.BF16


def test_bad_precision_names_the_choices():
    with pytest.raises(torchann.UsageError, match=r"unknown precision 'bf61'; choose one of: auto, fp32, bf16"):
        resolve_precision("bf61", CPU, 1.0, native=True)


def _tutorial_fit(**options):
    # The tutorial's §2.1: a 2-8-1 ReLU net adds two numbers, SGD lr 0.001, batch 2.
    x = torch.tensor([[float(a), float(b)] for a in range(5) for b in range(4)])
    torch.manual_seed(0)
    model = torchann.mlp(2, [8], 1)
    history = torchann.fit(model, x, x.sum(1, keepdim=True), epochs=5, batch_size=2, optimizer="sgd", lr=1e-3,
                           seed=0, device="cpu", **options)
    return model, history


def test_auto_keeps_the_tutorials_float32_numbers_on_a_bf16_machine(monkeypatch):
    monkeypatch.setattr(devices, "native_bf16", lambda device: True)
    auto_model, auto_history = _tutorial_fit()  # precision="auto" is fit's default
    fp32_model, fp32_history = _tutorial_fit(precision="fp32")
    assert auto_history.info["precision"] == "fp32"
    assert auto_history.losses == fp32_history.losses
    for a, b in zip(auto_model.state_dict().values(), fp32_model.state_dict().values()):
        assert torch.equal(a, b)


@pytest.mark.parametrize("native, seconds, expected", [
    (True, {torch.float32: 2.0, torch.bfloat16: 1.0}, "bf16"),
    (True, {torch.float32: 1.0, torch.bfloat16: 1.2}, "fp32"),   # native, but this step times slower in bf16
    (False, {torch.float32: 2.0, torch.bfloat16: 1.0}, "fp32"),
])
def test_fit_records_the_precision_auto_chose(monkeypatch, native, seconds, expected):
    monkeypatch.setattr(devices, "native_bf16", lambda device: native)
    calls = []
    monkeypatch.setattr(devices, "step_timer", _fake_timer(seconds, calls))
    devices.PRECISION_TIMES.clear()
    x, y = torch.randn(1024, 32), torch.randn(1024, 1)
    model = torchann.mlp(32, [256, 256], 1)  # 6 * 1024 * 74_497 = 458 MFLOP per step
    try:
        history = torchann.fit(model, x, y, epochs=1, batch_size=1024, seed=0, device="cpu")
    finally:
        devices.PRECISION_TIMES.clear()
    assert history.info["precision"] == expected
    assert calls == ([(((32, 256), (256, 256), (256, 1)), 1024)] if native else [])  # the model's own shapes


def test_options_default_is_auto():
    from torchann.core.options import option_default, option_help

    assert option_default("precision") == "auto"
    assert "natively" in option_help("precision")


def test_auto_on_an_avx2_only_cpu_trains_exactly_what_fp32_trains(monkeypatch, tmp_path):
    # A step of 458 MFLOP, past BF16_MIN_FLOPS: on an AVX2-only CPU auto must run fp32's own code,
    # so that it cannot cost more than fp32 (nothing is timed, nothing is cast).
    cap = cpu_capability(cpuinfo=_cpuinfo(tmp_path, "avx avx2 fma"), environ={}, torch_isa="AVX2")
    monkeypatch.setattr(devices, "cpu_capability", lambda: cap)
    monkeypatch.setattr(devices, "step_timer", lambda *a: pytest.fail("timed a step on a CPU without native bf16"))
    x, y = torch.randn(2048, 32), torch.randn(2048, 1)
    runs = {}
    for precision in ("auto", "fp32"):
        torch.manual_seed(0)
        model = torchann.mlp(32, [256, 256], 1)
        history = torchann.fit(model, x, y, epochs=1, batch_size=1024, seed=0, device="cpu", precision=precision)
        runs[precision] = (model.state_dict(), history)
    assert runs["auto"][1].info["precision"] == "fp32"
    assert runs["auto"][1].losses == runs["fp32"][1].losses
    for name, value in runs["auto"][0].items():
        assert torch.equal(value, runs["fp32"][0][name]), name
