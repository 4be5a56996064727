"""optuna-dashboard opens a torchann study as it is: the real dashboard process on a free
loopback port, asked over HTTP for the study that `torchann.tune` wrote (SQLite and journal)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("optuna")
pytest.importorskip("optuna_dashboard")

import torchann  # noqa: E402

from tune_helpers import EPOCHS, regression_csv  # noqa: E402

START_LIMIT_S = 90  # how long to wait for the dashboard to listen on a busy machine (not a timing check)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as answer:
        return json.loads(answer.read())


def _dashboard(storage: str, port: int) -> subprocess.Popen:
    exe = shutil.which("optuna-dashboard", path=str(Path(sys.executable).parent)) or "optuna-dashboard"
    return subprocess.Popen([exe, storage, "--host", "127.0.0.1", "--port", str(port), "--quiet"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _studies(process: subprocess.Popen, port: int) -> dict:
    deadline = time.monotonic() + START_LIMIT_S
    while True:
        try:
            return _get(f"http://127.0.0.1:{port}/api/studies")
        except (urllib.error.URLError, ConnectionError):
            if process.poll() is not None:
                raise AssertionError(f"optuna-dashboard exited: {process.stderr.read().decode()}")
            if time.monotonic() > deadline:
                raise AssertionError("optuna-dashboard did not listen") from None
            time.sleep(0.2)


@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_optuna_dashboard_shows_the_trials_tune_recorded(tmp_path, kind):
    data = regression_csv(tmp_path / "reg.csv")
    out = tmp_path / "run"
    storage = None if kind == "sqlite" else f"journal:{tmp_path / 'study.log'}"
    model = torchann.tune(str(data), target="y", trials=3, out=out, epochs=EPOCHS, storage=storage)
    trials = model.history.info["tune"]["trials"]
    url = f"sqlite:///{out / 'study.db'}" if kind == "sqlite" else str(tmp_path / "study.log")

    port = _free_port()
    process = _dashboard(url, port)
    try:
        summaries = _studies(process, port)["study_summaries"]
        assert [s["study_name"] for s in summaries] == ["torchann"]
        recorded = json.loads({a["key"]: a["value"] for a in summaries[0]["user_attrs"]}["torchann"])
        assert recorded["target"] == ["y"] and recorded["task"] == "regression"
        study = _get(f"http://127.0.0.1:{port}/api/studies/{summaries[0]['study_id']}")
        shown = sorted(study["trials"], key=lambda t: t["number"])
        assert [t["number"] for t in shown] == [t["number"] for t in trials]
        for ours, theirs in zip(trials, shown):
            assert theirs["state"].lower() == ours["state"]
            assert {p["name"] for p in theirs["params"]} == set(ours["params"])
            if ours["state"] == "complete":
                assert theirs["values"][0] == pytest.approx(ours["value"], rel=1e-12)
    finally:
        process.terminate()
        process.wait(timeout=30)
