"""Generated HTTP bodies for ``torchann serve``, through the server's own parsing and model code
without a socket: ``/invocations`` JSON (dataframe_split, dataframe_records, instances, inputs),
CSV bodies, and the v2 infer body.

The property: each body is answered (the answer encodes to JSON, one prediction per row), or it
is refused with a ``ServerError`` of status 4xx or a torchann error the server maps to a 4xx, in
one line; never another exception (which the server would answer as a 500). The real server's
answers to malformed bodies are checked in tests/test_serve_errors.py.
"""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("orjson")

from fuzz_settings import context, property_test  # noqa: E402


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    return context(tmp_path_factory.mktemp("fuzz_server"))


def _test(name: str):
    return property_test(name, "is_answered_or_refused_with_a_4xx")


test_json_body = _test("json_body")
test_csv_body = _test("csv_body")
test_v2_body = _test("v2_body")
