"""The server as a real process: ``torchann serve`` answers like ``torchann predict`` and exits 0
on SIGTERM; SIGTERM with requests held inside the model call loses none of them; the CLI's
bad flags are one line and exit code 2."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

from serve_helpers import httpx, metric, predict_cli, query_rows, split_body, train_models, wait_until
from typer.testing import CliRunner

from torchann.cli import app as cli_app
from torchann.server.loadgen import LocalServer
from torchann.server.runner import is_loopback

HELD_SERVER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    import torchann
    from torchann.server import Limits, serve
    from torchann.server.predictor import Predictor

    run, port, entered, release = sys.argv[1:]
    forward = Predictor.forward

    def held(self, x):  # every pass waits until the test creates the release file
        Path(entered).touch()
        while not Path(release).exists():
            time.sleep(0.005)
        return forward(self, x)

    Predictor.forward = held
    serve(torchann.load(run), port=int(port), limits=Limits(max_wait_ms=0), log_requests=True)
""")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return train_models(tmp_path_factory.mktemp("serve_proc"))


def _refuses(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return False
    except OSError:
        return True


def test_sigterm_with_requests_in_flight_loses_none(runs, tmp_path):
    script = tmp_path / "held_server.py"
    script.write_text(HELD_SERVER)
    entered, release = tmp_path / "entered", tmp_path / "release"
    log = open(tmp_path / "server.log", "wb")
    command = [sys.executable, str(script), str(runs["reg"]), "{port}", str(entered), str(release)]
    chunks = [query_rows(n, seed=10 + n) for n in (1, 2, 3, 4)]
    oracle = [predict_cli(runs["reg"], rows, tmp_path)["y"] for rows in chunks]
    server = LocalServer(command, log=log)
    with server:
        answers: list = [None] * len(chunks)

        def send(i):
            with httpx.Client(base_url=server.url, timeout=60) as c:
                answers[i] = c.post("/invocations", json=split_body(chunks[i]))

        threads = [threading.Thread(target=send, args=(i,)) for i in range(len(chunks))]
        for t in threads:
            t.start()
        with httpx.Client(base_url=server.url) as c:  # all four inside: one in the model call, three waiting
            wait_until(lambda: entered.exists() and
                       metric(c.get("/metrics").text, "torchann_in_flight") == len(chunks) + 1, "4 requests in flight")
        server.process.send_signal(signal.SIGTERM)
        wait_until(lambda: _refuses(server.port), "the listening socket to close")
        release.touch()
        for t in threads:
            t.join(60)
        code = server.process.wait(timeout=60)
    log.close()
    assert code == 0, (tmp_path / "server.log").read_text()
    assert [a.status_code for a in answers] == [200] * 4
    for answer, want in zip(answers, oracle):
        np.testing.assert_allclose(answer.json()["predictions"], want, rtol=1e-6, atol=0)
    text = (tmp_path / "server.log").read_text()
    assert text.count("POST /invocations 200") == 4  # one line per request in a log
    drained = re.search(r"draining: (\d+) request\(s\) in flight", text)
    assert drained and int(drained.group(1)) in (4, 5), text  # 5: the last /metrics poll may still count itself


def test_torchann_serve_command(runs, tmp_path):
    log = open(tmp_path / "serve.log", "wb")
    command = [sys.executable, "-m", "torchann", "serve", str(runs["clf"]), "--port", "{port}", "--max-wait-ms", "1",
               "--name", "churn"]
    rows = query_rows(3)
    with LocalServer(command, log=log) as server, httpx.Client(base_url=server.url) as c:
        got = c.post("/invocations", json=split_body(rows)).json()["predictions"]
        assert c.get("/v2/models/churn/ready").status_code == 200
        server.process.send_signal(signal.SIGTERM)
        code = server.process.wait(timeout=60)
    log.close()
    assert code == 0
    assert got == predict_cli(runs["clf"], rows, tmp_path)["label"]
    assert f"serving churn on {server.url}" in (tmp_path / "serve.log").read_text()


def test_two_workers_answer_and_stop(runs, tmp_path):
    log = open(tmp_path / "workers.log", "wb")
    command = [sys.executable, "-m", "torchann", "serve", str(runs["clf"]), "--port", "{port}", "--workers", "2"]
    rows = query_rows(2)
    with LocalServer(command, log=log) as server, httpx.Client(base_url=server.url) as c:
        for _ in range(4):
            assert c.post("/invocations", json=split_body(rows)).json()["predictions"] == \
                predict_cli(runs["clf"], rows, tmp_path)["label"]
        os.killpg(server.process.pid, signal.SIGTERM)
        server.process.wait(timeout=60)
    log.close()


def test_cli_refuses_bad_flags_in_one_line(runs, monkeypatch):
    monkeypatch.delenv("NO_SUCH_KEY_VAR", raising=False)
    r = CliRunner().invoke(cli_app, ["serve", str(runs["clf"]), "--api-key-env", "NO_SUCH_KEY_VAR"])
    assert r.exit_code == 2
    assert "error: --api-key-env NO_SUCH_KEY_VAR: the environment variable NO_SUCH_KEY_VAR is not set" in r.output
    r = CliRunner().invoke(cli_app, ["serve", str(Path(runs["clf"]).parent / "missing")])
    assert r.exit_code == 2 and "Traceback" not in r.output
    r = CliRunner().invoke(cli_app, ["serve", str(runs["clf"]), "--port", "70000"])
    assert r.exit_code == 2 and "Invalid value for '--port'" in r.output


def test_loopback_addresses():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.0.0.1") and not is_loopback("example.org")


def test_help_does_not_import_the_server_stack():
    code = ("import sys; from torchann.cli import main; main(['serve', '--help']); "
            "print(sorted(m for m in ('torch', 'fastapi', 'uvicorn', 'prometheus_client') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip().endswith("[]"), out.stdout + out.stderr
