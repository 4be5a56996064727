"""Streaming from files under torchrun: every rank trains on its share of each global batch,
and with one lane per rank reads only its own stretch of the file's chunks.

Oracles: a step-by-step construction of the epoch with ``torch.tensor_split`` (lanes cut from
the one-lane order, each global batch drawn from all of them, then split over the ranks); the
one-process stream with the global batch and the same lanes; and, end to end, a 2-process gloo
job (torch's own launcher) against the same training in one process with twice the batch,
weights within 1e-5.
"""

from __future__ import annotations

import runpy
import textwrap

import numpy as np
import pytest
import torch

import torchann
from torchann.training import distributed
from torchann.training.distributed import World
from torchann.core.errors import UsageError
from torchann.batching.stream_files import NpyBatches
from torchann.batching.lanes import Layout, split_sizes


def oracle(rows, g, lanes, world):
    """(epoch positions, [per rank: per step positions]) built with tensor_split, step by step."""
    steps = torch.arange(rows).split(g)
    cuts = [[len(p) for p in torch.tensor_split(b, lanes)] for b in steps]
    lengths = [sum(c[j] for c in cuts) for j in range(lanes)]
    lane_rows = torch.arange(rows).split(lengths)
    used = [0] * lanes
    batches = []
    for c in cuts:
        batches.append(torch.cat([lane_rows[j][used[j] : used[j] + c[j]] for j in range(lanes)]))
        used = [u + n for u, n in zip(used, c)]
    assert used == lengths
    return torch.cat(batches), [[torch.tensor_split(b, world)[r] for b in batches] for r in range(world)]


@pytest.mark.parametrize("total, parts", [(16, 2), (13, 3), (3, 4), (0, 2), (1000, 7)])
def test_split_sizes_are_tensor_split_sizes(total, parts):
    assert split_sizes(total, parts).tolist() == [len(p) for p in torch.tensor_split(torch.arange(total), parts)]


@pytest.mark.parametrize("rows, g, lanes, world", [
    (100, 16, 2, 2), (53, 16, 2, 2), (50, 13, 3, 3), (50, 13, 1, 3), (50, 13, 4, 2), (50, 13, 2, 3),
    (7, 4, 4, 4), (3, 2, 2, 2), (1003, 200, 5, 2), (10, 3, 2, 1),
])
def test_layout_matches_the_step_by_step_oracle(rows, g, lanes, world):
    order, ranks = oracle(rows, g, lanes, world)
    assert Layout(rows, g, lanes).epoch_positions().tolist() == order.tolist()
    for r in range(world):
        layout = Layout(rows, g, lanes, world, r)
        assert layout.steps == len(ranks[r])
        for k, piece in enumerate(ranks[r]):
            assert layout.size[layout.kind(k)] == len(piece)
            assert layout.loss_scale(k) == pytest.approx(len(piece) * world / min(g, rows - k * g))
        for first in (0, 1, layout.steps - 1):
            # the positions the rank takes from each lane, from step `first` on, in the order it uses them
            mine = np.concatenate([layout.wanted(j, 0, rows, first) for j in range(lanes)])
            expected = torch.cat(ranks[r][first:]).numpy()
            assert sorted(mine.tolist()) == sorted(expected.tolist())
            for j in range(lanes):
                lo, hi = int(layout.lane_start[j]), int(layout.lane_start[j] + layout.lane_length[j])
                in_lane = [int(p) for p in expected if lo <= p < hi]
                assert layout.wanted(j, 0, rows, first).tolist() == in_lane
                assert (j in layout.lanes_read()) == any(lo <= int(p) < hi for p in torch.cat(ranks[r]))


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    rng = np.random.default_rng(0)
    a = rng.normal(size=(1003, 5)).astype(np.float32)
    path = tmp_path_factory.mktemp("npy") / "a.npy"
    np.save(path, a)
    return path, a


@pytest.mark.parametrize("g, w, lanes, chunk_rows", [
    (16, 2, None, 100), (13, 3, None, 64), (7, 2, None, 5), (1000, 2, None, 300), (2, 2, None, 3),
    (16, 2, 1, 100), (13, 2, 3, 64), (12, 3, 6, 40), (1000, 2, 4, 1003),
])
@pytest.mark.parametrize("shuffle", [True, False])
def test_the_ranks_batches_make_up_the_one_process_batches(table, g, w, lanes, chunk_rows, shuffle):
    path, a = table
    source = NpyBatches(path, target=-1, chunk_rows=chunk_rows, lanes=lanes)
    one = source.configured(batch_size=g, shuffle=shuffle, seed=3, lanes=lanes or w)
    base = source.configured(batch_size=g, shuffle=shuffle, seed=3, lanes=1).order(1).numpy()
    order = one.order(1).numpy()  # the one-process order with the job's lanes
    expected, _ = oracle(len(a), g, lanes or w, w)
    assert order.tolist() == base[expected.numpy()].tolist()
    assert torch.equal(torch.cat([b.x for b in one.epoch(1)]), torch.from_numpy(a[order, :4]))
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


def chunks_read(source, monkeypatch):
    read = []
    original = source._load
    monkeypatch.setattr(source, "_load", lambda epoch, chunk: read.append(chunk) or original(epoch, chunk))
    list(source.epoch(0))
    return read


