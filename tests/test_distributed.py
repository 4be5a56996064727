"""Data-parallel training under torch's own launcher (torch.distributed.run), CPU and gloo.

The oracle for a 2-process job is the same training in one process with the same seed and
the same global batch: DDP averages the ranks' gradients, and ``loss_scale`` turns that
average into the mean over the global batch, so the two runs differ only by float rounding.
One launch runs every scenario (each launch costs a few seconds of process start-up).
"""

from __future__ import annotations

import json
import runpy
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
import typer
from typer.testing import CliRunner

from torchann.cli.relaunch import relaunch_argv
import torchann
from torchann.training import distributed
from torchann.core.errors import UsageError

# The script every rank runs. It is also imported by the test (runpy) to compute the
# one-process reference with exactly the same code.
WORKER = textwrap.dedent(
    '''
    import json
    import os
    import signal
    import sys

    import torch

    import torchann
    from torchann.training import distributed
    from torchann.core.errors import TrainingError, TrainingInterrupted
    from torchann.training.arguments import Checkpointing, EarlyStopping

    GLOBAL_BATCH = 16


    def data(n, seed):
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(n, 4, generator=g)
        y = x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]]) + 0.1 * torch.randn(n, 1, generator=g)
        return x, y


    def new_model(seed=11):
        torch.manual_seed(seed)
        return torchann.mlp(4, [16, 8], 1)


    def run_scenario(name, procs, shared):
        """Train scenario ``name`` in a job of ``procs`` processes; return (model, history)."""
        world = distributed.current_world()
        batch = GLOBAL_BATCH // procs  # the global batch stays 16 whatever the job size
        model = new_model()
        if name == "even":  # 64 rows: four full global batches, validation, checkpoints
            x, y = data(64, 0)
            history = torchann.fit(
                model, x, y, epochs=12, batch_size=batch, optimizer="sgd", lr=0.01, momentum=0.9, seed=3,
                validation=data(20, 1), metrics="regression",
                checkpoint=Checkpointing(os.path.join(shared, "ckpt-even")), early_stopping=None,
            )
            if world.is_main:
                torchann.save(model, os.path.join(shared, "run"), files={"history.jsonl": history.to_jsonl()})
        elif name == "uneven":  # 53 rows: the last global batch has 5 rows, split 3 + 2
            x, y = data(53, 2)
            history = torchann.fit(model, x, y, epochs=8, batch_size=batch, lr=1e-2, seed=5, metrics="regression",
                                   optimizer="adam", early_stopping=None)
        elif name == "global":  # global batch 13 given outright: 7 + 6 rows in every step
            x, y = data(50, 3)
            history = torchann.fit(model, x, y, epochs=5, batch_size=4, global_batch_size=13, optimizer="sgd",
                                   lr=0.05, seed=6, early_stopping=None)
        elif name == "stop":  # nothing counts as better after epoch 1: stop after epoch 3
            x, y = data(48, 4)
            rule = EarlyStopping(patience=2, min_delta=1e9, restore_best=False)
            history = torchann.fit(model, x, y, epochs=10, batch_size=batch, optimizer="sgd", lr=0.05, seed=7,
                                   validation=data(9, 5), early_stopping=rule)
        elif name == "seedless":  # seed None: rank 0 draws it, every rank uses it
            x, y = data(32, 6)
            history = torchann.fit(model, x, y, epochs=2, batch_size=batch, lr=1e-2, seed=None, optimizer="adam",
                                   early_stopping=None)
        elif name == "resume":  # 3 epochs, then a new fit resumes from the checkpoint to 6
            x, y = data(40, 7)
            options = dict(batch_size=batch, optimizer="sgd", lr=0.01, momentum=0.9, seed=8, early_stopping=None)
            if procs == 1:
                history = torchann.fit(model, x, y, epochs=6, **options)
            else:
                folder = os.path.join(shared, "ckpt-resume")
                torchann.fit(model, x, y, epochs=3, checkpoint=Checkpointing(folder), **options)
                world.barrier()  # rank 0 has written the checkpoint the others read
                model = new_model(seed=99)  # other weights: the checkpoint must replace them
                history = torchann.fit(model, x, y, epochs=6, resume=folder, **options)
        elif name == "signal":  # rank 1 alone gets SIGTERM in epoch 2, step 2: both stop after epoch 2
            x, y = data(48, 10)
            options = dict(batch_size=batch, optimizer="sgd", lr=0.01, seed=10, early_stopping=None)
            if procs == 1:
                history = torchann.fit(model, x, y, epochs=4, **options)
            else:
                folder = os.path.join(shared, "ckpt-signal")
                try:
                    torchann.fit(model, x, y, epochs=4, loss=SignalLoss(world.rank == 1, 5),
                                 checkpoint=Checkpointing(folder, every=100), **options)
                    stopped = None
                except TrainingInterrupted as err:
                    stopped = [err.epoch, err.step, err.signal, err.exit_code, len(err.history)]
                world.barrier()  # rank 0 has written the checkpoint the others read
                model = new_model(seed=99)
                history = torchann.fit(model, x, y, epochs=4, resume=folder, **options)
                history.info["stopped"] = stopped
        elif name == "dataset":  # a Dataset: fit shards it with a DistributedSampler
            x, y = data(30, 9)
            history = torchann.fit(model, torch.utils.data.TensorDataset(x, y), epochs=3, batch_size=batch,
                                   optimizer="sgd", lr=0.05, seed=9, early_stopping=None)
        else:
            raise ValueError(name)
        return model, history


    SCENARIOS = ["even", "uneven", "global", "stop", "seedless", "resume", "dataset", "signal"]


    class SignalLoss(torch.nn.MSELoss):
        """MSE that sends this process SIGTERM at its ``at``-th call, on one rank only."""

        def __init__(self, send, at):
            super().__init__()
            self.send, self.at, self.calls = send, at, 0

        def forward(self, out, y):
            self.calls += 1
            if self.send and self.calls == self.at:
                os.kill(os.getpid(), signal.SIGTERM)
            return super().forward(out, y)


    def main():
        out, mode = sys.argv[1], sys.argv[2]
        shared = os.path.join(out, "shared")
        events = []

        def audit(event, args):  # every file this rank creates, writes, renames or deletes
            if event == "open":
                path, fmode, flags = args
                if isinstance(fmode, str):
                    writes = any(c in fmode for c in "wax+")
                else:
                    writes = isinstance(flags, int) and bool(flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))
                if not writes:
                    return
                paths = [path]
            elif event in ("os.rename", "os.mkdir", "os.remove", "os.rmdir", "shutil.rmtree"):
                paths = args[:2] if event == "os.rename" else args[:1]  # a rename: source and target
            else:
                return
            for path in paths:
                if isinstance(path, (str, bytes, os.PathLike)) and os.fsdecode(path).startswith(shared):
                    events.append(f"{event} {os.fsdecode(path)}")

        sys.addaudithook(audit)
        with distributed.session(device="cpu") as world:
            if mode == "fail":
                if world.rank == 1:
                    raise TrainingError("rank 1 stops on purpose")
                x, y = data(64, 0)
                torchann.fit(new_model(), x, y, epochs=1000, batch_size=8, seed=0)  # waits on rank 1
                return
            results = {"world": [world.rank, world.size, world.local_rank], "runs": {}}
            for name in SCENARIOS:
                model, history = run_scenario(name, world.size, shared)
                results["runs"][name] = {
                    "params": {k: v.detach().clone() for k, v in model.state_dict().items()},
                    "records": json.loads(json.dumps(history.records)),
                    "info": json.loads(json.dumps(history.info)),  # plain types for weights_only
                }
            results["events"] = list(events)
        torch.save(results, os.path.join(out, f"rank{world.rank}.pt"))


    if __name__ == "__main__":
        main()
    '''
)


