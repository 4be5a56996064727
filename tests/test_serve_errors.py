"""Every error the server gives, against the real uvicorn server: status, JSON body
``{"error": {"code", "message"}}``, no traceback, no echo of the request, and a server that
answers the next request. Race windows are reached with a held model call, never by timing."""

from __future__ import annotations

import socket
import threading
from urllib.parse import urlparse

import pytest

from serve_helpers import Hold, httpx, query_rows, running, serving, split_body, train_models, wait_until

import torchann
from torchann.server import Limits, create_app

MARKER = "zq-unique-marker-4711"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return train_models(tmp_path_factory.mktemp("serve_err"))


@pytest.fixture(scope="module")
def model(runs):
    return torchann.load(runs["clf"])


def _error(r, status, code, fragment=""):
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    assert body["error"]["code"] == code, body
    assert fragment in body["error"]["message"], body
    assert "Traceback" not in r.text and MARKER not in r.text
    return body["error"]["message"]


def _raw(url: str, data: bytes, *, read: bool = True, timeout: float = 30) -> bytes:
    u = urlparse(url)
    with socket.create_connection((u.hostname, u.port), timeout=timeout) as s:
        s.sendall(data)
        if not read:
            return b""
        chunks = []
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)


def test_bad_requests_get_their_status_and_the_server_stays_up(model):
    limits = Limits(max_body_mb=0.01)
    with serving(model, limits) as (c, _):
        rows = split_body(query_rows(2))
        _error(c.post("/invocations", content=b"x" * 20_000, headers={"Content-Type": "application/json"}),
               413, "body_too_large", "over the server's limit of 10,000")
        _error(c.post("/invocations", content=iter([b"[" * 6000, b"1" * 6000]),
                      headers={"Content-Type": "application/json"}), 413, "body_too_large")
        _error(c.post("/invocations", content=b"a", headers={"Content-Type": "text/plain"}), 415,
               "unsupported_media_type", "send application/json or text/csv")
        _error(c.post("/invocations", content=b"a"), 415, "unsupported_media_type")
        _error(c.post("/invocations", content=b'{"' + MARKER.encode() + b'": [1, }',
                      headers={"Content-Type": "application/json"}), 400, "bad_json", "line 1 column")
        _error(c.post("/invocations", content=b"a,b\n1,2,3,4\n", headers={"Content-Type": "text/csv"}), 400,
               "bad_csv")
        _error(c.post("/invocations", json={"rows": [[1, 2, "x"]]}), 400, "bad_request",
               "dataframe_split, dataframe_records, instances, inputs")
        message = _error(c.post("/invocations", json={"inputs": {"a": [1.0], "bb": [2.0], "city": ["north"]}}),
                         422, "missing_column", "missing column(s) 'b'")
        assert "'bb': misspelt?" in message and "the model reads a, b, city" in message
        _error(c.post("/invocations", json={"instances": [[1.0, 2.0]]}), 422, "bad_data",
               "the model reads 3 column(s) in this order: a, b, city")
        _error(c.post("/invocations", json={"inputs": {"a": ["x"], "b": [2.0], "city": ["north"]}}), 422,
               "bad_data", "column 'a' should hold numbers")
        _error(c.post("/invocations?proba=maybe", json=rows), 400, "bad_request", "proba must be true or false")
        _error(c.get("/invocations"), 405, "method_not_allowed")
        _error(c.get("/no/such/route"), 404, "not_found")
        assert c.post("/invocations", json=rows).status_code == 200
        assert c.get("/livez").status_code == 200


def test_api_key(model):
    with serving(model, Limits(api_key="s3cret-key")) as (c, _):
        rows = split_body(query_rows(1))
        _error(c.post("/invocations", json=rows), 401, "unauthorized", "Authorization: Bearer KEY")
        _error(c.post("/invocations", json=rows, headers={"Authorization": "Bearer wrong"}), 401, "unauthorized")
        _error(c.get("/metrics"), 401, "unauthorized")
        assert c.post("/invocations", json=rows, headers={"Authorization": "Bearer s3cret-key"}).status_code == 200
        assert c.post("/invocations", json=rows, headers={"X-API-Key": "s3cret-key"}).status_code == 200
        assert c.get("/readyz").status_code == 200  # probes need no key
        assert c.get("/v2/health/ready").status_code == 200


