"""One row through ``Model.predict``: where the time goes, and the value-by-value encoder's gain.

The model is ``benchmarks/serve.py``'s (2,200 rows, six numbers and three text columns, a
26-256-256-1 network). Each figure is the median of ``--repeats`` timings of ``--calls`` calls;
"column-wise" turns the few-rows encoder off (``FEW_ROWS = 0``) in the same process, so the
ratio compares like with like on the same machine and load. With members (``train``'s several
networks), the last table compares the stacked members pass (``network/stacked.py``) with the
members run one by one (``STACK = False``), in the same way.

    python benchmarks/predict_one_row.py [--calls 2000] [--repeats 7]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torchann  # noqa: E402
from torchann.network.predict import padded_pass  # noqa: E402
from torchann.network import stacked  # noqa: E402
from torchann.preprocess import few_rows  # noqa: E402
from torchann.server.loadgen import sample_rows  # noqa: E402

import serve as serve_bench  # noqa: E402


def per_call_us(fn, calls: int, repeats: int) -> float:
    for _ in range(calls // 10):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        times.append((time.perf_counter() - start) / calls * 1e6)
    return statistics.median(times)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--networks", type=int, default=None, help="networks of the model [default: train's own]")
    args = ap.parse_args()
    model = torchann.load(serve_bench.make_model(Path(tempfile.mkdtemp()), args.networks))
    one = {k: [v] for k, v in sample_rows(model, 1)[0].items()}
    table = model.table(one)
    x, _ = model.preprocessor.transform_x_facts(table)
    out = padded_pass(model.network, x, multiple=8)
    rows = {}
    for name, fn in [("Model.predict, 1 row", lambda: model.predict(one)),
                     ("  the table (as_table)", lambda: model.table(one)),
                     ("  encoding (transform_x_facts)", lambda: model.preprocessor.transform_x_facts(table)),
                     ("  the network (padded_pass, 8 rows)", lambda: padded_pass(model.network, x, multiple=8)),
                     ("  back to target units (inverse_y)", lambda: model.preprocessor.inverse_y(out))]:
        few = per_call_us(fn, args.calls, args.repeats)
        saved, few_rows.FEW_ROWS = few_rows.FEW_ROWS, 0
        try:
            column_wise = per_call_us(fn, args.calls, args.repeats)
        finally:
            few_rows.FEW_ROWS = saved
        rows[name] = (few, column_wise)
    load = os.getloadavg()[0]
    print(f"{cpu_name()}, load average {load:.1f}, torch threads "
          f"{__import__('torch').get_num_threads()}")
    print(f"{'':40s} {'value by value':>15s} {'column-wise':>12s} {'ratio':>6s}")
    for name, (few, column_wise) in rows.items():
        print(f"{name:40s} {few:12.1f} µs {column_wise:9.1f} µs {column_wise / few:6.2f}")
    if model.members > 1:
        print(f"\n{model.members} networks {'':27s} {'stacked':>15s} {'one by one':>12s} {'ratio':>6s}")
        for name, fn in [("Model.predict, 1 row", lambda: model.predict(one)),
                         ("  the network (padded_pass, 8 rows)", lambda: padded_pass(model.network, x, multiple=8))]:
            together = per_call_us(fn, args.calls, args.repeats)
            stacked.STACK = False
            try:
                apart = per_call_us(fn, args.calls, args.repeats)
            finally:
                stacked.STACK = True
            print(f"{name:40s} {together:12.1f} µs {apart:9.1f} µs {apart / together:6.2f}")
        taken = [shape for stack in stacked._STACKS.values() for shape, same in stack.checked.items() if same]
        print(f"stacked pass taken for batch shapes {taken or 'none (the kernels summed otherwise)'}")


if __name__ == "__main__":
    main()