@pytest.fixture(scope="module")
def worker(tmp_path_factory):
    path = tmp_path_factory.mktemp("worker") / "worker.py"
    path.write_text(WORKER)
    return path


@pytest.fixture(scope="module")
def job(worker, tmp_path_factory):
    """One 2-process job running every scenario; the ranks' results and the output folder."""
    out = tmp_path_factory.mktemp("job")
    code = distributed.launch_local(2, [str(worker), str(out), "train"], module=None, timeout=120)
    assert code == 0, f"the 2-process job exited with {code}"
    ranks = [torch.load(out / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    return ranks, out


@pytest.fixture(scope="module")
def reference(worker, tmp_path_factory):
    """Every scenario trained in this one process, with the global batch of the job."""
    ns = runpy.run_path(str(worker))
    shared = tmp_path_factory.mktemp("reference")
    out = {}
    for name in ns["SCENARIOS"]:
        model, history = ns["run_scenario"](name, 1, str(shared))
        out[name] = {"params": model.state_dict(), "records": history.records, "info": history.info}
    return out


def assert_rel_close(actual: torch.Tensor, expected: torch.Tensor, *, rel: float = 1e-5, what: str = "") -> None:
    scale = expected.abs().max().clamp_min(1e-6)
    err = float((actual - expected).abs().max() / scale)
    assert err <= rel, f"{what}: relative difference {err:.2e} > {rel:.0e}"


# --------------------------------------------------------------------------- a 2-process job


def test_ranks_know_their_place(job):
    (r0, r1), _ = job
    assert r0["world"] == [0, 2, 0] and r1["world"] == [1, 2, 1]


@pytest.mark.parametrize("name", ["even", "uneven", "global", "stop", "seedless", "resume", "dataset", "signal"])
def test_both_ranks_end_with_identical_parameters(job, name):
    (r0, r1), _ = job
    p0, p1 = r0["runs"][name]["params"], r1["runs"][name]["params"]
    assert sorted(p0) == sorted(p1)
    for key in p0:
        assert torch.equal(p0[key], p1[key]), f"{name}: {key} differs between ranks"

    def numbers(rank):  # everything but the wall-clock time of each epoch
        return [{k: v for k, v in rec.items() if k != "seconds"} for rec in rank["runs"][name]["records"]]

    assert numbers(r0) == numbers(r1)  # the ranks report the same all-reduced numbers


@pytest.mark.parametrize("name", ["even", "uneven", "global", "stop", "resume", "signal"])
def test_two_processes_match_one_process_with_the_same_global_batch(job, reference, name):
    (r0, _), _ = job
    ran, ref = r0["runs"][name], reference[name]
    torch.manual_seed(11)  # the worker's new_model(): the weights both runs started from
    untrained = torchann.mlp(4, [16, 8], 1).state_dict()
    for key, expected in ref["params"].items():
        assert_rel_close(ran["params"][key], expected, what=f"{name} {key}")
        assert (expected - untrained[key]).abs().max() > 1e-3, f"{name} {key} did not train"
    assert len(ran["records"]) == len(ref["records"])
    for got, want in zip(ran["records"], ref["records"]):
        for key in ("loss", "val_loss", "mse", "mae", "r2", "val_mse", "val_r2"):
            if key in want:
                assert got[key] == pytest.approx(want[key], rel=1e-5, abs=1e-7), (name, got["epoch"], key)


def test_the_global_batch_and_step_count(job, reference):
    (r0, r1), _ = job
    # 53 rows in global batches of 16: ceil(53 / 16) = 4 steps on both ranks.
    for rank in (r0, r1):
        info = rank["runs"]["uneven"]["info"]
        assert (info["world_size"], info["global_batch_size"], info["steps_per_epoch"]) == (2, 16, 4)
        info = rank["runs"]["global"]["info"]
        assert (info["global_batch_size"], info["steps_per_epoch"]) == (13, 4)  # ceil(50 / 13)
    for rank in (r0, r1):  # 30 rows: 15 per rank, in batches of 8: 2 steps
        assert rank["runs"]["dataset"]["info"]["steps_per_epoch"] == 2
    ref = reference["uneven"]["info"]
    assert (ref["world_size"], ref["global_batch_size"], ref["steps_per_epoch"]) == (1, 16, 4)


def test_early_stopping_is_agreed_by_both_ranks(job, reference):
    (r0, r1), _ = job
    for rank in (r0, r1):
        run = rank["runs"]["stop"]
        assert [r["epoch"] for r in run["records"]] == [1, 2, 3]
        assert run["info"]["stopped_early"] is True
    assert len(reference["stop"]["records"]) == 3


def test_a_signal_on_one_rank_stops_every_rank_after_the_same_epoch(job):
    (r0, r1), _ = job
    # 48 rows in global batches of 16: 3 steps per epoch. Rank 1 alone was signalled in epoch 2;
    # the ranks agree at the epoch's end, so both stop after its last step, checkpoint, and resume.
    for rank in (r0, r1):
        assert rank["runs"]["signal"]["info"]["stopped"] == [2, 3, 15, 143, 2]
        assert [r["epoch"] for r in rank["runs"]["signal"]["records"]] == [1, 2, 3, 4]
        assert rank["runs"]["signal"]["info"]["resumed_from_epoch"] == 2


def test_a_seed_drawn_at_random_is_rank_zeros(job):
    (r0, r1), _ = job
    seed = r0["runs"]["seedless"]["info"]["seed"]
    assert isinstance(seed, int) and seed == r1["runs"]["seedless"]["info"]["seed"]


def test_resume_under_the_launcher_continues_the_run(job):
    (r0, _), _ = job
    run = r0["runs"]["resume"]
    assert run["info"]["resumed_from_epoch"] == 3
    assert [r["epoch"] for r in run["records"]] == [1, 2, 3, 4, 5, 6]


def test_only_rank_zero_writes_files(job):
    (r0, r1), out = job
    assert r1["events"] == []
    written = "\n".join(r0["events"])
    for part in ("ckpt-even", "ckpt-resume", "ckpt-signal", "/run"):
        assert part in written, f"rank 0 wrote nothing under {part}"
    shared = out / "shared"
    assert sorted(p.name for p in shared.iterdir()) == ["ckpt-even", "ckpt-resume", "ckpt-signal", "run"]


def test_the_run_folder_loads_and_predicts(job):
    (r0, _), out = job
    model = torchann.load(out / "shared" / "run").network
    trained = r0["runs"]["even"]["params"]
    for key, value in model.state_dict().items():
        assert torch.equal(value, trained[key])
    x = torch.tensor([[0.5, -1.0, 2.0, 0.25]])
    expected = x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]])  # the rule the data follows: 4.25
    with torch.no_grad():
        by_hand = torch.nn.functional.linear(
            torch.relu(torch.nn.functional.linear(
                torch.relu(torch.nn.functional.linear(x, trained["linear1.weight"], trained["linear1.bias"])),
                trained["linear2.weight"], trained["linear2.bias"])),
            trained["output.weight"], trained["output.bias"])
    got = torchann.predict(model, x)
    torch.testing.assert_close(got, by_hand)
    assert abs(float(got) - float(expected)) < 1.0  # 12 epochs on 64 rows: roughly learnt
    history = (out / "shared" / "run" / "history.jsonl").read_text().splitlines()
    assert [json.loads(line)["loss"] for line in history] == [r["loss"] for r in r0["runs"]["even"]["records"]]


