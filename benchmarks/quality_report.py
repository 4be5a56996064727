"""The quality benchmark's summaries: per-table means, the markdown tables, torchann against
each peer, and the goals of docs/quality.md (met or not), decision and held-out tables apart."""

from __future__ import annotations

from typing import Any

import numpy as np

from quality_tables import HELD_OUT

__all__ = ["ONE_SEED", "PEERS", "compare", "goals", "report", "summarise"]

ONE_SEED = {"realmlp", "tabm"}  # too slow on two shared cores for more (see --tabm-max-rows)
PEERS = ("catboost", "hgb", "lightgbm", "mlp", "tabm", "realmlp")
NAMES = {"torchann": "torchann", "hgb": "HGB", "lightgbm": "LightGBM", "catboost": "CatBoost",
         "mlp": "sklearn MLP", "tabm": "TabM-D", "realmlp": "RealMLP-TD"}


def summarise(rows: list[dict[str, Any]], threads: int = 2, cpu_threads: int = 1) -> dict[str, Any]:
    """Per table and method: the mean of every metric over all seeds (and the scores' spread),
    ``wall`` from the runs on ``threads`` threads, ``cpu`` (process CPU seconds) from the runs on
    ``cpu_threads``, or from every run where there is none on that count (``cpu_threads`` says)."""
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
            entry["failed_runs"] = len(runs) - len(ok)
            timed = [r for r in ok if r.get("threads", threads) == threads] or ok
            entry["wall"] = float(np.mean([r["wall"] for r in timed]))
            cpu_runs = [r for r in ok if r.get("threads") == cpu_threads]
            entry["cpu"] = float(np.mean([r["seconds"] for r in cpu_runs or ok]))
            entry["cpu_threads"] = cpu_threads if cpu_runs else ok[0].get("threads", threads)
            summary[table][method] = entry
    return summary


def _cell(e: dict[str, Any] | None, cpu_threads: int) -> str:
    if e is None:
        return "–"
    if "error" in e:
        return "fails" if not e["error"].startswith("skipped") else "–"
    mark = "†" if e.get("cpu_threads", cpu_threads) != cpu_threads else ""  # CPU time of the wall run
    return f"{e['score']:.3f} ({e['wall']:.1f} / {e['cpu']:.1f}s{mark})"


