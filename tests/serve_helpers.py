"""Shared pieces of the server tests: small models with a text column, a real uvicorn server on a
free loopback port that always stops, a switch that holds the model call, and the oracle
(``torchann predict``'s own output for the same rows)."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")

from typer.testing import CliRunner  # noqa: E402

import torchann  # noqa: E402
from torchann.cli import app as cli_app  # noqa: E402
from torchann.server import Limits, create_app  # noqa: E402
from torchann.server.loadgen import free_port  # noqa: E402

CITIES = ["east", "north", "south"]


def training_columns(n: int = 240, seed: int = 0) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    a = rng.normal(size=n)
    b = rng.uniform(0, 10, size=n)
    city = rng.choice(CITIES, size=n).astype(object)
    return {"a": a, "b": b, "city": city}


def train_models(folder: Path) -> dict[str, Path]:
    """A classifier (labels yes/no) and a regressor on a, b, city, trained on every row (no held-out
    rows, so the training ranges are the columns' own); saved under ``folder``. The classifier has
    the default four networks, the regressor one (a model without members)."""
    cols = training_columns()
    score = cols["a"] + (cols["city"] == "north") + cols["b"] / 5
    clf = torchann.train({**cols, "label": np.where(score > 1.2, "yes", "no").astype(object)}, target="label",
                         epochs=4, hidden=(16,), seed=0, val_split=0.0,
                         early_stopping=0)
    reg = torchann.train({**cols, "y": cols["a"] * 2 + cols["b"]}, target="y", epochs=4, hidden=(16,), seed=0,
                          val_split=0.0, early_stopping=0, networks=1)
    return {"clf": clf.save(folder / "clf"), "reg": reg.save(folder / "reg")}


def query_rows(n: int = 12, seed: int = 1) -> list[dict[str, Any]]:
    """Rows inside the training ranges, every city."""
    rng = np.random.default_rng(seed)
    return [{"a": float(rng.normal() * 0.8), "b": float(rng.uniform(1, 9)), "city": CITIES[i % 3]} for i in range(n)]


def predict_cli(run: Path, rows: list[dict[str, Any]], tmp: Path, *, proba: bool = False) -> dict[str, list]:
    """``torchann predict RUN --data rows.csv --json`` (the oracle), as columns."""
    path = tmp / f"oracle_{time.monotonic_ns()}.csv"
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    path.write_text(buf.getvalue())
    args = ["predict", str(run), "--data", str(path), "--json"] + (["--proba"] if proba else [])
    result = CliRunner().invoke(cli_app, args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


def split_body(rows: list[dict[str, Any]]) -> dict[str, Any]:
    columns = list(rows[0])
    return {"dataframe_split": {"columns": columns, "data": [[r[c] for c in columns] for r in rows]}}


@contextlib.contextmanager
def running(app: Any) -> Iterator[str]:
    """``app`` under a real uvicorn server on a free 127.0.0.1 port; stopped whatever happens."""
    import uvicorn

    config = uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_config=None, access_log=False,
                            lifespan="on", timeout_graceful_shutdown=10)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.01)
        yield f"http://127.0.0.1:{config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@contextlib.contextmanager
def serving(model: Any, limits: Limits | None = None, **kwargs: Any) -> Iterator[tuple[Any, Any]]:
    """``(client, Serving state)`` of a running server over ``model``."""
    app = create_app(model, limits or Limits(), **kwargs)
    with running(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        yield client, app.state.serving


class Hold:
    """Holds every forward pass of a predictor until ``release()``: a request can be kept inside
    the model call for as long as a test needs, without sleeping."""

    def __init__(self, predictor: Any) -> None:
        self.predictor = predictor
        self.entered = threading.Event()
        self.gate = threading.Event()
        self.passes = 0
        self._forward = predictor.forward

    def __enter__(self) -> "Hold":
        def held(x: Any) -> Any:
            self.passes += 1
            self.entered.set()
            assert self.gate.wait(30), "the test never released the model"
            return self._forward(x)

        self.predictor.forward = held
        return self

    def release(self) -> None:
        self.gate.set()

    def __exit__(self, *exc: Any) -> None:
        self.gate.set()
        self.predictor.forward = self._forward


def wait_until(condition: Any, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text (0 when absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    key = f"{name}{{{want}}}" if labels else name
    for line in text.splitlines():
        if line.startswith(key + " "):
            return float(line.split()[-1])
    return 0.0