def test_with_one_lane_per_rank_each_rank_reads_its_own_stretch(table, monkeypatch):
    path, _ = table
    # global batch 200 over 2 ranks and 2 lanes: full steps take 100 rows of each lane, the last
    # (3 rows) 2 of lane 0 and 1 of lane 1, so lane 0 is rows 0-501 and lane 1 rows 502-1002.
    # Chunks of 50: rank 0 reads chunks 0-10, rank 1 chunks 10-20; only chunk 10 is read twice.
    for r, expected in ((0, list(range(0, 11))), (1, list(range(10, 21)))):
        source = NpyBatches(path, target=-1, chunk_rows=50).configured(batch_size=100, shuffle=False, rank=r,
                                                                        world_size=2)
        assert chunks_read(source, monkeypatch) == expected


@pytest.mark.parametrize("w", [2, 3])
def test_shuffled_ranks_share_out_the_chunks(table, monkeypatch, w):
    path, _ = table
    reads = [chunks_read(NpyBatches(path, target=-1, chunk_rows=40).configured(
        batch_size=10, seed=7, rank=r, world_size=w), monkeypatch) for r in range(w)]
    assert sorted(set().union(*reads)) == list(range(26))  # every chunk is read, by some rank
    assert all(len(read) == len(set(read)) for read in reads)  # and once per rank that needs it
    assert sum(map(len, reads)) <= 26 + 2 * (w - 1)  # only a boundary chunk is read by two ranks
    assert max(map(len, reads)) <= -(-26 // w) + 2


def test_with_one_lane_a_rank_reads_no_chunk_without_its_rows(table, monkeypatch):
    path, _ = table
    # global batch 200, chunks of 50: rank 0 holds rows 0-99 of every 200, rank 1 rows 100-199
    source = NpyBatches(path, target=-1, chunk_rows=50, lanes=1).configured(batch_size=100, shuffle=False, rank=1,
                                                                             world_size=2)
    # rows 1000-1002 are the last global batch: 2 rows for rank 0, 1 (row 1002) for rank 1
    assert chunks_read(source, monkeypatch) == [2, 3, 6, 7, 10, 11, 14, 15, 18, 19, 20]


def test_streaming_errors_under_a_job(table):
    path, _ = table
    source = NpyBatches(path, target=-1)
    model = torchann.mlp(4, [4], 1)
    with pytest.raises(UsageError, match="global batch of 2 rows is smaller than the 3 processes"):
        source.for_fit(model, None, batch_size=1, shuffle=True, seed=0, device=torch.device("cpu"),
                       world=World(0, 3), global_batch_size=2)
    with pytest.raises(UsageError, match="lanes=8 is more than the global batch of 4 rows; use at most 4"):
        NpyBatches(path, target=-1, lanes=8).for_fit(model, None, batch_size=4, shuffle=True, seed=0,
                                                     device=torch.device("cpu"), world=World(0, 1))
    with pytest.raises(UsageError, match="lanes must be a positive integer"):
        NpyBatches(path, target=-1, lanes=0)


WORKER = textwrap.dedent(
    '''
    import os
    import sys

    import numpy as np
    import torch

    import torchann
    from torchann.training import distributed

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
        # regression: the job's default, one lane per process; classes: 3 lanes on 2 processes
        source = torchann.NpyBatches(os.path.join(folder, "x.npy"), os.path.join(folder, "reg.npy"), chunk_rows=50,
                                     lanes=2 if procs == 1 else None)
        h = torchann.fit(model, source, epochs=2, batch_size=batch, lr=1e-2, seed=5, precision="fp32")
        out["regression"] = ({k: v.detach().clone() for k, v in model.state_dict().items()}, h.losses)
        torch.manual_seed(12)
        model = torchann.mlp(6, [8], 3)
        source = torchann.NpyBatches(os.path.join(folder, "x.npy"), os.path.join(folder, "cls.npy"), chunk_rows=64,
                                     lanes=3)
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


def test_a_streamed_run_resumes_only_with_its_lanes(table, tmp_path):
    path, _ = table
    options = dict(epochs=2, batch_size=40, lr=1e-2, seed=5, device="cpu", optimizer="adam", early_stopping=None)
    torch.manual_seed(0)
    full = torchann.mlp(4, [8], 1)
    start = {k: v.clone() for k, v in full.state_dict().items()}
    history = torchann.fit(full, NpyBatches(path, target=-1, chunk_rows=100, lanes=2), **options)
    assert history.info["lanes"] == 2
    ck = torchann.training.Checkpointing(tmp_path / "ck", every=1)
    part = torchann.mlp(4, [8], 1)
    part.load_state_dict(start)
    torchann.fit(part, NpyBatches(path, target=-1, chunk_rows=100, lanes=2), **{**options, "epochs": 1}, checkpoint=ck)
    with pytest.raises(UsageError, match=r"streamed its file in 2 lane\(s\), this run in 1; .* resume with lanes=2"):
        torchann.fit(torchann.mlp(4, [8], 1), NpyBatches(path, target=-1, chunk_rows=100), **options,
                     resume=tmp_path / "ck")
    again = torchann.mlp(4, [8], 1)
    torchann.fit(again, NpyBatches(path, target=-1, chunk_rows=100, lanes=2), **options, resume=tmp_path / "ck")
    for a, b in zip(full.parameters(), again.parameters()):
        assert torch.equal(a, b)
