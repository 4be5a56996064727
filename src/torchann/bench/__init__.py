"""Measurements of the machine: the tutorial's matmul timing done right (``matmul``), the
tutorial's naive timing as written (``naive``), the explanation of the difference
(``explain``) and the careful timer they share (``timing``).
May import: ``core``, ``runtime``.
"""

from .matmul import bench_matmul, peak_gflops

__all__ = ["bench_matmul", "peak_gflops"]
