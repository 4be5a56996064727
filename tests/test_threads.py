"""threads.py: the thread count fit trains with, decided from the step's work, the cores and a
short timing of the step.

Every input of the decision is injected (a fake affinity, cgroup files in tmp_path, /proc/stat
readings, the environment, the step's times per count), so the tests check the arithmetic,
never a timing.
"""

from __future__ import annotations

import pytest
import torch

import torchann
from torchann.runtime import threads
from torchann.core.errors import UsageError
from torchann.runtime.measure import MeasuredCache
from torchann.runtime.threads import (FLOPS_PER_THREAD, MEASURE_MIN_FLOPS, ThreadChoice, allowed_cores, choose_threads,
                                      decide_threads, pick_threads, rows_per_step, step_flops, thread_candidates,
                                      threads_for_work, use_threads, user_thread_count)


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


@pytest.mark.parametrize("times, expected", [
    ({1: 1.0, 2: 0.6}, 2),             # two threads clearly faster
    ({1: 1.0, 2: 0.97}, 1),            # within PREFER_FEWER: the fewer threads
    ({1: 0.2, 2: 1.0}, 1),             # beside a busy process: one thread
    ({1: 1.0, 2: 0.70, 4: 0.68}, 2),   # four barely beat two
    ({1: 1.0, 2: 0.70, 4: 0.50}, 4),
    ({3: 1.0}, 3),
])
def test_pick_threads_takes_the_fewest_within_the_margin_of_the_fastest(times, expected):
    assert pick_threads(times) == expected


@pytest.mark.parametrize("flops, cores, first, expected", [
    (10 * FLOPS_PER_THREAD, 2, 2, (1, 2)),
    (MEASURE_MIN_FLOPS, 2, 1, (1, 2)),        # the work alone says one thread: two are timed too
    (10 * FLOPS_PER_THREAD, 8, 8, (1, 2, 4, 8)),
    (3 * FLOPS_PER_THREAD, 8, 3, (1, 2, 3)),  # the work keeps three busy at most
    (1e12, 6, 5, (1, 2, 4, 5, 6)),            # the load left five of six
])
def test_thread_candidates(flops, cores, first, expected):
    assert thread_candidates(flops, cores, first) == expected


