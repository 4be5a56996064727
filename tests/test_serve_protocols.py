"""The server's protocols against the real uvicorn server: MLflow scoring (every body format and
CSV), Open Inference v2, health, metadata and per-row warnings; the oracle is ``torchann
predict``'s own output for the same rows."""

from __future__ import annotations

import numpy as np
import pytest

from serve_helpers import (
    predict_cli, query_rows, serving, split_body, train_models, training_columns,
)

import torchann


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return train_models(tmp_path_factory.mktemp("serve_models"))


@pytest.fixture(scope="module")
def clf(runs):
    model = torchann.load(runs["clf"])
    with serving(model) as (client, state):
        yield client, state


def _bodies(rows):
    names = list(rows[0])
    return {
        "dataframe_split": split_body(rows),
        "dataframe_records": {"dataframe_records": rows},
        "instances (records)": {"instances": rows},
        "instances (rows)": {"instances": [[r[n] for n in names] for r in rows]},
        "inputs (columns)": {"inputs": {n: [r[n] for r in rows] for n in names}},
        "inputs (rows)": {"inputs": [[r[n] for n in names] for r in rows]},
    }


def test_every_mlflow_body_answers_what_torchann_predict_prints(runs, clf, tmp_path):
    client, _ = clf
    rows = query_rows(12)
    oracle = predict_cli(runs["clf"], rows, tmp_path, proba=True)
    for what, body in _bodies(rows).items():
        r = client.post("/invocations?proba=true", json=body)
        assert r.status_code == 200, (what, r.text)
        got = r.json()
        assert got["predictions"] == oracle["label"], what
        assert got["classes"] == ["no", "yes"]
        p = np.asarray(got["probabilities"])
        want = np.stack([oracle["p(no)"], oracle["p(yes)"]], axis=1)
        np.testing.assert_allclose(p, want, rtol=1e-6, atol=0, err_msg=what)
        assert got["warnings"] == []


def test_csv_body(runs, clf, tmp_path):
    client, _ = clf
    rows = query_rows(5)
    text = "city,b,a,unused\n" + "".join(f"{r['city']},{r['b']!r},{r['a']!r},7\n" for r in rows)
    r = client.post("/invocations", content=text.encode(), headers={"Content-Type": "text/csv"})
    assert r.status_code == 200, r.text
    assert r.json()["predictions"] == predict_cli(runs["clf"], rows, tmp_path)["label"]


def test_regression_numbers_within_1e6_of_predict(runs, tmp_path):
    rows = query_rows(9)
    oracle = predict_cli(runs["reg"], rows, tmp_path)
    with serving(torchann.load(runs["reg"])) as (client, _):
        got = client.post("/invocations", json=split_body(rows)).json()["predictions"]
        np.testing.assert_allclose(got, oracle["y"], rtol=1e-6, atol=0)
        r = client.post("/invocations?proba=true", json=split_body(rows))
        assert r.status_code == 400 and "proba=true needs a classifier" in r.json()["error"]["message"]


