"""threads.py: the thread count fit trains with, decided from the step's work and the cores.

Every input of the decision is injected (a fake affinity, cgroup files in tmp_path, /proc/stat
readings, the environment), so the tests check the arithmetic, never a timing.
"""

from __future__ import annotations

import pytest
import torch

import torchann
from torchann.runtime import threads
from torchann.core.errors import UsageError
from torchann.runtime.threads import FLOPS_PER_THREAD, ThreadChoice, allowed_cores, busy_cores, decide_threads, rows_per_step, step_flops, threads_for_work, use_threads, user_thread_count


def test_step_flops_is_six_per_parameter_per_row():
    model = torchann.mlp(2, [8], 1)  # 2*8 + 8 weights and biases, then 8*1 + 1: 33 parameters
    assert step_flops(model, 2) == 6 * 2 * 33
    big = torchann.mlp(32, [256, 256], 1)  # 32*256+256 + 256*256+256 + 256+1 = 74_497
    assert step_flops(big, 1024) == 6 * 1024 * 74_497


def test_rows_per_step_reads_a_dataloaders_own_batch_size():
    data = torch.utils.data.TensorDataset(torch.zeros(10, 2), torch.zeros(10, 1))
    assert rows_per_step(torch.utils.data.DataLoader(data, batch_size=7), 32) == 7
    assert rows_per_step(torch.zeros(10, 2), 32) == 32
    assert rows_per_step(data, 16) == 16


@pytest.mark.parametrize("flops, expected", [
    (0, 1), (FLOPS_PER_THREAD - 1, 1), (FLOPS_PER_THREAD, 1), (2 * FLOPS_PER_THREAD - 1, 1),
    (2 * FLOPS_PER_THREAD, 2), (7.5 * FLOPS_PER_THREAD, 7),
])
def test_threads_for_work_adds_one_thread_per_step_of_work(flops, expected):
    assert threads_for_work(flops) == expected