@pytest.fixture
def two_free_cores(monkeypatch):
    """A machine of two CPUs, no quota, nothing else running, torch at its default count, an
    empty cache of timed choices."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    monkeypatch.setattr(threads, "_affinity", lambda: {0, 1})
    monkeypatch.setattr(threads, "_cgroup_quota", lambda root="": None)
    monkeypatch.setattr(threads, "_torch_defaults", lambda cpus: {len(cpus)})
    monkeypatch.setattr(threads, "running_elsewhere", lambda **_: 0.0)
    threads.THREAD_TIMES.clear()
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)
    threads.THREAD_TIMES.clear()


class _Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def _timed(seconds):
    """``time_at`` for ``choose_threads``: a step at ``n`` threads takes ``seconds[n]``; notes each call."""
    calls = []

    def time_at(n):
        assert torch.get_num_threads() == n  # timed at the count in question
        calls.append(n)
        return seconds[n]

    return time_at, calls


def test_choose_threads_times_the_candidates_and_keeps_the_fastest(two_free_cores):
    cache = MeasuredCache(ttl=30.0, clock=_Clock())
    time_at, calls = _timed({1: 1.0, 2: 0.8})  # close: every round is taken
    choice = choose_threads(50e6, None, CPU, shapes=((64, 256),), rows=32, time_at=time_at, cache=cache)
    assert choice == ThreadChoice(2, "measured") and choice.times == {1: 1.0, 2: 0.8}
    assert calls == [1, 1, 2, 1, 2, 1, 2]  # a warm-up call, then three interleaved rounds
    assert torch.get_num_threads() == 2  # the timing put the count back


def test_choose_threads_beside_a_busy_process_takes_one_thread_after_one_round(two_free_cores):
    cache = MeasuredCache(ttl=30.0, clock=_Clock())
    time_at, calls = _timed({1: 0.5, 2: 2.5})  # a busy core the instant reading missed: two threads wait on it
    choice = choose_threads(50e6, None, CPU, shapes=((64, 256),), rows=32, time_at=time_at, cache=cache)
    assert choice.threads == 1 and choice.reason == "measured"
    assert calls == [1, 1, 2]  # the gap is clear after one round: no more timing of the slow count


def test_no_second_free_core_at_the_instant_means_one_thread_and_no_timing(two_free_cores, monkeypatch):
    monkeypatch.setattr(threads, "running_elsewhere", lambda **_: 1.0)  # a process spinning on one of the two
    choice = choose_threads(50e6, None, CPU, shapes=((64, 256),), rows=32, time_at=_untimed)
    assert choice == ThreadChoice(1, "work")


def test_a_timed_choice_is_kept_until_the_load_changes_or_it_ages(two_free_cores, monkeypatch):
    monkeypatch.setattr(threads, "_affinity", lambda: {0, 1, 2, 3})  # four CPUs, torch at its default of 4
    monkeypatch.setattr(threads, "_torch_defaults", lambda cpus: {4})
    torch.set_num_threads(4)
    clock = _Clock()
    cache = MeasuredCache(ttl=30.0, clock=clock)
    args = dict(shapes=((64, 256), (256, 10)), rows=32, cache=cache)
    time_at, calls = _timed({1: 0.5, 2: 1.0})
    assert choose_threads(10e6, None, CPU, time_at=time_at, **args).threads == 1
    assert calls
    time_at, calls = _timed({1: 0.5, 2: 1.0})
    clock.now = 29.0
    assert choose_threads(10e6, None, CPU, time_at=time_at, **args).threads == 1
    assert calls == []  # from the cache
    monkeypatch.setattr(threads, "running_elsewhere", lambda **_: 1.0)  # another process started
    time_at, calls = _timed({1: 1.0, 2: 0.5})
    assert choose_threads(10e6, None, CPU, time_at=time_at, **args).threads == 2
    assert calls  # timed again under the new load
    time_at, calls = _timed({1: 0.5, 2: 1.0})
    clock.now = 29.0 + 31.0  # older than the ttl
    assert choose_threads(10e6, None, CPU, time_at=time_at, **args).threads == 1
    assert calls
    time_at, calls = _timed({1: 1.0, 2: 0.5})
    assert choose_threads(10e6, None, CPU, time_at=time_at, shapes=((64, 256),), rows=1024, cache=cache).threads == 2
    assert calls  # another shape: timed on its own


def _untimed(n):
    raise AssertionError("timed a step whose count was already settled")


def test_a_fit_too_short_to_pay_for_the_timing_keeps_the_count_from_the_work(two_free_cores):
    cache = MeasuredCache(ttl=30.0, clock=_Clock())
    now = [0.0]

    def time_at(n):  # a step takes 10 ms at any count, and the clock moves on by that
        now[0] += 0.01
        return 0.01

    args = dict(shapes=((64, 256),), rows=32, time_at=time_at, cache=cache, clock=lambda: now[0])
    # 50 steps: TIMING_SHARE of them is 1.5 steps, less than a warm-up and one round of two
    # counts (3 steps' products) whatever a step takes: nothing is timed, not even the warm-up
    assert choose_threads(50e6, None, CPU, steps=50, **args) == ThreadChoice(2, "work")
    assert now[0] == 0.0
    assert cache.get(((((64, 256),)), 32, str(torch.float32), 2, 2), 0) is None  # nothing measured, nothing kept
    # 5,000 steps: 1.5 s of budget, plenty
    assert choose_threads(50e6, None, CPU, steps=5_000, **args).reason == "measured"


@pytest.mark.parametrize("flops, threads_arg, env, expected", [
    (MEASURE_MIN_FLOPS - 1, None, {}, ThreadChoice(1, "work")),      # a small step: one thread, no timing
    (1e9, 2, {}, ThreadChoice(2, "threads=")),                       # the user's count
    (1e9, None, {"OMP_NUM_THREADS": "1"}, ThreadChoice(2, "OMP_NUM_THREADS")),  # torch's count under it
])
def test_choose_threads_times_nothing_when_the_count_is_settled(two_free_cores, monkeypatch, flops, threads_arg,
                                                                 env, expected):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert choose_threads(flops, threads_arg, CPU, shapes=((64, 256),), rows=32, time_at=_untimed) == expected


def test_choose_threads_on_one_core_times_nothing(two_free_cores, monkeypatch):
    monkeypatch.setattr(threads, "_affinity", lambda: {0})
    monkeypatch.setattr(threads, "_torch_defaults", lambda cpus: {2})
    assert choose_threads(1e9, None, CPU, shapes=((64, 256),), rows=32, time_at=_untimed) == ThreadChoice(1, "work")


def test_choose_threads_off_the_cpu_sets_nothing():
    assert choose_threads(1e9, None, torch.device("cuda"), time_at=_untimed) is None
    assert choose_threads(1e9, 3, torch.device("cuda"), time_at=_untimed) == ThreadChoice(3, "threads=")


CPU = torch.device("cpu")


def _fit(rows, hidden, batch, **options):
    torch.manual_seed(0)
    x, y = torch.randn(rows, 32), torch.randn(rows, 1)
    model = torchann.mlp(32, hidden, 1)
    return torchann.fit(model, x, y, epochs=1, batch_size=batch, seed=0, device="cpu", precision="fp32", **options)


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


@pytest.fixture
def fake_step_timer(monkeypatch):
    """``measure.step_timer`` as ``choose_threads`` uses it, without a clock: a step at ``n``
    threads takes ``seconds[n]``; ``made`` lists the (shapes, rows) each timer was made for."""

    class Fake:
        seconds: dict[int, float] = {}
        made: list = []

        def __call__(self, shapes, rows, device):
            self.made.append((shapes, rows))
            return lambda dtype: self.seconds[torch.get_num_threads()]

    fake = Fake()
    monkeypatch.setattr(threads, "step_timer", fake)
    return fake


@pytest.mark.parametrize("seconds, expected", [({1: 1.0, 2: 0.5}, 2), ({1: 0.5, 2: 2.0}, 1)])
def test_fit_trains_on_the_timed_count_and_restores_the_previous_one(two_free_cores, fake_step_timer, seconds,
                                                                      expected):
    fake_step_timer.seconds = seconds
    probe = _ThreadsDuringTraining()
    history = _fit(120 * 64, [256, 256], 64, progress=probe)  # 29 MFLOP a step, 120 steps: worth timing
    assert probe.seen == {expected}  # every step on the one count: the timing ran before training
    assert history.info["threads"] == expected
    assert history.info["thread_ms"] == {str(n): t * 1e3 for n, t in seconds.items()}
    assert fake_step_timer.made == [(((32, 256), (256, 256), (256, 1)), 64)]  # the model's own layers
    assert torch.get_num_threads() == 2
    _fit(120 * 64, [256, 256], 64)
    assert len(fake_step_timer.made) == 1  # the same shape again: the cached count, no timing


def test_running_elsewhere_takes_this_process_own_running_threads_off(tmp_path):
    (tmp_path / "stat").write_text("cpu  1 2 3\nprocs_running 5\nprocs_blocked 0\n")
    for tid, state in [(10, "R"), (11, "S"), (12, "R")]:
        (tmp_path / "task" / str(tid)).mkdir(parents=True)
        # the command name may hold spaces and parentheses: the state follows the last ')'
        (tmp_path / "task" / str(tid) / "stat").write_text(f"{tid} (py (x) y) {state} 1 2 3\n")
    assert threads.running_elsewhere(str(tmp_path / "stat"), str(tmp_path / "task"), settle=0) == 3.0
    assert threads.running_elsewhere(str(tmp_path / "missing"), str(tmp_path / "task")) == 0.0


def _proc(tmp_path, running, states):
    """A fake /proc/stat with ``procs_running`` and this process's threads in ``states``."""
    (tmp_path / "stat").write_text(f"cpu  1 2 3\nprocs_running {running}\n")
    for tid, state in enumerate(states, start=10):
        (tmp_path / "task" / str(tid)).mkdir(parents=True, exist_ok=True)
        (tmp_path / "task" / str(tid) / "stat").write_text(f"{tid} (python) {state} 1 2 3\n")
    return str(tmp_path / "stat"), str(tmp_path / "task")


