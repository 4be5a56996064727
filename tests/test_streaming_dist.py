"""Streaming from files under torchrun: every rank trains on its share of each global batch.

Oracles: the one-process stream with the global batch (its own ``order()``), split the way
``torch.tensor_split`` splits; and, end to end, a 2-process gloo job (torch's own launcher)
against the same training in one process with twice the batch, weights within 1e-5.
"""

from __future__ import annotations

import runpy
import textwrap

import numpy as np
import pytest
import torch

import torchann
from torchann import distributed
from torchann.distributed import World
from torchann.errors import UsageError
from torchann.streaming import NpyBatches
from torchann.streaming_shards import piece_sizes, rank_positions


@pytest.mark.parametrize("rows, g, w", [(100, 16, 2), (53, 16, 2), (50, 13, 3), (7, 4, 4), (3, 2, 4)])
def test_piece_sizes_are_tensor_split_sizes(rows, g, w):
    for r in range(w):
        sizes, totals = piece_sizes(rows, g, w, r)
        batches = torch.arange(rows).split(g)
        assert totals.tolist() == [len(b) for b in batches]
        assert sizes.tolist() == [len(torch.tensor_split(b, w)[r]) for b in batches]


@pytest.mark.parametrize("rows, g, w, start, length, first", [
    (100, 16, 2, 0, 100, 0), (53, 16, 2, 30, 23, 0), (50, 13, 3, 10, 27, 2), (3, 2, 4, 0, 3, 0),
])
def test_rank_positions_are_the_ranks_pieces(rows, g, w, start, length, first):
    for r in range(w):
        expected = [int(p) - start for k, b in enumerate(torch.arange(rows).split(g)) if k >= first
                    for p in torch.tensor_split(b, w)[r] if start <= p < start + length]
        got = rank_positions(start, length, rows=rows, global_batch=g, world=w, rank=r, first_step=first)
        assert got.tolist() == expected


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    rng = np.random.default_rng(0)
    a = rng.normal(size=(1003, 5)).astype(np.float32)
    path = tmp_path_factory.mktemp("npy") / "a.npy"
    np.save(path, a)
    return path, a