def test_open_inference_v2(runs, clf, tmp_path):
    client, _ = clf
    rows = query_rows(4)
    oracle = predict_cli(runs["clf"], rows, tmp_path, proba=True)
    columns = [{"name": "a", "shape": [4], "datatype": "FP64", "data": [r["a"] for r in rows]},
               {"name": "b", "shape": [4, 1], "datatype": "FP64", "data": [[r["b"]] for r in rows]},
               {"name": "city", "shape": [4], "datatype": "BYTES", "data": [r["city"] for r in rows]}]
    r = client.post("/v2/models/clf/infer", json={"id": "q1", "inputs": columns, "parameters": {"proba": True}})
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["model_name"] == "clf" and got["id"] == "q1"
    label, proba = got["outputs"]
    assert label == {"name": "label", "datatype": "BYTES", "shape": [4], "data": oracle["label"]}
    assert proba["shape"] == [4, 2] and proba["parameters"]["classes"] == ["no", "yes"]
    np.testing.assert_allclose(np.reshape(proba["data"], (4, 2))[:, 1], oracle["p(yes)"], rtol=1e-6)
    tensor = {"name": "input", "shape": [4, 3], "datatype": "BYTES",
              "data": [[r["a"], r["b"], r["city"]] for r in rows]}
    r = client.post("/v2/models/clf/infer", json={"inputs": [tensor]})
    assert r.json()["outputs"][0]["data"] == oracle["label"]
    meta = client.get("/v2/models/clf").json()
    assert [i["name"] for i in meta["inputs"]] == ["a", "b", "city"]
    assert meta["inputs"][2]["datatype"] == "BYTES" and meta["outputs"][0]["name"] == "label"
    assert client.get("/v2/models/clf/ready").json() == {"name": "clf", "ready": True}
    assert client.get("/v2/health/live").status_code == 200
    assert client.get("/v2/health/ready").json() == {"ready": True}
    assert client.get("/v2").json()["name"] == "torchann"
    r = client.post("/v2/models/other/infer", json={"inputs": columns})
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_health_version_metadata_and_docs(runs, clf):
    client, _ = clf
    for path in ("/ping", "/health", "/livez", "/readyz"):
        assert client.get(path).status_code == 200, path
    assert client.get("/version").json() == {"torchann": torchann.__version__, "model": "clf"}
    meta = client.get("/metadata").json()
    assert meta["task"] == "classification" and meta["classes"] == ["no", "yes"] and meta["targets"] == ["label"]
    by_name = {f["name"]: f for f in meta["features"]}
    cols = training_columns()  # the rows the model was trained on (every one): the oracle of the ranges
    assert by_name["a"]["training_range"] == [cols["a"].min(), cols["a"].max()]
    assert by_name["b"]["training_range"] == [cols["b"].min(), cols["b"].max()]
    assert by_name["city"]["kind"] == "categorical" and by_name["city"]["categories"] == ["east", "north", "south"]
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/invocations", "/v2/models/{name}/infer", "/metrics", "/metadata"} <= set(paths)


def test_per_row_warnings_name_the_row_column_and_kind(runs, tmp_path):
    model = torchann.load(runs["clf"])
    lo, hi = model.preprocessor.features[1].training_range  # b
    rows = [{"a": 0.1, "b": 5.0, "city": "north"},   # like training
            {"a": 0.1, "b": hi + 100, "city": "west"},  # out of range, unseen category
            {"a": None, "b": 5.0, "city": "south"}]   # a missing number, filled
    with serving(model) as (client, _):
        got = client.post("/invocations", json={"dataframe_records": rows}).json()
    assert got["warnings"] == [
        {"row": 1, "column": "city", "kind": "unseen_category"},
        {"row": 1, "column": "b", "kind": "out_of_range", "range": [lo, hi]},
        {"row": 2, "column": "a", "kind": "missing_filled"},
    ]
    oracle = predict_cli(runs["clf"], [{**r, "a": "" if r["a"] is None else r["a"]} for r in rows], tmp_path)
    assert got["predictions"] == oracle["label"]


def test_no_request_value_is_read_as_a_file(clf, tmp_path):
    client, _ = clf
    secret = tmp_path / "data.csv"
    secret.write_text("a,b,city\n1,2,north\n")
    for body in ({"inputs": str(secret)}, {"instances": str(secret)}, {"dataframe_records": str(secret)}):
        r = client.post("/invocations", json=body)
        assert r.status_code == 400, r.text


def test_std_needs_members(runs):
    with serving(torchann.load(runs["reg"])) as (client, _):
        r = client.post("/invocations?std=true", json=split_body(query_rows(5)))
        assert r.status_code == 400 and r.json()["error"]["code"] == "no_members"
        assert "std=true needs a model with ensemble members" in r.json()["error"]["message"]
        assert client.get("/metadata").json()["members"] == 1
