"""The hypothesis settings of tests/test_fuzz_*.py, and the fixture-free way to run one target.

Few examples, no deadline, derandomized (the same inputs on every run, so CI never flakes),
no example database (nothing written in the repository)."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzz_targets import TARGETS, Context

__all__ = ["SUITE", "context", "check", "property_test"]

SUITE = settings(max_examples=40, deadline=None, derandomize=True, database=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                        HealthCheck.function_scoped_fixture, HealthCheck.filter_too_much])

_CONTEXTS: dict[Path, Context] = {}


def context(root: Path) -> Context:
    if root not in _CONTEXTS:
        _CONTEXTS[root] = Context(root).prepare()
    return _CONTEXTS[root]


def check(name: str, example, ctx: Context) -> str:
    folder = ctx.folder()
    try:
        return TARGETS[name][1](example, ctx, folder)
    finally:
        ctx.clean(folder)


def property_test(name: str, claim: str):
    """The suite's test of one target: ``test_<name>_<claim>``, drawing SUITE's examples of its
    strategy and checking each (the test module gives the ``ctx`` fixture)."""
    @SUITE
    @given(data=st.data())
    def test(ctx, data):
        example = data.draw(TARGETS[name][0](ctx), label=name)
        check(name, example, ctx)
    test.__name__ = f"test_{name}_{claim}"
    return test
