"""MLflow interop: a torchann model logged as an MLflow pyfunc loads back with
``mlflow.pyfunc.load_model`` and answers what ``torchann predict`` prints, without a pickle."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

pytest.importorskip("mlflow")
pd = pytest.importorskip("pandas")

import mlflow  # noqa: E402
import mlflow.pyfunc  # noqa: E402

from serve_helpers import predict_cli, query_rows, train_models  # noqa: E402

import torchann  # noqa: E402
import torchann.mlflow  # noqa: E402


pytestmark = [pytest.mark.filterwarnings("ignore:.*type hints:UserWarning"),
              pytest.mark.filterwarnings("ignore:.*input example:UserWarning")]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return train_models(tmp_path_factory.mktemp("serve_mlflow"))


def test_saved_pyfunc_answers_like_predict_and_loads_without_pickle(runs, tmp_path, monkeypatch):
    torchann.mlflow.save_model(torchann.load(runs["clf"]), str(tmp_path / "pyfunc"))

    def refuse(*args, **kwargs):
        raise AssertionError("loading the MLflow model unpickled something")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    loaded = mlflow.pyfunc.load_model(str(tmp_path / "pyfunc"))
    monkeypatch.undo()
    rows = query_rows(7)
    frame = pd.DataFrame(rows)
    oracle = predict_cli(runs["clf"], rows, tmp_path, proba=True)
    assert list(loaded.predict(frame)) == oracle["label"]
    proba = loaded.predict(frame, params={"proba": True})
    assert list(proba["label"]) == oracle["label"]
    np.testing.assert_allclose(proba["p(yes)"], oracle["p(yes)"], rtol=1e-6)


def test_logged_regressor_loads_from_its_run(runs, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # a folder store: no database server in a test
    mlflow.set_tracking_uri((tmp_path / "mlruns").as_uri())
    try:
        with mlflow.start_run():
            info = torchann.mlflow.log_model(runs["reg"], name="model")
        loaded = mlflow.pyfunc.load_model(info.model_uri)
    finally:
        mlflow.set_tracking_uri(None)
    rows = query_rows(5)
    got = loaded.predict(pd.DataFrame(rows))
    np.testing.assert_allclose(got, predict_cli(runs["reg"], rows, tmp_path)["y"], rtol=1e-6)