def score_table(summary: dict[str, Any], tasks: dict[str, str], methods: list[str], tables: list[str],
                cpu_threads: int = 1) -> str:
    """Markdown: score (wall seconds on the run's threads / CPU seconds on ``cpu_threads``) per
    table and method; † marks a CPU time taken from the wall-timed run instead."""
    lines = ["| table | task | " + " | ".join(NAMES.get(m, m) for m in methods) + " |",
             "|---|---|" + "---|" * len(methods)]
    for table in tables:
        entries = summary.get(table, {})
        best = max((e["score"] for e in entries.values() if "score" in e), default=None)
        cells = []
        for m in methods:
            text = _cell(entries.get(m), cpu_threads)
            e = entries.get(m) or {}
            cells.append(f"**{text}**" if "score" in e and best is not None and e["score"] >= best - 1e-12
                         else text)
        lines.append(f"| {table} | {tasks.get(table, '?')} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def compare(summary: dict[str, Any], mine: str, peer: str, tables: list[str]) -> dict[str, Any] | None:
    """``mine`` against ``peer`` on the tables where both trained."""
    diffs, wall_m, wall_p, cpu_m, cpu_p, names = [], 0.0, 0.0, 0.0, 0.0, []
    for table in tables:
        a, b = summary.get(table, {}).get(mine, {}), summary.get(table, {}).get(peer, {})
        if "score" in a and "score" in b:
            diffs.append(a["score"] - b["score"])
            wall_m += a["wall"]
            wall_p += b["wall"]
            cpu_m += a["cpu"]
            cpu_p += b["cpu"]
            names.append(table)
    if not diffs:
        return None
    worst = int(np.argmin(diffs))
    return {"tables": len(diffs), "wins": int(sum(d >= 0 for d in diffs)), "mean_diff": float(np.mean(diffs)),
            "worst_diff": float(diffs[worst]), "worst_table": names[worst], "wall": wall_m, "peer_wall": wall_p,
            "cpu": cpu_m, "peer_cpu": cpu_p}


def summary_lines(summary: dict[str, Any], methods: list[str], tables: list[str]) -> list[str]:
    lines = []
    for m in [m for m in methods if m.startswith("torchann")]:
        for peer in [p for p in PEERS if p in methods]:
            c = compare(summary, m, peer, tables)
            if c is None:
                continue
            lines.append(f"{m} vs {NAMES[peer]}: >= on {c['wins']}/{c['tables']} tables, mean score diff "
                         f"{c['mean_diff']:+.4f}, worst {c['worst_diff']:+.4f} ({c['worst_table']}); wall "
                         f"{c['wall']:.1f}s vs {c['peer_wall']:.1f}s ({c['wall'] / max(c['peer_wall'], 1e-9):.2f}x); cpu "
                         f"{c['cpu']:.1f}s vs {c['peer_cpu']:.1f}s ({c['cpu'] / max(c['peer_cpu'], 1e-9):.2f}x)")
    return lines


def goals(summary: dict[str, Any], methods: list[str], tables: list[str], mine: str = "torchann") -> list[str]:
    """The goals of docs/quality.md, each met or not, on ``tables``."""
    out = []
    cat, hgb, mlp = (compare(summary, mine, p, tables) for p in ("catboost", "hgb", "mlp"))
    if cat:
        out.append(f"mean score >= CatBoost's: {'met' if cat['mean_diff'] >= 0 else 'NOT met'} "
                   f"({cat['mean_diff']:+.4f} over {cat['tables']} tables)")
        out.append(f"suite wall time <= CatBoost's: {'met' if cat['wall'] <= cat['peer_wall'] else 'NOT met'} "
                   f"({cat['wall']:.1f}s vs {cat['peer_wall']:.1f}s)")
    if hgb:
        out.append(f">= HGB on >= 75% of tables: {'met' if hgb['wins'] >= 0.75 * hgb['tables'] else 'NOT met'} "
                   f"({hgb['wins']}/{hgb['tables']})")
    if mlp:
        out.append(f"never below sklearn MLP by > 0.01: {'met' if mlp['worst_diff'] >= -0.01 else 'NOT met'} "
                   f"(worst {mlp['worst_diff']:+.4f}, {mlp['worst_table']})")
    failed = [t for t in tables if "error" in summary.get(t, {}).get(mine, {"error": "not run"})]
    out.append(f"every table trains: {'met' if not failed else 'NOT met: ' + ', '.join(failed)}")
    return out


def _section(title: str, summary, tasks, methods, tables, threads: int, cpu_threads: int) -> list[str]:
    head = f"score (wall s on {threads} threads / CPU s on {cpu_threads})"
    return ([f"{title}, {head}:", "", score_table(summary, tasks, methods, tables, cpu_threads), ""]
            + summary_lines(summary, methods, tables) + [""] + ["goals: " + g for g in goals(summary, methods, tables)])


def report(summary: dict[str, Any], tasks: dict[str, str], methods: list[str], threads: int = 2,
           cpu_threads: int = 1) -> str:
    """The whole report: decision tables, held-out tables, all tables, and what failed."""
    decision = [t for t in summary if t not in HELD_OUT]
    held = [t for t in summary if t in HELD_OUT]
    parts = _section("Decision tables", summary, tasks, methods, decision, threads, cpu_threads) if decision else []
    if held:
        parts += [""] + _section("Held-out tables (not for choosing defaults)", summary, tasks, methods, held,
                                 threads, cpu_threads)
    if held and decision:
        parts += ["", "All tables:"] + summary_lines(summary, methods, decision + held)
        parts += ["goals: " + g for g in goals(summary, methods, decision + held)]
    parts += ["", f"† CPU seconds of the {threads}-thread runs (no run of that method on {cpu_threads})."]
    fails = [f"{t} / {m}: {e['error']}" for t, entries in summary.items() for m, e in entries.items() if "error" in e]
    if fails:
        parts += ["", "Not run or failed:"] + ["- " + f for f in fails]
    return "\n".join(parts)
