"""The command line: exit codes, stdout/stderr split, files written, through CliRunner and a real process."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from torchann.cli import app

runner = CliRunner()


def test_demo_in_a_subprocess_writes_the_four_files(tmp_path):
    out = tmp_path / "demo"
    proc = subprocess.run(
        [sys.executable, "-m", "torchann", "demo", "--out", str(out), "--quiet", "--json"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["history.jsonl", "loss.png", "report.html", "spec.json", "weights.safetensors"]
    result = json.loads(proc.stdout)
    first = result["predictions"][0]
    assert first["a"] == 10 and abs(first["predicted"] - 21) < 0.5
    assert (out / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len((out / "history.jsonl").read_text().splitlines()) == 500


# The [test] extra's packages (and the optional extras'): `make demo` installs none of them.
NOT_FOR_THE_DEMO = ["sklearn", "selenium", "tensorboard", "hypothesis", "torchinfo", "onnx", "onnxscript",
                    "onnxruntime", "optuna", "dask", "distributed", "fastapi", "uvicorn", "mlflow", "pandas"]


def test_demo_runs_with_the_package_alone(tmp_path):
    out = tmp_path / "demo"
    script = ("import sys\n"
              f"for name in {NOT_FOR_THE_DEMO!r}:\n"
              "    sys.modules[name] = None  # importing it now fails, as where it is not installed\n"
              "from torchann.cli import main\n"
              f"sys.exit(main(['demo', '--out', {str(out)!r}, '--quiet']))\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert (out / "report.html").is_file() and (out / "weights.safetensors").is_file()


def test_train_then_predict_a_csv(tmp_path):
    data = tmp_path / "add.csv"
    rows = [(a, b, a + b) for a in range(0, 10) for b in range(0, 10, 3)]
    data.write_text("a,b,noise,sum\n" + "".join(f"{a},{b},7,{s}\n" for a, b, s in rows))
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", str(data), "--target", "sum", "--features", "a,b", "--task", "regression", "--hidden", "16",
                                 "--epochs", "150", "--batch-size", "8", "--lr", "0.01", "--seed", "0",
                                 "--val-split", "0", "--dropout", "0", "--early-stopping", "0",
                                 "--quiet", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert {"spec.json", "weights.safetensors", "history.jsonl", "loss.png"} <= {p.name for p in out.iterdir()}
    query = tmp_path / "q.csv"
    query.write_text("b,a,extra\n4,3,x\n6,5,y\n")  # other order, extra column: picked by name
    result = runner.invoke(app, ["predict", str(out), "--data", str(query)])
    assert result.exit_code == 0, result.output
    table = list(csv.DictReader(io.StringIO(result.stdout)))
    assert list(table[0]) == ["sum"]
    assert abs(float(table[0]["sum"]) - 7) < 0.5 and abs(float(table[1]["sum"]) - 11) < 0.5


def test_predict_input_rows_and_out_file(tmp_path):
    runner.invoke(app, ["demo", "--out", str(tmp_path / "d"), "--quiet"])
    out = tmp_path / "p.csv"
    result = runner.invoke(app, ["predict", str(tmp_path / "d"), "--input", "10,11", "--out", str(out)])
    assert result.exit_code == 0
    lines = out.read_text().splitlines()
    assert lines[0] == "sum" and abs(float(lines[1]) - 21) < 0.5


def test_errors_are_one_line_with_exit_code_2(tmp_path):
    result = runner.invoke(app, ["predict", str(tmp_path / "nope"), "--input", "1,2"])
    assert result.exit_code == 2
    assert result.output.startswith("error: ") and "no such model directory" in result.output
    assert "Traceback" not in result.output
    runner.invoke(app, ["demo", "--out", str(tmp_path / "d"), "--quiet"])
    result = runner.invoke(app, ["predict", str(tmp_path / "d"), "--input", "1,2,3"])
    assert result.exit_code == 2 and "need 2 values" in result.output
    result = runner.invoke(app, ["train", "add", "--optimizer", "adamm", "--out", str(tmp_path / "r"), "--quiet"])
    assert result.exit_code == 2 and "Did you mean 'adam'?" in result.output
    assert not (tmp_path / "r").exists()


def test_help_lists_every_command_and_does_not_import_torch():
    code = "import sys; from torchann.cli import main; main(['--help']) ; print('torch' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    for command in ("demo", "train", "predict", "summary", "inspect", "bench", "tune"):
        assert command in proc.stdout
    assert proc.stdout.strip().endswith("False")


def test_predict_and_evaluate_take_the_table_after_the_model_directory(tmp_path):
    runner.invoke(app, ["demo", "--out", str(tmp_path / "d"), "--quiet"])
    table = tmp_path / "t.csv"
    table.write_text("a,b,sum\n10,11,21\n3,4,7\n")
    by_option = runner.invoke(app, ["predict", str(tmp_path / "d"), "--data", str(table)])
    by_place = runner.invoke(app, ["predict", str(tmp_path / "d"), str(table)])
    assert by_option.exit_code == 0 and by_place.exit_code == 0, by_place.output
    assert by_place.stdout == by_option.stdout and len(by_place.stdout.splitlines()) == 3
    scored = runner.invoke(app, ["evaluate", str(tmp_path / "d"), str(table), "--json"])
    assert scored.exit_code == 0, scored.output
    assert json.loads(scored.stdout)["rows"] == 2
    both = runner.invoke(app, ["predict", str(tmp_path / "d"), str(table), "--data", str(tmp_path / "other.csv")])
    assert both.exit_code == 2 and "two tables given" in both.output
    neither = runner.invoke(app, ["evaluate", str(tmp_path / "d")])
    assert neither.exit_code == 2 and "give the labelled table" in neither.output
