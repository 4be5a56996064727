"""The run report's numbers against independent oracles (scikit-learn, numpy by hand), its
self-containment, ``torchann report``, the notebook views, and the logging progress."""

from __future__ import annotations

import io
import json
import os
import re

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import torchann
from torchann.api.tabular import train
from torchann.cli import app
from torchann.report.page import report_html, run_rows
from torchann.report.gather import gather


@pytest.fixture(scope="module")
def iris(tmp_path_factory):
    model = train("sklearn:iris", epochs=15, seed=0)
    return model, model.save(tmp_path_factory.mktemp("iris") / "run")


@pytest.fixture(scope="module")
def houses(tmp_path_factory):
    rng = np.random.default_rng(1)
    n = 120
    x1, x2, noise = rng.normal(size=n), rng.normal(size=n), rng.normal(size=n)
    colour = rng.choice(["red", "blue"], size=n)
    price = 2 * x1 - x2 + (colour == "red") + 0.1 * noise
    x1[[5, 9, 40]] = np.nan
    folder = tmp_path_factory.mktemp("houses")
    data = folder / "houses.csv"
    data.write_text("x1,x2,noise,colour,price\n" + "".join(
        f"{'' if np.isnan(a) else a},{b},{c},{d},{e}\n" for a, b, c, d, e in zip(x1, x2, noise, colour, price)))
    model = train(str(data), target="price", epochs=10, seed=0, fill_missing="median", hidden=[8], networks=1)
    return model, data


def test_confusion_and_per_class_scores_match_scikit_learn(iris):
    from sklearn.metrics import confusion_matrix, precision_score, recall_score

    model, _ = iris
    rows = run_rows(model)
    val = rows.split("validation")
    truth = model.preprocessor.transform_y(val)
    predicted = model.preprocessor.transform_y(
        torchann.data.Table.from_columns({"target": model.predict(val)}, targets=["target"]))
    result = gather(model, rows)["result"]["splits"]["validation"]
    assert result["confusion"] == confusion_matrix(truth, predicted, labels=[0, 1, 2]).tolist()
    assert np.allclose(result["precision"], precision_score(truth, predicted, average=None, zero_division=np.nan),
                       equal_nan=True)
    assert np.allclose(result["recall"], recall_score(truth, predicted, average=None))
    assert result["scores"]["accuracy"] == pytest.approx(model.evaluate(val)["accuracy"])


def test_report_rows_from_the_recorded_file_are_the_training_split(iris):
    model, run = iris
    kept = run_rows(model)
    again = run_rows(torchann.load(run))  # no rows kept: reads sklearn:iris and splits it again
    assert again is not kept
    assert np.array_equal(again.val, kept.val) and np.array_equal(again.train, kept.train)


def test_regression_scores_missing_values_and_histograms(houses):
    model, data = houses
    facts = gather(model, run_rows(model))
    val = run_rows(model).split("validation")
    assert facts["result"]["splits"]["validation"]["scores"] == pytest.approx(
        {k: v for k, v in model.evaluate(val).items() if k != "rows"})
    assert facts["missing"] == [{"column": "x1", "missing": 3, "filled_with": facts["missing"][0]["filled_with"]}]
    training_x1 = run_rows(model).split("training").columns["x1"]
    assert f"{np.nanmedian(training_x1):.6g}" in facts["missing"][0]["filled_with"]  # median of training rows
    for h, (name, p) in zip(facts["model"]["histograms"], [(n, p) for n, p in model.network.named_parameters()
                                                           if p.ndim == 2]):
        assert h["name"] == name and sum(h["counts"]) == p.numel()
        assert h["edges"][0] == pytest.approx(float(p.detach().min())) and h["edges"][-1] == pytest.approx(float(p.detach().max()))


def test_dead_units_and_activation_statistics_by_hand(houses):
    model, _ = houses
    net = model.network
    with torch.no_grad():  # kill unit 0 (zero weights, negative bias) and check the report sees it
        net.linear1.weight[0] = 0.0
        net.linear1.bias[0] = -1.0
    rows = run_rows(model)
    acts = gather(model, rows)["model"]["activations"]
    x = model.preprocessor.transform_x(rows.split("validation"))
    hidden = np.maximum(x @ net.linear1.weight.detach().numpy().T + net.linear1.bias.detach().numpy(), 0)
    layer = acts["layers"][0]
    assert layer["layer"] == "act1" and layer["units"] == 8
    assert layer["dead_units"] == int(np.all(hidden <= 0, axis=0).sum()) >= 1
    assert layer["mean"] == pytest.approx(hidden.mean(), rel=1e-5)
    assert layer["std"] == pytest.approx(hidden.std(), rel=1e-4)


