"""Column encodings (torchann.features, torchann.encoders): quantile maps, dates, rare categories,
missing values, log targets and class weights, each against scikit-learn or hand arithmetic."""

from __future__ import annotations

import json
from statistics import NormalDist

import numpy as np
import pytest
from sklearn.preprocessing import QuantileTransformer
from sklearn.utils.class_weight import compute_class_weight

from torchann.data.table import Table
from torchann.preprocess.encoders import TAIL, apply_quantile_map, date_format, date_parts, fit_quantile_map
from torchann.preprocess.features import MAX_ONE_HOT, MIN_COUNT
from torchann.preprocess.preprocessor import Preprocessor
from torchann.preprocess.target import class_weights


def test_quantile_map_knots_and_scores_match_scikit_learn():
    x = np.random.default_rng(0).lognormal(0, 1, 3000)
    knots, scores = fit_quantile_map(x, 50)
    qt = QuantileTransformer(n_quantiles=50, output_distribution="normal", subsample=10**9).fit(x[:, None])
    np.testing.assert_allclose(knots, qt.quantiles_[:, 0], rtol=1e-12)
    # at every inner knot the map gives the normal quantile of its level, as scikit-learn's does
    inner = np.asarray(knots[1:-1])
    np.testing.assert_allclose(apply_quantile_map(inner, knots, scores), qt.transform(inner[:, None])[:, 0],
                               atol=1e-9)
    # the ends are clipped at the normal quantiles of TAIL and 1 - TAIL; past them, values stay there
    end = NormalDist().inv_cdf(1 - TAIL)
    assert scores[0] == pytest.approx(-end) and scores[-1] == pytest.approx(end)
    np.testing.assert_allclose(apply_quantile_map([-1.0, 1e9], knots, scores), [-end, end])
    # between two knots: a straight line
    mid = (knots[10] + knots[11]) / 2
    assert apply_quantile_map([mid], knots, scores)[0] == pytest.approx((scores[10] + scores[11]) / 2)


def test_quantile_map_merges_tied_quantiles_by_their_mean_score():
    x = np.array([0.0] * 7 + [1.0] * 2)  # sorted positions 8p: levels 0 .. 3/4 fall on 0, level 1 on 1
    knots, scores = fit_quantile_map(x, 5)
    inv = NormalDist().inv_cdf
    z = [inv(p) for p in (TAIL, 0.25, 0.5, 0.75, 1 - TAIL)]
    assert knots == [0.0, 1.0]
    assert scores == pytest.approx([(z[0] + z[1] + z[2] + z[3]) / 4, z[4]])
    assert fit_quantile_map(np.full(9, 4.0), 5) == ([4.0], [0.0])


def test_dates_become_year_month_weekday_and_day_number():
    assert date_format(["2024-03-01", "2018-03-01"]) == "%Y-%m-%d"
    assert date_format(["Mar-2018", "Feb-2018"]) == "%b-%Y"
    assert date_format(["2013-01-01T06:00:00Z"]) == "%Y-%m-%dT%H:%M:%SZ"
    assert date_format(["red", "blue"]) is None and date_format(["12", "13"]) is None
    parts, miss = date_parts(["2024-03-01", None, "not a date", "2018-03-01"], "%Y-%m-%d")
    # 2024-03-01 was a Friday (weekday 4), 19,783 days after 1970-01-01; 2018-03-01 a Thursday, day 17,591
    np.testing.assert_array_equal(parts[0], [2024, 3, 4, 19783])
    np.testing.assert_array_equal(parts[3], [2018, 3, 3, 17591])
    np.testing.assert_array_equal(miss, [False, True, True, False])


def test_date_column_in_a_table_with_a_missing_date():
    t = Table.from_columns({"when": ["2024-03-01", "2018-03-01", None, "2018-03-01"], "y": [1.0, 2, 3, 4]})
    pre = Preprocessor.fit(t, target="y", fill_missing="mean")
    assert pre.input_names == ["when.year", "when.month", "when.weekday", "when.day", "when.missing"]
    x = pre.transform_x(t)
    years = np.array([2024.0, 2018, 2018])
    z = (2024 - years.mean()) / years.std()
    assert x[0, 0] == pytest.approx(z, rel=1e-6)
    np.testing.assert_allclose(x[2], [0, 0, 0, 0, 1], atol=1e-6)  # a missing date: the means, flagged
    again = Preprocessor.from_dict(json.loads(json.dumps(pre.to_dict())))
    np.testing.assert_array_equal(again.transform_x(t), x)


def test_many_categories_keep_the_frequent_ones_and_pool_the_rest():
    frequent = [f"job{i}" for i in range(3)]
    rare = [f"rare{i}" for i in range(MAX_ONE_HOT + 10)]
    values = frequent * MIN_COUNT + rare + [None]
    t = Table.from_columns({"job": values, "y": np.arange(len(values), dtype=float)})
    pre = Preprocessor.fit(t, target="y", fill_missing="mean")
    f = pre.features[0]
    assert f.categories == frequent and f.other and f.missing_slot
    assert pre.input_names == ["job=job0", "job=job1", "job=job2", "job=<other>", "job=<missing>"]
    x = pre.transform_x(Table.from_columns({"job": ["job1", "rare3", "never seen", None]}))
    np.testing.assert_array_equal(x, [[0, 1, 0, 0, 0], [0, 0, 0, 1, 0], [0, 0, 0, 1, 0], [0, 0, 0, 0, 1]])
    assert pre.unseen == {}  # a new value of a pooled column is one more rare value, not unseen


def test_skewed_positive_target_is_learnt_as_log1p():
    y = np.random.default_rng(1).lognormal(3, 1.2, 400)
    t = Table.from_columns({"x": np.log(y), "y": y})
    pre = Preprocessor.fit(t, target="y")
    assert pre.target_log == [True]
    assert pre.target_mean[0] == pytest.approx(np.mean(np.log1p(y)), rel=1e-12)
    yt = pre.transform_y(t)
    np.testing.assert_allclose(yt[:, 0], (np.log1p(y) - pre.target_mean[0]) / pre.target_std[0], rtol=1e-5)
    np.testing.assert_allclose(pre.inverse_y(yt), y[:, None], rtol=1e-5)
    # a symmetric target stays as it is; the choice can be forced either way
    t2 = Table.from_columns({"x": np.log(y), "y": np.log(y)})
    assert Preprocessor.fit(t2, target="y").target_log == [False]
    assert Preprocessor.fit(t, target="y", target_log=False).target_log == [False]


def test_balanced_class_weights_match_scikit_learn():
    codes = np.array([0] * 90 + [1] * 8 + [2] * 2)
    expected = compute_class_weight("balanced", classes=np.arange(3), y=codes)
    np.testing.assert_allclose(class_weights(codes, 3), expected, rtol=1e-12)
    np.testing.assert_allclose(class_weights(np.array([0, 0, 2]), 3), [3 / (3 * 2), 0.0, 3 / (3 * 1)])
