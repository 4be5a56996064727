"""Small inline SVG charts for the run report: lines over epochs, histograms, scatter plots.

Each function returns an ``<svg>`` string with a ``viewBox`` (it scales to the page's width),
no external reference and no script; ``report_html.py`` adds the few lines of JavaScript that
show values on hover and toggle series. Numbers are placed with plain linear (or log10)
scales; tick values are "nice" (1, 2, 5 times a power of ten).
"""

from __future__ import annotations

import math
from html import escape
from typing import Sequence

__all__ = ["line_chart", "histogram", "scatter", "nice_ticks", "COLOURS"]

W, H = 420, 250  # the viewBox; the page scales it
LEFT, RIGHT, TOP, BOTTOM = 64, 12, 22, 38
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """About ``count`` round values covering ``[lo, hi]``."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return []
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / max(count, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    ticks, v = [], first
    while v <= hi + step * 1e-9:
        ticks.append(0.0 if abs(v) < step * 1e-9 else v)
        v += step
    return ticks


def _fmt(v: float) -> str:
    return f"{v:.4g}"


class _Scale:
    def __init__(self, lo: float, hi: float, a: float, b: float, log: bool = False) -> None:
        self.log = log
        f = math.log10 if log else float
        self.lo, self.hi = f(lo), f(hi)
        if self.hi <= self.lo:
            pad = abs(self.lo) * 0.05 or 1.0
            self.lo, self.hi = self.lo - pad, self.hi + pad
        self.a, self.b = a, b

    def __call__(self, v: float) -> float:
        v = math.log10(v) if self.log else v
        return self.a + (v - self.lo) / (self.hi - self.lo) * (self.b - self.a)


def _axes(xs: _Scale, ys: _Scale, xticks: Sequence[float], yticks: Sequence[float], xlabel: str,
          ylabel: str) -> list[str]:
    parts = [f'<rect x="{LEFT}" y="{TOP}" width="{W - LEFT - RIGHT}" height="{H - TOP - BOTTOM}" class="frame"/>']
    for t in yticks:
        y = ys(t)
        parts.append(f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
                     f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{_fmt(t)}</text>')
    for t in xticks:
        x = xs(t)
        parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{H - BOTTOM}" class="grid"/>'
                     f'<text x="{x:.1f}" y="{H - BOTTOM + 15}" text-anchor="middle">{_fmt(t)}</text>')
    parts.append(f'<text x="{(LEFT + W - RIGHT) / 2}" y="{H - 6}" text-anchor="middle">{escape(xlabel)}</text>')
    parts.append(f'<text transform="translate(12 {(TOP + H - BOTTOM) / 2}) rotate(-90)" '
                 f'text-anchor="middle">{escape(ylabel)}</text>')
    return parts


def _log_ticks(lo: float, hi: float) -> list[float]:
    a, b = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    step = max(1, (b - a) // 6)
    return [10.0**e for e in range(a, b + 1, step) if lo <= 10.0**e <= hi] or [lo, hi]


def _path(points: list[tuple[float, float] | None]) -> str:
    d, pen = [], False
    for p in points:
        if p is None:
            pen = False
            continue
        d.append(f"{'L' if pen else 'M'}{p[0]:.1f},{p[1]:.1f}")
        pen = True
    return "".join(d)


def line_chart(epochs: Sequence[float], series: dict[str, Sequence[float | None]], *, ylabel: str,
               marks: Sequence[tuple[float, str]] = (), log: bool = False, xlabel: str = "epoch") -> str:
    """Series over epochs, each a ``<path class="series" data-series=NAME>``; ``marks`` are
    vertical lines (best epoch, early stop) labelled with their text. With ``log`` the y axis
    is log10 (non-positive values are left out)."""
    values = [v for s in series.values() for v in s if v is not None and (v > 0 or not log)]
    if not epochs or not values:
        return '<svg viewBox="0 0 420 40" class="chart"><text x="10" y="30">no values recorded</text></svg>'
    lo, hi = min(values), max(values)
    if not log:
        pad = (hi - lo) * 0.05 or abs(hi) * 0.05 or 1.0
        lo, hi = (0.0 if lo >= 0 and lo - pad < 0 else lo - pad), hi + pad
    x0, x1 = min(epochs), max(epochs)
    xs = _Scale(x0, x1 if x1 > x0 else x0 + 1, LEFT, W - RIGHT)
    ys = _Scale(lo, hi, H - BOTTOM, TOP, log=log)
    yticks = _log_ticks(lo, hi) if log else nice_ticks(lo, hi)
    xticks = [t for t in nice_ticks(x0, x1 if x1 > x0 else x0 + 1, 6) if x0 <= t <= max(x1, x0 + 1)]
    parts = _axes(xs, ys, xticks, [t for t in yticks if (t >= lo and t <= hi)], xlabel, ylabel)
    for k, (epoch, text) in enumerate(marks):
        x = xs(epoch)
        right = x > (LEFT + W - RIGHT) / 2  # label on the side with room
        parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{H - BOTTOM}" class="mark"/>'
                     f'<text x="{x - 4 if right else x + 4:.1f}" y="{TOP - 6 + 16 * k}" class="marktext" '
                     f'text-anchor="{"end" if right else "start"}">{escape(text)}</text>')
    for i, (name, ys_) in enumerate(series.items()):
        points = [None if v is None or (log and v <= 0) else (xs(e), ys(v)) for e, v in zip(epochs, ys_)]
        parts.append(f'<path d="{_path(points)}" class="series" data-series="{escape(name)}" '
                     f'stroke="{COLOURS[i % len(COLOURS)]}"/>')
    parts.append(f'<line class="cursor" x1="0" x2="0" y1="{TOP}" y2="{H - BOTTOM}" visibility="hidden"/>')
    plot = f'data-x0="{xs.a}" data-x1="{xs.b}" data-e0="{x0}" data-e1="{max(x1, x0 + 1)}"'
    return f'<svg viewBox="0 0 {W} {H}" class="chart line" {plot} role="img">{"".join(parts)}</svg>'


def histogram(counts: Sequence[int], edges: Sequence[float], *, xlabel: str) -> str:
    """Bars of ``counts`` between ``edges`` (``len(edges) == len(counts) + 1``)."""
    top = max(counts) if counts else 0
    xs = _Scale(edges[0], edges[-1], LEFT, W - RIGHT)
    ys = _Scale(0, top or 1, H - BOTTOM, TOP)
    parts = _axes(xs, ys, nice_ticks(edges[0], edges[-1], 6)[:8], nice_ticks(0, top or 1, 4), xlabel, "count")
    for c, a, b in zip(counts, edges, edges[1:]):
        if c:
            parts.append(f'<rect x="{xs(a):.1f}" y="{ys(c):.1f}" width="{max(xs(b) - xs(a) - 1, 0.5):.1f}" '
                         f'height="{ys(0) - ys(c):.1f}" class="bar"><title>{_fmt(a)} to {_fmt(b)}: {c}</title></rect>')
    return f'<svg viewBox="0 0 {W} {H}" class="chart hist" role="img">{"".join(parts)}</svg>'


def scatter(x: Sequence[float], y: Sequence[float], *, xlabel: str, ylabel: str, diagonal: bool = False,
            zero_line: bool = False) -> str:
    """Points ``(x, y)``; ``diagonal`` draws y = x, ``zero_line`` draws y = 0."""
    if not x:
        return '<svg viewBox="0 0 420 40" class="chart"><text x="10" y="30">no rows</text></svg>'
    xlo, xhi, ylo, yhi = min(x), max(x), min(y), max(y)
    if diagonal:
        xlo = ylo = min(xlo, ylo)
        xhi = yhi = max(xhi, yhi)
    if zero_line:
        ylo, yhi = min(ylo, 0.0), max(yhi, 0.0)
    xpad, ypad = 0.04 * (xhi - xlo), 0.04 * (yhi - ylo)  # room for the dots at the edges
    xlo, xhi, ylo, yhi = xlo - xpad, xhi + xpad, ylo - ypad, yhi + ypad
    xs = _Scale(xlo, xhi, LEFT, W - RIGHT)
    ys = _Scale(ylo, yhi, H - BOTTOM, TOP)
    xticks = [t for t in nice_ticks(xs.lo, xs.hi, 6) if xs.lo <= t <= xs.hi]
    yticks = [t for t in nice_ticks(ys.lo, ys.hi) if ys.lo <= t <= ys.hi]
    parts = _axes(xs, ys, xticks, yticks, xlabel, ylabel)
    if diagonal:
        parts.append(f'<line x1="{xs(xs.lo):.1f}" y1="{ys(xs.lo):.1f}" x2="{xs(xs.hi):.1f}" y2="{ys(xs.hi):.1f}" '
                     f'class="mark"/>')
    if zero_line:
        parts.append(f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{ys(0):.1f}" y2="{ys(0):.1f}" class="mark"/>')
    parts += [f'<circle cx="{xs(a):.1f}" cy="{ys(b):.1f}" r="2.5" class="dot"/>' for a, b in zip(x, y)]
    return f'<svg viewBox="0 0 {W} {H}" class="chart scatter" role="img">{"".join(parts)}</svg>'
