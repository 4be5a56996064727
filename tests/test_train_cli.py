"""``torchann train`` / ``torchann predict`` on real tables: formats, options, run-folder files,
and bad input that must fail in one line without leaving anything behind."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
from safetensors.numpy import load_file
from sklearn.metrics import accuracy_score
from typer.testing import CliRunner

from torchann.cli import app

runner = CliRunner()

QUIET = ["--quiet", "--seed", "0"]


def _invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def _ok(*args):
    result = _invoke(*args)
    assert result.exit_code == 0, result.output
    return result


def _csv_text(columns: dict) -> str:
    names = list(columns)
    n = len(columns[names[0]])

    def cell(v):
        return repr(float(v)) if isinstance(v, (float, np.floating)) else str(v)

    return ",".join(names) + "\n" + "".join(",".join(cell(columns[c][i]) for c in names) + "\n" for i in range(n))


def _numbers(n=48, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    return x, x @ np.array([1.5, -2.0, 0.5]) + 3.0


def _labels(n=60, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2))
    names = np.array(["no", "yes"])[(x[:, 0] + x[:, 1] > 0).astype(int)]
    return {"x1": x[:, 0], "x2": x[:, 1], "label": names}


def _history(out):
    return [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]


def _spec(out):
    return json.loads((out / "spec.json").read_text())


def _listing(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


# -- formats ----------------------------------------------------------------------------------


def test_csv_parquet_npy_and_npz_train_the_same_weights(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    x, y = _numbers()
    cols = {"x0": x[:, 0], "x1": x[:, 1], "x2": x[:, 2], "y": y}
    (tmp_path / "d.csv").write_text(_csv_text(cols))
    pq.write_table(pa.table(cols), tmp_path / "d.parquet")
    np.save(tmp_path / "d.npy", np.c_[x, y])  # columns x0..x3
    np.savez(tmp_path / "d.npz", x=x, y=y)  # columns x0..x2 and the target y
    weights = {}
    for name, target in [("d.csv", "y"), ("d.parquet", "y"), ("d.npy", "x3"), ("d.npz", None)]:
        out = tmp_path / f"run-{name}"
        extra = [] if target is None else ["--target", target]
        _ok("train", tmp_path / name, *extra, "--hidden", "8", "--epochs", "3", "--batch-size", "8", *QUIET,
            "--out", out)
        assert sorted(p.name for p in out.iterdir()) == ["history.jsonl", "loss.png", "report.html", "spec.json",
                                                         "weights.safetensors"]
        meta = _spec(out)["extra"]
        assert meta["task"] == "regression" and meta["features"] == ["x0", "x1", "x2"]
        weights[name] = load_file(str(out / "weights.safetensors"))
    first = weights["d.csv"]
    for name, w in weights.items():
        assert all(np.array_equal(first[k], w[k]) for k in first), name  # same numbers, same run


@pytest.mark.parametrize("name, task, outputs", [("add", "regression", 1), ("moons", "classification", 2),
                                                 ("sklearn:iris", "classification", 3)])
def test_built_in_datasets_train_with_their_own_target(tmp_path, name, task, outputs):
    out = tmp_path / "run"
    result = _ok("train", name, "--hidden", "8", "--epochs", "2", *QUIET, "--json", "--out", out)
    report = json.loads(result.stdout)
    spec = _spec(out)
    assert report["info"]["task"] == task == spec["extra"]["task"]
    assert spec["model"]["out_features"] == outputs


# -- options ------------------------------------------------------------------------------------


def test_val_file_is_the_validation_data(tmp_path):
    train, val = _labels(80, seed=1), _labels(30, seed=2)
    (tmp_path / "t.csv").write_text(_csv_text(train))
    (tmp_path / "v.csv").write_text(_csv_text(val))
    out = tmp_path / "run"
    result = _ok("train", tmp_path / "t.csv", "--target", "label", "--hidden", "8", "--epochs", "8",
                 "--lr", "0.02", "--val", tmp_path / "v.csv", *QUIET, "--json", "--out", out)
    report = json.loads(result.stdout)
    assert report["info"]["val_rows"] == 30 and report["info"]["train_rows"] == 80
    (tmp_path / "q.csv").write_text(_csv_text({"x1": val["x1"], "x2": val["x2"]}))
    predicted = _ok("predict", out, "--data", tmp_path / "q.csv").stdout.splitlines()[1:]
    assert report["final"]["val_accuracy"] == pytest.approx(accuracy_score(val["label"], predicted))
    assert report["final"]["val_accuracy"] > 0.8


def test_early_stopping_ends_patience_epochs_after_the_best(tmp_path):
    out = tmp_path / "run"
    result = _ok("train", "moons", "--hidden", "64,64", "--epochs", "300", "--lr", "0.05", "--val-split", "0.3",
                 "--early-stopping", "3", *QUIET, "--json", "--out", out)
    info = json.loads(result.stdout)["info"]
    val_losses = [r["val_loss"] for r in _history(out)]
    assert info["stopped_early"] and len(val_losses) == info["best_epoch"] + 3 < 300
    assert info["best_epoch"] == int(np.argmin(val_losses)) + 1


def test_step_scheduler_divides_the_lr_by_ten_every_third_of_the_run(tmp_path):
    out = tmp_path / "run"
    _ok("train", "add", "--hidden", "4", "--epochs", "6", "--lr", "0.01", "--scheduler", "step", *QUIET,
        "--out", out)
    assert [r["lr"] for r in _history(out)] == pytest.approx([1e-2, 1e-2, 1e-3, 1e-3, 1e-4, 1e-4])


def test_task_inferred_and_overridden(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=40)
    (tmp_path / "d.csv").write_text(_csv_text({"x": x, "grade": (x > 0).astype(int) + 1}))  # grades 1 and 2
    _ok("train", tmp_path / "d.csv", "--target", "grade", "--epochs", "2", *QUIET, "--out", tmp_path / "c")
    _ok("train", tmp_path / "d.csv", "--target", "grade", "--task", "regression", "--epochs", "2", *QUIET,
        "--out", tmp_path / "r")
    assert _spec(tmp_path / "c")["extra"]["task"] == "classification"
    assert _spec(tmp_path / "c")["extra"]["classes"] == [1, 2]
    assert _spec(tmp_path / "r")["extra"]["task"] == "regression"
    assert _spec(tmp_path / "r")["model"]["out_features"] == 1
    labels = _ok("predict", tmp_path / "c", "--input", "0.5").stdout.splitlines()
    values = _ok("predict", tmp_path / "r", "--input", "0.5").stdout.splitlines()
    assert labels[0] == "grade" and labels[1] in ("1", "2")
    assert float(values[1]) != int(float(values[1]))  # a number in target units, not a class


def test_no_scale_stores_identity_statistics(tmp_path):
    x, y = _numbers()
    (tmp_path / "d.csv").write_text(_csv_text({"a": x[:, 0] * 100 + 50, "y": y}))
    _ok("train", tmp_path / "d.csv", "--target", "y", "--epochs", "1", "--val-split", "0", "--scaling", "standard",
        *QUIET, "--out", tmp_path / "s")
    _ok("train", tmp_path / "d.csv", "--target", "y", "--epochs", "1", "--val-split", "0", "--no-scale", "--scaling", "standard", *QUIET,
        "--out", tmp_path / "n")
    scaled = _spec(tmp_path / "s")["extra"]["preprocessor"]
    raw = _spec(tmp_path / "n")["extra"]["preprocessor"]
    assert scaled["features"][0]["mean"] == pytest.approx(np.mean(x[:, 0] * 100 + 50))
    assert scaled["target_std"] == pytest.approx([np.std(y)])
    assert (raw["features"][0]["mean"], raw["features"][0]["std"]) == (0.0, 1.0)
    assert (raw["target_mean"], raw["target_std"], raw["scale"]) == ([0.0], [1.0], False)


def test_fill_missing(tmp_path):
    (tmp_path / "d.csv").write_text("a,b,y\n1,2,3\n2,,5\n3,4,7\n4,8,9\n5,6,11\n")
    before = _listing(tmp_path)
    result = _invoke("train", tmp_path / "d.csv", "--target", "y", "--epochs", "1", "--fill-missing", "none",
                     *QUIET, "--out", tmp_path / "r")
    assert result.exit_code == 2
    assert "column 'b' has a missing value in row 2" in result.output and "--fill-missing" in result.output
    assert _listing(tmp_path) == before
    for how, value in [("mean", 5.0), ("median", 5.0), ("zero", 0.0)]:
        out = tmp_path / how
        _ok("train", tmp_path / "d.csv", "--target", "y", "--epochs", "1", "--fill-missing", how, "--val-split", "0",
            *QUIET, "--out", out)
        assert _spec(out)["extra"]["preprocessor"]["features"][1]["fill"] == value  # of 2, 4, 8, 6


def test_quiet_json_history_and_loss_curve(tmp_path):
    import matplotlib.image as mpimg

    loud = _ok("train", "moons", "--hidden", "8", "--epochs", "4", "--val-split", "0.25", "--seed", "0", "--json",
               "--out", tmp_path / "loud")
    quiet = _ok("train", "moons", "--hidden", "8", "--epochs", "4", "--val-split", "0", *QUIET, "--out", tmp_path / "q")
    # stderr is not a terminal here: one plain line per epoch, no bar
    shown = loud.stderr.splitlines()  # four networks by default: each line names its network
    lines = [line.removeprefix("network 1/4: ") for line in shown if line.startswith("network 1/4: epoch ")]
    assert [line.split(":")[0] for line in lines] == ["epoch 1/4", "epoch 2/4", "epoch 3/4", "epoch 4/4"]
    assert any(line.startswith("network 4/4: epoch ") for line in shown)
    assert "loss " in lines[-1] and "val_loss " in lines[-1] and "━" not in loud.stderr
    assert "━" not in quiet.stderr and quiet.stdout == ""
    report = json.loads(loud.stdout)  # stdout holds the JSON and nothing else
    history = _history(tmp_path / "loud")
    assert [r["epoch"] for r in history] == [1, 2, 3, 4]
    assert report["final"] == history[-1] and report["epochs"] == 4
    assert {"loss", "accuracy", "log_loss", "val_loss", "val_accuracy", "val_log_loss", "lr"} <= set(history[-1])

    def colours(path):
        img = mpimg.imread(path)[..., :3]
        return [int((np.abs(img - np.array(c) / 255).max(-1) < 0.02).sum()) for c in ((31, 119, 180), (255, 127, 14))]

    png = tmp_path / "loud" / "loss.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    train_px, val_px = colours(png)
    assert train_px > 100 and val_px > 100  # matplotlib's first two colours: train and validation lines
    assert colours(tmp_path / "q" / "loss.png")[1] == 0  # no validation, no second curve


def test_predict_proba(tmp_path):
    (tmp_path / "d.csv").write_text(_csv_text(_labels()))
    out = tmp_path / "run"
    _ok("train", tmp_path / "d.csv", "--target", "label", "--hidden", "8", "--epochs", "20", "--lr", "0.02",
        *QUIET, "--out", out)
    result = _ok("predict", out, "--input", "2,2", "--input", "-2,-1", "--proba")
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert list(rows[0]) == ["label", "p(no)", "p(yes)"]
    assert [r["label"] for r in rows] == ["yes", "no"]
    for r in rows:
        p = [float(r["p(no)"]), float(r["p(yes)"])]
        assert sum(p) == pytest.approx(1.0) and ["no", "yes"][int(np.argmax(p))] == r["label"]
    as_json = json.loads(_ok("predict", out, "--input", "2,2", "--proba", "--json").stdout)
    assert as_json["label"] == ["yes"] and as_json["p(yes)"][0] == pytest.approx(float(rows[0]["p(yes)"]))


# -- bad tables ----------------------------------------------------------------------------------

BAD_TABLES = {
    "empty file": ("", "y", "the file is empty"),
    "header only": ("a,b,y\n", "y", "has columns (a, b, y) but no data rows"),
    "ragged rows": ("a,b,y\n1,2,3\n4,5\n", "y", "row 2 (line 3) has 2 fields but the header has 3 columns"),
    "text in a numeric column": ("a,b,y\n1,2,3\n4,five,6\n7,8,9\n", "y",
                                 "column 'b' holds numbers, but row 2 holds 'five'"),
    "unknown target column": ("a,b,y\n1,2,3\n4,5,6\n", "price", "no target column 'price' (--target)"),
}


@pytest.mark.parametrize("case", list(BAD_TABLES))
def test_bad_table_fails_in_one_line_and_writes_nothing(tmp_path, case):
    text, target, fragment = BAD_TABLES[case]
    (tmp_path / "bad.csv").write_text(text)
    before = _listing(tmp_path)
    result = _invoke("train", tmp_path / "bad.csv", "--target", target, "--epochs", "1", "--checkpoint-every", "1",
                     *QUIET, "--out", tmp_path / "run")
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], result.stderr
    assert "bad.csv" in lines[0]
    assert _listing(tmp_path) == before


@pytest.fixture
def colour_model(tmp_path):
    rng = np.random.default_rng(0)
    size = rng.uniform(0, 10, 40)
    colour = np.array(["red", "green", "blue"])[np.arange(40) % 3]
    (tmp_path / "d.csv").write_text(_csv_text({"size": size, "colour": colour, "price": 2 * size}))
    out = tmp_path / "model"
    _ok("train", tmp_path / "d.csv", "--target", "price", "--epochs", "1", *QUIET, "--out", out)
    return out


def test_an_unknown_category_at_predict_answers_with_a_warning(tmp_path, colour_model):
    (tmp_path / "q.csv").write_text("size,colour\n3,purple\n3,red\n")
    result = _invoke("predict", colour_model, "--data", tmp_path / "q.csv")
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 3  # the header and both rows
    warning = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warning) == 1 and "'colour': 1 row(s)" in warning[0], result.stderr


@pytest.mark.parametrize("rows, fragment", [
    ("size\n3\n", "missing feature column(s) colour that the model was trained on"),
    ("size,colour\n3,red\n4\n", "row 2 (line 3) has 1 fields but the header has 2 columns"),
])
def test_bad_rows_at_predict_fail_in_one_line_and_write_nothing(tmp_path, colour_model, rows, fragment):
    (tmp_path / "q.csv").write_text(rows)
    before = _listing(tmp_path)
    result = _invoke("predict", colour_model, "--data", tmp_path / "q.csv", "--out", tmp_path / "p.csv")
    assert result.exit_code == 2 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], result.stderr
    assert _listing(tmp_path) == before


def test_proba_on_a_regression_model_is_refused(colour_model):
    result = _invoke("predict", colour_model, "--input", "3,red", "--proba")
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.startswith("error: --proba needs a classifier") and "price" in result.stderr


@pytest.mark.parametrize("row", ["3", "3,red,1"])
def test_wrong_feature_count_at_predict(colour_model, row):
    result = _invoke("predict", colour_model, "--input", row)
    assert result.exit_code == 2
    n = len(row.split(","))
    assert result.stderr.strip() == f"error: --input rows need 2 values (size, colour), got {n}"


def test_closing_lines_name_the_kept_epoch_and_never_wrap_in_a_log(tmp_path):
    out = tmp_path / ("a-folder-name-long-enough-that-the-closing-line-passes-eighty-columns") / "run"
    result = _ok("train", "moons", "--hidden", "64,64", "--epochs", "300", "--lr", "0.05", "--val-split", "0.3",
                 "--early-stopping", "3", "--seed", "0", "--out", out)  # stderr is not a terminal here
    records = _history(out)
    best = int(np.argmin([r["val_loss"] for r in records])) + 1
    assert best + 3 == len(records)  # stopped early: the last epoch is not the one kept
    record = records[best - 1]
    lines = result.stderr.splitlines()
    kept = [line for line in lines if line.startswith("best epoch")]
    assert kept == [f"best epoch {best} of {len(records)} kept (val_loss {record['val_loss']:.4g}; stopped early): "
                    + ", ".join(f"{k} {v:.4g}" for k, v in record.items()
                                if k not in ("epoch", "seconds", "lr", "time_left"))]
    assert "time_left" in record  # kept in the history, but the time budget is not a metric to print
    assert not [line for line in lines if "time_left" in line]
    assert lines[-1] == f"wrote {out}/ (spec.json, weights.safetensors, history.jsonl, loss.png, report.html)"
    assert len(lines[-1]) > 80 and len(kept[0]) > 80
    assert not [line for line in lines if line.startswith(f"epoch {len(records)}:")]  # no bare last-epoch line


def test_kept_line_without_early_stopping_names_the_last_epoch():
    from torchann.cli.train_cmd import kept_line
    from torchann.training.history import History

    history = History([{"epoch": 1, "loss": 0.5, "seconds": 0.1}, {"epoch": 2, "loss": 0.25, "seconds": 0.1}])
    assert kept_line(history) == "last epoch 2 of 2 kept (no early stopping): loss 0.25"
    history.info.update(best_epoch=1, stopped_early=False)
    assert kept_line(history) == "best epoch 1 of 2 kept (loss 0.5; ran every epoch): loss 0.5"


def test_train_prints_the_column_plan_that_inspect_gives(tmp_path):
    n = 40
    data = tmp_path / "t.csv"
    data.write_text("id,x,colour,y\n" + "".join(
        f"row{i},{i / n},{'' if i == 5 else ['red', 'green', 'blue'][i % 3]},{i % 7}.5\n" for i in range(n)))
    big = tmp_path / "ids.csv"  # more than 100 distinct ids, none repeated: an identifier, left out
    big.write_text("id,x,y\n" + "".join(f"u{i},{i / 150},{i % 5}.5\n" for i in range(150)))
    for table, dropped in ((data, None), (big, "id")):
        out = tmp_path / f"run-{table.stem}"
        result = _ok("train", table, "--target", "y", "--hidden", "4", "--epochs", "1", "--seed", "0", "--out", out)
        shown = _ok("inspect", out).stdout.splitlines()
        start = next(i for i, line in enumerate(shown) if line.startswith("features"))
        inputs = shown[start].split("-> ")[1]  # "6 network input(s)": the oracle, from the saved model
        features = [line for line in shown[start + 1:next(i for i, line in enumerate(shown) if line.startswith("network"))]
                    if " left out: " not in line]  # inspect lists the columns left out after the features
        lines = result.stderr.splitlines()
        first = lines.index(f"columns: {len(features)} feature(s) -> {inputs}; predicting y (regression)")
        assert lines[first + 1:first + 1 + len(features)] == features
        assert first < lines.index(next(line for line in lines if line.startswith("network 1/4: training: ")))
        if dropped:
            why = _spec(out)["extra"]["preprocessor"]["dropped"][dropped]
            assert lines[first + 1 + len(features)] == f"  dropped 1: {dropped} ({why})"


def test_many_columns_make_a_compact_plan(tmp_path):
    rng = np.random.default_rng(0)
    columns = {f"x{i}": rng.normal(size=30) for i in range(30)}
    columns.update({"c": ["a", "b", "c"] * 10, "y": rng.normal(size=30)})
    (tmp_path / "wide.csv").write_text(_csv_text(columns))
    out = tmp_path / "run"
    result = _ok("train", tmp_path / "wide.csv", "--target", "y", "--hidden", "4", "--epochs", "1", "--seed", "0",
                 "--out", out)
    lines = result.stderr.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("columns: "))
    assert lines[first] == "columns: 31 feature(s) -> 33 network input(s); predicting y (regression)"
    assert lines[first + 1].startswith("    30 numeric       30 input(s)  ") and lines[first + 1].endswith(
        ": x0, x1, x2, x3, x4, x5, ... (24 more)")
    assert lines[first + 2] == "     1 categorical    3 input(s)  one-hot: c"
    assert lines[first + 3].startswith("network 1/4: training: ")


def test_train_hands_the_plan_to_its_progress_and_prints_nothing(capsys):
    import torchann

    class Plans:
        def __init__(self):
            self.plans = []

        def on_plan(self, plan):
            self.plans.append(plan)

        def on_train_start(self, **kw):
            pass

        def on_step(self, **kw):
            pass

        def on_epoch_end(self, record):
            pass

    seen = Plans()
    model = torchann.train({"x": [0.1, 0.2, 0.3, 0.4] * 5, "c": ["a", "b"] * 10, "y": list(range(20))}, target="y",
                           hidden=[2], epochs=1, seed=0, progress=seen)
    assert capsys.readouterr() == ("", "")
    (plan,) = seen.plans
    assert plan["inputs"] == model.preprocessor.in_features == 3 and plan["targets"] == ["y"]
    assert [(f["name"], f["kind"], f["inputs"]) for f in plan["features"]] == [("x", "numeric", 1),
                                                                              ("c", "categorical", 2)]
    assert plan["features"] == [{k: v for k, v in r.items() if k != "details"} for r in model.describe()["features"]]


def test_messages_on_a_stderr_that_is_not_a_terminal_are_not_wrapped(capsys):
    from torchann.cli._app import stderr_console

    text = "wrote " + "/a-long-folder" * 12 + "/ (spec.json, weights.safetensors, history.jsonl, loss.png, report.html)"
    stderr_console().print(text, highlight=False)  # capsys's stderr is no terminal, like a log file
    assert capsys.readouterr().err == text + "\n"


@pytest.mark.parametrize("crash", [BrokenPipeError, MemoryError])
def test_a_run_that_crashes_mid_training_leaves_no_half_written_folder(tmp_path, monkeypatch, crash):
    # `torchann train ... | head` closes stderr while epochs are printed: the history file had been
    # started, so the folder looked like a run but held no model
    from torchann.cli import progress

    seen = []

    def dies_at_epoch_3(self, record):
        seen.append(record["epoch"])
        if record["epoch"] == 3:
            raise crash()

    monkeypatch.setattr(progress.PlainProgress, "on_epoch_end", dies_at_epoch_3)
    out = tmp_path / "new" / "run"
    result = _invoke("train", "moons", "--epochs", "20", "--out", out)
    assert result.exit_code != 0 and seen == [1, 2, 3]
    assert not out.exists() and not out.parent.exists()

