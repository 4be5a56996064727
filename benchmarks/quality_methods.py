"""The methods the quality benchmark compares, each as ``fit_predict(train, test, target, task, seed, threads=1)``.

Each returns ``(prediction, probabilities, classes)``: target values for regression; for
classes, the predicted labels and one probability column per class in ``classes`` order.
Each method runs with its library's defaults; only what a practitioner must add to make it
run on a mixed table is added (imputation, scaling and one-hot for scikit-learn's MLP,
ordinal codes for the trees' text columns, text as CatBoost's ``cat_features``). ``threads`` is
passed to the libraries that take a thread count (LightGBM, CatBoost, pytabkit); torch,
OpenMP and BLAS pools are set by the caller (``quality.py``).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["METHODS", "torchann_fit_predict"]


def _text_columns(df: pd.DataFrame, target: str) -> list[str]:
    return [c for c in df.columns if c != target and not pd.api.types.is_numeric_dtype(df[c])]


def _xy(df: pd.DataFrame, target: str) -> tuple[pd.DataFrame, np.ndarray]:
    y = df[target].to_numpy()
    return df.drop(columns=[target]), y


def _labels(y: np.ndarray) -> np.ndarray:
    return np.asarray([str(v) for v in y], dtype=object)


# -- torchann ----------------------------------------------------------------------------------

def _table(df: pd.DataFrame, target: str | None):
    from torchann.data.table import Table

    cols = {}
    for c in df.columns:
        values = df[c].to_numpy()
        if values.dtype == object:
            values = np.array([None if (v is None or (isinstance(v, float) and np.isnan(v))) else v
                               for v in values.tolist()], dtype=object)
        cols[c] = values
    return Table.from_columns(cols, source="benchmark", targets=[target] if target else [])


def torchann_fit_predict(train, test, target, task, seed, threads: int = 1,
                         options: dict[str, Any] | None = None):
    """torchann with nothing but the target (plus ``options`` for the ablations); its thread
    count is its own choice within torch's pool, which the caller sets."""
    import torchann

    train_table = _table(train, target)
    test_table = _table(test.drop(columns=[target]), None)
    model = torchann.train(train_table, target=target, seed=seed, **(options or {}))
    if task == "regression":
        return np.asarray(model.predict(test_table), dtype=np.float64).reshape(-1), None, None
    proba = model.predict_proba(test_table)
    classes = [str(c) for c in model.preprocessor.classes]
    return _labels(model.predict(test_table)), proba, classes


def _ordinal(train: pd.DataFrame, test: pd.DataFrame, target: str):
    """Text columns as category codes learnt on the training rows (unknown or missing: NaN)."""
    from sklearn.preprocessing import OrdinalEncoder

    x_train, y_train = _xy(train, target)
    x_test, _ = _xy(test, target)
    text = _text_columns(train, target)
    x_train, x_test = x_train.copy(), x_test.copy()
    categorical = []
    if text:
        enc = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan,
                             encoded_missing_value=np.nan)
        x_train[text] = enc.fit_transform(x_train[text].astype(object).fillna(np.nan))
        x_test[text] = enc.transform(x_test[text].astype(object).fillna(np.nan))
        # HistGradientBoosting takes at most 255 categories per column; more stay ordinal codes
        categorical = [c for c, cats in zip(text, enc.categories_) if len(cats) <= 255]
    return x_train.astype(float), y_train, x_test.astype(float), categorical


def hgb_fit_predict(train, test, target, task, seed, threads: int = 1):
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    x_train, y_train, x_test, categorical = _ordinal(train, test, target)
    mask = [c in categorical for c in x_train.columns]
    if task == "regression":
        model = HistGradientBoostingRegressor(categorical_features=mask, random_state=seed)
        return model.fit(x_train, y_train).predict(x_test), None, None
    model = HistGradientBoostingClassifier(categorical_features=mask, random_state=seed)
    model.fit(x_train, _labels(y_train))
    return model.predict(x_test), model.predict_proba(x_test), list(model.classes_)


def lgbm_fit_predict(train, test, target, task, seed, threads: int = 1):
    import lightgbm as lgb

    x_train, y_train, x_test, categorical = _ordinal(train, test, target)
    kw = dict(random_state=seed, verbose=-1, n_jobs=threads)
    fit_kw = dict(categorical_feature=categorical or "auto")
    if task == "regression":
        model = lgb.LGBMRegressor(**kw).fit(x_train, y_train, **fit_kw)
        return model.predict(x_test), None, None
    model = lgb.LGBMClassifier(**kw).fit(x_train, _labels(y_train), **fit_kw)
    return model.predict(x_test), model.predict_proba(x_test), list(model.classes_)


# -- scikit-learn's MLP ---------------------------------------------------------------------------

def _sklearn_pipeline(train: pd.DataFrame, target: str, estimator):
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    text = _text_columns(train, target)
    numeric = [c for c in train.columns if c != target and c not in text]
    steps = []
    if numeric:
        steps.append(("num", make_pipeline(SimpleImputer(add_indicator=True), StandardScaler()), numeric))
    if text:
        steps.append(("text", make_pipeline(SimpleImputer(strategy="constant", fill_value="missing"),
                                            OneHotEncoder(handle_unknown="ignore")), text))
    return make_pipeline(ColumnTransformer(steps), estimator)


