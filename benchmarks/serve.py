"""Serving speed: torchann serve beside MLflow's server, a plain FastAPI app and in-process predict.

One model trained from a 2,200-row table with six numeric and three text columns (made here,
seeded), then, in one run on this machine (the load generator on the same cores):

* in-process ``Model.predict``: one row (median of timed calls), and 1,000-row calls (rows/s);
* ``mlflow models serve`` of the same model logged with ``torchann.mlflow.save_model``
  (1 uvicorn worker, ``--env-manager local``), when MLflow is installed;
* a plain FastAPI app whose one route calls ``Model.predict`` on the ``dataframe_split`` rows;
* ``torchann serve`` with its defaults.

Each server gets the same three loads: concurrency 1 with 1 row, concurrency 32 with 1 row,
concurrency 1 with 1,000 rows; ``torchann.server.loadgen.run_load`` sends them to 127.0.0.1.

    python benchmarks/serve.py                      # ~2 minutes; writes serve_results.json
    python benchmarks/serve.py --duration 3 --skip mlflow
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

import torchann
from torchann.server.loadgen import LocalServer, invocation_body, run_load, sample_rows
from torchann.bench.timing import cpu_model, time_call

PLAIN_APP = textwrap.dedent('''
    import os
    import numpy as np
    from fastapi import FastAPI, Request
    import torchann

    model = torchann.load(os.environ["BENCH_MODEL"])
    app = FastAPI()

    @app.post("/invocations")
    async def invocations(request: Request):
        split = (await request.json())["dataframe_split"]
        columns = {c: [row[j] for row in split["data"]] for j, c in enumerate(split["columns"])}
        return {"predictions": np.asarray(model.predict(columns)).tolist()}

    @app.get("/ping")
    async def ping():
        return {}
''')


def make_model(folder: Path, networks: int | None = None) -> Path:
    rng = np.random.default_rng(0)
    n = 2200
    cols = {f"x{i}": rng.normal(size=n) for i in range(6)}
    cols["region"] = rng.choice(["north", "south", "east", "west", "centre"], size=n).astype(object)
    cols["kind"] = rng.choice([f"k{i}" for i in range(12)], size=n).astype(object)
    cols["plan"] = rng.choice(["basic", "plus", "pro"], size=n).astype(object)
    cols["y"] = (cols["x0"] * 2 + np.sin(cols["x1"]) + (cols["region"] == "north") * 1.5 + (cols["plan"] == "pro")
                 + rng.normal(scale=0.1, size=n))
    model = torchann.train(cols, target="y", epochs=5, seed=0, networks=networks)  # None: the default
    return model.save(folder / "model")


def in_process(run: Path) -> dict:
    model = torchann.load(run)
    one = {k: [v] for k, v in sample_rows(model, 1)[0].items()}
    many = sample_rows(model, 1000)
    block = {k: [r[k] for r in many] for k in many[0]}
    t1 = time_call(lambda: model.predict(one), repeats=30, warmup=20)
    t1000 = time_call(lambda: model.predict(block), repeats=15, warmup=3)
    return {"one_row_ms": t1.median * 1e3, "one_row_min_ms": t1.min * 1e3, "rows_per_s_1000": 1000 / t1000.median}


def loads(url: str, run: Path, duration: float, warmup: float) -> dict:
    model = torchann.load(run)
    one, thousand = invocation_body(sample_rows(model, 1)), invocation_body(sample_rows(model, 1000))
    out = {}
    for key, body, rows, c in (("c1_row1", one, 1, 1), ("c32_row1", one, 1, 32), ("c1_rows1000", thousand, 1000, 1)):
        result = run_load(url, body, rows=rows, concurrency=c, duration=duration, warmup=warmup)
        print(f"  {result.line()}", flush=True)
        out[key] = result.to_dict()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--skip", default="", help="comma-separated: mlflow, fastapi, torchann")
    parser.add_argument("--out", default="serve_results.json")
    parser.add_argument("--networks", type=int, default=None,
                        help="networks of the served model [default: torchann.train's own, 4 for this table]")
    args = parser.parse_args()
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    folder = Path(tempfile.mkdtemp(prefix="serve_bench_"))
    results: dict = {"cpu": cpu_model(), "cores": os.cpu_count(), "duration_s": args.duration,
                     "date": time.strftime("%Y-%m-%d"), "torchann": torchann.__version__,
                     "load_average_1min": os.getloadavg()[0]}
    try:
        run = make_model(folder, args.networks)
        results["in_process"] = in_process(run)
        print(f"in-process Model.predict: {results['in_process']}", flush=True)
        env = {"BENCH_MODEL": str(run), "MLFLOW_ALLOW_FILE_STORE": "true",  # mlflow runs `uvicorn` from PATH
               "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
        servers = []
        if "mlflow" not in skip and (Path(sys.executable).parent / "mlflow").exists():
            try:
                from torchann import mlflow as torchann_mlflow

                torchann_mlflow.save_model(torchann.load(run), str(folder / "pyfunc"))
                mlflow = str(Path(sys.executable).parent / "mlflow")
                servers.append(("mlflow", [mlflow, "models", "serve", "-m", str(folder / "pyfunc"), "--env-manager",
                                           "local", "--port", "{port}", "--host", "127.0.0.1", "--workers", "1"],
                                "/ping"))
            except Exception as err:  # noqa: BLE001 - reported, the rest still runs
                results["mlflow_error"] = str(err)
        if "fastapi" not in skip:
            (folder / "plain_app.py").write_text(PLAIN_APP)
            servers.append(("fastapi", [sys.executable, "-m", "uvicorn", "--app-dir", str(folder), "plain_app:app",
                                        "--port", "{port}", "--host", "127.0.0.1", "--no-access-log",
                                        "--log-level", "warning"], "/ping"))
        if "torchann" not in skip:
            servers.append(("torchann", [sys.executable, "-m", "torchann", "serve", str(run), "--port", "{port}",
                                         "--quiet"], "/readyz"))
        for name, command, ready in servers:
            print(f"{name}:", flush=True)
            try:
                with LocalServer(command, ready_path=ready, env=env) as server:
                    results[name] = loads(server.url + "/invocations", run, args.duration, args.warmup)
            except Exception as err:  # noqa: BLE001
                results[name] = {"error": str(err)}
                print(f"  failed: {err}", flush=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
