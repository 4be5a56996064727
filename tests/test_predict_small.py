"""The small-batch pass: a standalone call of a few rows answers within 1e-6 (relative) of the
aligned 1,024-row passes that a large call and ``torchann predict`` use, for every row."""

from __future__ import annotations

import numpy as np

import torchann
from torchann.model.base import PREDICT_SMALL


def _table(n, seed):
    rng = np.random.default_rng(seed)
    cols = {f"x{i}": rng.normal(size=n) for i in range(5)}
    cols["region"] = rng.choice(["north", "south", "east", "west"], size=n).astype(object)
    return cols


def test_one_row_at_a_time_equals_the_aligned_passes():
    cols = _table(600, 0)
    y = cols["x0"] * 2 + np.sin(cols["x1"]) + (cols["region"] == "north")
    reg = torchann.train({**cols, "y": y}, target="y", epochs=3, seed=0, hidden=(64, 64))
    clf = torchann.train({**cols, "c": np.where(y > 0.5, "a", "b").astype(object)}, target="c", epochs=3, seed=0,
                         hidden=(64, 64))
    query = _table(300, 1)
    whole_y = reg.predict(query)  # 300 rows: aligned 1024-row passes
    whole_p = clf.predict_proba(query)
    whole_c = clf.predict(query)
    one = lambda i: {k: v[i:i + 1] for k, v in query.items()}  # noqa: E731
    single_y = np.concatenate([reg.predict(one(i)) for i in range(300)])
    np.testing.assert_allclose(single_y, whole_y, rtol=1e-6, atol=0)
    single_p = np.concatenate([clf.predict_proba(one(i)) for i in range(300)])
    np.testing.assert_allclose(single_p, whole_p, rtol=1e-6, atol=0)
    assert list(np.concatenate([clf.predict(one(i)) for i in range(300)])) == list(whole_c)
    for n in (2, 7, 9, PREDICT_SMALL - 1):  # a few rows, padded to a multiple of 8
        part = {k: v[:n] for k, v in query.items()}
        np.testing.assert_allclose(reg.predict(part), whole_y[:n], rtol=1e-6, atol=0)


def test_pieces_of_a_file_still_take_the_aligned_passes():
    cols = _table(200, 2)
    reg = torchann.train({**cols, "y": cols["x0"]}, target="y", epochs=2, seed=0, hidden=(16,))
    query = _table(10, 3)
    whole = reg.outputs(query, first_row=0)
    for start in range(0, 10, 3):
        part = {k: v[start:start + 3] for k, v in query.items()}
        assert torch_equal(reg.outputs(part, first_row=start), whole[start:start + 3])


def torch_equal(a, b):
    import torch

    return torch.equal(a, b)