def test_over_the_concurrency_limit_is_429(model):
    with serving(model, Limits(max_concurrency=1, max_wait_ms=0)) as (c, state):
        rows = split_body(query_rows(1))
        with Hold(state.predictor) as hold:
            first = {}
            t = threading.Thread(target=lambda: first.setdefault("r", c.post("/invocations", json=rows)))
            t.start()
            assert hold.entered.wait(30)
            with httpx.Client(base_url=str(c.base_url)) as other:
                r = other.post("/invocations", json=rows)
            _error(r, 429, "too_many_requests", "limit of 1 requests at once")
            assert r.headers["retry-after"] == "1"
            hold.release()
            t.join(30)
        assert first["r"].status_code == 200


def test_past_the_timeout_is_504_and_the_next_request_is_answered(model):
    with serving(model, Limits(timeout=0.2)) as (c, state):
        rows = split_body(query_rows(1))
        with Hold(state.predictor) as hold:
            _error(c.post("/invocations", json=rows), 504, "timeout", "timeout of 0.2 s")
            hold.release()
        assert c.post("/invocations", json=rows).status_code == 200


def test_a_body_that_never_ends_is_408(model):
    with serving(model, Limits(timeout=0.3)) as (c, _):
        head = (b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: 1000\r\n\r\n{\"inputs\": ")
        answer = _raw(str(c.base_url), head)  # the rest never comes: the server answers and closes
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert b'"code": "body_timeout"' in answer
        assert c.get("/livez").status_code == 200


def test_a_client_that_leaves_mid_request_costs_nothing(model):
    with serving(model) as (c, state):
        rows = split_body(query_rows(1))
        body = httpx.Request("POST", "http://x/invocations", json=rows).content
        head = (f"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode()
        with Hold(state.predictor) as hold:
            _raw(str(c.base_url), head + body, read=False)  # sent whole, then the socket closes
            assert hold.entered.wait(30)
            hold.release()
        wait_until(lambda: state.in_flight == 0, "the abandoned request to finish")
        assert c.post("/invocations", json=rows).status_code == 200


def test_a_bug_is_a_500_without_its_text(model, monkeypatch):
    with serving(model) as (c, state):
        def broken(x):
            raise RuntimeError(f"internal detail {MARKER}")

        monkeypatch.setattr(state.predictor, "forward", broken)
        _error(c.post("/invocations", json=split_body(query_rows(1))), 500, "internal", "see the server's log")
        monkeypatch.undo()
        assert c.post("/invocations", json=split_body(query_rows(1))).status_code == 200


def test_not_ready_until_loaded_and_while_draining(runs):
    loaded = threading.Event()

    def slow_load():
        assert loaded.wait(30)
        return torchann.load(runs["clf"])

    app = create_app(slow_load, Limits(), name="clf")
    state = app.state.serving
    with running(app) as url, httpx.Client(base_url=url) as c:
        assert c.get("/livez").status_code == 200
        assert c.get("/readyz").json() == {"ready": False, "reason": "the model is still loading"}
        assert c.get("/ping").status_code == 503
        _error(c.post("/invocations", json=split_body(query_rows(1))), 503, "not_ready", "still loading")
        loaded.set()
        wait_until(lambda: c.get("/readyz").status_code == 200, "the model to load")
        state.begin_drain()  # what SIGTERM does first
        assert c.get("/readyz").json()["reason"] == "draining: the server is shutting down"
        assert c.get("/v2/health/ready").status_code == 503
        assert c.post("/invocations", json=split_body(query_rows(1))).status_code == 200  # still answered


def test_a_model_that_cannot_be_loaded_keeps_the_server_up_and_not_ready(tmp_path):
    app = create_app(tmp_path / "nothing-here", Limits())
    with running(app) as url, httpx.Client(base_url=url) as c:
        wait_until(lambda: app.state.serving.load_error is not None, "the load to fail")
        r = c.get("/readyz")
        assert r.status_code == 503 and "could not be loaded" in r.json()["reason"]
        _error(c.post("/invocations", json={"inputs": {}}), 503, "not_ready", "could not be loaded")
