"""The scikit-learn estimators on pandas DataFrames with text, categorical and missing values:
the same preprocessing, defaults and weights as ``torchann.train`` on the same rows."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

pd = pytest.importorskip("pandas")
pytest.importorskip("sklearn")

from sklearn.compose import ColumnTransformer  # noqa: E402
from sklearn.metrics import accuracy_score, r2_score  # noqa: E402
from sklearn.model_selection import KFold, cross_val_score  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402

import torchann  # noqa: E402

QUICK = dict(hidden=(16,), epochs=6, threads=1)


def _houses(n: int = 90, seed: int = 0) -> tuple[object, np.ndarray]:
    """A small table with a text column (with a missing value), a pandas categorical, a
    boolean, numbers with a missing value, and a noise column."""
    rng = np.random.default_rng(seed)
    zone = rng.choice(["RL", "RM", "FV"], n).astype(object)
    zone[[4, 10, 20, 30, 40]] = None
    area = rng.normal(120.0, 25.0, n)
    area[[7, 15, 25, 35, 45]] = np.nan
    frame = pd.DataFrame({
        "zone": zone,
        "area": area,
        "rooms": rng.integers(1, 6, n).astype(float),
        "style": pd.Categorical(rng.choice(["ranch", "colonial"], n)),
        "garage": rng.random(n) < 0.5,
        "noise": rng.normal(size=n),
    })
    price = (np.nan_to_num(area, nan=120.0) * 2.0 + (zone == "RL") * 40.0 + frame["garage"] * 15.0
             + rng.normal(0, 3, n))
    return frame, np.asarray(price, dtype=np.float64)


def test_regressor_on_a_frame_with_text_and_missing_values_equals_train():
    frame, price = _houses()
    est = torchann.MLPRegressor(**QUICK, random_state=7).fit(frame, price)
    oracle = torchann.train(frame.assign(y=price), target="y", seed=7, **QUICK)
    # train's preprocessing: the text column one-hot (with a slot for its missing value), the
    # categorical and the boolean one-hot, the missing number filled with an indicator input
    assert est.model_.preprocessor == oracle.preprocessor
    assert "zone=<missing>" in est.model_.input_names and "area.missing" in est.model_.input_names
    np.testing.assert_array_equal(est.predict(frame), oracle.predict(frame))  # the same weights, bit for bit
    assert list(est.feature_names_in_) == list(frame.columns) and est.n_features_in_ == 6
    # rows in column order (an object array) find their columns by the names seen in fit
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        rows = est.predict(frame.to_numpy(dtype=object))
    np.testing.assert_array_equal(rows, oracle.predict(frame))


def test_classifier_on_a_frame_equals_train_with_the_same_labels():
    frame, price = _houses(n=120, seed=1)
    label = np.where(price > np.median(price), "dear", "cheap")
    clf = torchann.MLPClassifier(**QUICK, random_state=2).fit(frame, label)
    oracle = torchann.train(frame.assign(y=label), target="y", seed=2, **QUICK)
    assert list(clf.classes_) == ["cheap", "dear"] == oracle.classes
    np.testing.assert_array_equal(clf.predict_proba(frame), oracle.predict_proba(frame))
    assert accuracy_score(label, clf.predict(frame)) == clf.score(frame, label)


def test_frame_in_a_pipeline_and_cross_val_score_matches_train_fold_by_fold():
    frame, price = _houses(n=90, seed=3)
    pipe = Pipeline([
        ("columns", ColumnTransformer([("noise", "drop", ["noise"])], remainder="passthrough",
                                      verbose_feature_names_out=False).set_output(transform="pandas")),
        ("mlp", torchann.MLPRegressor(**QUICK, random_state=0)),
    ])
    folds = KFold(3, shuffle=True, random_state=0)
    scores = cross_val_score(pipe, frame, price, cv=folds)
    expected = []
    for train_rows, test_rows in folds.split(frame):
        part = frame.drop(columns="noise")
        model = torchann.train(part.iloc[train_rows].assign(price=price[train_rows]), target="price", seed=0,
                               **QUICK)
        expected.append(r2_score(price[test_rows], model.predict(part.iloc[test_rows])))
    np.testing.assert_allclose(scores, expected, rtol=0, atol=1e-12)


def test_numeric_frames_give_what_arrays_give():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(60, 3))
    y = x @ np.array([1.0, -2.0, 0.5])
    from_array = torchann.MLPRegressor(**QUICK, random_state=1).fit(x, y)
    from_frame = torchann.MLPRegressor(**QUICK, random_state=1).fit(pd.DataFrame(x, columns=["a", "b", "c"]), y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(from_frame.predict(pd.DataFrame(x, columns=["a", "b", "c"])),
                                      from_array.predict(x))


def test_frame_errors_are_one_line_value_errors():
    frame, price = _houses()
    est = torchann.MLPRegressor(**QUICK, random_state=0, fill_missing=None)
    with pytest.raises(ValueError, match=r"column 'zone' has a missing value in row 5 "):
        est.fit(frame, price)
    est = torchann.MLPRegressor(**QUICK, random_state=0).fit(frame, price)
    bad = frame.assign(area=frame["area"].astype(object))
    bad.loc[2, "area"] = "unknown"
    with pytest.raises(ValueError, match=r"<DataFrame>: column 'area' holds numbers, but row 3 holds 'unknown'; correct that value"):
        est.predict(bad)