class _SleepClock:
    """``sleep`` and ``clock`` for ``running_elsewhere``: sleeping moves the clock and runs ``then``."""

    def __init__(self, then=lambda slept: None):
        self.now, self.slept, self.then = 0.0, 0, then

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds
        self.slept += 1
        self.then(self.slept)


def test_running_elsewhere_waits_for_its_own_spinning_pool_to_sleep(tmp_path):
    # Just after parallel work: this thread and a pool thread spinning on the two cores, and a
    # kernel task that waits for them is counted as running. Two milliseconds on, the pool
    # thread sleeps, the kernel task has run, and nothing else is running.
    stat, tasks = _proc(tmp_path, 3, ["R", "R"])
    fake = _SleepClock(then=lambda slept: slept == 2 and _proc(tmp_path, 1, ["R", "S"]))
    assert threads.running_elsewhere(stat, tasks, settle=0.008, gap=0.001, clock=fake.clock, sleep=fake.sleep) == 0.0
    assert fake.slept == 2


def test_running_elsewhere_counts_a_process_that_stays_busy(tmp_path):
    stat, tasks = _proc(tmp_path, 3, ["R", "R"])  # the pool spins, and another process keeps running
    fake = _SleepClock()
    assert threads.running_elsewhere(stat, tasks, settle=0.004, gap=0.001, clock=fake.clock, sleep=fake.sleep) == 1.0
    assert fake.slept == 4  # it waited no longer than settle
    stat, tasks = _proc(tmp_path, 2, ["R", "S"])  # only this thread runs: a reading it can trust at once
    fake = _SleepClock()
    assert threads.running_elsewhere(stat, tasks, clock=fake.clock, sleep=fake.sleep) == 1.0
    assert fake.slept == 0
    stat, tasks = _proc(tmp_path, 2, ["R", "R"])  # nothing else: no wait either
    assert threads.running_elsewhere(stat, tasks, clock=fake.clock, sleep=fake.sleep) == 0.0
    assert fake.slept == 0


