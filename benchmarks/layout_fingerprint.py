"""Same seed, same table -> the same bits: a SHA-256 of each quality table's test predictions.

Run it against two checkouts (PYTHONPATH=<checkout>/src) and compare the lines. Threads are fixed
(threads=1) so that the result cannot depend on how busy the machine is.
"""
import hashlib, json, sys, time
from pathlib import Path
bench = Path(__file__).resolve().parent
sys.path.insert(0, str(bench))
import numpy as np
from quality import split
from quality_tables import TABLES, load
from quality_methods import torchann_fit_predict

def main():
    tables = sys.argv[1].split(",") if len(sys.argv) > 1 else list(TABLES)
    import torchann
    print(json.dumps({"torchann": str(Path(torchann.__file__).parent)}), flush=True)
    for name in tables:
        frame = load(name)
        train, test = split(frame)
        t = time.perf_counter()
        pred, proba, _ = torchann_fit_predict(train, test, frame.target, frame.task, 0, {"threads": 1})
        h = hashlib.sha256(np.ascontiguousarray(pred).tobytes())
        if proba is not None:
            h.update(np.ascontiguousarray(proba, dtype=np.float64).tobytes())
        print(json.dumps({"table": name, "rows": len(test), "sha256": h.hexdigest()[:16],
                          "seconds": round(time.perf_counter() - t, 1)}), flush=True)

if __name__ == "__main__":
    main()
