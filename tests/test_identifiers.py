"""Numeric identifier columns (row numbers, order numbers, parcel ids) are left out of the
features and said so; real numeric features of real tables are all kept; a kept id prints as
the file has it."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest
from typer.testing import CliRunner

import torchann
from torchann.cli import app
from torchann.data.datasets import load_dataset
from torchann.data.table import Table
from torchann.preprocess.features import identifier_reason
from torchann.preprocess.preprocessor import Preprocessor

sklearn_datasets = pytest.importorskip("sklearn.datasets")

runner = CliRunner()


def _sklearn_table(loader, **kwargs) -> Table:
    bunch = loader(**kwargs)
    x = np.asarray(bunch.data, dtype=np.float64)
    y = np.asarray(bunch.target, dtype=np.float64)
    y = y[:, 0] if y.ndim > 1 else y
    return Table.from_columns({**{f"f{j}": x[:, j] for j in range(x.shape[1])}, "y": y}, targets=["y"],
                              source=loader.__name__)


def _parcel_ids(rng, n):
    """``n`` distinct 9-digit parcel numbers in random order, like Ames' PID (526301100 on)."""
    return 526_301_100 + rng.choice(480_000, n, replace=False) * 1000 + rng.integers(0, 1000, n)


def _real_tables():
    yield "diabetes (scaled)", load_dataset("sklearn:diabetes")
    yield "diabetes (raw units: age, sex, bp, s1 are whole numbers)", _sklearn_table(
        sklearn_datasets.load_diabetes, scaled=False)
    for name in ("digits", "wine", "iris", "breast_cancer"):
        yield name, load_dataset(f"sklearn:{name}")
    yield "linnerud (20 rows of whole numbers)", _sklearn_table(sklearn_datasets.load_linnerud)
    try:
        yield "california housing", _sklearn_table(sklearn_datasets.fetch_california_housing,
                                                   download_if_missing=False)
    except OSError:  # not in this machine's scikit-learn data folder
        pass


def test_real_tables_keep_every_feature():
    seen = 0
    for name, table in _real_tables():
        pre = Preprocessor.fit(table, task="regression")
        assert pre.dropped == {}, name
        assert pre.feature_names == table.feature_names, name
        seen += 1
    assert seen >= 7


def test_a_row_number_and_a_parcel_id_are_left_out_and_said_so():
    table = load_dataset("sklearn:diabetes")
    n = table.n_rows
    rng = np.random.default_rng(0)
    parcel = _parcel_ids(rng, n).astype(np.float64)
    columns = {"row": np.arange(1.0, n + 1), "pid": parcel, **table.columns}
    wide = Table(columns, "houses.csv", targets=list(table.targets))
    with pytest.warns(UserWarning) as caught:
        model = torchann.train(wide, hidden=(8,), epochs=1, seed=0, threads=1)
    assert model.feature_names == table.feature_names  # every real feature kept, the two ids left out
    dropped = model.history.info["dropped_columns"]
    assert list(dropped) == ["row", "pid"]
    rows = int(model.history.info["train_rows"])
    assert dropped["row"].startswith(f"{rows} distinct whole numbers in {rows} training rows, in row order")
    assert "each of 7 digits or more: an identifier" in dropped["pid"]
    said = [str(w.message) for w in caught]
    assert f"houses.csv: column 'row' left out of the features ({dropped['row']})" in said
    assert f"houses.csv: column 'pid' left out of the features ({dropped['pid']})" in said
    assert model.describe()["left_out"] == dropped
    # named as a feature, the same column is kept
    kept = torchann.train(wide, features=["row", "pid", "age"], hidden=(8,), epochs=1, seed=0, threads=1)
    assert kept.feature_names == ["row", "pid", "age"] and kept.history.info["dropped_columns"] == {}


@pytest.mark.parametrize("values, why", [
    (np.arange(1.0, 41), "in row order"),  # a row number
    (np.arange(10_000.0, 10_400.0, 10.0)[::-1], "in row order"),  # order numbers, newest first
    (np.random.default_rng(1).permutation(40) + 3_000_000.0, "7 digits"),  # shuffled account numbers
    # R's rownames after a shuffle and a split: 2,000 of the numbers 1..2,380, in no order
    (np.random.default_rng(4).permutation(2380)[:2000] + 1.0, "the row numbers of a shuffled table"),
])
def test_identifier_like_columns(values, why):
    assert why in identifier_reason(values)