@pytest.mark.parametrize("g, w, chunk_rows", [(16, 2, 100), (13, 3, 64), (7, 2, 5), (1000, 2, 300), (2, 2, 3)])
@pytest.mark.parametrize("shuffle", [True, False])
def test_the_ranks_batches_make_up_the_one_process_batches(table, g, w, chunk_rows, shuffle):
    path, a = table
    source = NpyBatches(path, target=-1, chunk_rows=chunk_rows)
    one = source.configured(batch_size=g, shuffle=shuffle, seed=3)
    order = one.order(1).numpy()  # the oracle: the one-process order, independent of the job's size
    ranks = [list(source.configured(batch_size=max(1, g // w), shuffle=shuffle, seed=3, rank=r, world_size=w,
                                    global_batch_size=g).epoch(1)) for r in range(w)]
    steps = -(-len(a) // g)
    assert [len(batches) for batches in ranks] == [steps] * w
    for k in range(steps):
        rows = order[k * g : (k + 1) * g]
        pieces = [ranks[r][k] for r in range(w)]
        assert torch.equal(torch.cat([p.x for p in pieces]), torch.from_numpy(a[rows, :4]))
        assert torch.equal(torch.cat([p.y for p in pieces]), torch.from_numpy(a[rows, 4:]))
        for r, p in enumerate(pieces):  # DDP averages: the scales make it the global batch's mean
            assert p.loss_scale == pytest.approx(p.x.shape[0] * w / len(rows))
    # a resumed epoch continues each rank's stream where it stopped
    for r in range(w):
        rest = list(source.configured(batch_size=max(1, g // w), shuffle=shuffle, seed=3, rank=r, world_size=w,
                                      global_batch_size=g).epoch(1, start_step=min(3, steps)))
        assert len(rest) == steps - min(3, steps)
        assert all(torch.equal(p.x, q.x) for p, q in zip(rest, ranks[r][min(3, steps):]))


def test_a_rank_reads_no_chunk_without_its_rows(table, monkeypatch):
    path, _ = table
    # global batch 200, chunks of 50: rank 0 holds rows 0-99 of every 200, rank 1 rows 100-199
    source = NpyBatches(path, target=-1, chunk_rows=50).configured(batch_size=100, shuffle=False, rank=1,
                                                                    world_size=2)
    read = []
    original = source._load
    monkeypatch.setattr(source, "_load", lambda epoch, chunk: read.append(chunk) or original(epoch, chunk))
    list(source.epoch(0))
    # rows 1000-1002 are the last global batch: 2 rows for rank 0, 1 (row 1002) for rank 1
    assert read == [2, 3, 6, 7, 10, 11, 14, 15, 18, 19, 20]


def test_streaming_errors_under_a_job(table):
    path, _ = table
    source = NpyBatches(path, target=-1)
    model = torchann.mlp(4, [4], 1)
    with pytest.raises(UsageError, match="global batch of 2 rows is smaller than the 3 processes"):
        source.for_fit(model, None, batch_size=1, shuffle=True, seed=0, device=torch.device("cpu"),
                       world=World(0, 3), global_batch_size=2)


WORKER = textwrap.dedent(
    '''
    import os
    import sys

    import numpy as np
    import torch

    import torchann
    from torchann import distributed

    GLOBAL_BATCH = 16


    def write(folder):
        rng = np.random.default_rng(1)
        x = rng.normal(size=(403, 6)).astype(np.float32)
        y = x @ np.array([1.0, -2.0, 0.5, 3.0, 0.0, 1.0], dtype=np.float32) + 0.1 * rng.normal(size=403)
        labels = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0.5)
        np.save(os.path.join(folder, "x.npy"), x)
        np.save(os.path.join(folder, "reg.npy"), y.astype(np.float32))
        np.save(os.path.join(folder, "cls.npy"), labels)


    def run(folder, procs):
        batch = GLOBAL_BATCH // procs
        out = {}
        torch.manual_seed(11)
        model = torchann.mlp(6, [16, 8], 1)
        source = torchann.NpyBatches(os.path.join(folder, "x.npy"), os.path.join(folder, "reg.npy"), chunk_rows=50)
        h = torchann.fit(model, source, epochs=2, batch_size=batch, lr=1e-2, seed=5, precision="fp32")
        out["regression"] = ({k: v.detach().clone() for k, v in model.state_dict().items()}, h.losses)
        torch.manual_seed(12)
        model = torchann.mlp(6, [8], 3)
        source = torchann.NpyBatches(os.path.join(folder, "x.npy"), os.path.join(folder, "cls.npy"), chunk_rows=64)
        h = torchann.fit(model, source, epochs=2, batch_size=batch, optimizer="sgd", lr=0.1, momentum=0.9,
                         loss="cross_entropy", seed=6, precision="fp32")
        out["classes"] = ({k: v.detach().clone() for k, v in model.state_dict().items()}, h.losses)
        return out


    def main():
        folder = sys.argv[1]
        with distributed.session(device="cpu") as world:
            results = run(folder, world.size)
        torch.save({k: v[0] for k, v in results.items()} | {"losses": {k: v[1] for k, v in results.items()}},
                   os.path.join(folder, f"rank{world.rank}.pt"))


    if __name__ == "__main__":
        main()
    '''
)


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    folder = tmp_path_factory.mktemp("stream-job")
    worker = folder / "worker.py"
    worker.write_text(WORKER)
    ns = runpy.run_path(str(worker))
    ns["write"](str(folder))
    code = distributed.launch_local(2, [str(worker), str(folder)], module=None, timeout=120)
    assert code == 0, f"the 2-process job exited with {code}"
    ranks = [torch.load(folder / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    return ranks, ns["run"](str(folder), 1)


@pytest.mark.parametrize("name", ["regression", "classes"])
def test_two_streaming_processes_match_one_with_twice_the_batch(job, name):
    (r0, r1), reference = job
    expected, losses = reference[name]
    for key, value in expected.items():
        assert torch.equal(r0[name][key], r1[name][key]), f"{name} {key}: the ranks differ"
        err = float((r0[name][key] - value).abs().max() / value.abs().max().clamp_min(1e-6))
        assert err <= 1e-5, f"{name} {key}: relative difference {err:.1e}"
    assert r0["losses"][name] == pytest.approx(losses, rel=1e-5)
