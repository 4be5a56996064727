"""torchann's model options against CatBoost's defaults: score and wall time in one run.

Each table of ``quality_tables`` (cut to ``--max-rows``), one fixed 80/20 split, every method
run for ``--seeds`` seeds with the methods interleaved per seed, so that the load of a shared
machine falls on all of them alike. Wall seconds of fit + predict; CatBoost with its defaults
and ``thread_count=2``; torchann with its defaults (threads chosen by torchann) and each
``--variant NAME:option=value;...`` as an ablation.

    python benchmarks/model_ablation.py --seeds 2 --variant ple:ple_bins=16 --json ablation.json

The last lines: per method, the mean score minus CatBoost's, tables at or above CatBoost's,
the worst table against scikit-learn's MLP (with ``--mlp``), and the total wall seconds
against CatBoost's.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))

from quality import machine, parse_variant, score, split  # noqa: E402
from quality_methods import METHODS, _labels, torchann_fit_predict  # noqa: E402
from quality_tables import TABLES, load  # noqa: E402


def catboost_fit_predict(train, test, target, task, seed):
    """CatBoost's defaults (1,000 trees, depth 6), text columns as its categorical features."""
    from catboost import CatBoostClassifier, CatBoostRegressor

    x = train.drop(columns=[target])
    xt = test.drop(columns=[target]) if target in test else test.copy()
    cats = [c for c in x.columns if not np.issubdtype(x[c].dtype, np.number)]
    for c in cats:  # text, yes/no and category columns as strings, missing as its own value
        x[c] = [str(v) for v in x[c].tolist()]
        xt[c] = [str(v) for v in xt[c].tolist()]
    common = {"random_seed": seed, "thread_count": 2, "verbose": False, "allow_writing_files": False}
    if task == "regression":
        model = CatBoostRegressor(**common)
        model.fit(x, train[target].to_numpy(dtype=np.float64), cat_features=cats)
        return model.predict(xt), None, None
    y = np.asarray([str(v) for v in train[target].tolist()], dtype=object)
    model = CatBoostClassifier(**common)
    model.fit(x, y, cat_features=cats)
    classes = [str(c) for c in model.classes_]
    return _labels(model.predict(xt).reshape(-1)), model.predict_proba(xt), classes


def timed(fn, frame, train, test, seed) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        pred, proba, classes = fn(train, test, frame.target, frame.task, seed)
    except Exception as err:  # a method that cannot train on the table is a result too
        return {"seed": seed, "error": f"{type(err).__name__}: {err}".splitlines()[0][:300]}
    wall = time.perf_counter() - started
    return {"seed": seed, "wall": wall, **score(frame.task, test[frame.target].to_numpy(), pred, proba, classes)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tables", default=",".join(TABLES))
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--max-rows", type=int, default=5000)
    ap.add_argument("--variant", action="append", default=[])
    ap.add_argument("--no-default", action="store_true", help="leave out torchann with its defaults")
    ap.add_argument("--mlp", action="store_true", help="also scikit-learn's MLP")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    runners: dict[str, Any] = {"catboost": catboost_fit_predict}
    if not args.no_default:
        runners["torchann"] = torchann_fit_predict
    for text in args.variant:
        name, options = parse_variant(text)
        runners[f"torchann[{name}]"] = (lambda o: lambda *a: torchann_fit_predict(*a, options=o))(options)
    if args.mlp:
        runners["mlp"] = METHODS["mlp"]
    warm = load(args.tables.split(",")[0], max_rows=300)
    for fn in runners.values():  # imports and first-call set-up, untimed
        timed(fn, warm, *split(warm), 0)
    runs: list[dict[str, Any]] = []
    for table in args.tables.split(","):
        frame = load(table, max_rows=args.max_rows)
        train, test = split(frame)
        for seed in range(args.seeds):
            for method, fn in runners.items():
                r = timed(fn, frame, train, test, seed) | {"table": table, "method": method,
                                                          "load": os.getloadavg()[0]}
                runs.append(r)
                shown = f"{r['score']:.4f} {r['wall']:.1f}s" if "score" in r else r["error"]
                print(f"{table:10s} {method:28s} seed {seed}: {shown}  (load {r['load']:.1f})",
                      file=sys.stderr, flush=True)
    table_names = list(dict.fromkeys(r["table"] for r in runs))
    mean: dict[str, dict[str, tuple[float, float]]] = {}
    for m in runners:
        for t in table_names:
            ok = [r for r in runs if r["method"] == m and r["table"] == t and "score" in r]
            if ok:
                mean.setdefault(m, {})[t] = (float(np.mean([r["score"] for r in ok])),
                                             float(np.sum([r["wall"] for r in ok])))
    header = "| table | " + " | ".join(runners) + " |"
    lines = [header, "|" + "---|" * (len(runners) + 1)]
    for t in table_names:
        cells = [f"{mean[m][t][0]:.4f} ({mean[m][t][1]:.1f}s)" if t in mean.get(m, {}) else "error"
                 for m in runners]
        lines.append(f"| {t} | " + " | ".join(cells) + " |")
    cb = mean["catboost"]
    for m in runners:
        if m == "catboost":
            continue
        mine = mean.get(m, {})
        common = [t for t in table_names if t in mine and t in cb]
        diffs = [mine[t][0] - cb[t][0] for t in common]
        wall, cb_wall = sum(mine[t][1] for t in common), sum(cb[t][1] for t in common)
        text = (f"{m}: trains {len(mine)}/{len(table_names)}; >= catboost on {sum(d >= 0 for d in diffs)}/"
                f"{len(diffs)}, mean - catboost {np.mean(diffs):+.4f}; wall {wall:.1f}s vs catboost "
                f"{cb_wall:.1f}s ({wall / cb_wall:.2f}x)")
        if "mlp" in mean and m != "mlp":
            worst = min(mine[t][0] - mean["mlp"][t][0] for t in common if t in mean["mlp"])
            text += f"; worst vs mlp {worst:+.4f}"
        lines.append(text)
    print("\n".join(lines))
    if args.json:
        info = {"command": " ".join(["python", "benchmarks/model_ablation.py", *(argv or sys.argv[1:])]),
                "machine": machine(), "runs": runs}
        Path(args.json).write_text(json.dumps(info, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
