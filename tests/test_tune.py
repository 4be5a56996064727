"""torchann tune: the search, its first trial (today's defaults), a resume, and bad input."""

from __future__ import annotations

import socket

import numpy as np
import pytest
from typer.testing import CliRunner

pytest.importorskip("optuna")

import torchann  # noqa: E402
from torchann.cli import app
from torchann.tuning import space  # noqa: E402
from torchann.tuning.objective import validation_loss

from tune_helpers import EPOCHS, regression_csv, trials_of  # noqa: E402

runner = CliRunner()


def _val_loss(model, table_path, *, seed=0):
    """The objective, recomputed outside tune: scaled mse on the rows train() would hold out."""
    table = torchann.load_table(str(table_path), target="y")
    _, val = torchann.split_indices(table.n_rows, 0.2, seed=seed)
    rows = table.take(val)
    out = model.outputs(rows).numpy().astype(np.float64)
    truth = model.preprocessor.transform_y(rows)
    return float(np.mean((out - truth) ** 2))


def test_first_trial_is_the_defaults_and_the_search_never_ends_worse(tmp_path):
    data = regression_csv(tmp_path / "reg.csv")
    model = torchann.tune(str(data), target="y", trials=4, out=tmp_path / "run", epochs=EPOCHS)
    info = model.history.info["tune"]
    first = info["trials"][0]
    assert first["params"] == space.default_params()
    # The oracle: `torchann.train` with its own defaults (its several networks), split and seed,
    # scored the same way.
    plain = torchann.train(str(data), target="y", epochs=EPOCHS, seed=0)
    assert plain.members > 1
    assert first["value"] == pytest.approx(_val_loss(plain, data), rel=1e-5)
    assert [t["number"] for t in info["trials"]] == [0, 1, 2, 3]
    assert all(t["state"] in ("complete", "pruned") for t in info["trials"])
    assert info["best_value"] == min(t["value"] for t in info["trials"] if t["state"] == "complete")
    assert _val_loss(model, data) <= first["value"] + 1e-9
    # different trials tried different points of the space
    assert len({tuple(sorted(t["params"].items())) for t in info["trials"]}) == 4


