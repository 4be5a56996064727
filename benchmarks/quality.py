"""Prediction quality of torchann's defaults on real tables, against trees and other MLPs.

For each table (``quality_tables.py``), one fixed split (80% training, 20% test, stratified
for classes); every method trains on the same training rows with its own defaults and
predicts the same test rows (``quality_methods.py``): torchann with nothing but the target,
HistGradientBoosting, LightGBM, scikit-learn's MLP in an imputation + scaling + one-hot
pipeline, and RealMLP-TD from pytabkit. Scores: R² for regression, AUC for two classes,
accuracy for more (log loss beside them); seconds are the CPU seconds of fit + predict (one
thread per method, so a busy shared machine slows the wall clock but hardly the CPU time;
wall seconds are kept in the JSON), on this machine, in this run. Random methods run with several seeds; the table shows means.

Usage::

    python benchmarks/quality.py                  # every table, 3 seeds, every method
    python benchmarks/quality.py --quick          # 1 seed, tables cut to 5,000 rows, no RealMLP
    python benchmarks/quality.py --variant wide:hidden=512,512 --methods torchann,hgb
    python benchmarks/quality.py --json results.json

``--variant NAME:option=value,...`` adds a torchann run with those options (an ablation); several
may be given. Needs the ``quality`` extra: ``pip install -c constraints.txt -e '.[quality]'``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np

# One thread for every method (set before numpy, torch and the trees load their thread pools):
# on a shared machine, spinning OpenMP and torch pools make timings swing tenfold.
if "--threads" not in sys.argv:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from quality_methods import METHODS, torchann_fit_predict  # noqa: E402
from quality_tables import TABLES, load  # noqa: E402

DETERMINISTIC = {"lightgbm"}  # same result for every seed: run once
ONE_SEED = {"realmlp"}  # too slow on two shared cores for more (see --realmlp-max-rows)


def split(frame, seed: int = 0):
    from sklearn.model_selection import train_test_split

    y = frame.df[frame.target]
    strat = y.astype(str) if frame.task != "regression" else None
    train, test = train_test_split(frame.df, test_size=0.2, random_state=seed, stratify=strat)
    return train.reset_index(drop=True), test.reset_index(drop=True)


def score(task: str, y_true, pred, proba, classes) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, log_loss, r2_score, roc_auc_score

    if task == "regression":
        return {"score": float(r2_score(np.asarray(y_true, float), np.asarray(pred, float)))}
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
    cpu, flags = platform.processor() or platform.machine(), ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                wanted = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "fma")
                flags = " ".join(f for f in line.split(":", 1)[1].split() if f in wanted)
                break
    except OSError:
        pass
    import torch

    return {"cpu": cpu, "flags": flags, "cores": str(os.cpu_count()), "python": platform.python_version(),
            "torch": torch.__version__, "torch_threads": str(torch.get_num_threads())}


def run_one(method: str, fn, frame, train, test, seed: int) -> dict[str, Any]:
    started, cpu = time.perf_counter(), time.process_time()
    try:
        pred, proba, classes = fn(train, test, frame.target, frame.task, seed)
        seconds, wall = time.process_time() - cpu, time.perf_counter() - started
        result = score(frame.task, test[frame.target].to_numpy(), pred, proba, classes)
    except Exception as err:  # a method that cannot train on the table is a result too
        return {"method": method, "seed": seed, "error": f"{type(err).__name__}: {err}".splitlines()[0][:300],
                "trace": traceback.format_exc(limit=3)}
    return {"method": method, "seed": seed, "seconds": seconds, "wall": wall, **result}


def _warm_up(runners: dict[str, Any], table: str) -> None:
    """Fit each method once on a few rows, untimed: imports and first-call set-up are not what
    the table's seconds should measure (every method pays them once per process)."""
    frame = load(table, max_rows=300)
    train, test = split(frame)
    for method, fn in runners.items():
        if method != "realmlp":
            run_one(method, fn, frame, train, test, 0)


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean (and spread over seeds) of every metric, per table and method."""
    out: dict[str, Any] = {}
    for r in rows:
        out.setdefault(r["table"], {}).setdefault(r["method"], []).append(r)
    summary: dict[str, Any] = {}
    for table, methods in out.items():
        summary[table] = {}
        for method, runs in methods.items():
            ok = [r for r in runs if "error" not in r]
            if not ok:
                summary[table][method] = {"error": runs[0]["error"]}
                continue
            keys = [k for k in ok[0] if isinstance(ok[0][k], float)]
            entry = {k: float(np.mean([r[k] for r in ok])) for k in keys}
            entry["score_sd"] = float(np.std([r["score"] for r in ok]))
            entry["runs"] = len(ok)
            summary[table][method] = entry
    return summary


def report(summary: dict[str, Any], tasks: dict[str, str], methods: list[str]) -> str:
    lines = ["| table | task | " + " | ".join(methods) + " |", "|---|---|" + "---|" * len(methods)]
    for table, entries in summary.items():
        cells = []
        for m in methods:
            e = entries.get(m)
            if e is None:
                cells.append("–")
            elif "error" in e:
                cells.append("fails")
            else:
                cells.append(f"{e['score']:.3f} ({e['seconds']:.1f}s)")
        lines.append(f"| {table} | {tasks[table]} | " + " | ".join(cells) + " |")
    # the goals, for every torchann run against the baselines
    for m in [m for m in methods if m.startswith("torchann")]:
        diffs_hgb, diffs_mlp, t_m, t_hgb = [], [], 0.0, 0.0
        for table, entries in summary.items():
            mine = entries.get(m, {})
            if "score" not in mine:
                continue
            if "score" in entries.get("hgb", {}):
                diffs_hgb.append(mine["score"] - entries["hgb"]["score"])
                t_m += mine["seconds"]
                t_hgb += entries["hgb"]["seconds"]
            if "score" in entries.get("mlp", {}):
                diffs_mlp.append(mine["score"] - entries["mlp"]["score"])
        if diffs_hgb:
            lines.append(
                f"\n{m}: >= hgb on {sum(d >= 0 for d in diffs_hgb)}/{len(diffs_hgb)} tables, mean score - hgb "
                f"{np.mean(diffs_hgb):+.4f}; worst vs mlp {min(diffs_mlp, default=float('nan')):+.4f}; "
                f"seconds {t_m:.1f} vs hgb {t_hgb:.1f} ({t_m / max(t_hgb, 1e-9):.1f}x)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="1 seed, tables cut to 5,000 rows, no RealMLP")
    ap.add_argument("--tables", default=",".join(TABLES), help="comma-separated: " + ",".join(TABLES))
    ap.add_argument("--methods", default=None, help="comma-separated: " + ",".join(METHODS))
    ap.add_argument("--seeds", type=int, default=None, help="seeds per random method [3; 1 with --quick]")
    ap.add_argument("--max-rows", type=int, default=None, help="cut each table to this many rows (fixed sample)")
    ap.add_argument("--realmlp-max-rows", type=int, default=2000,
                    help="run RealMLP only on tables with at most this many training rows (CPU time)")
    ap.add_argument("--variant", action="append", default=[], help="NAME:option=value;... an extra torchann run")
    ap.add_argument("--json", default=None, help="write every run and the summary here")
    ap.add_argument("--threads", type=int, default=None, help="threads per method [1]; leave unset on a quiet machine")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads or 1)

    seeds = args.seeds or (1 if args.quick else 3)
    max_rows = args.max_rows or (5000 if args.quick else None)
    default_methods = "torchann,hgb,lightgbm,mlp" + ("" if args.quick else ",realmlp")
    methods = (args.methods or default_methods).split(",")
    runners = {m: METHODS[m] for m in methods}
    for text in args.variant:
        name, options = parse_variant(text)
        runners[f"torchann[{name}]"] = (lambda o: lambda *a: torchann_fit_predict(*a, options=o))(options)
    rows, tasks = [], {}
    _warm_up(runners, args.tables.split(",")[0])
    for table in args.tables.split(","):
        frame = load(table, max_rows=max_rows)
        tasks[table] = frame.task
        train, test = split(frame)
        for method, fn in runners.items():
            if method == "realmlp" and len(train) > args.realmlp_max_rows:
                continue
            for seed in range(1 if method in DETERMINISTIC | ONE_SEED else seeds):
                r = run_one(method, fn, frame, train, test, seed)
                r["table"] = table
                rows.append(r)
                shown = f"{r['score']:.4f} {r['seconds']:.1f}s" if "score" in r else r["error"]
                print(f"{table:10s} {method:24s} seed {seed}: {shown}", file=sys.stderr, flush=True)
    summary = summarise(rows)
    text = report(summary, tasks, list(runners))
    print(text)
    if args.json:
        info = {"command": " ".join(["python", "benchmarks/quality.py", *(argv or sys.argv[1:])]),
                "machine": machine(), "seeds": seeds, "max_rows": max_rows, "summary": summary, "runs": rows}
        Path(args.json).write_text(json.dumps(info, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
