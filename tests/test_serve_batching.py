"""Dynamic batching and metrics against the real server: requests held back by a held model call
are answered in one forward pass, each with what ``torchann predict`` prints for its rows; a
bad request in a batch fails alone; /metrics counts exactly what was sent."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from serve_helpers import Hold, metric, predict_cli, query_rows, serving, split_body, train_models, wait_until

import torchann
from torchann.server import Limits


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return train_models(tmp_path_factory.mktemp("serve_batch"))


def _send_all(client, bodies, params=""):
    answers: list = [None] * len(bodies)

    def send(i):
        answers[i] = client.post(f"/invocations{params}", json=bodies[i])

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(bodies))]
    for t in threads:
        t.start()
    return threads, answers


@pytest.mark.parametrize("wait_ms", [50.0, 0.0])
def test_held_requests_share_one_pass_and_answer_like_predict(runs, tmp_path, wait_ms):
    model = torchann.load(runs["reg"])
    sizes = [1, 3, 1, 7, 2, 1, 4, 1]
    chunks, start = [], 0
    every = query_rows(sum(sizes), seed=5)
    for n in sizes:
        chunks.append(every[start:start + n])
        start += n
    oracle = predict_cli(runs["reg"], every, tmp_path)["y"]
    with serving(model, Limits(max_wait_ms=wait_ms)) as (c, state):
        with Hold(state.predictor) as hold:
            first_thread, first = _send_all(c, [split_body(chunks[0])])
            assert hold.entered.wait(30)
            threads, rest = _send_all(c, [split_body(ch) for ch in chunks[1:]])
            if wait_ms:  # every other request is queued behind the held pass
                wait_until(lambda: len(state.batcher._queue) == len(sizes) - 1, "the requests to queue")
            else:  # each waits for the model thread on its own
                wait_until(lambda: state.in_flight == len(sizes), "the requests to arrive")
            hold.release()
            for t in first_thread + threads:
                t.join(30)
        answers = first + rest
        assert [a.status_code for a in answers] == [200] * len(sizes)
        got = [v for a in answers for v in a.json()["predictions"]]
        np.testing.assert_allclose(got, oracle, rtol=1e-6, atol=0)
        text = c.get("/metrics").text
    passes = metric(text, "torchann_batch_requests_count")
    assert metric(text, "torchann_batch_requests_sum") == len(sizes)
    assert metric(text, "torchann_batch_rows_sum") == sum(sizes)
    assert passes == (2 if wait_ms else len(sizes))


def test_a_request_that_finds_the_server_idle_goes_straight_to_the_model_thread(runs):
    model = torchann.load(runs["reg"])
    body = split_body(query_rows(2, seed=3))
    with serving(model, Limits(max_wait_ms=50)) as (c, state):
        batcher = state.batcher
        assert batcher._direct is None
        alone = c.post("/invocations", json=body)
        direct = batcher._direct
        assert alone.status_code == 200 and direct is not None and direct.done()
        with Hold(state.predictor) as hold:  # while it computes, the next requests queue for one batch
            t0, first = _send_all(c, [body])
            assert hold.entered.wait(30)
            assert batcher._direct is not direct and not batcher._in_batch  # the held one went straight too
            threads, rest = _send_all(c, [body, body])
            wait_until(lambda: len(batcher._queue) == 2, "the requests to queue")
            hold.release()
            for t in t0 + threads:
                t.join(30)
        assert [a.json() for a in first + rest] == [alone.json()] * 3
        text = c.get("/metrics").text
    assert metric(text, "torchann_batch_requests_count") == 3  # alone, held, then the two together
    assert metric(text, "torchann_batch_requests_sum") == 4


def test_a_bad_request_in_a_batch_fails_alone(runs, tmp_path):
    model = torchann.load(runs["clf"])
    good = {"inputs": {"a": ["0.5"], "b": [3.0], "city": ["north"]}}  # a number sent as text, same types as bad
    bad = {"inputs": {"a": ["x"], "b": [3.0], "city": ["north"]}}
    other = split_body(query_rows(3))
    with serving(model, Limits(max_wait_ms=50)) as (c, state):
        with Hold(state.predictor) as hold:
            t0, first = _send_all(c, [other])
            assert hold.entered.wait(30)
            threads, answers = _send_all(c, [good, bad, other])
            wait_until(lambda: len(state.batcher._queue) == 3, "the requests to queue")
            hold.release()
            for t in t0 + threads:
                t.join(30)
        assert [a.status_code for a in answers] == [200, 422, 200]
        assert "column 'a' should hold numbers, but row 1 holds 'x'" in answers[1].json()["error"]["message"]
        oracle = predict_cli(runs["clf"], [{"a": 0.5, "b": 3.0, "city": "north"}], tmp_path)
        assert answers[0].json()["predictions"] == oracle["label"]
        assert answers[2].json() == first[0].json()


def test_metrics_count_what_was_sent(runs):
    model = torchann.load(runs["clf"])
    with serving(model) as (c, _):
        for n in (1, 2, 5):
            assert c.post("/invocations", json=split_body(query_rows(n))).status_code == 200
        unseen = [{"a": 0.1, "b": 5.0, "city": "west"}, {"a": 0.2, "b": 5.0, "city": "west"}]
        assert c.post("/invocations", json={"dataframe_records": unseen}).status_code == 200
        assert c.post("/invocations", json={"inputs": {"a": [1.0]}}).status_code == 422
        assert c.post("/invocations", content=b"x").status_code == 415
        v2 = [{"name": k, "shape": [1], "datatype": "BYTES" if k == "city" else "FP64", "data": [v]}
              for k, v in query_rows(1)[0].items()]
        assert c.post("/v2/models/clf/infer", json={"inputs": v2}).status_code == 200
        text = c.get("/metrics").text
    route = "/invocations"
    assert metric(text, "torchann_requests_total", route=route, status="200") == 4
    assert metric(text, "torchann_requests_total", route=route, status="422") == 1
    assert metric(text, "torchann_requests_total", route=route, status="415") == 1
    assert metric(text, "torchann_requests_total", route="/v2/models/{name}/infer", status="200") == 1
    assert metric(text, "torchann_request_seconds_count", route=route) == 6
    assert metric(text, "torchann_rows_total") == 1 + 2 + 5 + 2 + 1
    assert metric(text, "torchann_row_warnings_total", kind="unseen_category") == 2
    assert metric(text, "torchann_batch_rows_sum") == 11
    assert metric(text, "torchann_in_flight") == 1  # the scrape itself


def test_a_server_that_owns_its_process_freezes_the_collector_once_the_model_is_in(runs):
    """``torchann serve`` (own_process) moves the process's objects out of the cyclic collector's
    sight after loading: full collections over them took 20-100 ms each under load and were the
    p99. A server inside someone else's process leaves the collector alone."""
    import gc

    gc.unfreeze()
    try:
        with serving(torchann.load(runs["reg"])) as (c, state):
            assert c.get("/readyz").status_code == 200
            assert gc.get_freeze_count() == 0
        with serving(runs["reg"], own_process=True) as (c, state):  # loaded from the directory
            wait_until(lambda: c.get("/readyz").status_code == 200, "the model to load")
            frozen = gc.get_freeze_count()
            assert frozen > 10_000  # torch, the model, the app: all that lives as long as the process
            assert state.model is not None and gc.is_tracked(state.model.__dict__)
            body = split_body(query_rows(3, seed=1))
            assert c.post("/invocations", json=body).status_code == 200
            assert gc.get_freeze_count() <= frozen  # frozen once: the requests' objects are collected as usual
    finally:
        gc.unfreeze()


