"""The quality benchmark's summaries (benchmarks/quality_report.py) on hand-made runs: the means,
which run fills the CPU column, torchann against a peer, the goals, and failures kept apart."""

import sys
from pathlib import Path

import pytest

pytest.importorskip("pandas")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import quality_report as qr  # noqa: E402


def _run(table, method, seed, score, wall, seconds, threads=2):
    return {"table": table, "method": method, "seed": seed, "threads": threads, "score": score, "wall": wall,
            "seconds": seconds}


@pytest.fixture
def rows():
    return [
        # a: torchann 0.80 on 2 threads and 0.90 on 1 (mean 0.85), CatBoost 0.84 on 2 threads twice
        _run("a", "torchann", 0, 0.80, 3.0, 3.5), _run("a", "torchann", 1, 0.90, 9.0, 1.5, threads=1),
        _run("a", "catboost", 0, 0.84, 10.0, 15.0), _run("a", "catboost", 1, 0.84, 12.0, 17.0),
        _run("b", "torchann", 0, 0.70, 1.0, 1.0), _run("b", "catboost", 0, 0.75, 3.0, 4.0),
        _run("b", "mlp", 0, 0.72, 1.0, 1.0),
        {"table": "b", "method": "hgb", "seed": 0, "threads": 2, "error": "ValueError: bad column x"},
    ]


def test_summarise_scores_every_seed_wall_from_two_threads_cpu_from_one(rows):
    s = qr.summarise(rows, threads=2, cpu_threads=1)
    a = s["a"]["torchann"]
    assert a["score"] == pytest.approx(0.85)
    assert a["wall"] == pytest.approx(3.0)  # not the 1-thread run's 9.0
    assert a["cpu"] == pytest.approx(1.5) and a["cpu_threads"] == 1
    assert a["score_sd"] == pytest.approx(0.05) and a["runs"] == 2
    assert s["a"]["catboost"]["wall"] == pytest.approx(11.0)
    assert s["a"]["catboost"]["cpu"] == pytest.approx(16.0) and s["a"]["catboost"]["cpu_threads"] == 2
    assert s["b"]["hgb"] == {"error": "ValueError: bad column x"}


def test_compare_against_a_peer(rows):
    c = qr.compare(qr.summarise(rows), "torchann", "catboost", ["a", "b"])
    assert c["wins"] == 1 and c["tables"] == 2
    assert c["mean_diff"] == pytest.approx(((0.85 - 0.84) + (0.70 - 0.75)) / 2)
    assert c["worst_diff"] == pytest.approx(-0.05) and c["worst_table"] == "b"
    assert c["wall"] == pytest.approx(3.0 + 1.0) and c["peer_wall"] == pytest.approx(11.0 + 3.0)
    assert qr.compare(qr.summarise(rows), "torchann", "hgb", ["a", "b"]) is None  # hgb trained nowhere


def test_goals_say_met_or_not(rows):
    g = qr.goals(qr.summarise(rows), ["torchann", "catboost", "mlp", "hgb"], ["a", "b"])
    assert "mean score >= CatBoost's: NOT met (-0.0200 over 2 tables)" in g
    assert "suite wall time <= CatBoost's: met (4.0s vs 14.0s)" in g
    assert "never below sklearn MLP by > 0.01: NOT met (worst -0.0200, b)" in g
    assert "every table trains: met" in g


def test_report_keeps_held_out_tables_apart_and_lists_failures(rows, monkeypatch):
    monkeypatch.setattr(qr, "HELD_OUT", ("b",))
    text = qr.report(qr.summarise(rows), {"a": "binary", "b": "regression"}, ["torchann", "catboost", "hgb"])
    decision, held = text.split("Held-out tables")
    assert "| a | binary | **0.850 (3.0 / 1.5s)** | 0.840 (11.0 / 16.0s†) | – |" in decision
    assert "| b |" not in decision
    assert "| b | regression | 0.700 (1.0 / 1.0s†) | **0.750 (3.0 / 4.0s†)** | fails |" in held
    assert "- b / hgb: ValueError: bad column x" in held
