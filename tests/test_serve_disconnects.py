"""A client that disconnects while the model computes its answer: the server computes it, drops
it, counts it in ``torchann_client_disconnects_total``, and answers the next request.

The window is reached without sleeping: the model call is held (``Hold``) while the client
closes its socket, and the model is released only once the server's side of that connection
is gone from the kernel's table (``/proc/net/tcp``), so the server has seen the close.
"""

from __future__ import annotations

import socket
from pathlib import Path
from urllib.parse import urlparse

import pytest

from serve_helpers import Hold, httpx, metric, query_rows, serving, split_body, train_models, wait_until

import torchann

pytestmark = pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux's /proc/net/tcp")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return torchann.load(train_models(tmp_path_factory.mktemp("disc"))["clf"])


def _server_side_open(server_port: int, client_port: int) -> bool:
    """Whether the server still holds its end of the connection from ``client_port``."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, remote, state = line.split()[1:4]
        if int(local.split(":")[1], 16) == server_port and int(remote.split(":")[1], 16) == client_port:
            return state in ("01", "08")  # ESTABLISHED, CLOSE_WAIT
    return False


def test_a_client_that_disconnects_mid_request_is_counted_and_the_server_stays_up(model):
    with serving(model) as (c, state):
        rows = split_body(query_rows(1))
        body = httpx.Request("POST", "http://x/invocations", json=rows).content
        head = (f"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode()
        u = urlparse(str(c.base_url))
        before = metric(c.get("/metrics").text, "torchann_client_disconnects_total")
        with Hold(state.predictor) as hold:
            sock = socket.create_connection((u.hostname, u.port), timeout=30)
            client_port = sock.getsockname()[1]
            sock.sendall(head + body)
            assert hold.entered.wait(30)  # the request is inside the model call
            sock.close()
            wait_until(lambda: not _server_side_open(u.port, client_port), "the server to see the close")
            hold.release()
        wait_until(lambda: state.in_flight == 0, "the abandoned request to finish")
        text = c.get("/metrics").text
        assert metric(text, "torchann_client_disconnects_total") == before + 1
        answer = c.post("/invocations", json=rows)
        assert answer.status_code == 200 and len(answer.json()["predictions"]) == 1
        # a client that stays is not counted
        assert metric(c.get("/metrics").text, "torchann_client_disconnects_total") == before + 1