def test_a_column_the_network_cannot_see_has_zero_importance(houses):
    model, _ = houses
    j = model.input_names.index("noise")
    with torch.no_grad():
        model.network.linear1.weight[:, j] = 0.0
    imp = gather(model, run_rows(model))["result"]["importance"]
    by = {c["column"]: c["drop"] for c in imp["columns"]}
    assert by["noise"] == 0.0
    assert by["x1"] > 0.1  # price depends on x1 most
    assert imp["base"] == pytest.approx(model.evaluate(run_rows(model).split("validation"))["r2"])


def test_report_is_self_contained_and_small(iris):
    model, run = iris
    html = (run / "report.html").read_text(encoding="utf-8")
    assert 'http-equiv="Content-Security-Policy" content="default-src \'none\'' in html
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "@import" not in html and "url(" not in html
    assert len(html.encode()) < 300_000


def test_report_command_rewrites_the_page_and_says_what_it_lacks(iris, tmp_path, houses):
    model, run = iris
    out = tmp_path / "again.html"
    result = CliRunner().invoke(app, ["report", str(run), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert 'class="confusion"' in out.read_text(encoding="utf-8")
    # Without its training file, the report shows what the model directory knows.
    reg, data = houses
    folder = reg.save(tmp_path / "houses")
    os.replace(data, tmp_path / "moved.csv")
    try:
        result = CliRunner().invoke(app, ["report", str(folder)])
        page = (folder / "report.html").read_text(encoding="utf-8")
        assert result.exit_code == 0 and "was not available" in page and 'class="summary"' in page
        result = CliRunner().invoke(app, ["report", str(folder), "--data", str(tmp_path / "moved.csv")])
        page = (folder / "report.html").read_text(encoding="utf-8")
        assert result.exit_code == 0 and 'class="importance"' in page and "on the given rows" in page
    finally:
        os.replace(tmp_path / "moved.csv", data)


def test_notebook_views_come_from_the_report_code(iris):
    model, _ = iris
    s = model.summary()
    assert f'<span id="summary-total">{s.total_params:,}</span>' in s._repr_html_()
    history_view = model.history._repr_html_()
    assert "val_loss" not in history_view or "validation" in history_view
    assert history_view.count('class="series"') == 2 * len([k for k in model.history.records[-1]
                                                             if k.startswith("val_")]) + 1  # + lr
    assert "setosa" in model._repr_html_() or "petal" in model._repr_html_()


def test_plain_progress_logs_one_flushed_line_per_epoch_and_appends_history(tmp_path):
    from torchann.cli.progress import HistoryLog, PlainProgress

    stream = io.StringIO()
    plain, log = PlainProgress(stream), HistoryLog(tmp_path / "run")
    for p in (plain, log):
        p.on_train_start(epochs=3, steps_per_epoch=2, start_epoch=0)
    lines_per_epoch = []
    for epoch in range(1, 4):
        record = {"epoch": epoch, "loss": 1.0 / epoch, "lr": 0.1, "seconds": 0.5}
        plain.on_epoch_end(record)
        log.on_epoch_end(record)
        lines_per_epoch.append(len((tmp_path / "run" / "history.jsonl").read_text().splitlines()))
    assert lines_per_epoch == [1, 2, 3]  # on disk as each epoch ends
    assert stream.getvalue().splitlines() == [
        "training: 3 epochs of 2 steps", "epoch 1/3: loss 1  lr 0.1  (0.50 s)",
        "epoch 2/3: loss 0.5  lr 0.1  (0.50 s)", "epoch 3/3: loss 0.3333  lr 0.1  (0.50 s)"]
    resumed = HistoryLog(tmp_path / "run")
    resumed.on_train_start(epochs=3, steps_per_epoch=2, start_epoch=2)  # keeps the epochs already run
    assert [json.loads(x)["epoch"] for x in (tmp_path / "run" / "history.jsonl").read_text().splitlines()] == [1, 2]


def test_train_command_in_a_log_writes_lines_and_a_report(tmp_path):
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", "sklearn:iris", "--epochs", "3", "--seed", "0", "--out", str(out)])
    assert result.exit_code == 0, result.output
    text = result.stderr if hasattr(result, "stderr") else result.output
    epochs = [line.split(": ")[:2] for line in text.splitlines() if line.startswith("network ") and ": epoch " in line]
    assert epochs == [[f"network {k}/4", f"epoch {e}/3"] for k in range(1, 5) for e in range(1, 4)]
    assert (out / "report.html").is_file()
    assert len((out / "history.jsonl").read_text().splitlines()) == 3  # the history log follows network 1
    assert "4 networks answer together (seeds 0-3; kept epochs " in text


def test_tensorboard_event_files_hold_the_history(tmp_path):
    try:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    except ImportError:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("tensorboard is in the test extra and must be installed under CI")
        pytest.skip("tensorboard is not installed")
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", "sklearn:iris", "--epochs", "4", "--seed", "0", "--out", str(out),
                                      "--tensorboard", "--quiet"])
    assert result.exit_code == 0, result.output
    events = EventAccumulator(str(out / "tensorboard"), size_guidance={"histograms": 0, "scalars": 0})
    events.Reload()
    history = torchann.load(out).history
    assert [e.value for e in events.Scalars("loss/training")] == pytest.approx(history["loss"])
    assert [e.value for e in events.Scalars("loss/validation")] == pytest.approx(history["val_loss"])
    assert [e.step for e in events.Scalars("accuracy/validation")] == [1, 2, 3, 4]
    assert "weights/linear1.weight" in events.Tags()["histograms"]
    assert len(events.Histograms("weights/output.weight")) == 4


