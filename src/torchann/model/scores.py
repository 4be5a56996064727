"""Scores of predictions against true answers, in numpy, for ``Model.evaluate``.

The formulas are scikit-learn's (its ``metrics`` module is the oracle in the tests):

* r2 is ``1 - SSE / SST`` per target, averaged; a constant target scores 1 for a perfect fit and
  0 otherwise (scikit-learn's ``force_finite``).
* log loss clips probabilities to ``[1e-15, 1]`` and averages ``-log p(true class)``.
* balanced accuracy is the mean recall over the classes present in the true answers.
* auc (two classes) is the Mann-Whitney statistic of the positive class's probability, with
  ties counted half.
"""

from __future__ import annotations

import numpy as np

__all__ = ["regression_scores", "classification_scores", "roc_auc"]


def regression_scores(truth: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """``truth`` and ``pred`` ``(n, k)`` in the target's units -> mse, mae, r2."""
    truth = np.asarray(truth, dtype=np.float64).reshape(len(truth), -1)
    pred = np.asarray(pred, dtype=np.float64).reshape(truth.shape)
    # Answers near float64's limit (a target of 1e308 learnt as log1p(y)) are scored in units of
    # their largest value, so that r2 and mae stay finite; an mse past float64's range is inf.
    top = max(float(np.abs(truth).max(initial=0.0)), float(np.abs(pred).max(initial=0.0)))
    unit = top if np.isfinite(top) and top > 1e100 else 1.0
    if unit != 1.0:
        truth, pred = truth / unit, pred / unit
    err = pred - truth
    sse = (err**2).sum(axis=0)
    sst = ((truth - truth.mean(axis=0)) ** 2).sum(axis=0)
    flat = sst == 0
    r2 = np.where(flat, (sse == 0).astype(np.float64), 1.0 - sse / np.where(flat, 1.0, sst))
    with np.errstate(over="ignore"):
        mse = float((err**2).mean()) * unit * unit
    return {"mse": mse, "mae": float(np.abs(err).mean()) * unit, "r2": float(r2.mean())}


def classification_scores(codes: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """True class codes ``(n,)`` and probabilities ``(n, C)`` -> accuracy, balanced accuracy,
    log loss, and auc when there are two classes."""
    codes = np.asarray(codes, dtype=np.int64)
    proba = np.asarray(proba, dtype=np.float64)
    predicted = proba.argmax(axis=1)
    recalls = [float((predicted[codes == c] == c).mean()) for c in np.unique(codes)]
    p_true = np.clip(proba[np.arange(len(codes)), codes], 1e-15, 1.0)
    scores = {
        "accuracy": float((predicted == codes).mean()),
        "balanced_accuracy": float(np.mean(recalls)),
        "log_loss": float(-np.log(p_true).mean()),
    }
    if proba.shape[1] == 2 and len(np.unique(codes)) == 2:
        scores["auc"] = roc_auc(codes == 1, proba[:, 1])
    return scores


def roc_auc(positive: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve: the chance a random positive scores above a random negative."""
    positive = np.asarray(positive, dtype=bool)
    score = np.asarray(score, dtype=np.float64)
    order = np.argsort(score, kind="mergesort")
    ranks = np.empty(len(score), dtype=np.float64)
    sorted_scores = score[order]
    # Average ranks over ties (1-based).
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    avg = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(avg, counts)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))