def test_resume_continues_the_study_where_it_stopped(tmp_path):
    data = regression_csv(tmp_path / "reg.csv")
    out = tmp_path / "run"
    first = runner.invoke(app, ["tune", str(data), "--target", "y", "--out", str(out), "--trials", "2",
                                "--epochs", str(EPOCHS)])
    assert first.exit_code == 0, first.output
    before = trials_of(f"sqlite:///{out / 'study.db'}")
    again = runner.invoke(app, ["tune", str(data), "--target", "y", "--out", str(out), "--trials", "4",
                                "--epochs", str(EPOCHS), "--json"])
    assert again.exit_code == 0, again.output
    after = trials_of(f"sqlite:///{out / 'study.db'}")
    assert [t.number for t in after] == [0, 1, 2, 3]
    assert [(t.params, t.value) for t in after[:2]] == [(t.params, t.value) for t in before]
    # a third call with the same budget runs nothing new and still writes the model
    third = runner.invoke(app, ["tune", str(data), "--target", "y", "--out", str(out), "--trials", "4",
                                "--epochs", str(EPOCHS)])
    assert third.exit_code == 0, third.output
    assert len(trials_of(f"sqlite:///{out / 'study.db'}")) == 4
    loaded = torchann.load(out)
    assert loaded.history.info["tune"]["best_value"] == min(t.value for t in after if t.value is not None
                                                            and t.state.name == "COMPLETE")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("args, message", [
    (["--trials", "0"], "--trials must be at least 1, got 0"),
    (["--storage", "redis://localhost/0"], "unknown storage 'redis://localhost/0'"),
    (["--storage", f"postgresql://tune:secret@127.0.0.1:{_closed_port()}/tune"], "cannot reach storage postgresql"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, message):
    data = regression_csv(tmp_path / "reg.csv", rows=40)
    out = tmp_path / "run"
    result = runner.invoke(app, ["tune", str(data), "--target", "y", "--out", str(out), *args])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.output
    assert "secret" not in result.output  # a password never reaches the terminal
    assert not (out / "spec.json").exists()


def test_a_study_made_for_another_target_or_table_is_refused(tmp_path):
    data = regression_csv(tmp_path / "reg.csv", rows=60)
    out = tmp_path / "run"
    ok = runner.invoke(app, ["tune", str(data), "--target", "y", "--out", str(out), "--trials", "1", "--epochs", "2"])
    assert ok.exit_code == 0, ok.output
    other_target = runner.invoke(app, ["tune", str(data), "--target", "x0", "--out", str(out), "--trials", "2"])
    assert other_target.exit_code == 2
    assert "study 'torchann'" in other_target.output and "target y" in other_target.output
    assert "x0" in other_target.output and len(other_target.output.strip().splitlines()) == 1
    other_table = runner.invoke(app, ["tune", str(regression_csv(tmp_path / "b.csv", rows=60, seed=1)), "--target",
                                      "y", "--out", str(out), "--trials", "2", "--epochs", "2"])
    assert other_table.exit_code == 2 and "was made for table" in other_table.output
    other_seed = runner.invoke(app, ["tune", str(data), "--target", "y", "--out", str(out), "--trials", "2",
                                     "--epochs", "2", "--seed", "5"])
    assert other_seed.exit_code == 2 and "was made for the split's seed 0, this run has 5" in other_seed.output
    assert len(trials_of(f"sqlite:///{out / 'study.db'}")) == 1  # neither ran a trial


def test_searched_options_and_bad_budgets_are_refused_by_the_api(tmp_path):
    data = regression_csv(tmp_path / "reg.csv", rows=40)
    with pytest.raises(torchann.UsageError, match="tune searches lr itself"):
        torchann.tune(str(data), target="y", lr=0.1)
    with pytest.raises(torchann.UsageError, match="trials must be a positive integer, got 0"):
        torchann.tune(str(data), target="y", trials=0)
    with pytest.raises(torchann.UsageError, match="did you mean 'epochs'"):
        torchann.tune(str(data), target="y", epoch=3)


def test_docs_print_the_space_from_its_source():
    from pathlib import Path

    doc = (Path(__file__).resolve().parent.parent / "docs" / "tune.md").read_text()
    assert space.markdown() in doc  # regenerate with: python -m torchann.tuning.space


def test_one_line_per_trial_in_a_log(tmp_path):
    import io

    from torchann.cli.tune_cmd import TrialLines

    stream = io.StringIO()
    lines = TrialLines(console=None, stream=stream)
    lines.on_trial_end({"number": 3, "state": "pruned", "value": 0.5, "best": 0.25, "finished": 4, "trials": 10,
                        "params": {"lr": 0.001, "layers": 2}, "epochs": 5})
    assert stream.getvalue() == "trial 3 (4/10) pruned value 0.5 best 0.25 epochs 5 lr=0.001 layers=2\n"


def test_a_locked_study_database_is_one_line_and_exit_1(tmp_path, monkeypatch):
    import sqlite3

    from torchann.tuning import storage

    data = regression_csv(tmp_path / "reg.csv", rows=40)
    out = tmp_path / "run"
    ok = runner.invoke(app, ["tune", str(data), "--target", "y", "--out", str(out), "--trials", "1", "--epochs", "2"])
    assert ok.exit_code == 0, ok.output
    monkeypatch.setattr(storage, "LOCK_WAIT_SECONDS", 0.2)
    holder = sqlite3.connect(out / "study.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another process's write transaction, held
    try:
        result = runner.invoke(app, ["tune", str(data), "--target", "y", "--out", str(out), "--trials", "2",
                                     "--epochs", "2"])
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "is locked by another process" in lines[0] and "journal:PATH" in lines[0]
    assert len(trials_of(f"sqlite:///{out / 'study.db'}")) == 1
