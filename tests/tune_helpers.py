"""Small tables and a worker script shared by the tune tests."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
EPOCHS = 8  # every trial: a few epochs on a couple of hundred rows, well under a second


def regression_csv(path: Path, *, rows: int = 200, seed: int = 0) -> Path:
    """y = a smooth function of four numbers plus noise."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 4))
    y = 3 * x[:, 0] - 2 * x[:, 1] ** 2 + np.sin(2 * x[:, 2]) + 0.1 * rng.normal(size=rows)
    return _write(path, x, y)


def classes_csv(path: Path, *, rows: int = 240, seed: int = 0) -> Path:
    """Three classes ('a', 'b', 'c') from four numbers."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 4))
    score = x[:, 0] + 0.5 * x[:, 1] * x[:, 2]
    labels = np.where(score < -0.5, "a", np.where(score < 0.5, "b", "c"))
    return _write(path, x, labels)


def _write(path: Path, x: np.ndarray, y: np.ndarray) -> Path:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([f"x{i}" for i in range(x.shape[1])] + ["y"])
        for row, answer in zip(x, y):
            writer.writerow([*(repr(float(v)) for v in row), answer if isinstance(answer, str) else repr(float(answer))])
    return path


# A worker process: runs `torchann tune` with two test-only hooks put in by monkeypatching, not
# by anything in torchann itself.
#   TUNE_KILL_AT=N:E   SIGKILL this process in trial N after epoch E (mid-trial, mid-study)
#   TUNE_BARRIER=DIR:K in its first trial, wait until K workers have started one (so that every
#                      worker of a shared study runs trials, however the scheduler orders them)
WORKER = r'''
import os, signal, sys, time
from pathlib import Path
from torchann.tuning import objective

kill_at = os.environ.get("TUNE_KILL_AT")
barrier = os.environ.get("TUNE_BARRIER")
original = objective.TrialReporter.on_epoch_end
state = {"waited": False}

def on_epoch_end(self, record):
    if kill_at:
        number, epoch = map(int, kill_at.split(":"))
        if self.trial.number == number and record["epoch"] == epoch:
            os.kill(os.getpid(), signal.SIGKILL)
    if barrier and not state["waited"]:
        folder, count = barrier.rsplit(":", 1)
        Path(folder, str(os.getpid())).touch()
        deadline = time.monotonic() + 120
        while len(os.listdir(folder)) < int(count):
            if time.monotonic() > deadline:
                raise SystemExit("barrier: the other workers never started a trial")
            time.sleep(0.05)
        state["waited"] = True
    original(self, record)

objective.TrialReporter.on_epoch_end = on_epoch_end
from torchann.cli import main
sys.exit(main(sys.argv[1:]))
'''


def worker(args: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.Popen:
    """``torchann tune ARGS`` in a new process, with the hooks above from ``env``."""
    full = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.Popen([sys.executable, "-c", WORKER, "tune", *args], env=full, cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def trials_of(url: str, study: str = "torchann"):
    """The study's trials, read straight from its storage with Optuna."""
    import optuna

    if url.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend

        storage = optuna.storages.JournalStorage(JournalFileBackend(url.split(":", 1)[1]))
    else:
        storage = url
    return optuna.load_study(study_name=study, storage=storage).get_trials(deepcopy=False)