def _cgroup(tmp_path, v2=None, v1=None):
    if v2 is not None:
        (tmp_path / "cpu.max").write_text(v2 + "\n")
    if v1 is not None:
        (tmp_path / "cpu").mkdir()
        (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text(f"{v1[0]}\n")
        (tmp_path / "cpu" / "cpu.cfs_period_us").write_text(f"{v1[1]}\n")
    return tmp_path


@pytest.mark.parametrize("v2, v1, local, expected", [
    (None, None, 1, 8),                   # no cgroup files: the affinity
    ("max 100000", None, 1, 8),           # v2, unlimited
    ("250000 100000", None, 1, 2),        # v2, 2.5 cores: two whole cores
    ("50000 100000", None, 1, 1),         # half a core still runs one thread
    (None, (300000, 100000), 1, 3),       # v1 quota
    (None, (-1, 100000), 1, 8),           # v1 unlimited
    ("max 100000", None, 3, 2),           # three torchrun processes share 8 CPUs
    ("200000 100000", None, 4, 1),        # never below one
])
def test_allowed_cores_from_affinity_quota_and_local_processes(tmp_path, v2, v1, local, expected):
    root = _cgroup(tmp_path, v2, v1)
    assert allowed_cores(affinity=set(range(8)), cgroup_root=root, local_processes=local) == expected


def test_allowed_cores_reads_local_world_size(tmp_path, monkeypatch):
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert allowed_cores(affinity={0, 1, 2, 3}, cgroup_root=tmp_path) == 2


def test_busy_cores_from_two_proc_stat_readings():
    # cpu0 busy 10 of 10 ticks, cpu1 busy 2 of 10, cpu2 (not ours) busy throughout
    readings = iter([{0: (100, 200), 1: (50, 300), 2: (0, 0)}, {0: (110, 210), 1: (52, 310), 2: (10, 10)}])
    slept = []
    busy = busy_cores({0, 1}, window=0.25, read=lambda: next(readings), sleep=slept.append)
    assert busy == pytest.approx(2 * 12 / 20)
    assert slept == [0.25]


def test_busy_cores_without_proc_stat_is_zero():
    assert busy_cores({0, 1}, read=dict, sleep=lambda s: pytest.fail("no reading, no wait")) == 0.0


def test_proc_stat_parsing(tmp_path):
    stat = tmp_path / "stat"
    stat.write_text("cpu  9 9 9 9 9 9 9 9 0 0\ncpu0 10 1 4 100 5 0 2 0 0 0\ncpu1 1 0 0 50 0 0 0 0 0 0\nintr 5\n")
    # busy = user + nice + system + irq + softirq + steal; all adds idle and iowait
    assert threads._cpu_times(str(stat)) == {0: (17, 122), 1: (1, 51)}


def test_user_thread_count_sources():
    assert user_thread_count(environ={"OMP_NUM_THREADS": "3"}, current=3, defaults={8}) == (3, "OMP_NUM_THREADS")
    assert user_thread_count(environ={"MKL_NUM_THREADS": "2"}, current=2, defaults={8}) == (2, "MKL_NUM_THREADS")
    assert user_thread_count(environ={}, current=3, defaults={8, 4}) == (3, "torch.set_num_threads")
    assert user_thread_count(environ={}, current=4, defaults={8, 4}) is None  # torch's own default
    assert user_thread_count(environ={"OMP_NUM_THREADS": ""}, current=8, defaults={8}) is None


def _never():
    raise AssertionError("busy cores sampled for a step one thread serves")


BIG = 10 * FLOPS_PER_THREAD


@pytest.mark.parametrize("kwargs, expected", [
    (dict(flops=1e3, cores=8, busy=_never), ThreadChoice(1, "work")),            # tiny: one thread, no sample
    (dict(flops=BIG, cores=2, busy=0.0), ThreadChoice(2, "work")),               # quiet 2 cores
    (dict(flops=BIG, cores=2, busy=1.0), ThreadChoice(1, "work")),               # one core busy elsewhere
    (dict(flops=BIG, cores=2, busy=0.3), ThreadChoice(2, "work")),               # a light background
    (dict(flops=BIG, cores=2, busy=2.0), ThreadChoice(1, "work")),               # never below one
    (dict(flops=3 * FLOPS_PER_THREAD, cores=8, busy=0.0), ThreadChoice(3, "work")),  # the work caps it
    (dict(flops=BIG, cores=2, cpus=64, busy=30.0), ThreadChoice(2, "work")),     # a quota: spare CPUs remain
    (dict(flops=BIG, cores=8, busy=5.0), ThreadChoice(3, "work")),
    (dict(flops=1e3, cores=2, requested=4, busy=_never), ThreadChoice(4, "threads=")),
    (dict(flops=BIG, cores=2, user=(1, "OMP_NUM_THREADS"), busy=_never), ThreadChoice(1, "OMP_NUM_THREADS")),
    (dict(flops=1e3, cores=2, requested=2, user=(1, "OMP_NUM_THREADS")), ThreadChoice(2, "threads=")),
])
def test_decide_threads(kwargs, expected):
    kwargs = {"requested": None, "user": None, **kwargs}
    flops = kwargs.pop("flops")
    assert decide_threads(flops, **kwargs) == expected


def test_use_threads_sets_and_restores_even_on_error():
    before = torch.get_num_threads()
    other = 1 if before != 1 else 2
    with pytest.raises(RuntimeError):
        with use_threads(ThreadChoice(other, "threads=")):
            assert torch.get_num_threads() == other
            raise RuntimeError("stop")
    assert torch.get_num_threads() == before
    with use_threads(None):
        assert torch.get_num_threads() == before


@pytest.fixture
def three_free_cores(monkeypatch):
    """A machine of three CPUs, no quota, nothing else running, torch at its default count."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    monkeypatch.setattr(threads, "_affinity", lambda: {0, 1, 2})
    monkeypatch.setattr(threads, "_cgroup_quota", lambda root="": None)
    monkeypatch.setattr(threads, "_torch_defaults", lambda cpus: {len(cpus)})
    monkeypatch.setattr(threads, "busy_cores", lambda cpus=None, **kw: 0.0)
    monkeypatch.setattr(threads, "running_elsewhere", lambda: 0.0)
    monkeypatch.setattr(threads, "BusyLook", _LookAfterSteps)
    _LookAfterSteps.after = 0  # done before the first step ends
    before = torch.get_num_threads()
    torch.set_num_threads(3)
    yield
    torch.set_num_threads(before)


def _fit(rows, hidden, batch, **options):
    torch.manual_seed(0)
    x, y = torch.randn(rows, 32), torch.randn(rows, 1)
    model = torchann.mlp(32, hidden, 1)
    return torchann.fit(model, x, y, epochs=1, batch_size=batch, seed=0, device="cpu", precision="fp32", **options)


class _LookAfterSteps:
    """``threads.BusyLook`` without a thread: its sample is in once ``after`` steps have been polled."""

    after = 0

    def __init__(self, sample, decide):
        self.choice = decide(sample())
        self.polls = 0

    def ready(self):
        self.polls += 1
        return self.choice if self.polls > self.after else None


class _ThreadsDuringTraining:
    """A progress object that notes torch's thread count at every step."""

    def __init__(self):
        self.seen = set()
        self.steps = []

    def on_train_start(self, **kw):
        pass

    def on_step(self, **kw):
        self.seen.add(torch.get_num_threads())
        self.steps.append(torch.get_num_threads())

    def on_epoch_end(self, record):
        pass


def test_fit_trains_a_large_step_on_the_free_cores_and_restores_the_count(three_free_cores, monkeypatch):
    probe = _ThreadsDuringTraining()
    torch.set_num_threads(3)
    history = _fit(1024, [256, 256], 1024, progress=probe)  # 458 MFLOP per step: more threads than cores
    assert history.info["threads"] == 3 and probe.seen == {3}
    assert torch.get_num_threads() == 3  # the count from before fit


def test_fit_leaves_the_core_another_process_keeps_busy(three_free_cores, monkeypatch):
    monkeypatch.setattr(threads, "busy_cores", lambda cpus=None, **kw: 1.0)
    monkeypatch.setattr(threads, "running_elsewhere", lambda: 1.0)
    probe = _ThreadsDuringTraining()
    history = _fit(1024, [256, 256], 1024, progress=probe)
    assert history.info["threads"] == 2 and probe.seen == {2}
    assert torch.get_num_threads() == 3


@pytest.mark.parametrize("instant, looked, expected", [
    (0.0, 1.0, [3, 3, 2, 2, 2, 2]),  # quiet at the start; the look finds a busy core: one switch, down
    (2.0, 0.0, [1, 1, 3, 3, 3, 3]),  # a burst at the start; the look finds the cores free: up
    (0.0, 0.0, [3] * 6),             # both agree: no switch
])
def test_fit_starts_on_the_instant_count_and_switches_once_when_the_look_is_in(
        three_free_cores, monkeypatch, instant, looked, expected):
    monkeypatch.setattr(threads, "running_elsewhere", lambda: instant)
    monkeypatch.setattr(threads, "busy_cores", lambda cpus=None, **kw: looked)
    _LookAfterSteps.after = 2  # the sample comes in during the third step
    probe = _ThreadsDuringTraining()
    history = _fit(6 * 64, [256, 256], 64, progress=probe)  # 6 steps of 29 MFLOP: 3 threads wanted
    assert probe.steps == expected
    assert history.info["threads"] == expected[-1]
    assert torch.get_num_threads() == 3  # the count from before fit, also after a switch


def test_running_elsewhere_takes_this_process_own_running_threads_off(tmp_path):
    (tmp_path / "stat").write_text("cpu  1 2 3\nprocs_running 5\nprocs_blocked 0\n")
    for tid, state in [(10, "R"), (11, "S"), (12, "R")]:
        (tmp_path / "task" / str(tid)).mkdir(parents=True)
        # the command name may hold spaces and parentheses: the state follows the last ')'
        (tmp_path / "task" / str(tid) / "stat").write_text(f"{tid} (py (x) y) {state} 1 2 3\n")
    assert threads.running_elsewhere(str(tmp_path / "stat"), str(tmp_path / "task")) == 3.0
    assert threads.running_elsewhere(str(tmp_path / "missing"), str(tmp_path / "task")) == 0.0


def test_busy_cores_takes_this_process_own_cpu_time_off():
    # two CPUs fully busy for 0.5 s, this process used 0.5 CPU-seconds of it: one core is others'
    readings = iter([{0: (0, 0), 1: (0, 0)}, {0: (50, 50), 1: (50, 50)}])
    clock = iter([10.0, 10.5])
    busy = busy_cores({0, 1}, window=0.5, read=lambda: next(readings), sleep=lambda s: None, own=lambda: next(clock))
    assert busy == pytest.approx(1.0)
    readings = iter([{0: (0, 0), 1: (0, 0)}, {0: (5, 50), 1: (0, 50)}])
    clock = iter([0.0, 0.5])  # own time above the busy ticks (tick rounding): never below zero
    assert busy_cores({0, 1}, window=0.5, read=lambda: next(readings), sleep=lambda s: None,
                      own=lambda: next(clock)) == 0.0


def test_busy_look_samples_in_the_background():
    import threading

    release = threading.Event()

    def sample():
        release.wait(10)
        return 1.0

    look = threads.BusyLook(sample, lambda busy: ThreadChoice(int(busy) + 1, "work"))
    assert look.ready() is None  # the sample is still waiting: training goes on meanwhile
    release.set()
    look._done.wait(10)
    assert look.ready() == ThreadChoice(2, "work")


def test_fit_trains_a_small_step_on_one_thread(three_free_cores):
    probe = _ThreadsDuringTraining()
    assert _fit(64, [8], 16, progress=probe).info["threads"] == 1
    assert probe.seen == {1} and torch.get_num_threads() == 3


def test_fit_respects_the_users_count(three_free_cores, monkeypatch):
    torch.set_num_threads(2)  # not torch's default of 3: the user's choice
    assert _fit(1024, [256, 256], 1024).info["threads"] == 2
    assert _fit(64, [8], 16, threads=3).info["threads"] == 3  # threads= wins over it
    assert torch.get_num_threads() == 2
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)
    assert _fit(1024, [256, 256], 1024).info["threads"] == 1


@pytest.mark.parametrize("bad", [0, -2, 1.5, "2", True])
def test_fit_rejects_a_bad_thread_count(bad):
    with pytest.raises(UsageError, match=r"threads must be a positive integer or None .*got"):
        _fit(8, [4], 4, threads=bad)


def test_train_and_the_cli_take_threads(tmp_path):
    from typer.testing import CliRunner

    from torchann.cli import app
    from torchann.core.options import option_default, option_help

    assert option_default("threads") is None and "free cores" in option_help("threads")
    csv = tmp_path / "t.csv"
    csv.write_text("a,b,y\n" + "".join(f"{i},{i % 3},{2 * i}\n" for i in range(20)))
    result = CliRunner().invoke(app, ["train", str(csv), "--target", "y", "--epochs", "1", "--threads", "1",
                                      "--hidden", "4", "--out", str(tmp_path / "run"), "--quiet", "--json"])
    assert result.exit_code == 0, result.output
    assert torchann.load(tmp_path / "run").history.info["threads"] == 1
