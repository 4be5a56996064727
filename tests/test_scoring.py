"""Scoring a file in chunks: the same answers, in the same order, as the table read whole."""

from __future__ import annotations

import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import torchann
from torchann.cli import app
from torchann.core.errors import DataError
from torchann.model.scoring import score_file

runner = CliRunner()


def _frame(n: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    size = rng.uniform(20, 200, n)
    colour = rng.choice(["blue", "green", "red"], n)
    age = rng.normal(30, 10, n)
    age[rng.random(n) < 0.1] = np.nan
    label = np.where(size > 140, "big", np.where(colour == "red", "dear", "cheap"))
    return pa.table({"id": pa.array(np.arange(10**12, 10**12 + n), pa.int64()), "size": size,
                     "age": pa.array(age, from_pandas=True), "colour": colour, "kind": label,
                     "price": 3 * size + 10 * (colour == "red")})


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("scoring")
    train = _frame(300, seed=1)
    common = dict(features=["size", "age", "colour"], fill_missing="mean", hidden=[8], epochs=5, seed=0)
    classifier = torchann.train(train, target="kind", **common)
    regression = torchann.train(train, target="price", **common)
    held = _frame(103, seed=2)
    pq.write_table(held, folder / "held.parquet", row_group_size=40)
    pacsv.write_csv(held, folder / "held.csv")
    return folder, classifier, regression, held


@pytest.mark.parametrize("data", ["held.parquet", "held.csv"])
@pytest.mark.parametrize("out", ["p.parquet", "p.csv", "p.jsonl"])
def test_chunks_of_seven_rows_equal_the_whole_file(models, tmp_path, data, out):
    folder, classifier, _, held = models
    rows = score_file(classifier, folder / data, tmp_path / f"small.{out}", keep=["id"], proba=True, chunk_rows=7)
    whole = score_file(classifier, folder / data, tmp_path / f"whole.{out}", keep=["id"], proba=True,
                       chunk_rows=10**6)
    assert rows == whole == 103
    small_bytes, whole_bytes = (tmp_path / f"small.{out}").read_bytes(), (tmp_path / f"whole.{out}").read_bytes()
    if out != "p.parquet":  # a Parquet file records its row groups, so only its contents must agree
        assert small_bytes == whole_bytes
    small, table = _read(tmp_path / f"small.{out}"), _read(tmp_path / f"whole.{out}")
    assert small == table
    assert list(table) == ["id", "kind", "p(big)", "p(cheap)", "p(dear)"]
    assert table["id"] == held.column("id").to_pylist()  # rows in order; an integer id stays exact
    expected = classifier.predictions(held, proba=True)
    assert table["kind"] == expected["kind"].tolist()
    np.testing.assert_array_equal(np.array(table["p(dear)"]), expected["p(dear)"])


def _read(path) -> dict[str, list]:
    if path.suffix == ".parquet":
        return pq.read_table(path).to_pydict()
    if path.suffix == ".csv":
        return pacsv.read_csv(path).to_pydict()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    return {k: [r[k] for r in lines] for k in lines[0]}


def test_regression_answers_equal_predict_on_the_table_read_whole(models, tmp_path):
    folder, _, regression, held = models
    score_file(regression, folder / "held.parquet", tmp_path / "p.parquet", chunk_rows=10)
    got = pq.read_table(tmp_path / "p.parquet")
    assert got.schema.names == ["price"] and got.schema.field("price").type == pa.float64()
    np.testing.assert_array_equal(got.column("price").to_numpy(), regression.predict(folder / "held.parquet"))


def test_a_failure_midway_leaves_no_file_and_the_old_one_as_it_was(models, tmp_path, monkeypatch):
    folder, classifier, _, _ = models
    (tmp_path / "p.parquet").write_bytes(b"old")
    calls = []
    real = type(classifier).predictions

    def third_chunk_fails(self, data, **kw):
        calls.append(data.n_rows)
        if len(calls) == 3:
            raise DataError("the disk went away")
        return real(self, data, **kw)

    monkeypatch.setattr(type(classifier), "predictions", third_chunk_fails)
    with pytest.raises(DataError, match="the disk went away"):
        score_file(classifier, folder / "held.parquet", tmp_path / "p.parquet", chunk_rows=10)
    assert calls == [10, 10, 10]
    assert os.listdir(tmp_path) == ["p.parquet"] and (tmp_path / "p.parquet").read_bytes() == b"old"


def test_an_unseen_category_in_one_chunk_is_counted_and_the_rest_is_scored(models, tmp_path):
    folder, classifier, _, held = models
    colour = held.column("colour").to_pylist()
    colour[57] = "purple"
    bad = held.set_column(held.schema.get_field_index("colour"), "colour", pa.array(colour))
    pacsv.write_csv(bad, tmp_path / "bad.csv")
    with pytest.warns(UserWarning, match=r"'colour': 1 row"):
        rows = score_file(classifier, tmp_path / "bad.csv", tmp_path / "p.csv", chunk_rows=8)
    assert rows == 103 and sorted(os.listdir(tmp_path)) == ["bad.csv", "p.csv"]


def test_cli_predict_streams_parquet_to_parquet(models, tmp_path):
    folder, classifier, _, held = models
    classifier.save(tmp_path / "run")
    result = runner.invoke(app, ["predict", str(tmp_path / "run"), "--data", str(folder / "held.parquet"),
                                 "--keep", "id", "--out", str(tmp_path / "p.parquet")])
    assert result.exit_code == 0, result.output
    assert result.stdout == "" and f"wrote 103 predictions to {tmp_path / 'p.parquet'}" in result.stderr
    got = pq.read_table(tmp_path / "p.parquet").to_pydict()
    assert got["id"] == held.column("id").to_pylist()
    assert got["kind"] == classifier.predict(held).tolist()


def test_cli_predict_of_a_csv_on_stdout(models, tmp_path):
    folder, classifier, _, held = models
    classifier.save(tmp_path / "run")
    result = runner.invoke(app, ["predict", str(tmp_path / "run"), "--data", str(folder / "held.csv")])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == ["kind", *classifier.predict(held).tolist()]


def test_a_date_column_is_read_as_text_in_every_chunk(tmp_path):
    """A model with a date feature scores a CSV in chunks as it predicts the table read whole
    (the dates were once read as numbers, and every such file was refused)."""
    rng = np.random.default_rng(3)
    n = 300
    day = np.array([f"2024-{m:02d}-{d:02d}" for m, d in zip(rng.integers(1, 13, n), rng.integers(1, 29, n))],
                   dtype=object)
    x = rng.normal(size=n)
    month = np.array([int(s[5:7]) for s in day])
    table = {"day": day, "x": x, "y": x + (month > 6) + rng.normal(0, 0.1, n)}
    model = torchann.train(table, target="y", hidden=[8], epochs=3, networks=1, seed=0)
    assert [f.kind for f in model.preprocessor.features] == ["date", "numeric"]
    path = tmp_path / "rows.csv"
    pacsv.write_csv(pa.table({"day": day.tolist(), "x": x}), path)
    out = tmp_path / "scored.csv"
    assert score_file(model, path, out, chunk_rows=64) == n
    scored = pacsv.read_csv(out).column("y").to_numpy()
    np.testing.assert_array_equal(scored, model.predict({"day": day, "x": x}))
    model.save(tmp_path / "run")
    result = runner.invoke(app, ["predict", str(tmp_path / "run"), str(path)])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == "y" and len(result.output.splitlines()) == n + 1