def test_a_failing_rank_ends_the_job_with_its_error(worker, tmp_path, capfd):
    started = time.monotonic()
    code = distributed.launch_local(2, [str(worker), str(tmp_path), "fail"], module=None, timeout=90)
    elapsed = time.monotonic() - started
    captured = capfd.readouterr()
    assert code not in (0, 124), f"exit code {code} after {elapsed:.0f} s"
    assert "rank 1 stops on purpose" in captured.err
    assert "TrainingError" in captured.err
    assert not (tmp_path / "rank0.pt").exists()


# ---------------------------------------------------------------------- in-process pieces


def test_session_outside_torchrun_is_a_single_process(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    with distributed.session() as world:
        assert world == distributed.World(rank=0, size=1, local_rank=0)
        assert not world.is_distributed and world.is_main
        t = torch.tensor([1.5, 2.0])
        assert world.all_reduce_sum(t) is t
        assert world.broadcast_int(7, device=torch.device("cpu")) == 7
        assert world.agree(True, device=torch.device("cpu")) is True
    assert not torch.distributed.is_initialized()


def test_env_world_reads_and_checks_torchrun_variables(monkeypatch):
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("MASTER_ADDR", "10.0.0.1")
    monkeypatch.setenv("MASTER_PORT", "29500")
    assert distributed.launched_by_torchrun()
    assert distributed.env_world() == distributed.World(rank=3, size=4, local_rank=1)
    monkeypatch.setenv("RANK", "4")
    with pytest.raises(UsageError, match=r"RANK=4 and WORLD_SIZE=4 do not fit"):
        distributed.env_world()
    monkeypatch.setenv("RANK", "one")
    with pytest.raises(UsageError, match=r"RANK='one' is not an integer"):
        distributed.env_world()
    monkeypatch.setenv("RANK", "0")
    monkeypatch.delenv("MASTER_PORT")
    with pytest.raises(UsageError, match=r"MASTER_PORT not; start the job with torchrun"):
        distributed.env_world()


def test_session_refuses_one_gpu_for_every_process(monkeypatch):
    for name, value in {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2",
                        "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "1"}.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(UsageError, match=r"device 'cuda:0' would put every process on the same GPU"):
        with distributed.session(device="cuda:0"):
            pass
    assert not torch.distributed.is_initialized()


def test_nproc_decides_whether_to_launch(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    assert distributed.should_launch(None) is False
    assert distributed.should_launch(1) is False
    assert distributed.should_launch(2) is True
    with pytest.raises(UsageError, match=r"--nproc must be a positive integer, got 0"):
        distributed.should_launch(0)
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert distributed.should_launch(2) is False  # already a worker of that job
    with pytest.raises(UsageError, match=r"--nproc 4 given inside a torchrun job of 2 process\(es\)"):
        distributed.should_launch(4)


def test_strip_nproc_and_the_launcher_command():
    argv = ["train", "d.csv", "--nproc", "2", "--target", "y", "--nproc=3", "--epochs", "4"]
    assert distributed.strip_nproc(argv) == ["train", "d.csv", "--target", "y", "--epochs", "4"]
    cmd = distributed.launcher_command(2, ["train", "d.csv"])
    assert cmd == [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
                   "-m", "torchann", "train", "d.csv"]
    assert distributed.launcher_command(3, ["w.py", "a"], module=None)[-3:] == ["--nproc-per-node=3", "w.py", "a"]
    with pytest.raises(UsageError, match=r"nproc must be a positive integer, got 0"):
        distributed.launch_local(0, ["train"])


def test_shard_splits_rows_like_tensor_split():
    rows = torch.arange(7)
    assert distributed.World(rank=0, size=3).shard(rows).tolist() == [0, 1, 2]
    assert distributed.World(rank=2, size=3).shard(rows).tolist() == [5, 6]
    assert distributed.World().shard(rows) is rows


# ---------------------------------------------------------------------- the command line


def test_train_nproc_2_matches_one_process_and_only_rank_zero_writes(tmp_path, capfd):
    from torchann.cli import app

    data = tmp_path / "d.csv"
    g = torch.Generator().manual_seed(0)
    x = torch.randn(61, 3, generator=g)
    y = x @ torch.tensor([1.0, -2.0, 0.5])
    data.write_text("a,b,c,y\n" + "".join(f"{a!r},{b!r},{c!r},{t!r}\n" for (a, b, c), t in zip(x.tolist(), y.tolist())))
    common = ["train", str(data), "--target", "y", "--hidden", "8", "--epochs", "4", "--lr", "0.05",
              "--optimizer", "sgd", "--val-split", "0.2", "--early-stopping", "3", "--seed", "1",
              "--checkpoint-every", "2", "--dropout", "0", "--quiet", "--json"]
    runner = CliRunner()
    one = runner.invoke(app, [*common, "--batch-size", "16", "--out", str(tmp_path / "one")])
    assert one.exit_code == 0, one.output
    two = runner.invoke(app, [*common, "--batch-size", "8", "--out", str(tmp_path / "two"), "--nproc", "2"])
    captured = capfd.readouterr()  # the workers write to the real stdout and stderr
    assert two.exit_code == 0, captured.err
    assert two.stdout == ""  # the launching process itself prints nothing
    reports = [json.loads(captured.out)]  # exactly one JSON document: rank 0's
    assert reports[0]["info"]["world_size"] == 2 and reports[0]["info"]["global_batch_size"] == 16
    expected = json.loads(one.stdout)["final"]
    for key in ("loss", "val_loss", "r2", "val_r2"):
        assert reports[0]["final"][key] == pytest.approx(expected[key], rel=1e-5), key
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == sorted(p.name for p in (tmp_path / "one").iterdir())
    m1, m2 = torchann.load(tmp_path / "one").network, torchann.load(tmp_path / "two").network
    for (k1, v1), (k2, v2) in zip(m1.state_dict().items(), m2.state_dict().items()):
        assert k1 == k2
        assert_rel_close(v2, v1, what=k1)


def test_relaunch_argv_repeats_what_was_typed(tmp_path):
    app = typer.Typer()
    seen = {}

    @app.callback()
    def root(debug: bool = typer.Option(False, "--debug")) -> None: ...

    @app.command()
    def train(
        ctx: typer.Context,
        data: str = typer.Argument(...),
        lr: float = typer.Option(1e-3, "--lr"),
        hidden: str = typer.Option(None, "--hidden"),
        out: Path = typer.Option(None, "--out", "-o"),
        no_scale: bool = typer.Option(False, "--no-scale"),
        shuffle: bool = typer.Option(True, "--shuffle/--no-shuffle"),
        nproc: int = typer.Option(None, "--nproc"),
    ) -> None:
        seen.setdefault("params", []).append(dict(ctx.params))
        seen.setdefault("argv", []).append(relaunch_argv(ctx))

    runner = CliRunner()
    first = ["--debug", "train", "-o", str(tmp_path), "--lr", "-0.1", "--no-shuffle", "--nproc", "2", "--", "-d.csv"]
    assert runner.invoke(app, first).exit_code == 0
    argv = seen["argv"][0]
    assert argv == ["--debug", "train", "--lr=-0.1", f"--out={tmp_path}", "--no-shuffle", "--", "-d.csv"]
    assert runner.invoke(app, argv).exit_code == 0  # the workers parse it back to the same values
    again = seen["params"][1]
    assert again == {**seen["params"][0], "nproc": None}
