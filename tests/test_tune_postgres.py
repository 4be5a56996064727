"""A study shared through a real PostgreSQL server (Debian's ``postgresql``; ``make test``
installs it): two worker processes, a third killed with SIGKILL mid-trial, then ``--finish``.

The fixture starts its own server in a temporary folder on a free loopback port, as the
``postgres`` user when the tests run as root (PostgreSQL refuses to run as root), and always
stops it. Outside CI, a machine without PostgreSQL skips these tests with the reason; in CI
(``CI`` set) its absence fails them.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

pytest.importorskip("optuna")
pytest.importorskip("psycopg")

import torchann  # noqa: E402

from tune_helpers import EPOCHS, regression_csv, trials_of, worker  # noqa: E402


def _bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url():
    bindir = _bin()
    if bindir is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is not installed, and CI must run these tests: make test installs postgresql")
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql, or make postgres)")
    as_root = os.geteuid() == 0
    folder = Path(tempfile.mkdtemp(prefix="torchann-pg-"))
    if as_root:
        shutil.chown(folder, user="postgres")

    def run(*cmd: str) -> subprocess.CompletedProcess:
        full = (["runuser", "-u", "postgres", "--"] if as_root else []) + list(cmd)
        return subprocess.run(full, capture_output=True, text=True, timeout=120)

    data, port = folder / "data", _free_port()
    started = False
    try:
        made = run(str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        assert made.returncode == 0, made.stderr
        start = run(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(folder / "log"), "-w", "-t", "60", "-o",
                    f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off", "start")
        assert start.returncode == 0, start.stderr + (folder / "log").read_text(errors="replace")
        started = True
        created = run(str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "tune")
        assert created.returncode == 0, created.stderr
        yield f"postgresql://postgres@127.0.0.1:{port}/tune"
    finally:
        if started:
            run(str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(folder, ignore_errors=True)


def test_two_workers_share_a_postgres_study_and_a_killed_one_leaves_it_usable(tmp_path, postgres_url):
    data = regression_csv(tmp_path / "reg.csv")
    shared = tmp_path / "shared-trials"  # the folder every host would mount
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    common = [str(data), "--target", "y", "--storage", postgres_url, "--artifacts", str(shared),
              "--epochs", str(EPOCHS)]
    procs = [worker([*common, "--trials", "4", "--out", str(tmp_path / f"host{i}")],
                    env={"TUNE_BARRIER": f"{barrier}:2"}) for i in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    trials = trials_of(postgres_url)
    assert sum(t.state.name in ("COMPLETE", "PRUNED") for t in trials) >= 4
    assert {int(t.user_attrs["worker"].split(":")[1]) for t in trials} == {p.pid for p in procs}

    # a third worker dies in its first trial of a larger budget
    first_new = len(trials)
    killed = worker([*common, "--trials", "6", "--out", str(tmp_path / "host2")],
                    env={"TUNE_KILL_AT": f"{first_new}:2"})
    _, err = killed.communicate(timeout=300)
    assert killed.returncode == -signal.SIGKILL, err
    assert trials_of(postgres_url)[first_new].state.name == "RUNNING"

    final = torchann.tune(str(data), target="y", storage=postgres_url, artifacts=shared, finish=True, epochs=EPOCHS)
    after = trials_of(postgres_url)
    assert after[first_new].state.name == "FAIL" and len(after) == first_new + 1  # --finish ran no trial
    info = final.history.info["tune"]
    assert info["storage"] == postgres_url and f"trial {first_new}: its worker died; marked failed" in info["notes"]
    complete = [t for t in after if t.state.name == "COMPLETE"]
    assert info["best_value"] == min(t.value for t in complete)
    members = {m["trial"] for m in info["members"]}
    assert members <= {t.number for t in complete}
    # the model predicts like the trials it was built from: its members' weighted mean
    import numpy as np

    each = np.stack([torchann.load(shared / "torchann" / f"trial-{m['trial']:05d}").predict(str(data))
                     for m in info["members"]])
    weights = np.array([m["weight"] for m in info["members"]])
    np.testing.assert_allclose(final.predict(str(data)), weights @ each, rtol=1e-5, atol=1e-6)
