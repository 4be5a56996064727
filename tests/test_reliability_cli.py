"""The real command, as a user runs it: Ctrl-C and SIGKILL during `torchann train`, then --resume.

Three processes train the same run: one is never disturbed, one gets SIGINT, one gets
SIGKILL. The two disturbed runs are resumed with ``torchann train --resume RUN``; all three
must end with the same weights, bit for bit, and the same history.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

pytestmark = pytest.mark.slow


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "torchann", *args]


def _train(data: Path, out: Path, every: int) -> list[str]:
    return _command("train", str(data), "--target", "y", "--hidden", "16", "--epochs", "10", "--batch-size", "2",
                    "--lr", "0.01", "--seed", "3", "--device", "cpu", "--checkpoint-every", str(every),
                    "--out", str(out), "--quiet")


def _history(out: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (out / "history.jsonl").read_text().splitlines()]


def test_ctrl_c_and_sigkill_then_resume_match_an_undisturbed_run(tmp_path):
    gen = torch.Generator().manual_seed(0)
    ab = torch.rand(40, 2, generator=gen)
    data = tmp_path / "add.csv"
    data.write_text("a,b,y\n" + "".join(f"{a:.6f},{b:.6f},{a + b:.6f}\n" for a, b in ab.tolist()))
    ref, interrupted, killed = tmp_path / "ref", tmp_path / "int", tmp_path / "kill"

    reference = subprocess.Popen(_train(data, ref, 1000), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ctrl_c = subprocess.Popen(_train(data, interrupted, 1), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    kill = subprocess.Popen(_train(data, killed, 1), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # latest.json appears once the first epoch's checkpoint is complete: training is running.
        signals = {ctrl_c: (interrupted / "checkpoint" / "latest.json", signal.SIGINT),
                   kill: (killed / "checkpoint" / "latest.json", signal.SIGKILL)}
        deadline = time.monotonic() + 120
        while signals:
            for proc, (path, sig) in list(signals.items()):
                if path.exists():
                    proc.send_signal(sig)
                    del signals[proc]
                else:
                    assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "training never started"
            time.sleep(0.002)
        _, err = ctrl_c.communicate(timeout=120)
        kill.communicate(timeout=120)
        assert reference.wait(timeout=300) == 0, reference.communicate()
    finally:
        for proc in (reference, ctrl_c, kill):
            proc.kill()

    # Ctrl-C: one line saying where the checkpoint is and how to continue; no traceback.
    assert ctrl_c.returncode == 130, err
    assert "interrupted at epoch" in err and f"torchann train --resume {interrupted}" in err, err
    assert "Traceback" not in err and err.count("\n") == 1
    assert kill.returncode == -signal.SIGKILL

    from torchann.training.checkpoint import load_state

    for run in (interrupted, killed):
        state = load_state(run)  # the checkpoint latest.json names is complete
        assert 0 <= state["epoch"] <= 10
    resumes = [subprocess.Popen(_command("train", "--resume", str(run), "--quiet"), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for run in (interrupted, killed)]
    for proc in resumes:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    expected = load_file(str(ref / "weights.safetensors"))
    for run in (interrupted, killed):
        got = load_file(str(run / "weights.safetensors"))
        assert got.keys() == expected.keys()
        assert all(torch.equal(got[k], expected[k]) for k in expected), run
        assert _history(run) == _history(ref)