def _as_text(df: pd.DataFrame, target: str) -> pd.DataFrame:
    df = df.copy()
    for c in _text_columns(df, target):
        df[c] = df[c].astype(object).where(df[c].notna(), np.nan)
    return df


def mlp_fit_predict(train, test, target, task, seed, threads: int = 1):
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.preprocessing import StandardScaler

    train, test = _as_text(train, target), _as_text(test, target)
    x_train, y_train = _xy(train, target)
    x_test, _ = _xy(test, target)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if task == "regression":
            # the target standardised too, as a practitioner must for MLPRegressor to converge
            model = TransformedTargetRegressor(_sklearn_pipeline(train, target, MLPRegressor(random_state=seed)),
                                               transformer=StandardScaler())
            return model.fit(x_train, y_train).predict(x_test), None, None
        model = _sklearn_pipeline(train, target, MLPClassifier(random_state=seed))
        model.fit(x_train, _labels(y_train))
    return model.predict(x_test), model.predict_proba(x_test), list(model.classes_)


# -- CatBoost ---------------------------------------------------------------------------------------

def catboost_fit_predict(train, test, target, task, seed, threads: int = 1):
    """CatBoost's defaults; every text column is a ``cat_features`` column (missing: "missing")."""
    from catboost import CatBoostClassifier, CatBoostRegressor

    x_train, y_train = _xy(train, target)
    x_test, _ = _xy(test, target)
    text = _text_columns(train, target)
    x_train, x_test = x_train.copy(), x_test.copy()
    for c in text:
        x_train[c] = x_train[c].astype(object).where(x_train[c].notna(), "missing").astype(str)
        x_test[c] = x_test[c].astype(object).where(x_test[c].notna(), "missing").astype(str)
    for c in [c for c in x_train.columns if c not in text]:
        x_train[c], x_test[c] = x_train[c].astype(float), x_test[c].astype(float)
    kw = dict(random_seed=seed, thread_count=threads, verbose=0, allow_writing_files=False, cat_features=text)
    if task == "regression":
        model = CatBoostRegressor(**kw).fit(x_train, np.asarray(y_train, dtype=float))
        return np.asarray(model.predict(x_test), dtype=float).reshape(-1), None, None
    model = CatBoostClassifier(**kw).fit(x_train, _labels(y_train))
    classes = [str(c) for c in model.classes_]
    return _labels(np.asarray(model.predict(x_test)).reshape(-1)), model.predict_proba(x_test), classes


# -- RealMLP-TD and TabM-D (pytabkit) ------------------------------------------------------------

def _pytabkit_frames(train, test, target):
    """Text as pandas categories (missing text its own category); numbers: median fill + indicator."""
    x_train, y_train = _xy(train, target)
    x_test, _ = _xy(test, target)
    text = _text_columns(train, target)
    x_train, x_test = x_train.copy(), x_test.copy()
    for c in text:
        cats = pd.CategoricalDtype(sorted(set(x_train[c].fillna("missing").astype(str))))
        x_train[c] = x_train[c].fillna("missing").astype(str).astype(cats)
        x_test[c] = x_test[c].fillna("missing").astype(str).astype(cats)
    for c in [c for c in x_train.columns if c not in text]:
        miss = x_train[c].isna()
        if miss.any():
            med = float(x_train[c].median())
            x_train[c + "_missing"], x_test[c + "_missing"] = miss.astype(float), x_test[c].isna().astype(float)
            x_train[c], x_test[c] = x_train[c].fillna(med), x_test[c].fillna(med)
        x_train[c], x_test[c] = x_train[c].astype(float), x_test[c].astype(float)
    return x_train, y_train, x_test


def _pytabkit_fit_predict(classifier, regressor, train, test, target, task, seed, threads):
    x_train, y_train, x_test = _pytabkit_frames(train, test, target)
    kw = dict(random_state=seed, n_threads=threads, device="cpu", verbosity=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        if task == "regression":
            model = regressor(**kw).fit(x_train, np.asarray(y_train, dtype=float))
            return np.asarray(model.predict(x_test), dtype=float).reshape(-1), None, None
        model = classifier(**kw).fit(x_train, _labels(y_train))
        return _labels(model.predict(x_test)), model.predict_proba(x_test), [str(c) for c in model.classes_]


def realmlp_fit_predict(train, test, target, task, seed, threads: int = 1):
    from pytabkit import RealMLP_TD_Classifier, RealMLP_TD_Regressor

    return _pytabkit_fit_predict(RealMLP_TD_Classifier, RealMLP_TD_Regressor, train, test, target, task, seed,
                                 threads)


def tabm_fit_predict(train, test, target, task, seed, threads: int = 1):
    """TabM-D: pytabkit's TabM with its paper's default settings."""
    from pytabkit import TabM_D_Classifier, TabM_D_Regressor

    return _pytabkit_fit_predict(TabM_D_Classifier, TabM_D_Regressor, train, test, target, task, seed, threads)


METHODS = {
    "torchann": torchann_fit_predict,
    "hgb": hgb_fit_predict,
    "lightgbm": lgbm_fit_predict,
    "mlp": mlp_fit_predict,
    "catboost": catboost_fit_predict,
    "realmlp": realmlp_fit_predict,
    "tabm": tabm_fit_predict,
}
