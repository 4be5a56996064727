"""torchann.MLPRegressor / MLPClassifier against scikit-learn: its estimator checks, its tools
(Pipeline, cross_val_score, GridSearchCV, clone, pickle), its metrics, and its own MLP as the
quality bar."""

from __future__ import annotations

import pickle
import random
import warnings

import numpy as np
import pytest
import torch

sklearn = pytest.importorskip("sklearn")

from sklearn.base import clone  # noqa: E402
from sklearn.datasets import make_classification, make_regression  # noqa: E402
from sklearn.metrics import accuracy_score, mean_squared_error, r2_score  # noqa: E402
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score, train_test_split  # noqa: E402
from sklearn.neural_network import MLPClassifier as SkMLPClassifier  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from torchann import MLPClassifier, MLPRegressor, load_dataset

# Checks that cannot pass here, with the reason (also listed in docs/sklearn.md). Skips that
# depend on the environment (pandas absent, SCIPY_ARRAY_API unset) are scikit-learn's own.
EXPECTED_FAILED_CHECKS: dict[str, str] = {}

# Small, quick settings: the checks are about the estimator contract, not accuracy (the
# defaults pass the same checks; see docs/sklearn.md).
FAST = dict(hidden=(32,), epochs=40, lr=1e-2)


@parametrize_with_checks(
    [MLPRegressor(**FAST), MLPClassifier(**FAST)],
    expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS,
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


# -- the estimator contract ------------------------------------------------------------------


def _classification(n=200, seed=0):
    return make_classification(n_samples=n, n_features=6, n_informative=4, n_redundant=0, n_classes=3,
                               n_clusters_per_class=1, class_sep=2.0, random_state=seed)


def test_params_are_stored_as_given_and_clone_keeps_them():
    est = MLPClassifier(hidden=[16, 8], lr=3e-3, optimizer="sgd", random_state=4)
    params = est.get_params()
    assert params["hidden"] == [16, 8] and params["lr"] == 3e-3 and params["optimizer"] == "sgd"
    # The defaults are train()'s, declared once in torchann.options.
    from torchann.core.options import option_default

    for name in ("epochs", "early_stopping", "scale", "val_split", "batch_size", "weight_decay", "fill_missing"):
        assert params[name] == option_default(name), name
    twin = clone(est)
    assert twin.get_params() == params and twin is not est
    est.set_params(lr=0.1, hidden=(4,))
    assert est.lr == 0.1 and est.hidden == (4,)
    with pytest.raises(ValueError, match="Invalid parameter 'learning_rate'"):
        est.set_params(learning_rate=0.1)


def test_bad_arguments_are_value_errors_naming_the_argument():
    x, y = _classification(n=40)
    with pytest.raises(ValueError, match="hidden must hold positive integers"):
        MLPClassifier(hidden=(8, 0)).fit(x, y)
    with pytest.raises(ValueError, match="Did you mean 'adam'"):
        MLPClassifier(optimizer="adamm", epochs=1).fit(x, y)
    with pytest.raises(ValueError, match=r"val_split must be a number in \[0, 1\), got 1.5"):
        MLPRegressor(val_split=1.5).fit(x, y)
    with pytest.raises(ValueError, match="only one class"):
        MLPClassifier(epochs=1).fit(x, np.zeros(len(x)))


def test_classifier_predictions_probabilities_and_score():
    x, y = _classification()
    labels = np.array(["ant", "bee", "cat"])[y]
    xtr, xte, ytr, yte = train_test_split(x, labels, test_size=0.3, random_state=0, stratify=labels)
    clf = MLPClassifier(hidden=(32,), epochs=60, lr=1e-2, random_state=0, scaling="standard").fit(xtr, ytr)
    assert list(clf.classes_) == ["ant", "bee", "cat"] and clf.n_features_in_ == 6
    proba = clf.predict_proba(xte)
    assert proba.shape == (len(xte), 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(np.exp(clf.predict_log_proba(xte)), proba, rtol=1e-9)
    predicted = clf.predict(xte)
    assert np.array_equal(predicted, clf.classes_[proba.argmax(axis=1)])
    assert clf.score(xte, yte) == accuracy_score(yte, predicted)
    assert clf.score(xte, yte) > 0.85
    # the fitted scaling is the mean and population std of the rows that trained (the held-out
    # rows excluded), as StandardScaler's on those rows
    from torchann.data.splits import split_indices

    train_rows, _ = split_indices(len(xtr), 0.2, seed=0, stratify=ytr)
    scaler = StandardScaler().fit(xtr[train_rows])
    features = clf.model_.preprocessor.features
    np.testing.assert_allclose([f.mean for f in features], scaler.mean_, rtol=1e-12)
    np.testing.assert_allclose([f.std for f in features], scaler.scale_, rtol=1e-12)


def test_regressor_predicts_in_target_units_and_scores_r2():
    x, y = make_regression(n_samples=240, n_features=5, noise=5.0, random_state=1)
    y = 5000 + 40 * y  # large units: predictions near 0 would mean the scaling was not undone
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.25, random_state=0)
    reg = MLPRegressor(hidden=(32,), epochs=150, lr=1e-2, random_state=0, networks=1).fit(xtr, ytr)
    predicted = reg.predict(xte)
    assert predicted.shape == (len(xte),)
    assert reg.score(xte, yte) == pytest.approx(r2_score(yte, predicted), rel=1e-12)
    assert reg.score(xte, yte) > 0.95
    # The kept weights are the best epoch's; its validation metrics, in target units, are
    # scikit-learn's on the held-out rows (the seeded split train() documents; the seed is
    # random_state itself).
    from torchann.data.splits import split_indices

    train_rows, val = split_indices(len(xtr), 0.2, seed=0)
    pre = reg.model_.preprocessor
    assert pre.target_mean == pytest.approx([ytr[train_rows].mean()], rel=1e-12)
    assert pre.target_std == pytest.approx([ytr[train_rows].std()], rel=1e-12)
    best = reg.history_.records[reg.best_epoch_ - 1]
    assert best["val_mse"] == pytest.approx(mean_squared_error(ytr[val], reg.predict(xtr[val])), rel=1e-4)
    assert best["val_r2"] == pytest.approx(r2_score(ytr[val], reg.predict(xtr[val])), abs=1e-4)
    two = MLPRegressor(hidden=(16,), epochs=20, random_state=0).fit(xtr, np.c_[ytr, -ytr])
    assert two.predict(xte).shape == (len(xte), 2) and two.n_outputs_ == 2


def test_same_random_state_same_model_and_global_random_state_untouched():
    x, y = _classification(n=120)
    before = (random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state().clone())
    a = MLPClassifier(hidden=(16,), epochs=15, random_state=7).fit(x, y)
    after = (random.getstate(), np.random.get_state()[1], torch.get_rng_state())
    assert before[0] == after[0] and np.array_equal(before[1], after[1]) and torch.equal(before[2], after[2])
    b = MLPClassifier(hidden=(16,), epochs=15, random_state=7).fit(x, y)
    c = MLPClassifier(hidden=(16,), epochs=15, random_state=8).fit(x, y)
    np.testing.assert_array_equal(a.predict_proba(x), b.predict_proba(x))
    assert not np.array_equal(a.predict_proba(x), c.predict_proba(x))


def test_early_stopping_keeps_the_best_epoch():
    x, y = make_regression(n_samples=80, n_features=4, noise=30.0, random_state=0)
    reg = MLPRegressor(hidden=(128, 128), epochs=300, lr=1e-2, early_stopping=5, random_state=0).fit(x, y)
    val = reg.validation_loss_curve_
    assert reg.n_iter_ == reg.best_epoch_ + 5 < 300
    assert reg.best_epoch_ == int(np.argmin(val)) + 1
    assert len(reg.loss_curve_) == reg.n_iter_
    off = MLPRegressor(hidden=(8,), epochs=12, early_stopping=0, random_state=0).fit(x, y)
    assert off.n_iter_ == 12 and len(off.validation_loss_curve_) == 12  # held-out rows still scored
    none = MLPRegressor(hidden=(8,), epochs=3, early_stopping=0, val_split=0, random_state=0).fit(x, y)
    assert none.validation_loss_curve_ is None


def test_pickle_round_trip_predicts_the_same():
    x, y = _classification(n=100)
    clf = MLPClassifier(hidden=(8,), epochs=10, random_state=0).fit(x, y)
    again = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(again.predict_proba(x), clf.predict_proba(x))
    assert again.model_ is not clf.model_ and not again.network_.training


def test_pipeline_cross_val_score_and_grid_search():
    x, y = _classification(n=150)
    pipe = make_pipeline(StandardScaler(), MLPClassifier(hidden=(16,), epochs=30, lr=1e-2,
                                                         random_state=0))
    folds = KFold(3, shuffle=True, random_state=0)
    scores = cross_val_score(pipe, x, y, cv=folds)
    by_hand = [clone(pipe).fit(x[tr], y[tr]).score(x[te], y[te]) for tr, te in folds.split(x)]
    np.testing.assert_array_equal(scores, by_hand)  # deterministic: the same numbers fold by fold
    assert scores.mean() > 0.8
    grid = GridSearchCV(MLPClassifier(epochs=30, random_state=0, networks=1),
                        {"hidden": [(2,), (32,)], "lr": [1e-2]}, cv=folds).fit(x, y)
    assert grid.best_params_ == {"hidden": (32,), "lr": 1e-2}
    assert grid.best_score_ == pytest.approx(max(grid.cv_results_["mean_test_score"]))
    assert grid.best_estimator_.network_.linear1.out_features == 32


# -- quality bar: scikit-learn's own MLP as the oracle ----------------------------------------------


@pytest.mark.parametrize("name", ["sklearn:breast_cancer", "sklearn:digits"])
def test_default_classifier_is_within_a_point_of_sklearns_mlp(name):
    from sklearn.exceptions import ConvergenceWarning
    from threadpoolctl import threadpool_limits

    table = load_dataset(name)
    x = np.stack([table.columns[n] for n in table.feature_names], axis=1)
    y = table.columns["target"].astype(int)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.25, stratify=y, random_state=0)
    with threadpool_limits(1), warnings.catch_warnings():  # one BLAS thread: 10x faster on small matrices
        warnings.simplefilter("ignore", ConvergenceWarning)
        theirs = make_pipeline(StandardScaler(), SkMLPClassifier(random_state=0)).fit(xtr, ytr).score(xte, yte)
    ours = MLPClassifier(random_state=0).fit(xtr, ytr).score(xte, yte)
    assert ours >= theirs - 0.01, f"{name}: torchann {ours:.4f}, scikit-learn {theirs:.4f}"
