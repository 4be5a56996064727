"""Dates arrive as text, as pyarrow dates (an ISO column in a CSV file, Parquet), as timestamps,
as pandas datetime64, numpy datetime64 or ``datetime.date`` objects: each gives the model that
the same dates written as ISO text give, bit for bit (the text path is the oracle)."""

from __future__ import annotations

import datetime

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import torchann
from torchann.core.errors import DataError

N = 160
RNG = np.random.default_rng(3)
DAYS = [datetime.date(2021, 1, 1) + datetime.timedelta(days=int(k)) for k in RNG.integers(0, 900, N)]
TIMES = [datetime.datetime(d.year, d.month, d.day, int(h), int(m), 0) for d, h, m in
         zip(DAYS, RNG.integers(0, 24, N), RNG.integers(0, 60, N))]
X = RNG.normal(size=N)
Y = X + np.array([d.month for d in DAYS]) / 4.0
FIT = dict(epochs=2, seed=0, hidden=[16])


def _train(data):
    return torchann.train(data, target="y", **FIT)



@pytest.fixture(scope="module")
def by_text():
    return _train({"day": [d.isoformat() for d in DAYS], "x": X, "y": Y})


def _same(model, oracle, rows) -> None:
    assert np.array_equal(model.predict(rows), oracle.predict({"day": [d.isoformat() for d in DAYS], "x": X}))


def test_an_iso_date_column_in_a_csv_file_is_a_date_feature(tmp_path, by_text):
    path = tmp_path / "days.csv"
    path.write_text("day,x,y\n" + "".join(f"{d.isoformat()},{float(x)!r},{float(y)!r}\n" for d, x, y in zip(DAYS, X, Y)))
    assert pa.types.is_date(__import__("pyarrow.csv").csv.read_csv(path).schema.field("day").type)  # what pyarrow gives
    model = _train(str(path))
    assert "day" not in model.preprocessor.dropped
    assert [f.kind for f in model.preprocessor.features] == ["date", "numeric"]
    _same(model, by_text, str(path))


@pytest.mark.parametrize("store", ["parquet date32", "pandas datetime64", "numpy datetime64", "python dates"])
def test_dates_in_any_form_give_the_text_model(store, tmp_path, by_text):
    if store == "parquet date32":
        data = tmp_path / "days.parquet"
        pq.write_table(pa.table({"day": pa.array(DAYS, pa.date32()), "x": X, "y": Y}), data)
        data = str(data)
    elif store == "pandas datetime64":
        data = pd.DataFrame({"day": pd.to_datetime(DAYS), "x": X, "y": Y})
    elif store == "numpy datetime64":
        data = {"day": np.array(DAYS, dtype="datetime64[D]"), "x": X, "y": Y}
    else:
        data = {"day": DAYS, "x": X, "y": Y}
    model = _train(data)
    assert model.preprocessor.features[0].kind == "date"
    _same(model, by_text, data)
    _same(by_text, by_text, data)  # and the text model reads the dates so at predict time


def test_timestamps_with_a_time_of_day_are_read_to_the_second(tmp_path):
    text = [t.strftime("%Y-%m-%d %H:%M:%S") for t in TIMES]
    oracle = _train({"day": text, "x": X, "y": Y})
    path = tmp_path / "times.parquet"
    pq.write_table(pa.table({"day": pa.array(TIMES, pa.timestamp("ns")), "x": X, "y": Y}), path)
    model = _train(str(path))
    assert model.preprocessor.features[0].date_format == "%Y-%m-%d %H:%M:%S"
    assert np.array_equal(model.predict(str(path)), oracle.predict({"day": text, "x": X}))


def test_missing_dates_stay_missing():
    days = pd.Series(pd.to_datetime(DAYS))
    days[[2, 7]] = pd.NaT
    text = [None if pd.isna(d) else d.strftime("%Y-%m-%d") for d in days]
    oracle = _train({"day": text, "x": X, "y": Y})
    model = _train(pd.DataFrame({"day": days, "x": X, "y": Y}))
    assert np.array_equal(model.predict(pd.DataFrame({"day": days, "x": X})), oracle.predict({"day": text, "x": X}))


def test_dates_mixed_with_text_name_both_rows():
    with pytest.raises(DataError, match=r"column 'day' mixes dates \(row 1\) and text \(row 3\)"):
        _train({"day": [DAYS[0], DAYS[1], "soon"], "x": X[:3], "y": Y[:3]})
