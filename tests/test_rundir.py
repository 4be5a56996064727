"""Run folders: never write over what the user owns, one process per folder, room checked first."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pytest

from torchann.core import files
from torchann.model import final_save, rundir
from torchann.core.errors import UsageError
from torchann.core.files import StorageError
from torchann.model.rundir import LOCK_FILE, RunDirBusy, claim_run_dir
from torchann.model.run_args import args_schema, read_args


def _listing(d: Path) -> list[str]:
    return sorted(str(p.relative_to(d)) for p in d.rglob("*"))


def _make_run(path: Path, *, checkpoint: bool = False) -> None:
    path.mkdir(parents=True)
    (path / "spec.json").write_text('{\n  "format": "torchann.model/1"\n}')
    (path / "history.jsonl").write_text('{"epoch": 1}\n')
    if checkpoint:
        (path / "checkpoint").mkdir()
        (path / "checkpoint" / "latest.json").write_text('{"name": "x"}')


@pytest.fixture
def here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("data, name", [
    ("data.csv", "data"), ("dir/sales.csv.gz", "sales"), ("sklearn:iris", "iris"), ("moons", "moons"),
    ("x y;$(rm).parquet", "x_y_rm"), (None, "train"), ("...", "train"),
])
def test_default_run_name(data, name):
    assert rundir.default_run_name(data) == name


def test_default_folder_is_named_after_the_data_and_never_reused(here):
    first = claim_run_dir(None, data="sales.csv")
    assert first.path == Path("runs/sales") and first.chosen
    _make_run(Path("runs/sales-2"))  # a run already there: skipped
    (here / "runs" / "sales-3").write_text("a file")  # a file: skipped
    second = claim_run_dir(None, data="sales.csv")  # runs/sales is held (locked) by the first
    assert second.path == Path("runs/sales-4")
    first.release(), second.release()
    assert _listing(here) == ["runs", "runs/sales-2", "runs/sales-2/history.jsonl", "runs/sales-2/spec.json",
                              "runs/sales-3"]  # the two claimed folders stayed empty: removed again


def test_an_empty_default_folder_is_used(here):
    (here / "runs" / "add").mkdir(parents=True)
    with claim_run_dir(None, data="add") as run:
        assert run.path == Path("runs/add")
    assert (here / "runs" / "add").is_dir()  # it was there before: kept


def test_two_default_runs_get_two_folders(here):
    with claim_run_dir(None, data="add") as a:
        (a.path / "spec.json").write_text('{"format": "torchann.model/1"}')
        with claim_run_dir(None, data="add") as b:
            assert (a.path, b.path) == (Path("runs/add"), Path("runs/add-2"))


@pytest.mark.parametrize("out", [".", "./", "..", "sub/.."])
def test_the_current_folder_and_its_parents_are_refused(here, out):
    before = _listing(here)
    with pytest.raises(UsageError, match="a run writes spec.json, checkpoint/ and more there"):
        claim_run_dir(out)
    assert _listing(here) == before


def test_a_folder_that_is_not_a_run_is_refused_untouched(here):
    (here / "mine").mkdir()
    (here / "mine" / "notes.txt").write_text("precious")
    (here / "mine" / "spec.json").write_text("also mine")
    with pytest.raises(UsageError, match=r"mine is not empty and not a torchann run \(it holds notes.txt, spec.json\)"):
        claim_run_dir("mine", overwrite=True)
    assert _listing(here) == ["mine", "mine/notes.txt", "mine/spec.json"]


def test_an_existing_run_needs_overwrite(here):
    _make_run(here / "run", checkpoint=True)
    with pytest.raises(UsageError, match="run already holds a torchann run; pass --overwrite to replace it, "
                                         "--resume run to continue it"):
        claim_run_dir("run")
    assert (here / "run" / "checkpoint").is_dir()
    with claim_run_dir("run", resume=True) as run:  # resuming keeps the checkpoints
        assert run.existed and (here / "run" / "checkpoint" / "latest.json").is_file()
    with claim_run_dir("run", overwrite=True) as run:  # overwriting drops the old run's checkpoints
        assert run.existed and not (here / "run" / "checkpoint").exists()
        assert (here / "run" / "spec.json").is_file()  # the old model stays until the new one is saved
        assert (here / "run" / LOCK_FILE).is_file()
    assert not (here / "run" / LOCK_FILE).exists()


def test_resume_needs_a_run(here):
    with pytest.raises(UsageError, match="new: no run to resume here"):
        claim_run_dir("new", resume=True)
    with pytest.raises(UsageError, match="resume needs the run folder"):
        claim_run_dir(None, resume=True)
    assert _listing(here) == []


def test_out_that_is_a_file_is_refused(here):
    (here / "f.csv").write_text("a\n1\n")
    with pytest.raises(UsageError, match="f.csv exists and is not a folder"):
        claim_run_dir("f.csv")


def test_a_new_nested_folder_is_made_and_removed_when_unused(here):
    run = claim_run_dir("a/b/c")
    assert run.created == [Path("a"), Path("a/b"), Path("a/b/c")]
    assert _listing(here) == ["a", "a/b", "a/b/c", f"a/b/c/{LOCK_FILE}"]
    run.release()
    assert _listing(here) == []


def test_a_second_claim_of_a_held_folder_is_refused_with_the_holders_pid(here):
    with claim_run_dir("run"):
        with pytest.raises(RunDirBusy, match=rf"run is in use by another torchann run \(process {os.getpid()}\)"):
            claim_run_dir("run")
    claim_run_dir("run").release()  # free again


_CHILD = textwrap.dedent("""
    import os, sys
    from torchann.model.rundir import claim_run_dir, RunDirBusy
    mode = sys.argv[1]
    try:
        run = claim_run_dir("run", overwrite=True)
    except RunDirBusy as err:
        print("busy:", err); sys.exit(3)
    print("claimed", flush=True)
    if mode == "crash":
        os._exit(9)  # no release: the kernel drops the lock with the process
    run.release()