@pytest.mark.parametrize("values", [
    np.random.default_rng(2).permutation(np.arange(500.0, 5000.0, 90.0)),  # distinct areas, any order: a measurement
    np.arange(1.0, 41) + 0.5,  # in order but not whole numbers
    np.arange(1.0, 16),  # too few rows to tell
    np.repeat(np.arange(1.0, 21), 2),  # in order, but each value twice: a group, not a row id
    np.random.default_rng(3).integers(1_000_000, 1_000_010, 40).astype(float),  # 7 digits, mostly repeated
    # distinct whole numbers drawn from a range 50 times their count (incomes in dollars, say)
    np.random.default_rng(5).choice(10_000, 200, replace=False).astype(float) + 1.0,
])
def test_measurements_are_not_identifiers(values):
    assert identifier_reason(values) is None


def test_cli_train_says_it_and_predict_keep_prints_the_id_as_written(tmp_path):
    rng = np.random.default_rng(4)
    n = 60
    pid = _parcel_ids(rng, n)
    area = rng.normal(100, 20, n).round(2)
    data = tmp_path / "parcels.csv"
    data.write_text("order,PID,area,price\n" + "".join(
        f"{i + 1},{p},{a},{2 * a + 5:.3f}\n" for i, (p, a) in enumerate(zip(pid, area))))
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", str(data), "--target", "price", "--hidden", "8", "--epochs", "2",
                                 "--threads", "1", "--quiet", "--out", str(out)])
    assert result.exit_code == 0, result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("warning:")]
    assert [ln.split(" left out")[0] for ln in lines] == [f"warning: {data}: column 'order'",
                                                           f"warning: {data}: column 'PID'"]
    assert torchann.load(out).feature_names == ["area"]
    inspect = runner.invoke(app, ["inspect", str(out)])
    assert "  PID left out: " in inspect.stdout
    # PID named as a feature and kept in the output: the integers of the file, not 909279080.0
    named = tmp_path / "named"
    result = runner.invoke(app, ["train", str(data), "--target", "price", "--features", "PID,area", "--hidden", "8",
                                 "--epochs", "2", "--threads", "1", "--quiet", "--out", str(named)])
    assert result.exit_code == 0, result.output
    for extra in ([], ["--json"]):
        result = runner.invoke(app, ["predict", str(named), "--data", str(data), "--keep", "PID", *extra])
        assert result.exit_code == 0, result.output
        if extra:
            import json

            printed = json.loads(result.stdout)["PID"]
            assert printed == pid.tolist() and all(isinstance(v, int) for v in printed)
        else:
            rows = list(csv.DictReader(io.StringIO(result.stdout)))
            assert [r["PID"] for r in rows] == [str(p) for p in pid]
            model = torchann.load(named)
            np.testing.assert_array_equal([float(r["price"]) for r in rows], model.predict(str(data)))


def test_a_lone_column_of_counting_numbers_stays_a_feature():
    """``train(np.arange(100)[:, None], y)``: with nothing else to learn from, the column is the feature."""
    x = np.arange(100.0)[:, None]
    model = torchann.train(x, 2 * x[:, 0] + 1, hidden=(8,), epochs=1, seed=0, threads=1)
    assert model.feature_names == ["x0"] and model.history.info["dropped_columns"] == {}
    est = torchann.MLPRegressor(hidden=(8,), epochs=1, threads=1, random_state=0).fit(x, 2 * x[:, 0])
    assert est.model_.feature_names == ["x0"]
    # beside a real feature, the same column is an identifier
    wide = np.column_stack([x[:, 0], np.random.default_rng(0).normal(size=100)])
    with pytest.warns(UserWarning, match=r"<arrays>: column 'x0' left out of the features \(80 distinct whole "
                                         r"numbers in 80 training rows, in row order"):
        model = torchann.train(wide, wide[:, 1], hidden=(8,), epochs=1, seed=0, threads=1)
    assert model.feature_names == ["x1"] and list(model.history.info["dropped_columns"]) == ["x0"]
