"""A catalogue of bad inputs: each gets one clear line, the documented exit code, and no litter.

Every case names the input, the exact fragment its message must hold, and (for the command
line) the exit code. For each one the test checks: the fragment, exit code 2 for bad input,
no traceback in the output, and that the working folder holds exactly the files it held
before (nothing half-written is left behind). Python API cases check the error class.

``docs/reliability.md`` lists this catalogue; run with ``TORCHANN_REGENERATE_DOCS=1`` to
rewrite its table from the cases below.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import torch

import torchann
from torchann.training import checkpoint
from torchann.core import errors, files
from torchann.model import final_save, run_args, rundir
from torchann.training.arguments import Checkpointing
from torchann.training.fitting import fit
from torchann.data.table import Table
from torchann.network.spec import ModelSpec
from torchann.preprocess.preprocessor import Preprocessor

DOC = Path(__file__).parents[1] / "docs" / "reliability.md"
START, END = "<!-- catalogue:start -->", "<!-- catalogue:end -->"


class FileCreator:
    """A pickle payload: loading it creates the file ``pwned``."""

    def __reduce__(self):
        return (open, ("pwned", "w"))


@dataclass(frozen=True)
class Bad:
    area: str  # data | cli | spec | weights | api
    what: str  # the bad input, in words
    fragment: str  # what the message must contain
    args: tuple[str, ...] = ()  # command line (cli cases)
    call: Callable[[Path], Any] | None = None  # Python call (api cases)
    error: type = errors.TorchannError
    code: int = 2
    fault: Callable[[], Any] | None = None  # a context manager injecting a disk fault around the call
    leaves: tuple[str, ...] = ()  # paths the failure may leave, on purpose (a run's per-epoch history)

    @property
    def id(self) -> str:
        return f"{self.area}: {self.what}"


def train(data: str, *extra: str) -> tuple[str, ...]:
    return ("train", data, "--quiet", "--epochs", "1", "--out", "run", *extra)


OK = ("--target", "y")
X = torch.randn(8, 2)
Y = torch.randn(8, 1)


def _mlp():
    return torchann.mlp(2, [4], 1)


CASES = [
    # -- data files (through `torchann train`) ---------------------------------------------------
    Bad("data", "file that does not exist", "file not found: nofile.csv", train("nofile.csv", *OK)),
    Bad("data", "empty CSV", "empty.csv: the file is empty", train("empty.csv", *OK)),
    Bad("data", "CSV with a header and no rows", "header.csv: the file has columns (a, b, y) but no data rows",
        train("header.csv", *OK)),
    Bad("data", "CSV row with too few fields", "ragged.csv: row 2 (line 3) has 2 fields but the header has 3 columns",
        train("ragged.csv", *OK)),
    Bad("data", "target column misspelt", "ok.csv: no target column 'yy' (--target); columns are: a, b, y. "
        "Did you mean 'y'?", train("ok.csv", "--target", "yy")),
    Bad("data", "empty cell", "missing.csv: column 'b' has a missing value in row 2", train("missing.csv", "--fill-missing", "none", *OK)),
    Bad("data", "'nan' in a numeric column", "nan.csv: column 'a' has a missing value in row 2", train("nan.csv", "--fill-missing", "none", *OK)),
    Bad("data", "'inf' in a numeric column", "inf.csv: column 'a' row 2 is inf; replace infinite values",
        train("inf.csv", *OK)),
    Bad("data", "text in a numeric column", "textnum.csv: column 'b' holds numbers, but row 2 holds 'x'",
        train("textnum.csv", *OK)),
    Bad("data", "Latin-1 text", "latin1.csv: column 'b' holds text that is not UTF-8; save the file as UTF-8",
        train("latin1.csv", *OK)),
    Bad("data", "duplicate column names", "dup.csv: column name 'a' appears more than once", train("dup.csv", *OK)),
    Bad("data", "classification target with one class", "oneclass.csv: target 'y' has only the value 'cat'",
        train("oneclass.csv", *OK)),
    Bad("data", "unsupported file type", "data.xlsx: unknown file type '.xlsx'", train("data.xlsx", *OK)),
    Bad("data", "a folder given as data", "adir is a folder; give a data file", train("adir", *OK)),
    Bad("data", "Parquet file that is not Parquet", "bad.parquet: cannot read as Parquet", train("bad.parquet", *OK)),
    Bad("data", "Parquet with a null number", "null.parquet: column 'a' has a missing value in row 2",
        train("null.parquet", "--fill-missing", "none", *OK)),
    Bad("data", "3-D .npy array", "cube.npy: the array has shape (2, 2, 2); a .npy table must be 2-D",
        train("cube.npy", "--target", "0")),
    Bad("data", ".npy holding a pickle payload", "evil.npy: the array holds Python objects; save numbers or "
        "fixed-width text (no pickle)", train("evil.npy", "--target", "0")),
    Bad("data", ".npz with no arrays", "none.npz: the file holds no arrays", train("none.npz")),
    Bad("data", "feature listed twice", "ok.csv: feature column 'a' is listed twice",
        train("ok.csv", *OK, "--features", "a,a")),
    Bad("data", "target also a feature", "ok.csv: column 'y' is chosen as both target and feature",
        train("ok.csv", *OK, "--features", "y")),
    Bad("data", "prediction rows with the wrong width", "--input rows need 2 values (x0, x1), got 3",
        ("predict", "m2", "--input", "1,2,3")),
    Bad("data", "prediction input that is not a number", "--input expects comma-separated numbers such as "
        "'10,11', got '1,x'", ("predict", "m2", "--input", "1,x")),
    # -- command-line arguments ------------------------------------------------------------------
    Bad("cli", "no data argument", "give a DATA file or dataset name", ("train", "--quiet", "--out", "run")),
    Bad("cli", "--hidden not integers", "--hidden expects comma-separated integers such as '8,8', got '8,x'",
        train("ok.csv", *OK, "--hidden", "8,x")),
    Bad("cli", "--hidden 0", "hidden[0] must be a positive integer, got 0", train("ok.csv", *OK, "--hidden", "0")),
    Bad("cli", "--epochs 0", "Invalid value for '--epochs'", ("train", "ok.csv", *OK, "--epochs", "0")),
    Bad("cli", "--epochs not a number", "Invalid value for '--epochs'", ("train", "ok.csv", *OK, "--epochs", "abc")),
    Bad("cli", "--batch-size 0", "Invalid value for '--batch-size'", train("ok.csv", *OK, "--batch-size", "0")),
    Bad("cli", "--lr -1", "Invalid value for '--lr'", train("ok.csv", *OK, "--lr", "-1")),
    Bad("cli", "--lr 0", "learning rate must be a positive number, got 0.0; try 1e-3", train("ok.csv", *OK, "--lr", "0")),
    Bad("cli", "--dropout 1.5", "Invalid value for '--dropout'", train("ok.csv", *OK, "--dropout", "1.5")),
    Bad("cli", "--val-split 1", "val_split must be a number in [0, 1), got 1.0; 0.2 holds out a fifth", train("ok.csv", *OK, "--val-split", "1")),
    Bad("cli", "--optimizer misspelt", "unknown optimizer 'sgdd'; choose one of: sgd, adam, adamw. Did you mean 'sgd'?",
        train("ok.csv", *OK, "--optimizer", "sgdd")),
    Bad("cli", "--activation unknown", "unknown activation 'swish'; choose one of: relu, tanh",
        train("ok.csv", *OK, "--activation", "swish")),
    Bad("cli", "--norm unknown", "unknown norm 'group'; choose one of: none, batch, layer",
        train("ok.csv", *OK, "--norm", "group")),
    Bad("cli", "--loss unknown", "unknown loss 'hinge'; choose one of: mse, mae, cross_entropy, bce",
        train("ok.csv", *OK, "--loss", "hinge")),
    Bad("cli", "--scheduler unknown", "unknown scheduler 'foo'; choose one of: none, cosine",
        train("ok.csv", *OK, "--scheduler", "foo")),
    Bad("cli", "--fill-missing unknown", "unknown fill_missing 'foo'; choose one of: mean, median, zero",
        train("ok.csv", *OK, "--fill-missing", "foo")),
    Bad("cli", "--precision unknown", "unknown precision 'fp8'; choose one of: auto, fp32, bf16",
        train("ok.csv", *OK, "--precision", "fp8")),
    Bad("cli", "--device unknown", "unknown device 'tpu'; use auto, cpu, cuda, cuda:N or mps",
        train("ok.csv", *OK, "--device", "tpu")),
    Bad("cli", "--task unknown", "unknown task 'foo'; choose one of: regression, classification",
        train("ok.csv", *OK, "--task", "foo")),
    Bad("cli", "--resume a folder with no checkpoint", "adir: no checkpoint/args.json",
        train("ok.csv", *OK, "--resume", "adir")),
    Bad("cli", "--out is an existing file", "ok.csv exists and is not a", ("train", "ok.csv", *OK, "--quiet",
        "--epochs", "1", "--out", "ok.csv")),
    Bad("cli", "--out inside a file", "cannot write ok.csv/run: ok.csv is a file, not a folder",
        ("train", "ok.csv", *OK, "--quiet", "--epochs", "1", "--out", "ok.csv/run")),
    Bad("cli", "unknown command", "No such command 'frobnicate'", ("frobnicate",)),
    Bad("cli", "predict with neither a table nor --input", "give either a table (torchann predict RUN new.csv, or "
        "--data FILE)", ("predict", "m2")),
    Bad("cli", "predict --out is a folder", "adir is a folder; give a file name to write to",
        ("predict", "m2", "--input", "1,2", "--out", "adir")),
    Bad("cli", "import with --spec and --hidden", "give either --spec or --hidden/--activation, not both",
        ("import", "w.pth", "--spec", "spec_ok.json", "--hidden", "8", "--out", "imp")),
    Bad("cli", "import --hidden not integers", "--hidden expects comma-separated integers such as '8,8', got 'a'",
        ("import", "w.pth", "--hidden", "a", "--out", "imp")),
    Bad("cli", "activations --out of an unknown type", "--out a.txt: unknown file type '.txt'",
        ("activations", "m2", "--out", "a.txt", "--input", "1,2")),
    # -- spec files ----------------------------------------------------------------------------------
    Bad("spec", "spec file that is not JSON", "spec_broken.json: not valid JSON (Expecting property name enclosed "
        "in double quotes at line 1, column 19)", ("summary", "spec_broken.json")),
    Bad("spec", "negative layer size", "spec_neg.json: hidden[0] must be a positive integer, got -1",
        ("summary", "spec_neg.json")),
    Bad("spec", "unknown layer field", "spec_layer.json: unknown field(s) layers; valid fields:",
        ("import", "w.pth", "--spec", "spec_layer.json", "--out", "imp")),
    Bad("spec", "absurd sizes (10^9 x 10^9)", "spec_huge.json: the spec describes 1,000,000,002,000,000,001 "
        "parameters, more than the limit", ("summary", "spec_huge.json")),
    Bad("spec", "spec that is a list", "spec_list.json: expected a JSON object with the model's sizes, got list",
        ("summary", "spec_list.json")),
    Bad("spec", "spec file missing", "nofile.json: spec file not found",
        ("import", "w.pth", "--spec", "nofile.json", "--out", "imp")),
    Bad("spec", "model directory whose spec.json is impossible", "m_neg/spec.json: hidden[0] must be a positive "
        "integer, got -3", ("predict", "m_neg", "--input", "1,2")),
    # -- weight files --------------------------------------------------------------------------------
    Bad("weights", "a .pth pickle given as a model", "w.pth is a PyTorch pickle file, which can run code when loaded",
        ("predict", "w.pth", "--input", "1,2")),
    Bad("weights", "whole pickled model imported", "whole.pth holds a whole pickled model "
        "(torch.nn.modules.container.Sequential), not only tensors: refused, because a pickle can run any code",
        ("import", "whole.pth", "--out", "imp")),
    Bad("weights", "pickle whose payload creates a file", "evil.pth holds a pickled object (io.open), not only "
        "tensors: refused", ("import", "evil.pth", "--out", "imp")),
    Bad("weights", "truncated .pth", "trunc.pth: not a readable PyTorch weights file", ("import", "trunc.pth",
        "--out", "imp")),
    Bad("weights", "a CSV given as weights", "ok.csv: not a readable PyTorch weights file (unexpected bytes for a "
        "torch.save file)", ("import", "ok.csv", "--out", "imp")),
    Bad("weights", "weights that do not fit --hidden", "w.pth: the weights do not fit the spec 2-4-1: "
        "0.bias -> linear1.bias: expected shape (4,), found (8,)", ("import", "w.pth", "--hidden", "4", "--out", "imp")),
    Bad("weights", "model directory with truncated weights", "m_trunc/weights.safetensors: contents do not match the "
        "checksum in spec.json", ("predict", "m_trunc", "--input", "1,2")),
    Bad("weights", "model directory with float64 weights", "m_f64/weights.safetensors: weights do not fit spec.json: "
        "linear1.bias: expected dtype torch.float32, found torch.float64", ("predict", "m_f64", "--input", "1,2")),
    Bad("weights", "model directory without weights", "m_noweights/weights.safetensors: missing",
        ("summary", "m_noweights")),
    # -- Python API ----------------------------------------------------------------------------------
    Bad("api", "fit(epochs=0)", "epochs must be a positive integer, got 0",
        call=lambda d: fit(_mlp(), X, Y, epochs=0, batch_size=32, optimizer="adam", early_stopping=None), error=errors.UsageError),
    Bad("api", "fit with 3 features for a 2-input model", "training data x has 3 feature column(s) but the model "
        "expects 2", call=lambda d: fit(_mlp(), torch.randn(8, 3), Y, epochs=1, batch_size=32, optimizer="adam", early_stopping=None), error=errors.DataError),
    Bad("api", "fit with NaN in x", "training data x has a non-finite value (nan) at row 1, column 0",
        call=lambda d: fit(_mlp(), [[1.0, 2.0], [float("nan"), 1.0]], [[1.0], [2.0]], epochs=1, batch_size=32, optimizer="adam", early_stopping=None),
        error=errors.DataError),
    Bad("api", "fit with more rows in x than y", "training data: x has 8 rows but y has 3",
        call=lambda d: fit(_mlp(), X, Y[:3], epochs=1, batch_size=32, optimizer="adam", early_stopping=None), error=errors.DataError),
    Bad("api", "fit with text values", "training data x holds non-numeric values",
        call=lambda d: fit(_mlp(), [["a", "b"]], [[1.0]], epochs=1, batch_size=32, optimizer="adam", early_stopping=None), error=errors.DataError),
    Bad("api", "fit with a learning rate of -1", "learning rate must be a positive number, got -1",
        call=lambda d: fit(_mlp(), X, Y, epochs=1, lr=-1, device="cpu", batch_size=32, optimizer="adam", early_stopping=None), error=errors.UsageError),
    Bad("api", "fit on a model that is not a Module", "model must be a torch.nn.Module, got str",
        call=lambda d: fit("model", X, Y, epochs=1, batch_size=32, optimizer="adam", early_stopping=None), error=errors.UsageError),
    Bad("api", "fit checkpointing into a file", "checkpoint directory ok.csv is a file",
        call=lambda d: fit(_mlp(), X, Y, epochs=1, device="cpu", checkpoint=Checkpointing("ok.csv"), batch_size=32, optimizer="adam", early_stopping=None),
        error=errors.UsageError),
    Bad("api", "fit resuming from a folder with no checkpoint", "adir: no latest.json here, so no complete checkpoint",
        call=lambda d: fit(_mlp(), X, Y, epochs=1, resume="adir", batch_size=32, optimizer="adam", early_stopping=None), error=errors.ModelFileError),
    Bad("api", "mlp with a zero-width layer", "hidden[0] must be a positive integer, got 0",
        call=lambda d: torchann.mlp(2, [0], 1), error=errors.SpecError),
    Bad("api", "mlp with an unknown option", "unknown option(s) layers for mlp(); valid options:",
        call=lambda d: torchann.mlp(2, [4], 1, layers=3), error=errors.SpecError),
    Bad("api", "predict on a 1-D input", "input is 1-D with shape (2,); pass rows x features",
        call=lambda d: torchann.predict(_mlp(), [1.0, 2.0]), error=errors.DataError),
    Bad("api", "save a plain nn.Linear", "save() needs the model's ModelSpec to store it without pickle",
        call=lambda d: torchann.save(torch.nn.Linear(2, 1), "lin"), error=errors.UsageError),
    Bad("api", "save with extra data that is not JSON", "extra must hold JSON data only",
        call=lambda d: torchann.save(_mlp(), "sv", extra={"a": object()}), error=errors.UsageError),
    Bad("api", "load(None)", "expected the path of a model directory, got NoneType",
        call=lambda d: torchann.load(None), error=errors.UsageError),
    Bad("api", "load_table of a missing file", "file not found: nofile.csv",
        call=lambda d: torchann.load_table("nofile.csv"), error=errors.DataError),
    Bad("api", "import_state_dict of a whole pickled model", "a pickle can run any code when it is loaded",
        call=lambda d: torchann.import_state_dict("whole.pth"), error=errors.ModelFileError),
    # -- open: each of these needs a fix outside the files this catalogue's author may change --------
    Bad("data", "header with a quoted line break", "newline.csv: the file has columns",
        train("newline.csv", "--target", "0")),
    Bad("cli", "--lr inf", "learning rate must be", train("ok.csv", *OK, "--lr", "inf")),
    Bad("api", "fit(lr=inf)", "learning rate must be",
        call=lambda d: fit(_mlp(), X, Y, epochs=1, lr=float("inf"), device="cpu", batch_size=32, optimizer="adam", early_stopping=None), error=errors.UsageError),
    Bad("api", "fit(weight_decay='a')", "weight decay must be",
        call=lambda d: fit(_mlp(), X, Y, epochs=1, weight_decay="a", device="cpu", batch_size=32, optimizer="adam", early_stopping=None), error=errors.UsageError),
    Bad("api", "fit(optimizer='sgd', momentum=-1)", "momentum",
        call=lambda d: fit(_mlp(), X, Y, epochs=1, optimizer="sgd", momentum=-1, device="cpu", batch_size=32, early_stopping=None),
        error=errors.UsageError),
    Bad("api", "fit(clip_grad_norm='a')", "clip_grad_norm must be",
        call=lambda d: fit(_mlp(), X, Y, epochs=1, clip_grad_norm="a", device="cpu", batch_size=32, optimizer="adam", early_stopping=None), error=errors.UsageError),
    Bad("api", "fit(validation=(x,)) without targets", "validation",
        call=lambda d: fit(_mlp(), X, Y, epochs=1, validation=(X,), device="cpu", batch_size=32, optimizer="adam", early_stopping=None), error=errors.UsageError),
]

# Cases whose fix lies outside this test's reach: strict xfail, so a fix shows up as XPASS.
KNOWN_GAPS: dict[str, str] = {}

# -- cases added with the run-folder, disk, bounds and terminal checks --------------------------


def _disk_fault(code: int, when: Callable[[Any, Any], bool] = lambda src, dst: True):
    """A context manager: ``os.replace`` as ``files.py`` calls it fails with ``code`` (ENOSPC, EROFS)."""

    @contextlib.contextmanager
    def inject():
        real = os.replace

        def failing(src, dst, *a, **kw):
            if when(src, dst):
                raise OSError(code, os.strerror(code))
            return real(src, dst, *a, **kw)

        files.os.replace = failing
        try:
            yield
        finally:
            files.os.replace = real

    return inject


def _holding(path: str, call: Callable[[], Any]) -> Any:
    """Claim ``path`` as a run, then run ``call`` while it is held; released either way."""
    with rundir.claim_run_dir(path, overwrite=True):
        return call()


def _record(**change: Any) -> dict:
    d = {"format": "torchann.preprocessor", "version": 1, "task": "regression", "scale": True, "fill_missing": None,
         "targets": ["y"], "target_mean": [0.0], "target_std": [1.0], "classes": None, "class_kind": None,
         "features": [{"name": "a", "kind": "numeric", "mean": 0.0, "std": 1.0},
                      {"name": "b", "kind": "numeric", "mean": 0.0, "std": 1.0}]}
    for key, value in change.items():
        if key.startswith("f0_"):
            d["features"][0][key[3:]] = value
        else:
            d[key] = value
    return d


def _pre(d: Path, **change: Any) -> Any:
    return Preprocessor.from_dict(_record(**change), source="m2/spec.json extra.preprocessor", in_features=2,
                                  out_features=1)


def _classifier(**change: Any) -> dict:
    base = {"task": "classification", "target_mean": None, "target_std": None, "classes": ["a", "b"],
            "class_kind": "str"}
    return _record(**{**base, **change})


def _predict(model: str) -> tuple[str, ...]:
    return ("predict", model, "--input", "1,2")


ENOSPC = errno.ENOSPC
CASES += [
    # -- data files that are not files, or claim more than they hold -------------------------------
    Bad("data", "a named pipe called x.csv", "fifo.csv is a named pipe (FIFO), not a regular file; give a data file",
        train("fifo.csv", *OK)),
    Bad("data", "a named pipe called x.npy", "fifo.npy is a named pipe (FIFO), not a regular file",
        train("fifo.npy", "--target", "0")),
    Bad("data", "a named pipe called x.parquet", "fifo.parquet is a named pipe (FIFO), not a regular file",
        train("fifo.parquet", *OK)),
    Bad("data", "a named pipe called x.npz", "fifo.npz is a named pipe (FIFO), not a regular file", train("fifo.npz")),
    Bad("data", "a data file that is a character device", "devnull.csv is a character device, not a regular file",
        train("devnull.csv", *OK)),
    Bad("data", "a symbolic link to itself", "file not found: loop.csv", train("loop.csv", *OK)),
    Bad("data", "144-byte .npy claiming shape (10^12, 2)", "huge.npy: the header claims an array of shape "
        "(1000000000000, 2) (float64, 16,000,000,000,000 bytes) but the file holds 16 bytes of data",
        train("huge.npy", "--target", "0")),
    Bad("data", "truncated .npy", "cut.npy: the header claims an array of shape (10, 3) (float64, 240 bytes) but the "
        "file holds 232 bytes", train("cut.npy", "--target", "0")),
    Bad("data", ".npz member claiming 10^12 values", "huge.npz: array 'x': the header claims an array of shape "
        "(1000000, 1000000)", train("huge.npz")),
    Bad("data", ".npz that is not a zip archive", "notzip.npz: cannot read as a NumPy .npz file", train("notzip.npz")),
    Bad("data", ".npy with a damaged header", "badhead.npy: cannot read as a NumPy file",
        train("badhead.npy", "--target", "0")),
    Bad("data", "gzip file named .npy.gz", "gz.npy.gz: cannot read as a NumPy file", train("gz.npy.gz", "--target", "0")),
    Bad("data", "';' file mixing decimal commas and points", "mixed.csv: column 'a' holds numbers, but row 2 holds '1,5'",
        train("mixed.csv", *OK)),
    Bad("data", "--predict --data that is a named pipe", "fifo.csv is a named pipe (FIFO)",
        ("predict", "m2", "--data", "fifo.csv")),
    # -- what reaches the terminal ----------------------------------------------------------------
    Bad("terminal", "escape sequence in a CSV header", "no target column 'yy' (--target); columns are: "
        "'a\\x1b[2J', y", train("escape.csv", "--target", "yy")),
    Bad("terminal", "escape sequence in --target", "no target column 'y\\x1b[0m' (--target)",
        train("ok.csv", "--target", "y\x1b[0m")),
    Bad("terminal", "escape sequence in a model path", "m\\x1b[31m: no such model directory",
        _predict("m\x1b[31m")),
    Bad("terminal", "escape sequence in a command name", "No such command 'fr\\x1b[2Job'", ("fr\x1b[2Job",)),
    Bad("terminal", "newline in a data path", "file not found: a\\nb.csv", train("a\nb.csv", *OK)),
    Bad("terminal", "bell and backspace in a --hidden value", "got '8,\\x07\\x08'",
        train("ok.csv", *OK, "--hidden", "8,\x07\x08")),
    # -- model directories: not files, huge claims, malformed JSON ---------------------------------
    Bad("weights", "spec.json that is a named pipe", "m_fifospec/spec.json is a named pipe (FIFO), not a regular file",
        _predict("m_fifospec")),
    Bad("weights", "weights that are a named pipe", "m_fifow/weights.safetensors is a named pipe (FIFO)",
        _predict("m_fifow")),
    Bad("weights", "weights linked to a 30 GB sparse file", "m_sparse/weights.safetensors: 32,212,254,720 bytes, but "
        "the network in spec.json needs at most", _predict("m_sparse")),
    Bad("weights", "weights swapped for a bigger file", "m_bigw/weights.safetensors: 1,200,", _predict("m_bigw")),
    Bad("spec", "spec.json with NaN in a preprocessing field", "m_nan/spec.json: field extra.preprocessor.features[0]"
        ".mean holds NaN, which is not a finite number", _predict("m_nan")),
    Bad("spec", "spec.json with Infinity", "m_inf/spec.json: field extra.preprocessor.target_std[0] holds Infinity",
        _predict("m_inf")),
    Bad("spec", "spec.json with 1e999", "m_1e999/spec.json: field model.dropout holds 1e999", _predict("m_1e999")),
    Bad("spec", "spec.json with a 5000-digit integer", "m_digits/spec.json: field model.hidden[0] holds an integer of "
        "5000 digits", _predict("m_digits")),
    Bad("spec", "truncated spec.json", "m_cut/spec.json: malformed JSON", _predict("m_cut")),
    Bad("spec", "spec.json that is not UTF-8", "m_latin/spec.json: not UTF-8 text", _predict("m_latin")),
    Bad("spec", "spec.json nested 100,000 deep", "m_deep/spec.json: JSON nested too deeply", _predict("m_deep")),
    Bad("spec", "spec.json with a numeric checksum", "m_shanum/spec.json: field weights.sha256 must be a hex string, "
        "got int", _predict("m_shanum")),
    Bad("spec", "spec.json that is a JSON list", "m_list/spec.json: not a torchann model spec (format 'list'",
        _predict("m_list")),
    Bad("spec", "preprocessor listing 100,000 categories", "field features[0].categories holds a list of 100,000 "
        "item(s); expected a list of 1 to 2 values", _predict("m_cats")),
    Bad("spec", "preprocessor with a text std", "field features[0].std holds 'a', not a finite number",
        _predict("m_stdtext")),
    Bad("spec", "summary of a spec with a 5000-digit size", "big_digits.json: field hidden[0] holds an integer of 5000 "
        "digits", ("summary", "big_digits.json")),
    Bad("spec", "import --spec with NaN", "spec_nan.json: field hidden[0] holds NaN",
        ("import", "w.pth", "--spec", "spec_nan.json", "--out", "imp")),
    Bad("spec", "import --spec that is a named pipe", "fifo.json is a named pipe (FIFO)",
        ("import", "w.pth", "--spec", "fifo.json", "--out", "imp")),
    Bad("weights", "import of a named pipe", "fifo.pth is a named pipe (FIFO), not a regular file",
        ("import", "fifo.pth", "--out", "imp")),
    # -- preprocessing records (what Model.load and predict read from spec.json) -------------------
    Bad("record", "ten million categories for a 2-input network", "field features[0].categories holds a list of "
        "10,000,000 item(s); expected a list of 1 to 2 values",
        call=lambda d: _pre(d, f0_kind="categorical", f0_categories=list(range(10**7)), f0_label_kind="int"),
        error=errors.ModelFileError),
    Bad("record", "NaN mean", "m2/spec.json extra.preprocessor: field features[0].mean holds nan, not a finite number",
        call=lambda d: _pre(d, f0_mean=float("nan")), error=errors.ModelFileError),
    Bad("record", "std 0", "field features[0].std holds 0.0; it must be above 0",
        call=lambda d: _pre(d, f0_std=0.0), error=errors.ModelFileError),
    Bad("record", "std given as text", "field features[0].std holds '1', not a finite number",
        call=lambda d: _pre(d, f0_std="1"), error=errors.ModelFileError),
    Bad("record", "fill given as true", "field features[0].fill holds True, not a finite number",
        call=lambda d: _pre(d, f0_fill=True), error=errors.ModelFileError),
    Bad("record", "unknown feature kind", "field features[0].kind holds 'embedding'; expected 'numeric', 'date' or 'categorical'",
        call=lambda d: _pre(d, f0_kind="embedding"), error=errors.ModelFileError),
    Bad("record", "unknown feature field", "field features[0].weight is not a feature field",
        call=lambda d: _pre(d, f0_weight=1.0), error=errors.ModelFileError),
    Bad("record", "feature name twice", "field features[1].name holds 'a'; expected a column name used once",
        call=lambda d: _pre(d, features=[{"name": "a", "kind": "numeric"}] * 2), error=errors.ModelFileError),
    Bad("record", "three features for a 2-input network", "field features lists 3 features for a network with 2 inputs",
        call=lambda d: _pre(d, features=[{"name": n, "kind": "numeric"} for n in "abc"]), error=errors.ModelFileError),
    Bad("record", "one input for a 2-input network", "field features encode 1 inputs but the network takes 2",
        call=lambda d: _pre(d, features=[{"name": "a", "kind": "numeric"}]), error=errors.ModelFileError),
    Bad("record", "unknown task", "field task holds 'ranking'; expected one of regression, classification",
        call=lambda d: _pre(d, task="ranking"), error=errors.ModelFileError),
    Bad("record", "scale given as 1", "field scale holds 1, not true or false",
        call=lambda d: _pre(d, scale=1), error=errors.ModelFileError),
    Bad("record", "unknown fill_missing", "field fill_missing holds 'mode'; expected null or one of mean, median, zero",
        call=lambda d: _pre(d, fill_missing="mode"), error=errors.ModelFileError),
    Bad("record", "targets not a list", "field targets holds 'y'; expected a list of column names",
        call=lambda d: _pre(d, targets="y"), error=errors.ModelFileError),
    Bad("record", "target_std of the wrong length", "field target_std holds a list of 2 item(s); expected 1 number(s)",
        call=lambda d: _pre(d, target_std=[1.0, 1.0]), error=errors.ModelFileError),
    Bad("record", "two targets for a 1-output network", "field targets decode 2 output(s) but the network has 1",
        call=lambda d: _pre(d, targets=["y", "z"], target_mean=[0, 0], target_std=[1, 1]), error=errors.ModelFileError),
    Bad("record", "a field missing", "field classes is missing",
        call=lambda d: Preprocessor.from_dict({k: v for k, v in _record().items() if k != "classes"},
                                              source="m2/spec.json extra.preprocessor"), error=errors.ModelFileError),
    Bad("record", "classifier with one class", "field classes holds a list of 1 item(s); expected a list of 2 to",
        call=lambda d: _pre(d, **{k: v for k, v in _classifier(classes=["a"]).items() if k != "format"}),
        error=errors.ModelFileError),
    Bad("record", "class given twice", "field classes lists a value twice",
        call=lambda d: _pre(d, **{k: v for k, v in _classifier(classes=["a", "a"]).items() if k != "format"}),
        error=errors.ModelFileError),
    Bad("record", "unknown class_kind", "field class_kind holds 'date'; expected one of str, int, float, bool",
        call=lambda d: _pre(d, **{k: v for k, v in _classifier(class_kind="date").items() if k != "format"}),
        error=errors.ModelFileError),
    Bad("record", "int classes holding text", "field classes[1] holds 'b', not a int label",
        call=lambda d: _pre(d, **{k: v for k, v in _classifier(classes=[1, "b"], class_kind="int").items()
                                 if k != "format"}), error=errors.ModelFileError),
    # -- checkpoints ------------------------------------------------------------------------------
    Bad("checkpoint", "state.json without seed", "ck_noseed/epoch-000001-step-000000/state.json: field state.seed is "
        "missing", call=lambda d: checkpoint.load_state("ck_noseed"), error=errors.ModelFileError),
    Bad("checkpoint", "state.json with a negative epoch", "field state.epoch holds -1, expected a non-negative integer",
        call=lambda d: checkpoint.load_state("ck_negepoch"), error=errors.ModelFileError),
    Bad("checkpoint", "state.json with a seed past 2**63", "field state.seed holds 10000000000000000000, expected a "
        "non-negative integer below 2**63", call=lambda d: checkpoint.load_state("ck_bigseed"),
        error=errors.ModelFileError),
    Bad("checkpoint", "latest.json naming a folder with a NUL byte", "ck_nulptr/latest.json: unreadable or names no "
        "checkpoint", call=lambda d: checkpoint.load_state("ck_nulptr"), error=errors.ModelFileError),
    Bad("checkpoint", "state.json with the epoch as text", "field state.epoch holds '3', expected a non-negative",
        call=lambda d: checkpoint.load_state("ck_textepoch"), error=errors.ModelFileError),
    Bad("checkpoint", "state.json with NaN", "state.json: field state.best holds NaN, which is not a finite number",
        call=lambda d: checkpoint.load_state("ck_nan"), error=errors.ModelFileError),
    Bad("checkpoint", "state.json with a 5000-digit step", "field state.step holds an integer of 5000 digits",
        call=lambda d: checkpoint.load_state("ck_digits"), error=errors.ModelFileError),
    Bad("checkpoint", "truncated state.json", "state.json: malformed JSON",
        call=lambda d: checkpoint.load_state("ck_cut"), error=errors.ModelFileError),
    Bad("checkpoint", "latest.json that is a named pipe", "ck_fifoptr/latest.json: unreadable or names no checkpoint",
        call=lambda d: checkpoint.load_state("ck_fifoptr"), error=errors.ModelFileError),
    Bad("checkpoint", "tensors that are a named pipe", "tensors.safetensors is a named pipe (FIFO)",
        call=lambda d: checkpoint.load_state("ck_fifot"), error=errors.ModelFileError),
    # -- args.json --------------------------------------------------------------------------------
    Bad("args", "truncated args.json", "args_cut.json: malformed JSON (Expecting ',' delimiter at line 1",
        call=lambda d: run_args.read_args("args_cut.json"), error=errors.UsageError),
    Bad("args", "args.json holding a list", "args_list.json: expected a JSON object of argument names and values, "
        "got list", call=lambda d: run_args.read_args("args_list.json"), error=errors.UsageError),
    Bad("args", "args.json with NaN", "args_nan.json: field lr holds NaN",
        call=lambda d: run_args.read_args("args_nan.json"), error=errors.UsageError),
    Bad("args", "args.json with a 5000-digit integer", "args_digits.json: field epochs holds an integer of 5000 digits",
        call=lambda d: run_args.read_args("args_digits.json"), error=errors.UsageError),
    Bad("args", "args.json with a wrongly typed field", "args_type.json: field 'epochs' holds 'ten', expected int",
        call=lambda d: run_args.read_args("args_type.json", {"epochs": int}), error=errors.UsageError),
    Bad("args", "args.json with an unknown field", "args_type.json: unknown field 'epochs'; valid fields: lr",
        call=lambda d: run_args.read_args("args_type.json", {"lr": float}), error=errors.UsageError),
    Bad("args", "args.json that is a named pipe", "fifo.json is a named pipe (FIFO), not a regular file",
        call=lambda d: run_args.read_args("fifo.json"), error=errors.UsageError),
    Bad("args", "args.json missing", "noargs.json: missing; resume a run that was trained with --checkpoint-every",
        call=lambda d: run_args.read_args("noargs.json"), error=errors.UsageError),
    # -- run folders ------------------------------------------------------------------------------
    Bad("run", "--out .", "--out . is the current folder; a run writes spec.json, checkpoint/ and more there",
        call=lambda d: rundir.claim_run_dir("."), error=errors.UsageError),
    Bad("run", "--out .. (a parent of the current folder)", "--out .. is a folder above the current one",
        call=lambda d: rundir.claim_run_dir(".."), error=errors.UsageError),
    Bad("run", "--out a folder that is not a run", "userdir is not empty and not a torchann run (it holds notes.txt)",
        call=lambda d: rundir.claim_run_dir("userdir", overwrite=True), error=errors.UsageError),
    Bad("run", "--out an existing run without --overwrite", "m2 already holds a torchann run; pass --overwrite to "
        "replace it, --resume m2 to continue it", call=lambda d: rundir.claim_run_dir("m2"), error=errors.UsageError),
    Bad("run", "--resume a folder with no run", "adir: no run to resume here",
        call=lambda d: rundir.claim_run_dir("adir", resume=True), error=errors.UsageError),
    Bad("run", "--resume with no folder", "resume needs the run folder to continue",
        call=lambda d: rundir.claim_run_dir(None, resume=True), error=errors.UsageError),
    Bad("run", "--out an existing file", "ok.csv exists and is not a folder; choose another --out",
        call=lambda d: rundir.claim_run_dir("ok.csv"), error=errors.UsageError),
    Bad("run", "two runs on one folder", "adir is in use by another torchann run",
        call=lambda d: _holding("adir", lambda: rundir.claim_run_dir("adir", overwrite=True)),
        error=rundir.RunDirBusy),
    Bad("run", "a disk without room for the run", "bytes free on its disk, but the run needs about "
        "1,000,000,000,000,000,000", call=lambda d: rundir.claim_run_dir("newrun", need_bytes=10**18),
        error=files.StorageError, code=1),
    Bad("run", "a read-only --out", "cannot write in rofs/run: Read-only file system; choose a folder you can write to",
        call=lambda d: rundir.claim_run_dir("rofs/run"), error=errors.UsageError,
        fault=lambda: _fail_mkdir(errno.EROFS)),
    # -- torchann tune: the budget and the study's storage ------------------------------------------
    Bad("tune", "--trials 0", "--trials must be at least 1, got 0",
        ("tune", "ok.csv", "--target", "y", "--out", "tuned", "--trials", "0")),
    Bad("tune", "a storage URL of an unknown scheme", "unknown storage 'redis://localhost/0': give sqlite:///PATH, "
        "journal:PATH", ("tune", "ok.csv", "--target", "y", "--out", "tuned", "--storage", "redis://localhost/0")),
    Bad("tune", "a PostgreSQL storage nobody listens on (password hidden)",
        "cannot reach storage postgresql://tune:***@127.0.0.1:9/tune: ",
        ("tune", "ok.csv", "--target", "y", "--out", "tuned", "--storage", "postgresql://tune:pw@127.0.0.1:9/tune")),
    Bad("tune", "a journal storage in a folder that does not exist", "storage 'journal:nodir/s.journal': folder "
        "nodir does not exist", ("tune", "ok.csv", "--target", "y", "--storage", "journal:nodir/s.journal")),
    Bad("tune", "an option tune searches itself", "tune searches lr itself; leave it out",
        call=lambda d: torchann.tune("ok.csv", target="y", lr=0.1), error=errors.UsageError),
    # -- a full or read-only disk while writing ----------------------------------------------------
    Bad("disk", "predict --out on a full disk", "cannot write preds.csv: no space left on the device (No space left on "
        "device); free some space", ("predict", "m2", "--input", "1,2", "--out", "preds.csv"),
        fault=_disk_fault(ENOSPC), code=1),
    Bad("disk", "predict --out on a read-only disk", "cannot write preds.csv: Read-only file system; choose a folder "
        "you can write to", ("predict", "m2", "--input", "1,2", "--out", "preds.csv"), fault=_disk_fault(errno.EROFS)),
    Bad("disk", "train's final save on a full disk", "cannot write run/weights.safetensors: no space left on the device",
        train("ok.csv", *OK), fault=_disk_fault(ENOSPC, lambda src, dst: str(dst).endswith("weights.safetensors")),
        code=1, leaves=("run", "run/history.jsonl")),
    Bad("disk", "import --out on a full disk", "cannot write imp/weights.safetensors: no space left on the device",
        ("import", "w.pth", "--out", "imp"), fault=_disk_fault(ENOSPC), code=1),
    Bad("disk", "a checkpoint written to a full disk", "cannot write checkpoint ck_ok/epoch-000002-step-000000: No space "
        "left on device; ck_ok/epoch-000001-step-000000 is still the latest checkpoint",
        call=lambda d: checkpoint.save_state("ck_ok", "epoch-000002-step-000000", {"a": torch.ones(2)}),
        error=files.StorageError, code=1, fault=lambda: _fail_safetensors(ENOSPC)),
    Bad("disk", "save over a model on a full disk", "cannot write m2/weights.safetensors: no space left on the device",
        call=lambda d: torchann.save(torchann.mlp(2, [8], 1), "m2"), error=files.StorageError, code=1,
        fault=_disk_fault(ENOSPC)),
    Bad("disk", "final save with no space anywhere", "the trained model could not be saved anywhere; free some space",
        call=lambda d: final_save.save_final(lambda p: torchann.save(torchann.mlp(2, [8], 1), p), "newrun"),
        error=files.StorageError, code=1, fault=_disk_fault(ENOSPC)),
]


def _cluster(*extra: str, data: str = "ok.csv", out: str = "preds", cluster: str = "local:1") -> tuple[str, ...]:
    return ("predict", "m_ab", "--data", data, "--out", out, "--cluster", cluster, *extra)


def _short_connect_timeout():
    from unittest import mock

    from torchann.dask import cluster

    return mock.patch.object(cluster, "CONNECT_TIMEOUT_S", 0.5)


def _without_distributed():
    from unittest import mock

    return mock.patch.dict(sys.modules, {"distributed": None})  # as if the [dask] extra were not installed


CASES += [
    # -- scoring on a Dask cluster (torchann predict --cluster): checked before a cluster is started ----------
    Bad("dask", "--cluster with --input rows", "--cluster scores files: give --data FILE, FOLDER or a pattern",
        ("predict", "m_ab", "--input", "1,2", "--cluster", "local:1")),
    Bad("dask", "--cluster without --out", "--cluster writes a folder of Parquet parts: give --out FOLDER",
        ("predict", "m_ab", "--data", "ok.csv", "--cluster", "local:1")),
    Bad("dask", "--cluster with --json", "--cluster writes Parquet parts to --out; leave out --json",
        _cluster("--json")),
    Bad("dask", "--cluster address misspelt", "--cluster expects a scheduler address such as tcp://HOST:8786, or "
        "local, or local:N (N worker processes here), got 'tcp:/node0:8786'", _cluster(cluster="tcp:/node0:8786")),
    Bad("dask", "--cluster local:0", "--cluster local:0: the number of worker processes must be 1 to 256",
        _cluster(cluster="local:0")),
    Bad("dask", "--partition-rows without --cluster", "--partition-rows cuts the input for --cluster",
        ("predict", "m_ab", "--data", "ok.csv", "--out", "preds", "--partition-rows", "10")),
    Bad("dask", "--partition-rows 0", "Invalid value for '--partition-rows'", _cluster("--partition-rows", "0")),
    Bad("dask", "--out a .csv file name", "--out preds.csv: a cluster job writes a folder of Parquet parts, not one "
        ".csv file; give a folder name such as preds/", _cluster(out="preds.csv")),
    Bad("dask", "--out an existing file", "--out data.xlsx exists and is not a folder", _cluster(out="data.xlsx")),
    Bad("dask", "--out a folder of the user's", "--out userdir is not empty and not an earlier scoring output (it "
        "holds notes.txt); choose a new folder", _cluster(out="userdir")),
    Bad("dask", "--data pattern matching nothing", "no file matches 'nothing*.parquet'; check the pattern",
        _cluster(data="nothing*.parquet")),
    Bad("dask", "--data pattern matching a spreadsheet", "data.xlsx: cannot score .xlsx on a cluster; give CSV, TSV "
        "or Parquet files", _cluster(data="data.x*")),
    Bad("dask", "a Parquet file without a feature", "onlya.parquet: no column 'b' (a feature of the model or a --keep "
        "column); columns present: a", _cluster(data="onlya.parquet")),
    Bad("dask", "--keep a column that is not there", "ok.csv: no column 'id' (a feature of the model or a --keep "
        "column); columns present: a, b, y", _cluster("--keep", "id")),
    Bad("dask", "a Parquet file that is not Parquet", "bad.parquet: cannot read as Parquet", _cluster(data="bad.parquet")),
    Bad("dask", "--proba for a regression", "--proba needs a classifier, but m_ab predicts y as numbers", _cluster("--proba")),
    Bad("dask", "the [dask] extra not installed", "scoring on a Dask cluster needs distributed, which is not "
        "installed; run: pip install 'torchann[dask]'", _cluster(), fault=_without_distributed),
    # -- ... and found while it runs ---------------------------------------------------------------------------
    Bad("dask", "a scheduler nobody runs", "cannot reach the Dask scheduler at tcp://127.0.0.1:1 within 0.5 s; start "
        "one with 'dask scheduler'", _cluster(cluster="tcp://127.0.0.1:1"), fault=_short_connect_timeout, code=1),
    Bad("dask", "text in a number column of one partition, scored by a worker", "textnum.csv: column 'b' holds "
        "numbers, but row 2 holds 'x'", _cluster(data="textnum.csv")),
]


def train_new(data: str, *extra: str) -> tuple[str, ...]:
    """``train`` into a folder no other case writes (a disk case leaves ``run/`` on purpose)."""
    return ("train", data, "--quiet", "--epochs", "1", "--out", "newrun", *extra)


def _meta_mlp():
    with torch.device("meta"):
        return torchann.mlp(2, [4], 1)


class _Rows(torch.utils.data.IterableDataset):
    """A stream of (x, y) rows without a length, as users write them."""

    def __iter__(self):
        return iter(zip(X, Y))


CASES += [
    # -- sizes that would allocate before they are checked ------------------------------------------
    Bad("spec", "summary --input-size of 10^12 values for a 2-input network", "the forward pass failed on input(s) "
        "of shape (2, 1000000000000)", ("summary", "spec_ok.json", "--input-size", "1000000000000")),
    Bad("spec", "summary --input-size of 10^24 values", "input_size (1000000000000, 1000000000000, 2) makes a sample "
        "batch of 2 x 2,000,000,000,000,000,000,000,000 values", ("summary", "spec_ok.json", "--input-size",
                                                                 "1000000000000,1000000000000,2")),
    Bad("api", "summary(input_size=(10**12,)) of a network with weights", "input_size (1000000000000,) makes a sample "
        "batch of 2 x 1,000,000,000,000 values (8,000,000,000,000 bytes), more than the limit of 1,073,741,824",
        call=lambda d: torchann.summary(_mlp(), input_size=(10**12,)), error=errors.UsageError),
    # -- batch norm and batches of one row -------------------------------------------------------------
    Bad("data", "--norm batch on a one-row table", "the training data has 1 row(s), but the model's BatchNorm needs at "
        "least 2 rows per batch; give more rows, or use norm='layer' (--norm layer)",
        train_new("one.csv", *OK, "--norm", "batch")),
    Bad("cli", "--norm batch with --batch-size 1", "batch_size 1 gives BatchNorm batches of one row, which it cannot "
        "train on; use batch_size 2 or more", train_new("ok.csv", *OK, "--norm", "batch", "--batch-size", "1")),
    Bad("api", "fit a batch-norm model on a DataLoader whose last batch holds one row", "the DataLoader's last batch "
        "holds 1 row (9 rows in batches of 4)", call=lambda d: fit(torchann.mlp(2, [4], 1, norm="batch"),
            torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(9, 2), torch.randn(9, 1)),
                                        batch_size=4), epochs=1), error=errors.DataError),
    # -- numbers too large to standardise ---------------------------------------------------------------
    Bad("data", "a target of 1e308 learnt as it is", "hugey.csv: target 'y' row 4 holds 1e+308, too large to "
        "standardise (beyond ±1e+100, its square overflows float64); divide the column by a power of ten, or learn "
        "log1p(y) with --target-log", train_new("hugey.csv", *OK, "--no-target-log")),
    Bad("data", "a target of -1e308", "hugeneg.csv: target 'y' row 4 holds -1e+308, too large to standardise",
        train_new("hugeneg.csv", *OK)),
    Bad("data", "a feature of 1e308 (standardised: few distinct values)", "hugex.csv: column 'a' row 4 holds 1e+308, "
        "too large to standardise (beyond ±1e+100, its square overflows float64); divide the column by a power of "
        "ten, or use --scaling quantile", train_new("hugex.csv", *OK)),
    # -- tutorial-style weight files whose tensors are not plain weights --------------------------------
    Bad("weights", "import of a .pth holding a sparse tensor with out-of-range indices", "sparse.pth: tensor "
        "'0.weight' is sparse_coo, not a dense tensor", ("import", "sparse.pth", "--out", "imp")),
    Bad("weights", "import of a .pth holding meta tensors", "meta.pth: tensor '0.weight' is on the meta device (a "
        "shape without values", ("import", "meta.pth", "--out", "imp")),
    # -- the Python API misused as users do ----------------------------------------------------------------
    Bad("api", "fit with a 0-d target", "training data y is a single number (1.0), not one target per row; pass y of "
        "shape (8,) or (8, outputs)", call=lambda d: fit(_mlp(), X, torch.tensor(1.0), epochs=1),
        error=errors.DataError),
    Bad("api", "fit on a DataLoader of an IterableDataset", "fit cannot train on an IterableDataset (_Rows): it has "
        "no length", call=lambda d: fit(_mlp(), torch.utils.data.DataLoader(_Rows(), batch_size=4), epochs=1),
        error=errors.UsageError),
    Bad("api", "fit(loss='bce') with a target of 2.0", "training data y holds 2 at row 0, column 0, but loss='bce' "
        "needs targets in [0, 1]", call=lambda d: fit(_mlp(), X, torch.full((8, 1), 2.0), loss="bce", epochs=1),
        error=errors.DataError),
    Bad("api", "predict(batch_size=-1)", "batch_size must be a positive integer or None, got -1",
        call=lambda d: torchann.predict(_mlp(), X, batch_size=-1), error=errors.UsageError),
    Bad("api", "save a model on the meta device", "model tensor 'linear1.weight' is on the meta device (a shape "
        "without values), so there are no weights to save", call=lambda d: torchann.save(_meta_mlp(), "sv"),
        error=errors.UsageError),
    Bad("api", "load_table(None)", "path must be a data file's path or a dataset name (a str or os.PathLike), got "
        "NoneType", call=lambda d: torchann.load_table(None), error=errors.UsageError),
]


def _write_trust_inputs(d: Path) -> None:
    """Inputs of the cases just above: one-row and huge-number tables, odd .pth tensors."""
    (d / "one.csv").write_text("a,b,y\n1,2,3\n")
    for name, column, value in [("hugey", 2, 1e308), ("hugeneg", 2, -1e308), ("hugex", 0, 1e308)]:
        rows = [[float(i), float(i % 3), float(i)] for i in range(20)]
        rows[3][column] = value
        (d / f"{name}.csv").write_text("a,b,y\n" + "".join(",".join(repr(v) for v in r) + "\n" for r in rows))
    state = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1)).state_dict()
    sparse = torch.sparse_coo_tensor(torch.tensor([[0, 50], [0, 1]]), torch.tensor([1.0, 2.0]), (8, 2),
                                     check_invariants=False)  # index 50 lies outside the 8 rows
    torch.save({**state, "0.weight": sparse}, d / "sparse.pth")
    torch.save({k: torch.empty_like(v, device="meta") for k, v in state.items()}, d / "meta.pth")


# -- cases found by fuzzing the readers (tests/test_fuzz_*.py, benchmarks/fuzz.py) --------------------------


def _fuzz_resume(d: Path, name: str = "ck_moments") -> Any:
    import torch

    torch.manual_seed(0)
    x = torch.arange(24, dtype=torch.float32).reshape(12, 2) / 24
    return torchann.fit(torchann.mlp(2, [4], 1), x, x.sum(1, keepdim=True), epochs=3, batch_size=4, seed=1,
                        resume=d / name)


def _damaged_checkpoint(d: Path, name: str, change) -> None:
    """A two-epoch fit's checkpoint in ``d/name``, its state.json's state edited by ``change(state)``."""
    import json

    import torch

    from torchann.training.arguments import Checkpointing

    torch.manual_seed(0)
    x = torch.arange(24, dtype=torch.float32).reshape(12, 2) / 24
    torchann.fit(torchann.mlp(2, [4], 1), x, x.sum(1, keepdim=True), epochs=2, batch_size=4, seed=1,
                 checkpoint=Checkpointing(d / name))
    state = d / name / json.loads((d / name / "latest.json").read_text())["name"] / "state.json"
    doc = json.loads(state.read_text())
    change(doc["state"])
    state.write_text(json.dumps(doc))


def _moments_of_another_shape(state: dict) -> None:
    moments = state["optimizer"]["state"]
    moments["__int__0"] = moments["__int__3"]  # linear1.weight (4, 2) given output.bias's (1,) moments


def _capturable(state: dict) -> None:
    state["optimizer"]["param_groups"][0]["capturable"] = True  # torch asserts a CUDA device at the step


def _three_betas(state: dict) -> None:
    state["optimizer"]["param_groups"][0]["betas"] = [0.9, 0.99, 0.5]


def _best_loss_as_text(state: dict) -> None:
    state["stopper"]["best"] = "low"  # compared with the next epoch's loss


def _write_fuzz_inputs(d: Path) -> None:
    import io
    import json
    import zipfile

    import torch

    from torchann.training.arguments import Checkpointing

    buf = io.BytesIO()
    np.save(buf, np.zeros((2, 2)))
    good = buf.getvalue()
    (d / "v9.npy").write_bytes(b"\x93NUMPY\x09" + good[7:])
    (d / "nul.npy").write_bytes(good.replace(b"False", b"F\x00lse"))
    buf = io.BytesIO()
    np.save(buf, np.array([[b"\x00\x80"]], dtype="|S2"))
    (d / "bytes.npy").write_bytes(buf.getvalue())
    (d / "notgz.csv.gz").write_bytes(b"a,b,y\n1,2,3\n")
    (d / "latin1head.csv").write_bytes("caf\xe9,y\n1,2\n".encode("latin-1"))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("x.npy", good)
        zf.writestr("y.txt", b"notes")
    data = buf.getvalue()
    (d / "badmember.npz").write_bytes(data.replace(b"y.txt", b"y_txt", 1))  # the local header only
    _damaged_checkpoint(d, "ck_moments", _moments_of_another_shape)
    _damaged_checkpoint(d, "ck_capturable", _capturable)
    _damaged_checkpoint(d, "ck_betas", _three_betas)
    _damaged_checkpoint(d, "ck_best", _best_loss_as_text)
    # found by the 10,000-input runs
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("x.npy", good)
    data = bytearray(buf.getvalue())
    at = data.index(b"PK\x01\x02")
    data[at + 6:at + 8] = (133).to_bytes(2, "little")  # "version needed to extract": 13.3
    (d / "zipversion.npz").write_bytes(bytes(data))
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"t": ["abcdef", "abcdef"], "y": [1.0, 2.0]}), d / "latin.parquet", compression="NONE",
                   write_statistics=False, use_dictionary=False)
    raw = (d / "latin.parquet").read_bytes().replace(b"abcdef", b"ab\xff\xfeef")
    (d / "latin.parquet").write_bytes(raw)
    (d / "nanfield.json").write_text('{"in_features": 2, "hidden": [], "out_features": 1, "note": {"a\\nb": NaN}}')


CASES += [
    Bad("data", ".npy of a format version numpy never wrote", "v9.npy: cannot read as a NumPy file (format version "
        "9.0 is not one numpy writes)", call=lambda d: torchann.load_table("v9.npy"), error=errors.DataError),
    Bad("data", ".npy header holding a NUL byte", "nul.npy: cannot read as a NumPy file",
        call=lambda d: torchann.load_table("nul.npy"), error=errors.DataError),
    Bad("data", ".npy of bytes that are not UTF-8", "column 'x0' row 1 holds bytes that are not UTF-8 text",
        call=lambda d: torchann.load_table("bytes.npy"), error=errors.DataError),
    Bad("data", ".csv.gz that is not gzip", "notgz.csv.gz: cannot read the file (", call=lambda d: torchann.load_table(
        "notgz.csv.gz"), error=errors.DataError),
    Bad("data", "a header line that is not UTF-8", "latin1head.csv: the column names are not UTF-8 text; save the "
        "file as UTF-8", call=lambda d: torchann.load_table("latin1head.csv"), error=errors.DataError),
    Bad("data", ".npz member whose header disagrees with the directory", "array 'y.txt': cannot read it (",
        call=lambda d: torchann.load_table("badmember.npz"), error=errors.DataError),
    Bad("data", "a column of nested values (a request's rows)", "column 'a' holds lists or objects among its values",
        call=lambda d: Table.from_columns({"a": [1.5, [], 2.0]}, source="request"), error=errors.DataError),
    Bad("record", "quantile knots and scores of two lengths", "field features[0].scores holds a list of 1 item(s) "
        "for a list of 2 item(s) of knots; expected one score per knot",
        call=lambda d: _pre(d, f0_knots=[0.0, 1.0], f0_scores=[0.0]), error=errors.ModelFileError),
    Bad("record", "quantile knots out of order", "field features[0].knots is not in increasing order",
        call=lambda d: _pre(d, f0_knots=[1.0, 0.0], f0_scores=[0.0, 1.0]), error=errors.ModelFileError),
    Bad("record", "label_kind given as a list", "field features[0].label_kind holds a list of 1 item(s)",
        call=lambda d: _pre(d, f0_kind="categorical", f0_categories=["x", "z"], f0_label_kind=["str"]),
        error=errors.ModelFileError),
    Bad("record", "unknown scaling", "field scaling holds 'robust'; expected one of quantile, standard",
        call=lambda d: _pre(d, scaling="robust"), error=errors.ModelFileError),
    Bad("record", "target_log not a list", "field target_log holds 'yes'; expected null or one true/false per target",
        call=lambda d: _pre(d, target_log="yes"), error=errors.ModelFileError),
    Bad("record", "dropped given as a list", "field dropped holds a list of 1 item(s); expected an object",
        call=lambda d: _pre(d, dropped=["id"]), error=errors.ModelFileError),
    Bad("record", "a feature field named with a newline", "field features[0].'w\\neight' is not a feature field",
        call=lambda d: _pre(d, **{"f0_w\neight": 1.0}), error=errors.ModelFileError),
    Bad("spec", "a field named with a newline", "unknown field(s) 'a\\nb'; valid fields:",
        call=lambda d: ModelSpec.from_dict({"in_features": 2, "hidden": [], "out_features": 1, "a\nb": 1},
                                           source="spec.json"), error=errors.SpecError),
    Bad("checkpoint", "optimiser moments of the wrong shape (a step would corrupt memory)", "ck_moments: the "
        "checkpoint's state cannot be put back (ValueError: exp_avg of parameter 0 is (1,), the parameter (4, 2))",
        call=_fuzz_resume, error=errors.ModelFileError),
    Bad("checkpoint", "an optimiser group set to capturable (CUDA graphs) on the CPU", "ck_capturable: the "
        "checkpoint's state cannot be put back (ValueError: param_groups[0].capturable is True; this optimiser runs "
        "with False)", call=lambda d: _fuzz_resume(d, "ck_capturable"), error=errors.ModelFileError),
    Bad("checkpoint", "three betas for Adam", "ck_betas: the checkpoint's state cannot be put back (ValueError: "
        "param_groups[0].betas is [0.9, 0.99, 0.5], not 2 finite numbers)",
        call=lambda d: _fuzz_resume(d, "ck_betas"), error=errors.ModelFileError),
    Bad("checkpoint", "early stopping's best loss as text", "ck_best: the checkpoint's state cannot be put back "
        "(ValueError: stopper.best is 'low', not a number)",
        call=lambda d: _fuzz_resume(d, "ck_best"), error=errors.ModelFileError),
    Bad("data", ".npz of a zip version Python cannot read", "zipversion.npz: cannot read as a NumPy .npz file (zip "
        "file version 13.3)", ("train", "zipversion.npz", "--quiet", "--epochs", "1", "--out", "newrun")),
    Bad("data", "Parquet text that is not UTF-8", "latin.parquet: column 't' holds text that is not UTF-8; save the "
        "file as UTF-8", train_new("latin.parquet", *OK)),
    Bad("spec", "a field named with a newline holding NaN", "nanfield.json: field note.'a\\nb' holds NaN, which is "
        "not a finite number", ("summary", "nanfield.json")),
]


@contextlib.contextmanager
def _fail_mkdir(code: int):
    real = Path.mkdir

    def failing(self, *a, **kw):
        raise OSError(code, os.strerror(code))

    Path.mkdir = failing
    try:
        yield
    finally:
        Path.mkdir = real


@contextlib.contextmanager
def _fail_safetensors(code: int):
    real = checkpoint.save_file

    def failing(*a, **kw):
        raise OSError(code, os.strerror(code))

    checkpoint.save_file = failing
    try:
        yield
    finally:
        checkpoint.save_file = real




def _write_inputs(d: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq
    from safetensors.torch import save as st_save

    from torchann.model import directory as modeldir

    (d / "newline.csv").write_text('"a\nb",c\n')
    (d / "ok.csv").write_text("a,b,y\n" + "".join(f"{i},{i % 3},{2 * i}\n" for i in range(20)))
    (d / "empty.csv").write_text("")
    (d / "header.csv").write_text("a,b,y\n")
    (d / "ragged.csv").write_text("a,b,y\n1,2,3\n4,5\n6,7,8\n")
    (d / "missing.csv").write_text("a,b,y\n1,2,3\n4,,5\n6,7,8\n")
    (d / "nan.csv").write_text("a,b,y\n1,2,3\nnan,5,6\n6,7,8\n")
    (d / "inf.csv").write_text("a,b,y\n1,2,3\ninf,5,6\n6,7,8\n")
    (d / "textnum.csv").write_text("a,b,y\n1,2,3\n4,x,5\n" + "".join(f"{i},{i},{i}\n" for i in range(10)))
    (d / "latin1.csv").write_bytes("a,b,y\n1,caf\xe9,3\n".encode("latin-1"))
    (d / "dup.csv").write_text("a,a,y\n1,2,3\n4,5,6\n")
    (d / "oneclass.csv").write_text("a,b,y\n1,2,cat\n3,4,cat\n")
    (d / "data.xlsx").write_text("x")
    (d / "adir").mkdir()
    (d / "bad.parquet").write_text("not parquet")
    pq.write_table(pa.table({"a": [1.0, None, 3.0], "b": [1.0, 2.0, 3.0], "y": [1.0, 2.0, 3.0]}), d / "null.parquet")
    np.save(d / "cube.npy", np.zeros((2, 2, 2)))
    np.save(d / "evil.npy", np.array([FileCreator(), None], dtype=object), allow_pickle=True)
    np.savez(d / "none.npz")
    (d / "spec_ok.json").write_text(json.dumps({"in_features": 2, "hidden": [8], "out_features": 1}))
    (d / "spec_broken.json").write_text('{"in_features": 2,')
    (d / "spec_neg.json").write_text(json.dumps({"in_features": 2, "hidden": [-1], "out_features": 1}))
    (d / "spec_layer.json").write_text(json.dumps({"in_features": 2, "hidden": [8], "out_features": 1,
                                                   "layers": ["conv"]}))
    (d / "spec_huge.json").write_text(json.dumps({"in_features": 10**9, "hidden": [10**9], "out_features": 1}))
    (d / "spec_list.json").write_text("[2, 8, 1]")
    model = torchann.mlp(2, [8], 1)
    tutorial = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    torch.save(tutorial.state_dict(), d / "w.pth")  # the tutorial's section 2.5 files
    torch.save(tutorial, d / "whole.pth")
    torch.save({"x": FileCreator()}, d / "evil.pth")
    data = (d / "w.pth").read_bytes()
    (d / "trunc.pth").write_bytes(data[: len(data) // 2])
    for name in ("m2", "m_neg", "m_trunc", "m_f64", "m_noweights"):
        modeldir.save(model, d / name)
    doc = json.loads((d / "m_neg" / "spec.json").read_text())
    doc["model"]["hidden"] = [-3]
    (d / "m_neg" / "spec.json").write_text(json.dumps(doc))
    weights = (d / "m_trunc" / "weights.safetensors").read_bytes()
    (d / "m_trunc" / "weights.safetensors").write_bytes(weights[:100])
    (d / "m_f64" / "weights.safetensors").write_bytes(st_save({k: v.double() for k, v in model.state_dict().items()}))
    doc = json.loads((d / "m_f64" / "spec.json").read_text())
    doc["weights"].pop("sha256")
    (d / "m_f64" / "spec.json").write_text(json.dumps(doc))
    (d / "m_noweights" / "weights.safetensors").unlink()
    _write_more_inputs(d, model)


def _npy_claiming(shape, data: bytes = b"\0" * 16) -> bytes:
    import io

    f = io.BytesIO()
    np.lib.format.write_array_header_1_0(f, {"descr": "<f8", "fortran_order": False, "shape": shape})
    return f.getvalue() + data


def _edit_spec(folder: Path, edit: Callable[[dict], Any] | None = None, text: Callable[[str], str] | None = None) -> None:
    doc = json.loads((folder / "spec.json").read_text())
    if edit is not None:
        edit(doc)
    raw = json.dumps(doc)
    (folder / "spec.json").write_text(text(raw) if text is not None else raw)


def _write_more_inputs(d: Path, model: Any) -> None:
    import gzip
    import zipfile

    from safetensors.torch import save_file

    from torchann.model import directory as modeldir

    for name in ("fifo.csv", "fifo.npy", "fifo.parquet", "fifo.npz", "fifo.json", "fifo.pth"):
        os.mkfifo(d / name)
    (d / "devnull.csv").symlink_to("/dev/null")
    (d / "loop.csv").symlink_to("loop.csv")
    (d / "huge.npy").write_bytes(_npy_claiming((10**12, 2)))
    np.save(d / "cut.npy", np.ones((10, 3)))
    (d / "cut.npy").write_bytes((d / "cut.npy").read_bytes()[:-8])
    with zipfile.ZipFile(d / "huge.npz", "w") as z:
        z.writestr("x.npy", _npy_claiming((10**6, 10**6)))
    (d / "notzip.npz").write_bytes(b"PK\x03\x04 not a zip")
    (d / "badhead.npy").write_bytes(b"\x93NUMPY\x01\x00\x10\x00{'descr': <f8!!}\n")
    (d / "gz.npy.gz").write_bytes(gzip.compress(b"a,y\n1,2\n"))
    (d / "mixed.csv").write_text("a;b;y\n2.5;1;1\n1,5;2;2\n3.5;3;3\n")
    (d / "escape.csv").write_bytes(b"a\x1b[2J,y\n1,2\n3,4\n")
    (d / "userdir").mkdir()
    (d / "userdir" / "notes.txt").write_text("mine")
    names = ["m_fifospec", "m_fifow", "m_sparse", "m_bigw", "m_nan", "m_inf", "m_1e999", "m_digits", "m_cut",
             "m_latin", "m_deep", "m_shanum", "m_list", "m_cats", "m_stdtext"]
    for name in names:
        modeldir.save(model, d / name)
    (d / "m_fifospec" / "spec.json").unlink()
    os.mkfifo(d / "m_fifospec" / "spec.json")
    (d / "m_fifow" / "weights.safetensors").unlink()
    os.mkfifo(d / "m_fifow" / "weights.safetensors")
    with open(d / "sparse.bin", "wb") as f:
        f.truncate(30 * 2**30)
    (d / "m_sparse" / "weights.safetensors").unlink()
    (d / "m_sparse" / "weights.safetensors").symlink_to(d / "sparse.bin")
    save_file({f"t{i}": torch.zeros(1000, 100) for i in range(3)}, str(d / "m_bigw" / "weights.safetensors"))

    def with_record(**change):
        return lambda doc: doc["extra"].update(preprocessor=_record(**change))

    _edit_spec(d / "m_nan", with_record(), lambda t: t.replace('"mean": 0.0', '"mean": NaN', 1))
    _edit_spec(d / "m_inf", with_record(), lambda t: t.replace('"target_std": [1.0]', '"target_std": [Infinity]'))
    _edit_spec(d / "m_1e999", text=lambda t: re.sub(r'"dropout": [0-9.]+', '"dropout": 1e999', t))
    _edit_spec(d / "m_digits", text=lambda t: re.sub(r'"hidden": \[8\]', '"hidden": [' + "9" * 5000 + "]", t))
    (d / "m_cut" / "spec.json").write_text((d / "m_cut" / "spec.json").read_text()[:50])
    (d / "m_latin" / "spec.json").write_bytes('{"format": "caf\xe9"}'.encode("latin-1"))
    (d / "m_deep" / "spec.json").write_text("[" * 100000 + "]" * 100000)
    _edit_spec(d / "m_shanum", lambda doc: doc["weights"].update(sha256=5))
    (d / "m_list" / "spec.json").write_text("[1, 2]")
    _edit_spec(d / "m_cats", with_record(f0_kind="categorical", f0_categories=list(range(10**5)), f0_label_kind="int"))
    _edit_spec(d / "m_stdtext", with_record(f0_std="a"))
    (d / "big_digits.json").write_text('{"in_features": 2, "hidden": [' + "9" * 5000 + '], "out_features": 1}')
    (d / "spec_nan.json").write_text('{"in_features": 2, "hidden": [NaN], "out_features": 1}')
    run_state = {"epoch": 1, "step": 0, "seed": 0, "batch_size": 2, "rows": 4, "model": {"w": torch.ones(2)},
                 "optimizer": {"lr": 0.1}, "stopper": {"wait": 0}, "history": {"records": []}, "rng": {"s": 1}}
    for name in ("ck_noseed", "ck_negepoch", "ck_textepoch", "ck_nan", "ck_digits", "ck_cut", "ck_fifoptr", "ck_fifot",
                 "ck_ok", "ck_bigseed", "ck_nulptr"):
        checkpoint.save_state(d / name, "epoch-000001-step-000000", run_state)
    state = lambda name: d / name / "epoch-000001-step-000000" / "state.json"  # noqa: E731
    for name, old, new in [("ck_noseed", '"seed": 0, ', ""), ("ck_negepoch", '"epoch": 1', '"epoch": -1'),
                           ("ck_textepoch", '"epoch": 1', '"epoch": "3"'), ("ck_nan", '"seed": 0', '"seed": 0, "best": NaN'),
                           ("ck_digits", '"step": 0', '"step": ' + "7" * 5000),
                           ("ck_bigseed", '"seed": 0', '"seed": ' + str(10 ** 19))]:
        text = state(name).read_text()
        assert old in text, (name, old)
        state(name).write_text(text.replace(old, new))
    state("ck_cut").write_text(state("ck_cut").read_text()[:40])
    (d / "ck_nulptr" / "latest.json").write_text('{"name": "epoch\\u0000"}')
    (d / "ck_fifoptr" / "latest.json").unlink()
    os.mkfifo(d / "ck_fifoptr" / "latest.json")
    (d / "ck_fifot" / "epoch-000001-step-000000" / "tensors.safetensors").unlink()
    os.mkfifo(d / "ck_fifot" / "epoch-000001-step-000000" / "tensors.safetensors")
    (d / "args_cut.json").write_text('{"data": "x.csv", "lr": 0.1')
    (d / "args_list.json").write_text("[1, 2]")
    (d / "args_nan.json").write_text('{"lr": NaN}')
    (d / "args_digits.json").write_text('{"epochs": ' + "1" * 5000 + "}")
    (d / "args_type.json").write_text('{"epochs": "ten"}')
    _write_dask_inputs(d)


def _write_dask_inputs(d: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    torchann.Model(torchann.mlp(2, [4], 1), _pre(d)).save(d / "m_ab")  # features a, b: a table model
    pq.write_table(pa.table({"a": [1.0, 2.0]}), d / "onlya.parquet")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("bad-inputs")
    _write_inputs(d)
    _write_trust_inputs(d)
    _write_fuzz_inputs(d)
    return d


def _listing(d: Path) -> dict[str, int]:
    return {str(p.relative_to(d)): (p.stat().st_size if p.is_file() else -1) for p in sorted(d.rglob("*"))}


def _params():
    for case in CASES:
        marks = [pytest.mark.xfail(reason=KNOWN_GAPS[case.id], strict=True)] if case.id in KNOWN_GAPS else []
        yield pytest.param(case, id=case.id, marks=marks)


@pytest.mark.parametrize("case", list(_params()))
def test_bad_input_gets_one_clear_line_and_leaves_no_file(case: Bad, inputs: Path, monkeypatch, capsys):
    monkeypatch.chdir(inputs)
    before = _listing(inputs)
    fault = case.fault() if case.fault is not None else contextlib.nullcontext()
    if case.call is None:
        from typer.testing import CliRunner

        from torchann.cli import app

        with fault:
            result = CliRunner().invoke(app, list(case.args))
        assert result.exit_code == case.code, (result.output, result.exception)
        assert not result.stdout.strip()  # nothing on stdout: it is for data
        message = " ".join(result.stderr.replace("│", " ").split())  # typer boxes wrap long lines
        assert case.fragment in message, result.stderr
        assert "Traceback" not in result.output
        if result.stderr.startswith("error: "):
            assert result.stderr.count("\n") == 1, result.stderr  # one line
    else:
        with fault, pytest.raises(case.error) as err:
            case.call(inputs)
        assert case.fragment in str(err.value), str(err.value)
        assert "\n" not in str(err.value)
        assert err.value.exit_code == case.code  # what the command line would exit with
        out = capsys.readouterr()
        assert out.out == "" and out.err == ""  # the core prints nothing
    assert {k: v for k, v in _listing(inputs).items() if k not in case.leaves} == before
    assert not (inputs / "pwned").exists()


def test_catalogue_is_large_and_covers_every_area():
    areas = {case.area for case in CASES}
    assert areas == {"data", "cli", "spec", "weights", "api", "terminal", "record", "checkpoint", "args", "run", "disk",
                     "tune", "dask"}
    assert len(CASES) >= 150
    assert len({case.id for case in CASES}) == len(CASES)


def test_debug_shows_the_traceback(inputs):
    proc = subprocess.run([sys.executable, "-m", "torchann", "--debug", "predict", "m_trunc", "--input", "1,2"],
                          cwd=inputs, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "Traceback (most recent call last)" in proc.stderr
    assert "ModelFileError" in proc.stderr and "contents do not match the checksum" in proc.stderr


# -- the table in docs/reliability.md --------------------------------------------------------------


def catalogue_markdown() -> str:
    from torchann.cli._app import printable

    rows = ["| # | area | bad input | message contains | exit code |", "|---|---|---|---|---|"]
    for i, case in enumerate(CASES, start=1):
        if case.call is None:
            command = "`torchann " + " ".join(case.args) + "`"
            code = str(case.code)
        else:
            command = case.what
            code = f"raises `{case.error.__name__}`"
        what = f"{case.what}<br>{printable(command)}" if case.call is None else command
        if case.id in KNOWN_GAPS:
            code += " (open: " + KNOWN_GAPS[case.id] + ")"
        fragment = printable(case.fragment).replace("|", "\\|")
        rows.append(f"| {i} | {case.area} | {what.replace('|', chr(92) + '|')} | `{fragment}` | {code} |")
    return "\n".join(rows)


def test_docs_list_the_catalogue():
    table = catalogue_markdown()
    text = DOC.read_text(encoding="utf-8")
    if os.environ.get("TORCHANN_REGENERATE_DOCS"):
        head, _, rest = text.partition(START)
        _, _, tail = rest.partition(END)
        DOC.write_text(f"{head}{START}\n{table}\n{END}{tail}", encoding="utf-8")
        text = DOC.read_text(encoding="utf-8")
    found = re.search(re.escape(START) + r"\n(.*)\n" + re.escape(END), text, re.S)
    assert found and found.group(1) == table, "docs/reliability.md is stale: rerun with TORCHANN_REGENERATE_DOCS=1"