""")


def _child(here: Path, mode: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", _CHILD, mode], cwd=here, capture_output=True, text=True, timeout=120)


def test_two_processes_one_folder(here):
    run = claim_run_dir("run")
    other = _child(here, "release")
    assert other.returncode == 3, other.stderr
    assert f"run is in use by another torchann run (process {os.getpid()})" in other.stdout
    run.release()
    assert _child(here, "release").returncode == 0
    crashed = _child(here, "crash")  # holds the lock and dies without releasing it
    assert crashed.returncode == 9 and "claimed" in crashed.stdout
    with claim_run_dir("run", overwrite=True) as again:  # a dead holder holds nothing
        assert again.path == Path("run")


def test_a_lock_file_unlinked_by_its_releasing_holder_is_not_trusted(here, monkeypatch):
    """The holder unlinks the lock file before it unlocks; a claimer that opened the old file in
    between must notice the name now leads elsewhere and lock again."""
    first = claim_run_dir("run")
    real_flock = __import__("fcntl").flock
    calls = []

    def flock_after_release(fd, op):
        calls.append(fd)
        if len(calls) == 1:
            first.release()  # the holder lets go right between our open and our flock
        return real_flock(fd, op)

    monkeypatch.setattr("fcntl.flock", flock_after_release)
    with claim_run_dir("run") as second:
        assert len(calls) == 2  # the first lock was on the unlinked file: taken again
        assert os.path.samestat(os.fstat(second._fd), os.stat(here / "run" / LOCK_FILE))


def test_a_full_disk_is_found_before_training(here, monkeypatch):
    real = rundir.shutil.disk_usage
    monkeypatch.setattr(rundir.shutil, "disk_usage", lambda p: real(p)._replace(free=1000))
    with pytest.raises(StorageError, match=r"run: 1,000 bytes free on its disk, but the run needs about 2,048,576"):
        claim_run_dir("run", need_bytes=2_048_576)
    assert _listing(here) == []
    assert StorageError.exit_code == 1


def test_estimate_run_bytes():
    assert rundir.estimate_run_bytes(1000) == 8000 + (1 << 20)
    assert rundir.estimate_run_bytes(1000, checkpoint=True) == 8000 + 24000 + (1 << 20)


@pytest.mark.parametrize("code, cls, fragment", [
    (errno.EROFS, UsageError, "cannot write in run: Read-only file system; choose a folder you can write to"),
    (errno.EACCES, UsageError, "cannot write in run: Permission denied"),
    (errno.ENOSPC, StorageError, "cannot write in run: no space left on the device"),
])
def test_an_unwritable_folder_is_found_before_training(here, monkeypatch, code, cls, fragment):
    real_open = os.open

    def refuse(path, flags, *args):
        if str(path).endswith(LOCK_FILE):
            raise OSError(code, os.strerror(code))
        return real_open(path, flags, *args)

    monkeypatch.setattr(rundir.os, "open", refuse)
    with pytest.raises(cls, match=fragment):
        claim_run_dir("run")
    assert _listing(here) == []


# -- the final save on a full disk ------------------------------------------------------------


def _full(path: Path) -> None:
    raise StorageError(f"cannot write {path}/weights.safetensors: no space left on the device (No space left on "
                       f"device); free some space or choose another place")


def test_final_save_on_a_full_disk_saves_elsewhere_and_says_where(here, monkeypatch):
    monkeypatch.setattr(final_save.tempfile, "tempdir", str(here / "tmp"))
    (here / "tmp").mkdir()
    saved = []

    def save(path: Path) -> None:
        if path == Path("run"):
            _full(path)
        path.mkdir(parents=True)
        (path / "spec.json").write_text("{}")
        saved.append(path)

    with pytest.raises(StorageError) as err:
        final_save.save_final(save, "run")
    rescue = saved[0]
    assert rescue.parent.parent == here / "tmp" and rescue.name == "run"
    assert str(err.value) == (f"cannot write run/weights.safetensors: no space left on the device (No space left on "
                              f"device); the trained model was saved to {rescue} instead: move it where it belongs "
                              f"(e.g. mv {rescue} run) after freeing space")
    assert (rescue / "spec.json").is_file()


def test_final_save_with_no_space_anywhere_names_the_last_checkpoint(here, monkeypatch):
    monkeypatch.setattr(final_save.tempfile, "tempdir", str(here))
    ck = here / "run" / "checkpoint"
    (ck / "epoch-000007-step-000000").mkdir(parents=True)
    (ck / "latest.json").write_text(json.dumps({"name": "epoch-000007-step-000000"}))
    with pytest.raises(StorageError, match=r"the last checkpoint, .*epoch-000007-step-000000, holds the weights of "
                                           r"that epoch: free space, then --resume"):
        final_save.save_final(_full, "run", checkpoint=ck)


def test_final_save_passes_other_errors_through(here):
    def boom(path):
        raise ValueError("not a disk problem")

    with pytest.raises(ValueError):
        final_save.save_final(boom, "run")


def test_final_save_returns_the_folder(here):
    assert final_save.save_final(lambda p: None, "run") == Path("run")


# -- args.json ---------------------------------------------------------------------------------


@dataclass
class _Args:
    data: Optional[str] = None
    hidden: list[int] = None  # type: ignore[assignment]
    lr: float = 1e-3
    epochs: int = 100
    scale: bool = True


SCHEMA = args_schema(_Args)


@pytest.mark.parametrize("text, fragment", [
    ('{"data": "x.csv", "lr": 0.1', "args.json: malformed JSON (Expecting ',' delimiter at line 1, column 28)"),
    ("", "args.json: malformed JSON (Expecting value at line 1, column 1)"),
    ("[1, 2]", "args.json: expected a JSON object of argument names and values, got list"),
    ('"data"', "expected a JSON object of argument names and values, got str"),
    ('{"lr": NaN}', "args.json: field lr holds NaN, which is not a finite number"),
    ('{"lr": -Infinity}', "args.json: field lr holds -Infinity, which is not a finite number"),
    ('{"lr": 1e999}', "args.json: field lr holds 1e999, which is not a finite number"),
    ('{"epochs": ' + "9" * 5000 + "}", "args.json: field epochs holds an integer of 5000 digits"),
    ('{"epochs": "ten"}', "args.json: field 'epochs' holds 'ten', expected int"),
    ('{"epochs": 1.5}', "args.json: field 'epochs' holds 1.5, expected int"),
    ('{"scale": 1}', "args.json: field 'scale' holds 1, expected bool"),
    ('{"hidden": [8, "x"]}', "args.json: field 'hidden' holds [8, 'x'], expected list[int]"),
    ('{"data": 3}', "args.json: field 'data' holds 3, expected Optional[str]"),
    ('{"layers": 3}', "args.json: unknown field 'layers'; valid fields: data, hidden, lr, epochs, scale"),
    (b"\xff\xfe{}", "args.json: not UTF-8 text"),
    ("[" * 100000 + "]" * 100000, "args.json: JSON nested too deeply"),
])
def test_damaged_args_json_is_one_line_naming_the_field(tmp_path, text, fragment):
    path = tmp_path / "args.json"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(UsageError) as err:
        read_args(path, SCHEMA)
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_args_json_round_trip(tmp_path):
    path = tmp_path / "args.json"
    path.write_text(json.dumps({"data": "x.csv", "hidden": [8, 8], "lr": 1, "epochs": 3, "scale": False}))
    assert read_args(path, SCHEMA) == {"data": "x.csv", "hidden": [8, 8], "lr": 1, "epochs": 3, "scale": False}
    assert read_args(path) == read_args(path, SCHEMA)


def test_args_json_missing_or_not_a_file(tmp_path):
    with pytest.raises(UsageError, match="args.json: missing; resume a run that was trained with --checkpoint-every"):
        read_args(tmp_path / "args.json")
    os.mkfifo(tmp_path / "fifo.json")
    with pytest.raises(UsageError, match=r"fifo.json is a named pipe \(FIFO\), not a regular file"):
        read_args(tmp_path / "fifo.json")  # would block forever if opened for reading
    (tmp_path / "big.json").write_bytes(b" " * (2 << 20))
    with pytest.raises(UsageError, match="big.json: 2,097,152 bytes, more than the 1,048,576"):
        read_args(tmp_path / "big.json")


def test_is_run_dir(tmp_path):
    assert not rundir.is_run_dir(tmp_path)  # empty
    _make_run(tmp_path / "r")
    (tmp_path / "r" / ".spec.json.abc.tmp").write_text("")  # an interrupted write's temporary
    assert rundir.is_run_dir(tmp_path / "r")
    (tmp_path / "r" / "notes.txt").write_text("")
    assert not rundir.is_run_dir(tmp_path / "r")
    (tmp_path / "plots").mkdir()
    (tmp_path / "plots" / "loss.png").write_text("a user's own plot")  # the name alone is not a run
    assert not rundir.is_run_dir(tmp_path / "plots")
    (tmp_path / "c" / "checkpoint").mkdir(parents=True)
    (tmp_path / "c" / "checkpoint" / "args.json").write_text("{}")  # stopped before its first checkpoint
    assert rundir.is_run_dir(tmp_path / "c")
    assert not rundir.is_run_dir(tmp_path / "missing")
    assert files.StorageError is StorageError
