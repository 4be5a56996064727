"""``networks``: several networks trained on the same rows from consecutive seeds, answering as one.

Oracles: the first network is bit for bit the one ``networks=1`` trains with the same seed; the
ensemble's answers are the mean of its members' answers computed here from each member alone,
and its spread their population standard deviation; the members follow the time budget.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import torchann
from torchann.core.errors import UsageError
from torchann.training.arguments import Checkpointing


def _table(n: int = 200) -> dict:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=n), rng.normal(size=n)
    colour = rng.choice(["red", "blue", "green"], size=n).astype(object)
    return {"a": a, "b": b, "colour": colour, "y": 3 * a - b + (colour == "red") + 0.1 * rng.normal(size=n)}


OPTIONS = dict(target="y", epochs=6, hidden=[16], seed=5)


@pytest.fixture(scope="module")
def pair():
    data = _table()
    return data, torchann.train(data, networks=3, **OPTIONS), torchann.train(data, networks=1, **OPTIONS)


def test_the_first_network_is_the_single_run_and_the_answer_is_the_members_mean(pair):
    data, three, one = pair
    assert three.members == 3 and one.members == 1
    first = three.network.members[0].state_dict()
    assert first.keys() == one.network.state_dict().keys()
    assert all(torch.equal(first[k], one.network.state_dict()[k]) for k in first)
    x = torch.as_tensor(three.encode(data))
    with torch.no_grad():
        each = [three.preprocessor.inverse_y(m.eval()(x).numpy()).reshape(-1) for m in three.network.members]
    answers, spread = three.predict(data, return_std=True)
    np.testing.assert_allclose(answers, np.mean(each, axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(spread, np.std(each, axis=0), rtol=1e-4, atol=1e-6)
    assert not np.allclose(each[0], each[1])  # other seeds, other networks
    assert [n["seed"] for n in three.history.info["networks"]] == [5, 6, 7]
    timing = ("seconds", "time_left")
    assert [{k: v for k, v in r.items() if k not in timing} for r in three.history.records] == \
        [{k: v for k, v in r.items() if k not in timing} for r in one.history.records]  # the curves: network 1's


def test_a_classifier_averages_probabilities_and_saves_and_loads(tmp_path):
    data = _table()
    data["y"] = np.where(data["y"] > 0.5, "high", "low").astype(object)
    model = torchann.train(data, networks=2, **OPTIONS)
    x = torch.as_tensor(model.encode(data))
    with torch.no_grad():
        each = [torch.softmax(m.eval()(x), dim=1).numpy() for m in model.network.members]
    np.testing.assert_allclose(model.predict_proba(data), np.mean(each, axis=0), rtol=1e-5, atol=1e-7)
    loaded = torchann.load(model.save(tmp_path / "m"))
    np.testing.assert_array_equal(loaded.predict_proba(data), model.predict_proba(data))
    page = (tmp_path / "m" / "report.html").read_text()
    assert "2 networks answer together, seeds 5-6" in page


def test_no_network_starts_past_the_time_budget_and_bad_counts_are_refused(tmp_path):
    data = _table()
    with pytest.warns(UserWarning, match=r"ran out after 1 of 4 networks"):
        quick = torchann.train(data, networks=4, time_budget=1e-9, **OPTIONS)
    assert quick.members == 1 and quick.history.info["networks_not_trained"] == 3  # the first, and no other
    for bad in (0, -1, 1.5, "two"):
        with pytest.raises(UsageError, match="networks must be a positive integer"):
            torchann.train(data, networks=bad, **OPTIONS)
    with pytest.raises(UsageError, match="pass networks=1"):
        torchann.train(data, networks=2, checkpoint=Checkpointing(tmp_path / "ck", 1), **OPTIONS)


def test_the_default_count_follows_the_training_rows():
    from torchann.core.options import auto_networks

    assert [auto_networks(n) for n in (10, 4096, 4097, 5461, 5462, 8192, 8193, 16384, 10**6)] == \
        [4, 4, 3, 3, 2, 2, 1, 1, 1]
    model = torchann.train(_table(), target="y", epochs=2, hidden=[8], seed=0)  # 160 training rows
    assert model.members == 4 and [n["seed"] for n in model.history.info["networks"]] == [0, 1, 2, 3]
