"""Fuzz every parser of outside input with the test suite's own strategies, many times over.

    python benchmarks/fuzz.py --examples 10000 --parser all
    python benchmarks/fuzz.py --examples 500 --parser npy --parser csv_body

The strategies and checks are those of tests/test_fuzz_*.py (tests/fuzz_strategies.py,
tests/fuzz_targets.py): an input must give a result or one of torchann's own errors in one
line (for the server: a 4xx), never another exception, a hang (60 s per input) or a write
outside its folder. Here a failure is counted and the run goes on (no shrinking); the first
few failing inputs are printed. One JSON line per parser on stdout (and --log), then a
summary; the exit code is 1 if any input failed. Runs are reproducible (--seed).
"""

from __future__ import annotations

import argparse
import collections
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from json_lines import emitter

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("OMP_NUM_THREADS", "1")


def fuzz_one(name: str, examples: int, seed: int, ctx) -> dict:
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as fixed_seed
    from hypothesis import strategies as st

    from fuzz_targets import TARGETS, FuzzFailure

    strategy, check = TARGETS[name]
    outcomes: collections.Counter = collections.Counter()
    failures: list[str] = []

    @fixed_seed(seed)
    @settings(max_examples=examples, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def run(data):
        example = data.draw(strategy(ctx))
        folder = ctx.folder()
        try:
            outcomes[check(example, ctx, folder)] += 1
        except FuzzFailure as err:
            outcomes["FAILURE"] += 1
            if len(failures) < 5:
                failures.append(f"{err} <- {example!r}"[:1500])
        finally:
            ctx.clean(folder)

    start = time.monotonic()
    run()
    seconds = time.monotonic() - start
    total = sum(outcomes.values())
    return {"parser": name, "inputs": total, "failures": outcomes.pop("FAILURE", 0), "wall_s": round(seconds, 1),
            "ms_per_input": round(1000 * seconds / max(total, 1), 2), "outcomes": dict(outcomes.most_common()),
            "first_failures": failures}


def _cpu() -> dict:
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return {}
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    return {"model": fields.get("Model name", "").strip(), "cpus": fields.get("CPU(s)", "").strip(),
            "flags": sorted(f for f in fields.get("Flags", "").split() if f.startswith(("avx", "amx")))}


def main(argv: list[str] | None = None) -> int:
    from fuzz_targets import TARGETS, Context

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=10000, help="inputs per parser")
    parser.add_argument("--parser", action="append", choices=[*TARGETS, "all"], help="repeatable; default all")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--log", type=Path, help="also append the JSON lines here")
    args = parser.parse_args(argv)
    names = list(TARGETS) if not args.parser or "all" in args.parser else args.parser

    emit = emitter(args.log)

    emit({"start": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "examples": args.examples,
          "parsers": names, "seed": args.seed, "cpu": _cpu(), "load": [round(v, 1) for v in os.getloadavg()]})
    total_start, failed, inputs = time.monotonic(), 0, 0
    with tempfile.TemporaryDirectory(prefix="torchann-fuzz-") as tmp:
        ctx = Context(Path(tmp)).prepare()
        for name in names:
            result = fuzz_one(name, args.examples, args.seed, ctx)
            failed += result["failures"]
            inputs += result["inputs"]
            emit(result)
    emit({"parsers": len(names), "inputs": inputs, "failures": failed,
          "wall_s": round(time.monotonic() - total_start, 1)})
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
