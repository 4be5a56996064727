"""Cross-validation (``torchann.cross_validate``, ``torchann cv``): the folds are scikit-learn's
``KFold`` / ``StratifiedKFold`` (shuffled) for the same seed, row for row, and each fold's
scores are those of ``torchann.train`` on the fold's training rows scored on its test rows."""

from __future__ import annotations

import json
import re
import warnings

import numpy as np
import pytest
from typer.testing import CliRunner

import torchann
from torchann.cli import app
from torchann.data.folds import k_folds

model_selection = pytest.importorskip("sklearn.model_selection")
runner = CliRunner()
QUICK = {"hidden": [8], "epochs": 4, "early_stopping": 0}


def _columns(n: int = 45, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=n), rng.normal(size=n)
    colour = rng.choice(["red", "green", "blue"], size=n, p=[0.5, 0.3, 0.2])
    return {"a": a, "b": b, "colour": colour, "y": 2 * a - b + 0.1 * rng.normal(size=n),
            "kind": np.where(a > 0.4, "big", np.where(a < -0.8, "tiny", "mid")).astype(object)}


def _take(columns: dict[str, np.ndarray], rows: np.ndarray, drop: str) -> dict[str, np.ndarray]:
    return {k: v[rows] for k, v in columns.items() if k != drop}


@pytest.mark.parametrize("n", [7, 10, 37, 101])
@pytest.mark.parametrize("k", [2, 3, 5])
@pytest.mark.parametrize("seed", [0, 1, 12345])
def test_folds_are_sklearns(n, k, seed):
    if k > n:
        pytest.skip("more folds than rows")
    ours = k_folds(n, k, seed=seed)
    theirs = list(model_selection.KFold(k, shuffle=True, random_state=seed).split(np.zeros(n)))
    assert len(ours) == k
    for (tr, te), (str_, ste) in zip(ours, theirs):
        assert np.array_equal(tr, str_) and np.array_equal(te, ste)
    labels = np.random.default_rng(seed).choice(np.array(["b", "a", "c"], dtype=object), size=n, p=[0.6, 0.3, 0.1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # a class with fewer rows than folds: both warn
        try:
            theirs = list(model_selection.StratifiedKFold(k, shuffle=True, random_state=seed).split(np.zeros(n), labels))
        except ValueError:  # every class smaller than k: ours refuses too
            with pytest.raises(torchann.DataError, match="folds need at least"):
                k_folds(n, k, seed=seed, stratify=labels)
            return
        ours = k_folds(n, k, seed=seed, stratify=labels)
    for (tr, te), (str_, ste) in zip(ours, theirs):
        assert np.array_equal(tr, str_) and np.array_equal(te, ste)


def test_every_row_is_tested_once():
    folds = k_folds(23, 4, seed=3)
    tested = np.concatenate([te for _, te in folds])
    assert sorted(tested.tolist()) == list(range(23))
    for tr, te in folds:
        assert not set(tr) & set(te) and len(tr) + len(te) == 23


@pytest.mark.parametrize("task", ["regression", "classification"])
def test_fold_scores_equal_train_on_the_fold_rows(task):
    columns = _columns()
    target, drop = ("y", "kind") if task == "regression" else ("kind", "y")
    data = {k: v for k, v in columns.items() if k != drop}
    seen = []
    cv = torchann.cross_validate(data, target=target, folds=3, seed=4, on_fold=seen.append, **QUICK)
    splitter = (model_selection.KFold(3, shuffle=True, random_state=4) if task == "regression" else
                model_selection.StratifiedKFold(3, shuffle=True, random_state=4))
    expected = list(splitter.split(np.zeros(len(columns["y"])), columns[target]))
    assert cv.task == task and cv.stratified is (task == "classification") and cv.seed == 4
    assert [f.fold for f in seen] == [1, 2, 3]
    for fold, (tr, te) in zip(cv.folds, expected):
        assert np.array_equal(fold.train_rows, tr) and np.array_equal(fold.test_rows, te)
        model = torchann.train(_take(columns, tr, drop), target=target, seed=4, task=task, **QUICK)
        want = model.evaluate(_take(columns, te, drop))
        want.pop("rows")
        assert fold.scores == want
    metric = "r2" if task == "regression" else "accuracy"
    values = [f.scores[metric] for f in cv.folds]
    assert cv.mean[metric] == pytest.approx(np.mean(values)) and cv.std[metric] == pytest.approx(np.std(values))
    assert len({f.scores[metric] for f in cv.folds}) > 1  # the folds really differ


def test_cli_json_and_plain_lines(tmp_path):
    import csv

    columns = _columns(30)
    path = tmp_path / "t.csv"
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["a", "b", "colour", "y"])
        writer.writerows(zip(*(columns[k].tolist() for k in ("a", "b", "colour", "y"))))
    flags = ["--target", "y", "--folds", "3", "--seed", "2", "--hidden", "8", "--epochs", "4", "--early-stopping", "0"]
    result = runner.invoke(app, ["cv", str(path), *flags, "--json"])
    assert result.exit_code == 0, result.output
    got = json.loads(result.stdout)
    want = torchann.cross_validate(path, target="y", folds=3, seed=2, **QUICK)
    assert got["split"] == "KFold" and got["folds"] == 3 and got["rows"] == 30
    assert got["mean"] == want.mean and got["std"] == want.std
    assert [f["r2"] for f in got["fold_scores"]] == [f.scores["r2"] for f in want.folds]
    assert re.findall(r"^fold \d/3: mse", result.stderr, flags=re.M) and len(result.stderr.splitlines()) == 3
    plain = runner.invoke(app, ["cv", str(path), *flags, "--quiet"])
    assert plain.exit_code == 0, plain.output
    lines = plain.stdout.splitlines()
    assert lines[0].startswith("regression: 3-fold cross-validation") and lines[1].split() == ["fold", "mse", "mae",
                                                                                                "r2", "rows"]
    mean = next(line for line in lines if line.split()[0] == "mean").split()
    assert float(mean[3]) == pytest.approx(want.mean["r2"], rel=1e-5)
    assert "StratifiedKFold" not in plain.stdout and "KFold(shuffle=True, random_state=2)" in plain.stdout


def test_cli_offers_every_train_option():
    """cv's flags are train's model flags plus its own."""
    def flags(text):
        return set(re.findall(r"(--[a-z][a-z-]+)", text))

    train = flags(runner.invoke(app, ["train", "--help"]).stdout)
    cv = flags(runner.invoke(app, ["cv", "--help"]).stdout)
    runs_only = {"--val", "--checkpoint-every", "--global-batch-size", "--resume", "--out", "--overwrite",
                 "--tensorboard", "--nproc"}
    assert train - runs_only <= cv
    assert {"--folds", "--json", "--quiet"} <= cv and not (runs_only & cv)


def test_bad_input_is_one_line(tmp_path):
    result = runner.invoke(app, ["cv", "sklearn:iris", "--folds", "1"])
    assert result.exit_code == 2
    result = runner.invoke(app, ["cv", "add", "--folds", "500", "--epochs", "1"])
    assert result.exit_code == 2 and "500 folds need at least 500 rows" in result.stderr
    assert "Traceback" not in result.output
    with pytest.raises(torchann.UsageError, match="did you mean 'hidden'"):
        torchann.cross_validate("sklearn:iris", folds=3, hiden=[8])
