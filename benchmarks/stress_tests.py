"""Run the process tests N times in a row beside a CPU hog, and count passes and failures.

The distributed tests (two gloo ranks under torch's launcher) and the kill/resume tests
(forked trainers SIGKILLed and resumed, the real `torchann train` interrupted) are the ones
a busy machine can break: a rank that starts late, a signal that lands while the other
process is descheduled. This script runs them again and again on a machine made busier on
purpose, so a flake shows up here and not on CI.

    python benchmarks/stress_tests.py --runs 20
    python benchmarks/stress_tests.py --runs 3 --hog python --hogs 2 tests/test_distributed.py

The hog is `stress-ng --cpu N` when stress-ng is installed (`apt-get install stress-ng`),
otherwise N Python processes spinning. Each run is one `pytest` process over the chosen test
files, with a wall-clock limit (a hang counts as a failure and is killed). One JSON line per
run goes to stdout (and to --log), then a summary line; the exit code is 1 if any run failed.
The pytest output of a failed run is kept in --keep-dir.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from json_lines import emitter

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TESTS = ["tests/test_distributed.py", "tests/test_reliability_kill.py", "tests/test_reliability_cli.py"]


def start_hog(kind: str, count: int) -> list[subprocess.Popen]:
    """Start the CPU hog; return its processes (each the leader of its own process group)."""
    if kind == "auto":
        kind = "stress-ng" if shutil.which("stress-ng") else "python"
    if kind == "stress-ng":
        cmd = [shutil.which("stress-ng") or "stress-ng", "--cpu", str(count), "--cpu-method", "matrixprod",
               "--quiet", "--timeout", "0"]
        return [subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)]
    code = "x = 0\nwhile True:\n    x = (x * 1103515245 + 12345) % 2147483648\n"
    return [subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
            for _ in range(count)]


def stop_hog(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


def run_once(tests: list[str], timeout: float) -> tuple[str, float, str]:
    """One pytest run: ('pass' | 'fail' | 'hang', seconds, output)."""
    start = time.monotonic()
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "--durations=5", *tests]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
        outcome = "pass" if proc.returncode == 0 else "fail"
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        outcome = "hang"
    except BaseException:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    return outcome, time.monotonic() - start, out


def _cpu() -> dict:
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return {"model": platform.processor()}
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    flags = fields.get("Flags", "").split()
    return {"model": fields.get("Model name", "").strip(), "cpus": fields.get("CPU(s)", "").strip(),
            "flags": sorted(f for f in flags if f.startswith(("avx", "amx")))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tests", nargs="*", default=DEFAULT_TESTS, help="test files or node ids")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--hog", choices=["auto", "stress-ng", "python", "none"], default="auto")
    parser.add_argument("--hogs", type=int, default=os.cpu_count() or 2, help="hog workers (default: one a CPU)")
    parser.add_argument("--timeout", type=float, default=1200, help="seconds one pytest run may take")
    parser.add_argument("--log", type=Path, help="also append the JSON lines here")
    parser.add_argument("--keep-dir", type=Path, default=Path("stress-failures"))
    args = parser.parse_args(argv)

    emit = emitter(args.log)

    def stop(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)  # through the finally below: the hog and the run in progress stop too
    signal.signal(signal.SIGTERM, stop)
    hog = [] if args.hog == "none" else start_hog(args.hog, args.hogs)
    emit({"start": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "tests": args.tests, "runs": args.runs,
          "hog": args.hog if args.hog != "auto" else ("stress-ng" if shutil.which("stress-ng") else "python"),
          "hogs": args.hogs, "cpu": _cpu(), "load": os.getloadavg()})
    counts = {"pass": 0, "fail": 0, "hang": 0}
    total = time.monotonic()
    try:
        for run in range(1, args.runs + 1):
            outcome, seconds, out = run_once(args.tests, args.timeout)
            counts[outcome] += 1
            lines = out.strip().splitlines()
            summary = lines[-1] if lines else ""
            slowest = [line.split()[0] + " " + line.split()[-1].split("::")[-1] for line in lines
                       if line.split()[:1] and line.split()[0].endswith("s") and " call " in line][:3]
            emit({"run": run, "outcome": outcome, "seconds": round(seconds, 1), "pytest": summary, "slowest": slowest,
                  "load": [round(v, 1) for v in os.getloadavg()]})
            if outcome != "pass":
                args.keep_dir.mkdir(parents=True, exist_ok=True)
                (args.keep_dir / f"run-{run:03d}.log").write_text(out)
    finally:
        stop_hog(hog)
    emit({"runs": args.runs, **counts, "wall_s": round(time.monotonic() - total, 1)})
    return 0 if counts["pass"] == args.runs else 1


if __name__ == "__main__":
    sys.exit(main())