def test_best_epoch_and_early_stop_are_marked_on_every_curve():
    from torchann.render.html import history_curves
    from torchann.report.sections import curves_section

    records = [{"epoch": e, "loss": 1.0 / e, "val_loss": [0.9, 0.5, 0.4, 0.45, 0.5][e - 1], "lr": 0.01}
               for e in range(1, 6)]

    html = curves_section(history_curves(records, {"best_epoch": 3, "stopped_early": True}))
    assert html.count(">best epoch 3</text>") == 4  # loss and lr charts, linear and log copies
    assert html.count(">early stop</text>") == 4
    assert "best epoch (3)" in html and "training stopped early" in html


def test_missing_text_values_say_what_the_model_does(tmp_path):
    from torchann.model.facts import feature_rows

    colours, zones = ["red", "blue", "green"], ["n", "s"]
    rows = [(i / 40, colours[i % 3], zones[i % 2], i / 20 + (i % 3)) for i in range(40)]
    data = tmp_path / "t.csv"
    data.write_text("x,colour,zone,y\n" + "".join(
        f"{x},{'' if i == 3 else c},{z},{y}\n" for i, (x, c, z, y) in enumerate(rows)))  # row 3: no colour
    model = train(str(data), target="y", epochs=2, hidden=[4], seed=0, val_split=0, early_stopping=0)
    # The oracle: what the encoded inputs of a row with a missing colour hold.
    names = model.input_names
    x = model.encode(run_rows(model).split("training"))
    colour_inputs = [j for j, n in enumerate(names) if n.startswith("colour=")]
    assert names[colour_inputs[-1]] == "colour=<missing>"
    assert x[3, colour_inputs].tolist() == [0, 0, 0, 1]  # its own input, not an all-zero block

    facts = gather(model, run_rows(model))
    assert facts["missing"] == [{"column": "colour", "missing": 1, "filled_with": "sets its own input colour=<missing>"}]
    feature = next(r for r in feature_rows(model) if r["name"] == "colour")
    assert feature["encoding"].endswith("+ one for a missing value")  # the features table says the same
    page = report_html(model)
    missing_table = page[page.index("<h3>Missing values</h3>"):]
    missing_table = missing_table[:missing_table.index("</table>")]
    assert "sets its own input colour=&lt;missing&gt;" in missing_table and "all-zero" not in page

    # A column whose training rows had no missing value: no <missing> input, its block stays zero.
    other = tmp_path / "other.csv"
    other.write_text("x,colour,zone,y\n0.5,red,,1.0\n0.2,blue,n,0.3\n")
    assert model.encode(str(other))[0, [j for j, n in enumerate(names) if n.startswith("zone=")]].tolist() == [0, 0]
    given = gather(model, run_rows(model, str(other)))["missing"]
    assert given == [{"column": "zone", "missing": 1, "filled_with": "sets no input of zone (all 2 zero): training "
                                                                      "rows had no missing value, so there is no "
                                                                      "<missing> input"}]
