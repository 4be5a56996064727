"""Rows without a target: an error that names the first one and the way out, or, with
``drop_missing_target`` (``--drop-missing-target``), left out with one line saying how many."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

import torchann
from torchann.cli import app
from torchann.core.errors import DataError

runner = CliRunner()
QUICK = dict(hidden=(8,), epochs=3, seed=0, threads=1)


def _rows(n=50, missing=(2, 17, 31), labels=False):
    rng = np.random.default_rng(0)
    x = rng.normal(size=n).round(4)
    zone = np.array(["a", "b", "c"])[np.arange(n) % 3]
    y = (3 * x + (zone == "a")).round(4).astype(object)
    if labels:
        y = np.where(x > 0, "up", "down").astype(object)
    y[list(missing)] = None
    return {"x": x, "zone": zone, "y": y}


def test_without_the_option_a_missing_target_is_an_error_naming_the_option():
    with pytest.raises(DataError) as err:
        torchann.train(_rows(), target="y", **QUICK)
    assert str(err.value) == ("<dict of columns>: target 'y' is missing in row 3 (3 missing in all); drop rows "
                              "without a target, or pass drop_missing_target=True (--drop-missing-target) to leave "
                              "them out")


@pytest.mark.parametrize("labels", [False, True])
def test_the_option_trains_on_the_rows_with_a_target(labels):
    rows = _rows(labels=labels)
    with pytest.warns(UserWarning, match=r"^<dict of columns>: left out 3 of 50 rows without a target \(y\)$"):
        model = torchann.train(rows, target="y", drop_missing_target=True, **QUICK)
    # the oracle: the same table with those rows removed by hand
    keep = [i for i in range(50) if i not in (2, 17, 31)]
    by_hand = torchann.train({k: v[keep] for k, v in rows.items()}, target="y", **QUICK)
    assert model.history.info["train_rows"] + model.history.info["val_rows"] == 47
    np.testing.assert_array_equal(model.outputs(rows).numpy(), by_hand.outputs(rows).numpy())
    assert model.history.info["options"]["drop_missing_target"] is True


def test_cli_flag(tmp_path):
    data = tmp_path / "t.csv"
    rows = _rows()
    data.write_text("x,zone,y\n" + "".join(f"{a},{b},{'' if c is None else c}\n"
                                           for a, b, c in zip(rows["x"], rows["zone"], rows["y"])))
    base = ["train", str(data), "--target", "y", "--hidden", "8", "--epochs", "2", "--threads", "1", "--quiet"]
    result = runner.invoke(app, [*base, "--out", str(tmp_path / "a")])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"error: {data}: target 'y' is missing in row 3 (3 missing in all); drop rows without a target, or pass "
        f"drop_missing_target=True (--drop-missing-target) to leave them out"]
    assert not (tmp_path / "a").exists()
    result = runner.invoke(app, [*base, "--out", str(tmp_path / "b"), "--drop-missing-target"])
    assert result.exit_code == 0, result.output
    said = [ln for ln in result.stderr.splitlines() if "without a target" in ln]
    assert said == [f"warning: {data}: left out 3 of 50 rows without a target (y)"]
    model = torchann.load(tmp_path / "b")
    assert model.history.info["train_rows"] + model.history.info["val_rows"] == 47


def test_no_row_with_a_target_is_an_error_even_with_the_option():
    with pytest.raises(DataError, match=r"^<dict of columns>: every row's target \(y\) is missing; there is nothing "
                                        r"to train on$"):
        torchann.train(_rows(n=12, missing=range(12)), target="y", drop_missing_target=True, **QUICK)
