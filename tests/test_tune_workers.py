"""Workers of one study: one killed with SIGKILL mid-trial leaves it usable, and two processes
share a study on one machine (Optuna's journal file storage). Real processes, and the moment
of the kill and the overlap of the two workers are reached by hooks, never by timing."""

from __future__ import annotations

import signal
import sys

import pytest

pytest.importorskip("optuna")

import torchann  # noqa: E402

from tune_helpers import EPOCHS, regression_csv, trials_of, worker  # noqa: E402

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL and /proc")


def test_a_worker_killed_mid_trial_leaves_the_study_usable(tmp_path):
    data = regression_csv(tmp_path / "reg.csv")
    out = tmp_path / "run"
    args = [str(data), "--target", "y", "--out", str(out), "--trials", "3", "--epochs", str(EPOCHS)]
    proc = worker(args, env={"TUNE_KILL_AT": "1:3"})  # SIGKILL in trial 1, after its third epoch
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == -signal.SIGKILL, err
    url = f"sqlite:///{out / 'study.db'}"
    states = [t.state.name for t in trials_of(url)]
    assert states == ["COMPLETE", "RUNNING"]  # the killed trial stays 'running' in the database
    assert not (out / "trials" / "torchann" / "trial-00001").exists()  # nothing half-written under its name
    assert not (out / "spec.json").exists()

    model = torchann.tune(str(data), target="y", trials=3, out=out, epochs=EPOCHS)  # the same command again
    after = trials_of(url)
    assert [t.state.name for t in after[:2]] == ["COMPLETE", "FAIL"]
    assert sum(t.state.name in ("COMPLETE", "PRUNED") for t in after) == 3
    info = model.history.info["tune"]
    assert "trial 1: its worker died; marked failed" in info["notes"]
    assert 1 not in [m["trial"] for m in info["members"]]


def test_two_processes_share_one_study(tmp_path):
    data = regression_csv(tmp_path / "reg.csv")
    journal = tmp_path / "study.journal"
    shared = tmp_path / "shared-trials"
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    common = [str(data), "--target", "y", "--storage", f"journal:{journal}", "--artifacts", str(shared),
              "--trials", "5", "--epochs", str(EPOCHS)]
    procs = [worker([*common, "--out", str(tmp_path / f"w{i}")], env={"TUNE_BARRIER": f"{barrier}:2"})
             for i in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    trials = trials_of(f"journal:{journal}")
    done = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(done) >= 5 and len({t.number for t in trials}) == len(trials)
    workers = {t.user_attrs["worker"] for t in trials}
    assert {int(w.split(":")[1]) for w in workers} == {p.pid for p in procs}  # both ran trials
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    for t in complete:  # every worker's trials are where every worker can reach them
        assert (shared / "torchann" / t.user_attrs["artifact"] / "val.npy").is_file()
    # --finish builds the model from every worker's trials without running another
    final = torchann.tune(str(data), target="y", storage=f"journal:{journal}", artifacts=shared, finish=True,
                          epochs=EPOCHS)
    assert len(trials_of(f"journal:{journal}")) == len(trials)
    listed = final.history.info["tune"]["trials"]
    assert sorted(t["number"] for t in listed) == sorted(t.number for t in trials)
    assert final.history.info["tune"]["best_value"] == min(t.value for t in complete)
