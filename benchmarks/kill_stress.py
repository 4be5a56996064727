"""Random kills and racing processes against model directories: counts, not pass/fail by luck.

The test suite puts a kill or a concurrent save at each exact point of a save or a load
(tests/test_reliability_kill.py, tests/test_reliability_concurrency.py). This script is the
other half of the evidence: it does what users do, at random moments, many times, and counts.

    python benchmarks/kill_stress.py --kills 200 --loads 2000

1. ``kills``: a process saves two models over one directory in turn, forever; it is
   SIGKILLed after a random delay; the directory must then load as one of the two models.
2. ``loads``: one process saves the two models in turn while another loads the directory
   over and over; every load must give one of the two models.

Prints one JSON object with the counts; exit code 1 if any load failed or gave a third answer.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing as mp
import os
import random
import signal
import sys
import tempfile
import time
from pathlib import Path


def _models():
    import torch

    import torchann

    torch.manual_seed(0)
    first = torchann.mlp(2, [64], 1)
    torch.manual_seed(1)
    second = torchann.mlp(2, [64], 1)
    x = torch.randn(3, 2)
    return first, second, x, [first(x).detach(), second(x).detach()]


def _save_forever(target: str) -> None:
    import torch

    from torchann.model import directory as modeldir

    torch.set_num_threads(1)
    first, second, _, _ = _models()
    while True:
        modeldir.save(second, target)
        modeldir.save(first, target)


def _which(model, x, answers) -> int:
    import torch

    out = model(x).detach()
    return next((i for i, a in enumerate(answers) if torch.equal(out, a)), -1)


def random_kills(folder: Path, kills: int, seed: int) -> dict:
    from torchann.model import directory as modeldir
    from torchann.core.errors import ModelFileError

    first, _, x, answers = _models()
    target = folder / "killed"
    modeldir.save(first, target)
    rng = random.Random(seed)
    counts = {"kills": 0, "torn_pairs_recovered": 0, "loaded_first": 0, "loaded_second": 0, "failed": 0}
    for _ in range(kills):
        pid = os.fork()
        if pid == 0:
            try:
                _save_forever(str(target))
            finally:
                os._exit(0)
        time.sleep(rng.uniform(0.001, 0.08))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        counts["kills"] += 1
        vouched = json.loads((target / "spec.json").read_text())["weights"]["sha256"]
        counts["torn_pairs_recovered"] += hashlib.sha256((target / "weights.safetensors").read_bytes()).hexdigest() != vouched
        try:
            which = _which(modeldir.load(target), x, answers)
        except ModelFileError:
            which = -1
        if which < 0:
            counts["failed"] += 1
        else:
            counts["loaded_first" if which == 0 else "loaded_second"] += 1
    return counts


def racing_loads(folder: Path, loads: int) -> dict:
    from torchann.model import directory as modeldir
    from torchann.core.errors import ModelFileError

    first, _, x, answers = _models()
    target = folder / "raced"
    modeldir.save(first, target)
    saver = mp.get_context("fork").Process(target=_save_forever, args=(str(target),), daemon=True)
    saver.start()
    counts = {"loads": 0, "loaded_first": 0, "loaded_second": 0, "failed": 0, "errors": []}
    try:
        for _ in range(loads):
            counts["loads"] += 1
            try:
                which = _which(modeldir.load(target), x, answers)
            except ModelFileError as err:
                which = -1
                if len(counts["errors"]) < 3:
                    counts["errors"].append(str(err))
            if which < 0:
                counts["failed"] += 1
            else:
                counts["loaded_first" if which == 0 else "loaded_second"] += 1
    finally:
        saver.kill()
        saver.join()
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=100)
    parser.add_argument("--loads", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        result = {"random_kills": random_kills(Path(tmp), args.kills, args.seed),
                  "racing_loads": racing_loads(Path(tmp), args.loads)}
        result["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(result, indent=2))
    bad = result["random_kills"]["failed"] + result["racing_loads"]["failed"]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
