"""What predicting says about rows unlike the training rows: ``strict`` (Python and
``torchann predict --strict``) for categories never seen in training, and one message for a
word in a column of numbers, whichever way the file is read."""

from __future__ import annotations

import csv
import io
import warnings

import numpy as np
import pytest
from typer.testing import CliRunner

import torchann
from torchann.cli import app
from torchann.core.errors import DataError
from torchann.model.scoring import score_file
from torchann.preprocess.preprocessor import UnseenCategoryWarning

runner = CliRunner()


def _write(path, header, rows):
    path.write_text(",".join(header) + "\n" + "".join(",".join(str(v) for v in r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A small regression model over a text column and two numbers, saved."""
    folder = tmp_path_factory.mktemp("strict")
    rng = np.random.default_rng(0)
    rows = [(["north", "south", "east"][i % 3], round(float(rng.normal(50, 10)), 3), i % 5, i % 3 * 10 + i % 5)
            for i in range(60)]
    data = _write(folder / "train.csv", ["zone", "age", "rooms", "price"], rows)
    model = torchann.train(str(data), target="price", hidden=(8,), epochs=3, seed=0, threads=1)
    return model.save(folder / "run")


def _query(tmp_path, zones, age="41.5"):
    rows = [(z, age if i != 4 else age, i % 5) for i, z in enumerate(zones)]
    return _write(tmp_path / "q.csv", ["zone", "age", "rooms"], rows)


UNSEEN = ["north", "west", "south", "west", "up", "east", "west"]
UNSEEN_MESSAGE = ("column 'zone' holds 2 categories never seen in training: 'west' (row 2, 3 rows in all), "
                  "'up' (row 5); known: 'east', 'north', 'south'; correct those values, or leave out strict=True "
                  "(--strict) to let them set no input of their column")


def test_predict_strict_refuses_unseen_categories_naming_column_values_and_rows(run, tmp_path):
    model = torchann.load(run)
    query = _query(tmp_path, UNSEEN)
    for call in (model.predict, model.predict_proba if model.task == "classification" else model.outputs,
                 model.predictions):
        with pytest.raises(DataError) as err:
            call(str(query), strict=True)
        assert str(err.value) == f"{query}: {UNSEEN_MESSAGE}"
    with pytest.warns(UnseenCategoryWarning, match=r"\('zone': 4 row\(s\)\) set no input of their column; pass "
                                                   r"strict=True \(torchann predict --strict\) to refuse them"):
        loose = model.predict(str(query))
    known = [i for i, z in enumerate(UNSEEN) if z in ("north", "south", "east")]
    clean = _query(tmp_path, [UNSEEN[i] for i in known])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        strict_clean = model.predict(str(clean), strict=True)  # nothing unseen: strict changes nothing
    np.testing.assert_array_equal(strict_clean, model.predict(str(clean)))
    assert len(loose) == len(UNSEEN)


@pytest.mark.parametrize("out", [None, "p.csv"])
def test_cli_predict_strict_is_one_error_line_and_exit_2(run, tmp_path, out):
    query = _query(tmp_path, UNSEEN)
    args = ["predict", str(run), "--data", str(query), "--strict"] + (["--out", str(tmp_path / out)] if out else [])
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines() == [f"error: {query}: {UNSEEN_MESSAGE}"]
    assert not (tmp_path / "p.csv").exists()
    # without --strict: the warning names the flag that exists, and the answers are Model.predict's
    result = runner.invoke(app, ["predict", str(run), "--data", str(query)])
    assert result.exit_code == 0, result.output
    assert "pass strict=True (torchann predict --strict) to refuse them" in result.stderr
    printed = [float(r["price"]) for r in csv.DictReader(io.StringIO(result.stdout))]
    with pytest.warns(UnseenCategoryWarning):
        assert printed == torchann.load(run).predict(str(query)).tolist()


def test_a_word_in_a_numeric_column_is_one_message_from_python_and_the_cli(run, tmp_path):
    rows = [("north", "38.5", 2), ("south", "44", 1), ("east", "", 3), ("north", "51.25", 4), ("south", "unknown", 0),
            ("east", "47", 2)]
    query = _write(tmp_path / "bad.csv", ["zone", "age", "rooms"], rows)
    expected = (f"{query}: column 'age' holds numbers, but row 5 holds 'unknown'; correct that value or leave the "
                f"cell empty to mark it missing")
    with pytest.raises(DataError) as err:
        torchann.load(run).predict(str(query))
    assert str(err.value) == expected
    with pytest.raises(DataError) as err:  # the streamed reader, which fixes the column's type up front
        score_file(torchann.load(run), query, tmp_path / "p.csv", chunk_rows=2)
    assert str(err.value) == expected
    for extra in ([], ["--out", str(tmp_path / "p.csv")], ["--keep", "rooms"]):
        result = runner.invoke(app, ["predict", str(run), "--data", str(query), *extra])
        assert result.exit_code == 2, result.output
        assert result.stderr.splitlines() == [f"error: {expected}"]
        assert result.stdout == ""
    assert not (tmp_path / "p.csv").exists()


def test_a_numeric_feature_of_words_says_what_python_says(run, tmp_path):
    query = _write(tmp_path / "words.csv", ["zone", "age", "rooms"],
                   [("north", "12", 1), ("south", "old", 2), ("east", "young", 3), ("north", "old", 4)])
    with pytest.raises(DataError) as err:
        torchann.load(run).predict(str(query))
    result = runner.invoke(app, ["predict", str(run), "--data", str(query)])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [f"error: {err.value}"]
    assert "column 'age' should hold numbers, but row 2 holds 'old'" in str(err.value)


def test_numbers_outside_the_training_range_are_named_in_one_warning_by_predict_and_the_cli(run, tmp_path):
    model = torchann.load(run)
    ages = [float(r["age"]) for r in csv.DictReader(open(run.parent / "train.csv"))]
    low, high = min(ages), max(ages)  # the training range, by hand (the model trained on every row but its held-out ones)
    span = model.preprocessor.features[model.feature_names.index("age")].training_range
    assert low <= span[0] <= span[1] <= high
    rows = [("north", span[1] + 5, 1), ("south", span[0] - 1, 2), ("east", span[1], 3), ("north", span[0], 9)]
    query = _write(tmp_path / "far.csv", ["zone", "age", "rooms"], rows)
    text = (rf"numbers outside the training range \('age': 2 row\(s\) outside {span[0]:.6g} to {span[1]:.6g}, "
            rf"'rooms': 1 row\(s\) outside 0 to 4\); the model never saw such values")
    with pytest.warns(torchann.preprocess.OutOfRangeWarning, match=text):
        model.predict(str(query))
    assert model.preprocessor.outside == {"age": 2, "rooms": 1}
    with pytest.warns(torchann.preprocess.OutOfRangeWarning, match=text):
        model.evaluate(_write(tmp_path / "far_y.csv", ["zone", "age", "rooms", "price"],
                              [r + (10,) for r in rows]))
    result = runner.invoke(app, ["predict", str(run), str(query)])
    assert result.exit_code == 0, result.output
    assert [line for line in result.stderr.splitlines() if "training range" in line] == [
        f"warning: {query}: numbers outside the training range ('age': 2 row(s) outside {span[0]:.6g} to "
        f"{span[1]:.6g}, 'rooms': 1 row(s) outside 0 to 4); the model never saw such values and its answers for "
        f"those rows are extrapolations"]
    inside = _write(tmp_path / "near.csv", ["zone", "age", "rooms"], [("east", span[0], 0), ("north", span[1], 4)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # values at the ends are inside: no warning
        model.predict(str(inside))
        torchann.train(str(run.parent / "train.csv"), target="price", hidden=(8,), epochs=1, seed=0, threads=1)
