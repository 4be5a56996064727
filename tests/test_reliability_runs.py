"""`torchann train` and its run folder: nothing the user owns is written over, one process per
folder, and a full disk at the final save keeps the trained model."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from torchann.core import files
from torchann.model import final_save, rundir
from torchann.cli import app


def _train(*extra: str):
    return CliRunner().invoke(app, ["train", "add", "--epochs", "2", "--quiet", *extra])


def _listing(d: Path) -> list[str]:
    return sorted(str(p.relative_to(d)) for p in d.rglob("*"))


@pytest.fixture
def here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_default_runs_get_fresh_folders_named_after_the_data(here):
    first, second = _train(), _train()
    assert first.exit_code == 0 and second.exit_code == 0, (first.output, second.output)
    assert "wrote runs/add/" in first.stderr and "wrote runs/add-2/" in second.stderr
    assert {"spec.json", "weights.safetensors", "history.jsonl", "loss.png"} <= set(os.listdir(here / "runs" / "add-2"))


def test_an_existing_run_needs_overwrite(here):
    assert _train("--out", "run").exit_code == 0
    spec = (here / "run" / "spec.json").read_bytes()
    again = _train("--out", "run", "--seed", "1")
    assert again.exit_code == 2
    assert again.stderr == ("error: run already holds a torchann run; pass --overwrite to replace it, --resume run to "
                            "continue it, or choose another --out\n")
    assert (here / "run" / "spec.json").read_bytes() == spec
    replaced = _train("--out", "run", "--seed", "1", "--overwrite")
    assert replaced.exit_code == 0 and (here / "run" / "spec.json").read_bytes() != spec
    assert not (here / "run" / rundir.LOCK_FILE).exists()


@pytest.mark.parametrize("out", [".", "mine"])
def test_the_current_folder_and_a_users_folder_are_never_written(here, out):
    (here / "mine").mkdir()
    (here / "mine" / "loss.png").write_text("my own plot")
    (here / "notes.txt").write_text("mine too")
    before = _listing(here)
    result = _train("--out", out, "--overwrite")
    assert result.exit_code == 2 and result.stderr.count("\n") == 1, result.output
    assert result.stderr.startswith("error: --out . is the current folder" if out == "." else
                                    "error: mine is not empty and not a torchann run (it holds loss.png)")
    assert _listing(here) == before and (here / "mine" / "loss.png").read_text() == "my own plot"


def test_a_second_process_on_the_same_folder_stops_with_one_line(here):
    with rundir.claim_run_dir("run"):  # another run holds the folder
        result = _train("--out", "run")
    assert result.exit_code == 2
    assert result.stderr == (f"error: run is in use by another torchann run (process {os.getpid()}); wait for it to "
                             f"end or choose another --out\n")
    assert _listing(here) == []


def test_bad_input_leaves_no_run_folder(here):
    result = CliRunner().invoke(app, ["train", "add", "--target", "nope", "--quiet"])
    assert result.exit_code == 2 and _listing(here) == []


def test_a_full_disk_at_the_final_save_keeps_the_model_and_says_where(here, monkeypatch):
    monkeypatch.setattr(final_save.tempfile, "tempdir", str(here / "elsewhere"))
    (here / "elsewhere").mkdir()
    real = os.replace

    def full_under_run(src, dst, *a, **kw):
        if str(dst).startswith("run") and str(dst).endswith("weights.safetensors"):  # the final save
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(src, dst, *a, **kw)

    monkeypatch.setattr(files.os, "replace", full_under_run)
    result = _train("--out", "run")
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    rescued = next((here / "elsewhere").glob("torchann-run-*/run"), None)
    assert rescued is not None, result.output
    assert result.stderr.splitlines()[-1] + "\n" == (f"error: cannot write run/weights.safetensors: no space left on the device (No space left "
                             f"on device); the trained model was saved to {rescued} instead: move it where it belongs "
                             f"(e.g. mv {rescued} run) after freeing space\n")
    monkeypatch.setattr(files.os, "replace", real)
    import torchann

    assert torchann.load(rescued).predict([[10, 11]]).shape == (1,)
    assert not [n for n in os.listdir(here) if n.startswith(".")]  # no temporary left beside the run
    # the run folder keeps what training recorded epoch by epoch, nothing half-written
    assert _listing(here / "run") == ["history.jsonl"]
