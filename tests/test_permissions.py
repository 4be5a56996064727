"""Every output gets the permissions a plain ``open()`` / ``mkdir()`` would give under the umask.

The oracle is the file system itself: a file made with ``open(path, "w")`` and a folder made
with ``os.mkdir`` under the same umask, side by side with torchann's outputs.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from torchann.cli import app
from torchann.core import files

runner = CliRunner()
UMASKS = [0o022, 0o027, 0o077]


@pytest.fixture
def umask(request):
    previous = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _plain_modes(folder: Path) -> tuple[int, int]:
    """What open() and mkdir() give here, now: the bits every torchann output must have."""
    with open(folder / "plain-file", "w"):
        pass
    os.mkdir(folder / "plain-dir")
    return _mode(folder / "plain-file"), _mode(folder / "plain-dir")


def _table(path: Path) -> Path:
    rows = [(a, b, ["n", "s", ""][(a + b) % 3]) for a in range(8) for b in range(4)]
    path.write_text("a,b,zone,y\n" + "".join(f"{a},{b},{z},{a + 2 * b}\n" for a, b, z in rows))
    return path


@pytest.mark.parametrize("umask", UMASKS, indirect=True, ids=lambda m: f"umask{m:03o}")
def test_run_folder_report_onnx_and_predictions_follow_the_umask(tmp_path, umask):
    pytest.importorskip("onnx")
    file_mode, dir_mode = _plain_modes(tmp_path)
    assert (file_mode, dir_mode) == (0o666 & ~umask, 0o777 & ~umask)  # the oracle is what the docs say
    data = _table(tmp_path / "t.csv")
    run = tmp_path / "runs" / "t"
    result = runner.invoke(app, ["train", str(data), "--target", "y", "--epochs", "2", "--hidden", "4",
                                 "--quiet", "--checkpoint-every", "1", "--out", str(run)])
    assert result.exit_code == 0, result.output
    assert _mode(tmp_path / "runs") == dir_mode and _mode(run) == dir_mode
    written = [p for p in run.rglob("*") if p.name != ".lock"]
    assert {"spec.json", "weights.safetensors", "history.jsonl", "loss.png", "report.html"} <= {p.name for p in written}
    assert any(p.parent.name == "checkpoint" for p in written)
    for path in written:
        assert _mode(path) == (dir_mode if path.is_dir() else file_mode), path

    report = tmp_path / "out" / "again.html"
    assert runner.invoke(app, ["report", str(run), "--out", str(report)]).exit_code == 0
    onnx_file = tmp_path / "model.onnx"
    assert runner.invoke(app, ["export", str(run), "--out", str(onnx_file)]).exit_code == 0
    csv_out = tmp_path / "preds.csv"
    assert runner.invoke(app, ["predict", str(run), "--data", str(data), "--out", str(csv_out)]).exit_code == 0
    small = tmp_path / "small.csv"  # --input rows are written by the in-memory path, not the streamed one
    assert runner.invoke(app, ["predict", str(run), "--input", "1,2,n", "--out", str(small)]).exit_code == 0
    for path in (report, onnx_file, csv_out, small):
        assert _mode(path) == file_mode, path
    assert _mode(report.parent) == dir_mode


@pytest.mark.parametrize("umask", UMASKS, indirect=True, ids=lambda m: f"umask{m:03o}")
def test_atomic_writes_replace_a_file_with_the_umask_bits(tmp_path, umask):
    target = tmp_path / "a.txt"
    target.write_text("old")
    os.chmod(target, 0o600)  # a rewrite gives a new file, made as open() would make it now
    files.atomic_write_text(target, "new")
    assert target.read_text() == "new" and _mode(target) == 0o666 & ~umask
    with files.atomic_dir(tmp_path / "d") as stage:
        (stage / "x").write_text("1")
    assert _mode(tmp_path / "d") == 0o777 & ~umask
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "d"]  # no temporaries left


@pytest.mark.parametrize("mask", UMASKS, ids=lambda m: f"umask{m:03o}")
def test_current_umask_reads_without_changing_it(mask):
    if files._proc_umask() is None:
        pytest.skip("no Umask line in /proc/self/status on this system")
    previous = os.umask(mask)
    try:
        assert files.current_umask() == mask
        assert files.file_mode() == 0o666 & ~mask
        assert os.umask(mask) == mask  # reading left it as it was
    finally:
        os.umask(previous)


def test_current_umask_without_proc_is_the_mask_at_import(monkeypatch):
    monkeypatch.setattr(files, "_proc_umask", lambda: None)
    monkeypatch.setattr(files, "_IMPORT_UMASK", 0o027)
    assert files.current_umask() == 0o027 and files.file_mode() == 0o640