def test_large_passes_take_the_large_pass_threads_and_answer_like_predict(runs, monkeypatch):
    import torch

    from torchann.server.predictor import LARGE_PASS_ROWS

    model = torchann.load(runs["reg"])
    seen: list[tuple[int, int]] = []
    outputs = model.network_outputs

    def recording(x, **kw):
        seen.append((len(x), torch.get_num_threads()))
        return outputs(x, **kw)

    monkeypatch.setattr(model, "network_outputs", recording)
    small, large = query_rows(3, seed=4), query_rows(LARGE_PASS_ROWS, seed=5)
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # the loop thread's count, as torchann serve sets it
    try:
        with serving(model, Limits(max_wait_ms=0), large_pass_threads=2) as (c, state):
            answers = [c.post("/invocations", json=split_body(rows)).json()["predictions"] for rows in (small, large)]
            answers.append(c.post("/invocations", json=split_body(small)).json()["predictions"])
    finally:
        torch.set_num_threads(before)
    assert seen == [(3, 1), (LARGE_PASS_ROWS, 2), (3, 1)]  # and the model thread's own count put back after
    monkeypatch.undo()
    expected = [model.predict({k: [r[k] for r in rows] for k in rows[0]}).tolist() for rows in (small, large, small)]
    np.testing.assert_allclose(answers[0], expected[0], rtol=1e-6)
    np.testing.assert_allclose(answers[1], expected[1], rtol=1e-6)
    assert answers[2] == answers[0]