@pytest.mark.parametrize("flops, steps, expected", [
    (458e6, None, threads.SETTLE_MAX),           # steps unknown: the longest wait
    (458e6, 1_000, threads.SETTLE_MAX),          # a long fit: the longest wait
    (458e6, 25, threads.TIMING_SHARE * 25 * 458e6 / threads.PEAK_FLOPS),   # 3.4 ms for 25 steps at batch 1,024
    (14e6, 100, threads.TIMING_SHARE * 100 * 14e6 / threads.PEAK_FLOPS),   # 0.4 ms for 100 steps at batch 32
])
def test_settle_seconds_stays_within_the_timing_share(flops, steps, expected):
    assert threads.settle_seconds(flops, steps) == pytest.approx(expected)


def test_fit_trains_a_small_step_on_one_thread(two_free_cores, fake_step_timer):
    probe = _ThreadsDuringTraining()
    history = _fit(64, [8], 16, progress=probe)
    assert history.info["threads"] == 1 and "thread_ms" not in history.info
    assert probe.seen == {1} and torch.get_num_threads() == 2
    assert fake_step_timer.made == []


def test_fit_respects_the_users_count(two_free_cores, fake_step_timer, monkeypatch):
    torch.set_num_threads(3)  # not torch's default of 2: the user's choice
    assert _fit(1024, [256, 256], 1024).info["threads"] == 3
    assert _fit(64, [8], 16, threads=2).info["threads"] == 2  # threads= wins over it
    assert torch.get_num_threads() == 3
    assert fake_step_timer.made == []  # a count the user set is never timed
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)
    assert _fit(1024, [256, 256], 1024).info["threads"] == 1


@pytest.mark.parametrize("bad", [0, -2, 1.5, "2", True])
def test_fit_rejects_a_bad_thread_count(bad):
    with pytest.raises(UsageError, match=r"threads must be a positive integer or None, got .* \(None chooses"):
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
