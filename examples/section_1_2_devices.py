"""Tutorial §1.2: numpy vs torch CPU vs torch GPU on ``(1, 6400) @ (6400, 5000)``.

The tutorial times one call of each with ``time.time()`` and finds the GPU slowest. Here
``torchann.bench.bench_matmul`` runs the tutorial's timing code beside a careful one (same
dtype everywhere, warm-up, device synchronisation, repeats, medians) and explains the gap
from the numbers it measured. The command line does the same: ``torchann bench matmul``.

Run: ``python examples/section_1_2_devices.py [OUT_DIR]`` (or set TORCHANN_TUTORIAL_OUT).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from torchann.bench.matmul import bench_matmul


def out_dir(default: str = "runs/tutorial") -> Path:
    return Path(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("TORCHANN_TUTORIAL_OUT", default))


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1e3:.3g}"


def main(out: str | os.PathLike | None = None, *, shape: str = "1x6400x5000", repeats: int = 10,
         warmup: int = 2) -> dict:
    out = Path(out if out is not None else out_dir())
    out.mkdir(parents=True, exist_ok=True)
    report = bench_matmul(shape, dtype="float32", repeats=repeats, warmup=warmup)

    print("The tutorial's timing (time.time() around one call, no warm-up, no synchronisation):")
    for t in report.naive:
        name = {"numpy": "numpy_test", "cpu": "torch_test_cpu"}.get(t.device, f"torch_test_{t.device}")
        said = f"{t.seconds} 秒" if t.status == "ok" else f"absent ({t.reason})"
        print(f"  {name} ({t.dtype}): {said}")

    m, k, n = report.shape
    print(f"\nCareful timing of ({m}, {k}) @ ({k}, {n}), median of {report.repeats} samples after "
          f"{report.warmup} warm-up calls:")
    print(f"  {'device':<7} {'dtype':<8} {'median ms':>9} {'min-max ms':>13} {'GFLOP/s':>8} {'GB/s':>7}")
    for row in [*report.rows, *report.reference]:
        if row.median_s is None:
            print(f"  {row.device:<7} {row.dtype:<8} {row.status:>9}  {row.reason}")
            continue
        spread = f"{_ms(row.min_s)}-{_ms(row.max_s)}"
        print(f"  {row.device:<7} {row.dtype:<8} {_ms(row.median_s):>9} {spread:>13} {row.gflops:>8.3g} "
              f"{row.gbps:>7.3g}")
    print("\nWhy the tutorial's numbers mislead:")
    for i, sentence in enumerate(report.explanation, 1):
        print(f"{i}. {sentence}")

    path = out / "section_1_2_matmul.json"
    path.write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")
    return {"report": report, "json": path}


if __name__ == "__main__":
    main()
