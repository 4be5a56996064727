"""What tuning buys: torchann's defaults, ``torchann.tune`` with a fixed budget, and CatBoost's
defaults on the quality benchmark's tables (``quality_tables.py``), on the same split as
``benchmarks/quality.py`` (80% training, 20% test, stratified for classes).

``tune`` searches on the training rows only (it holds out its own validation rows inside them)
and is scored once on the test rows. Scores: R² for regression, AUC for two classes, accuracy
for more; seconds are wall seconds of fit + predict on this machine, in this run (one thread
per method).

``--pruners`` instead compares Optuna's MedianPruner, HyperbandPruner and no pruning at the same
trial budget: the study's best validation loss, the test score and the wall time of each.

Usage::

    python benchmarks/tune_quality.py --tables diabetes,wage --trials 10
    python benchmarks/tune_quality.py --tables diabetes,digits --trials 12 --pruners
    python benchmarks/tune_quality.py --tables all --trials 10 --time 120 --json docs/tune_suite_results.json

Needs the ``quality`` extra (tables, CatBoost, Optuna): ``pip install -c constraints.txt -e '.[quality]'``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

if "--threads" not in sys.argv:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from quality import _tables, machine, score, split  # noqa: E402
from quality_methods import _labels, _table, catboost_fit_predict, torchann_fit_predict  # noqa: E402
from quality_tables import TABLES, load  # noqa: E402


def tune_fit_predict(train, test, target, task, seed, *, trials: int, time_s: float | None, pruner: str = "median",
                     ensemble: bool = True, facts: dict[str, Any] | None = None):
    import torchann

    model = torchann.tune(_table(train, target), target=target, trials=trials, time=time_s, seed=seed,
                          pruner=pruner, ensemble=ensemble)
    info = model.history.info["tune"]
    if facts is not None:
        facts.update(best_value=info["best_value"], ensemble_value=(info["ensemble"] or {}).get("value"),
                     chosen=info["chosen"], members=len(info["members"]),
                     trials_run=len(info["trials"]),
                     pruned=sum(t["state"] == "pruned" for t in info["trials"]))
    test_table = _table(test.drop(columns=[target]), None)
    if task == "regression":
        return np.asarray(model.predict(test_table), dtype=np.float64).reshape(-1), None, None
    return _labels(model.predict(test_table)), model.predict_proba(test_table), [str(c) for c in model.classes]


def run(name: str, fn, frame, train, test, seed: int) -> dict[str, Any]:
    started = time.perf_counter()
    facts: dict[str, Any] = {}
    pred, proba, classes = fn(train, test, frame.target, frame.task, seed, facts) if "facts" in fn.__code__.co_varnames \
        else fn(train, test, frame.target, frame.task, seed)
    wall = time.perf_counter() - started
    return {"method": name, "seed": seed, "wall": wall, **score(frame.task, test[frame.target].to_numpy(), pred,
                                                                 proba, classes), **facts}


def summary(rows: list[dict[str, Any]], tables: list[str], method: str, against: list[str]) -> list[str]:
    """One line per peer: on how many tables ``method`` scored at least as well, the mean and
    the worst difference, and the wall time of each (the same runs as the table above)."""
    score_of = {(r["table"], r["method"]): r for r in rows if r["score"] is not None}
    lines = []
    for peer in against:
        both = [t for t in tables if (t, method) in score_of and (t, peer) in score_of]
        if not both:
            continue
        diff = {t: score_of[t, method]["score"] - score_of[t, peer]["score"] for t in both}
        worst = min(both, key=diff.get)
        wall = sum(score_of[t, method]["wall"] for t in both), sum(score_of[t, peer]["wall"] for t in both)
        lines.append(f"- {method} vs {peer}: >= on {sum(d >= 0 for d in diff.values())}/{len(both)} tables, mean "
                     f"score diff {sum(diff.values()) / len(both):+.4f}, worst {diff[worst]:+.4f} ({worst}); wall "
                     f"{wall[0]:.0f}s vs {wall[1]:.0f}s")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tables", default="diabetes,wage",
                    help="comma-separated, or decision, held-out or all: " + ",".join(TABLES))
    ap.add_argument("--trials", type=int, default=20, help="trials per tune run [20]")
    ap.add_argument("--time", type=float, default=None, help="seconds per tune run (with or instead of --trials)")
    ap.add_argument("--max-rows", type=int, default=None, help="cut each table to this many rows (fixed sample)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--pruners", action="store_true", help="compare median, hyperband and no pruning instead")
    ap.add_argument("--json", default=None, help="write the runs here")
    ap.add_argument("--threads", type=int, default=None, help="threads per method [1]")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads or 1)
    if args.pruners:
        methods = {f"tune[{p}]": (lambda p: lambda tr, te, t, k, s, facts: tune_fit_predict(
            tr, te, t, k, s, trials=args.trials, time_s=args.time, pruner=p, facts=facts))(p)
            for p in ("median", "hyperband", "none")}
    else:
        methods = {
            "torchann defaults": torchann_fit_predict,
            f"tune ({args.trials} trials)": lambda tr, te, t, k, s, facts: tune_fit_predict(
                tr, te, t, k, s, trials=args.trials, time_s=args.time, facts=facts),
            "catboost defaults": catboost_fit_predict,
        }
    tables = list(TABLES) if args.tables == "all" else _tables(args.tables)
    rows = []
    for table in tables:
        frame = load(table, max_rows=args.max_rows)
        train, test = split(frame)
        for name, fn in methods.items():
            try:
                r = {"table": table, "task": frame.task, "rows": len(frame.df), **run(name, fn, frame, train, test,
                                                                                      args.seed)}
            except Exception as err:  # one method failing on one table is a result; the run goes on
                r = {"table": table, "task": frame.task, "rows": len(frame.df), "method": name, "score": None,
                     "wall": None, "failed": f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"}
                print(f"{table:10s} {name:22s} failed: {r['failed']}", file=sys.stderr, flush=True)
            else:
                extra = {k: r[k] for k in ("best_value", "ensemble_value", "chosen", "members", "pruned") if k in r}
                print(f"{table:10s} {name:22s} {r['score']:.4f} {r['wall']:.1f}s {extra}", file=sys.stderr, flush=True)
            rows.append(r)
            if args.json:  # after every run: a run stopped half way keeps what it measured
                _write(args.json, argv, rows)
    names = list(methods)
    print("| table | task | " + " | ".join(names) + " |")
    print("|---|---|" + "---|" * len(names))
    for table in tables:
        cells = [next(f"{r['score']:.4f} ({r['wall']:.0f} s)" if r["score"] is not None else "failed"
                      for r in rows if r["table"] == table and r["method"] == n) for n in names]
        task = next(r["task"] for r in rows if r["table"] == table)
        print(f"| {table} | {task} | " + " | ".join(cells) + " |")
    if not args.pruners:
        print()
        for line in summary(rows, tables, names[1], [names[0], names[2]]):
            print(line)
    if args.pruners:
        print("\n| table | pruner | best validation loss | test score | pruned trials | wall s |")
        print("|---|---|---:|---:|---:|---:|")
        for r in rows:
            print(f"| {r['table']} | {r['method']} | {r['best_value']:.5f} | {r['score']:.4f} | {r['pruned']} | "
                  f"{r['wall']:.0f} |")
    if args.json:
        _write(args.json, argv, rows)
    return 0


def _write(path: str, argv: list[str] | None, rows: list[dict[str, Any]]) -> None:
    Path(path).write_text(json.dumps({"command": " ".join(["python", "benchmarks/tune_quality.py",
                                                           *(argv or sys.argv[1:])]),
                                      "machine": machine(), "runs": rows}, indent=1))


if __name__ == "__main__":
    raise SystemExit(main())
