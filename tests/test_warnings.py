"""Warnings point at the user's line: in Python the caller's file and line, on the command line
one clean ``warning:`` line with no ``file.py:123:`` source line, for every command."""

from __future__ import annotations

import subprocess
import sys
import warnings

import pytest
from typer.testing import CliRunner

import torchann
from torchann.cli import app
from torchann.preprocess.preprocessor import UnseenCategoryWarning

runner = CliRunner()
HERE = __file__
UNSEEN = "categories never seen in training ('colour': 1 row(s))"


def _rows(n: int) -> dict[str, list]:
    colours = ["red", "green", "blue"]
    x = [i / n for i in range(n)]
    return {"x": x, "colour": [colours[i % 3] for i in range(n)], "label": ["hi" if v > 0.5 else "lo" for v in x]}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("warn") / "run"
    torchann.train(_rows(30), target="label", hidden=[4], epochs=2, seed=0).save(folder)
    data = folder.parent / "new.csv"
    data.write_text("x,colour,label\n0.2,red,lo\n0.9,purple,hi\n")  # purple: never seen in training
    return folder, data


def _line() -> int:
    return sys._getframe(1).f_lineno + 1  # the line after the call: where the warned call is


def _only(record) -> warnings.WarningMessage:
    assert len(record) == 1, [str(w.message) for w in record]
    return record[0]


def test_model_calls_warn_at_the_callers_line(run):
    model = torchann.load(run[0])
    data = str(run[1])
    calls = [
        lambda: model.predict(data),
        lambda: model.predict_proba(data),
        lambda: model.predictions(data, proba=True),
        lambda: model.evaluate(data),
        lambda: model.encode(data),
    ]
    for call in calls:
        with pytest.warns(UnseenCategoryWarning, match=r"categories never seen") as record:
            call()
        warning = _only(record)
        assert (warning.filename, warning.lineno) == (HERE, call.__code__.co_firstlineno), warning.filename


def test_predict_on_rows_warns_at_the_callers_line(run):
    model = torchann.load(run[0])
    with pytest.warns(UnseenCategoryWarning) as record:
        line = _line()
        model.predict([[0.3, "purple"]])
    assert (_only(record).filename, _only(record).lineno) == (HERE, line)


def test_train_warns_at_the_callers_line(tmp_path):
    data = tmp_path / "semi.csv"  # ';' separated with decimal commas: train says how it read them
    data.write_text("x;y\n" + "".join(f"{i},5;{2 * i},0\n" for i in range(12)))
    with pytest.warns(UserWarning) as record:
        line = _line()
        torchann.train(str(data), target="y", hidden=[2], epochs=2, val_split=0, early_stopping=3, seed=0)
    texts = [str(w.message) for w in record]
    assert any("decimal mark" in t for t in texts) and any("early stopping (patience 3)" in t for t in texts), texts
    assert {(w.filename, w.lineno) for w in record} == {(HERE, line)}


def _no_source_lines(stderr: str) -> None:
    assert ".py:" not in stderr and "Warning:" not in stderr, stderr


def test_every_command_prints_warnings_as_warning_lines(run, tmp_path):
    folder, data = run
    for args in (["evaluate", str(folder), "--data", str(data)],
                 ["report", str(folder), "--data", str(data), "--out", str(tmp_path / "r.html")],
                 ["predict", str(folder), "--data", str(data)],
                 ["predict", str(folder), "--input", "0.5,purple"]):
        with warnings.catch_warnings():  # Python's once-per-place memory starts empty, as in a new process
            warnings.simplefilter("default")
            result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        lines = [ln for ln in result.stderr.splitlines() if ln.startswith("warning:")]
        assert len(lines) == 1 and UNSEEN in lines[0], (args, result.stderr)  # once, even where two places warn
        _no_source_lines(result.stderr)


def test_train_command_prints_its_warnings_as_warning_lines(tmp_path):
    data = tmp_path / "t.csv"
    data.write_text("x,y\n" + "".join(f"{i},{2 * i}\n" for i in range(12)))
    result = runner.invoke(app, ["train", str(data), "--target", "y", "--hidden", "2", "--epochs", "2", "--val-split",
                                 "0", "--early-stopping", "3", "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert "warning: early stopping (patience 3) watches the training loss" in result.stderr
    _no_source_lines(result.stderr)


def test_debug_shows_pythons_own_form(run):
    folder, data = run
    result = runner.invoke(app, ["--debug", "evaluate", str(folder), "--data", str(data)])
    assert result.exit_code == 0 and "UnseenCategoryWarning: " in result.stderr, result.stderr


def test_evaluate_in_a_real_process_prints_one_clean_line(run):
    folder, data = run
    proc = subprocess.run([sys.executable, "-m", "torchann", "evaluate", str(folder), "--data", str(data)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines() == [f"warning: {data}: {UNSEEN} set no input of their column; pass strict=True "
                                        f"(torchann predict --strict) to refuse them"]
    assert proc.stdout.startswith("classification on 2 rows")
