"""How many CPU threads a training step uses: what its work can keep busy, on the cores that
are free for this process, unless the user chose a count.

torch starts one intra-op thread per core and every operator splits its work over all of
them. For a small step (a 2-8-1 network, or batch 32 through 256-unit layers) each operator
is done before a second thread has been woken, and on a machine where another process holds a
core the threads wait on each other at every operator: a 20-epoch ``torchann train`` took
32.6 s with torch's two threads beside a busy process and 12.2 s with one. So ``fit`` decides:

* a count the user set wins: ``fit(threads=N)`` / ``--threads N``, ``OMP_NUM_THREADS`` or
  ``MKL_NUM_THREADS``, or a ``torch.set_num_threads`` call that left a count other than
  torch's own default;
* otherwise one thread per ``FLOPS_PER_THREAD`` of the step's work (forward and backward,
  6 x rows x parameters), at least one;
* never more than the cores this process may use (its CPU affinity, the cgroup CPU quota,
  shared by the ``torchrun`` processes on this machine), less the tasks other processes run
  at that instant (``procs_running`` in ``/proc/stat``, less this process's own);
* and, when at least two cores are free at that instant and the step does at least
  ``MEASURE_MIN_FLOPS``, a short timing settles it: the step's own products
  (``measure.step_timer``: the model's linear layers at the step's rows) are timed at 1, 2,
  4, ... threads up to the free cores, in interleaved rounds, and the fewest threads within
  ``PREFER_FEWER`` of the fastest win. The work alone cannot tell whether a second thread
  pays (at batch 32 it did on one 2-core machine and did not on another), nor whether a
  process that the instant reading missed keeps a core busy; the timing sees both. It costs
  at most ``TIMING_SHARE`` of the fit's estimated time, and its answer is kept
  (``THREAD_TIMES``) for ``THREAD_TTL`` seconds while the count of tasks running elsewhere
  stays the same, so fits of one shape in a row time it once.

The count can change the last bits of float32 sums, so two fits whose choices differ (on
different machines, or under different load) can differ in the last bits of their weights;
``threads=N`` fixes the count for runs that must match bit for bit.

``fit`` sets the count for the duration of training and puts the previous one back after
(``use_threads``). The decisions (``decide_threads``, ``pick_threads``) are pure functions
and the timing is injected (``choose_threads(time_at=...)``), so that they can be checked
without timing anything.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import torch

from ..core.checks import check_optional_positive_int
from .measure import MeasuredCache, median_times, step_timer

__all__ = [
    "FLOPS_PER_THREAD", "MEASURE_MIN_FLOPS", "PREFER_FEWER", "TIMING_SHARE", "THREAD_TTL", "THREAD_TIMES",
    "SETTLE_MAX", "PEAK_FLOPS", "settle_seconds",
    "ThreadChoice", "step_flops", "rows_per_step", "threads_for_work", "allowed_cores", "running_elsewhere", "user_thread_count",
    "decide_threads", "free_cores", "thread_candidates", "pick_threads", "check_threads", "choose_threads", "use_threads",
]

# Work (floating-point operations of one step, forward and backward) that keeps one more
# thread busy enough to pay for waking it and for the waits at every operator. On a quiet
# 2-core machine a 14 MFLOP step (32-256-256-1, batch 32) still ran 2-12% faster on two
# threads than on one, so a second thread comes at 10 MFLOP; a 2-8-1 step (under 1 kFLOP)
# gains nothing from it (docs/benchmarks.md, "Threads"). Under load the free cores decide.
FLOPS_PER_THREAD = 5e6
# Steps below this train on one thread without a timing: a second thread has nothing to gain
# there that is worth the timing's milliseconds.
MEASURE_MIN_FLOPS = 2e6
# A count with more threads must time this much faster than one with fewer to be chosen: fewer
# threads suffer less when the load of the machine changes after the timing.
PREFER_FEWER = 1.05
# The timing may cost at most this share of the fit's estimated time (its steps times the
# step's time from the timing's warm-up); a fit too short for even one round keeps the count
# from the work and the load.
TIMING_SHARE = 0.03
# The longest ``running_elsewhere`` waits for this process's pool to stop spinning before it
# trusts a reading of busy cores (the spin lasted 3-4 ms on a quiet 2-core machine) ...
SETTLE_MAX = 0.008
# ... and a rate of work no step of a few cores' CPU reaches, so that the wait stays within
# TIMING_SHARE of the shortest time the fit could take (``settle_seconds``).
PEAK_FLOPS = 1e11
# Seconds a timed choice is kept (while the count of tasks running elsewhere stays the same).
THREAD_TTL = 30.0
# (layer shapes, rows, dtype, cores) -> the timed count; ``THREAD_TIMES.clear()`` forgets them.
THREAD_TIMES = MeasuredCache(ttl=THREAD_TTL)


@dataclass(frozen=True)
class ThreadChoice:
    """The intra-op thread count for training and why (recorded in ``history.info``)."""

    threads: int
    reason: str  # "threads=", "OMP_NUM_THREADS", "torch.set_num_threads", "work" or "measured"
    times: Mapping[int, float] | None = field(default=None, compare=False)  # seconds per count, when timed


def step_flops(model: torch.nn.Module, rows: int) -> float:
    """Floating-point operations of one training step: about 6 per parameter per row
    (2 forward, 4 backward), the usual count for layers whose work is their weights."""
    params = sum(p.numel() for p in model.parameters())
    return 6.0 * float(rows) * float(params)


def rows_per_step(x: Any, batch_size: int) -> int:
    """Rows in one step: a ``DataLoader``'s own batch size, else ``fit``'s ``batch_size``."""
    own = getattr(x, "batch_size", None) if _is_loader(x) else None
    return int(own) if isinstance(own, int) and own > 0 else int(batch_size)


def _is_loader(x: Any) -> bool:
    from torch.utils.data import DataLoader

    return isinstance(x, DataLoader)


def threads_for_work(flops: float, *, per_thread: float = FLOPS_PER_THREAD) -> int:
    """Threads the step's work can keep busy: one per ``per_thread`` FLOPs, at least one."""
    return max(1, int(flops // per_thread))


# -- the cores this process may use ----------------------------------------------------------


def _affinity() -> set[int]:
    if hasattr(os, "sched_getaffinity"):
        return set(os.sched_getaffinity(0))
    return set(range(os.cpu_count() or 1))


def _cgroup_quota(root: str | os.PathLike = "/sys/fs/cgroup") -> float | None:
    """The CPU quota in cores (``cpu.max`` of cgroup v2, ``cpu.cfs_*`` of v1), None when unlimited."""
    root = Path(root)
    try:
        text = (root / "cpu.max").read_text().split()
        if text and text[0] != "max":
            return int(text[0]) / int(text[1])
        if text:
            return None
    except (OSError, ValueError, IndexError):
        pass
    try:
        quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        return quota / period if quota > 0 and period > 0 else None
    except (OSError, ValueError):
        return None


def allowed_cores(*, affinity: set[int] | None = None, cgroup_root: str | os.PathLike = "/sys/fs/cgroup",
                  local_processes: int | None = None) -> int:
    """Whole cores this process may use: its affinity, capped by the cgroup quota, divided
    among the ``torchrun`` processes on this machine (``LOCAL_WORLD_SIZE``); at least one."""
    cpus = len(affinity if affinity is not None else _affinity())
    quota = _cgroup_quota(cgroup_root)
    cores = min(cpus, math.floor(quota)) if quota is not None else cpus
    if local_processes is None:
        try:
            local_processes = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
        except ValueError:
            local_processes = 1
    return max(1, cores // max(1, local_processes))


def running_elsewhere(stat: str = "/proc/stat", tasks: str = "/proc/self/task", *, settle: float = SETTLE_MAX,
                      gap: float = 0.001, clock: Callable[[], float] = time.perf_counter,
                      sleep: Callable[[float], None] = time.sleep) -> float:
    """Tasks of other processes running or ready to run (no waiting): the ``procs_running``
    line of ``/proc/stat``, less this process's threads in state R. It counts the whole
    machine, not only this process's CPUs; the timing then tells what it costs. 0 where there
    is no ``/proc``.

    Just after parallel work the intra-op pool's threads spin for a few milliseconds before
    they sleep, and on a 2-core machine a kernel task woken meanwhile is counted as running
    while it only waits for them: on a quiet machine, readings taken just after a timing at
    two threads said a core was busy for 3-4 ms, in 4 fits of 20. So a reading above 0 taken
    while another thread of this process is running is taken again every ``gap`` seconds,
    until no other thread of this process runs or ``settle`` seconds have passed. This
    process's threads are counted just before and just after ``procs_running`` is read (the
    larger count is taken, for a thread that fell asleep between).
    """
    start = clock()
    try:
        while True:
            before = _mine_running(tasks)
            with open(stat, encoding="ascii") as f:
                running = next((int(line.split()[1]) for line in f if line.startswith("procs_running ")), 0)
            mine = max(before, _mine_running(tasks))
            if running <= mine or mine <= 1 or clock() - start >= settle:
                return float(max(0, running - mine))
            sleep(gap)
    except (OSError, ValueError, IndexError):
        return 0.0


def _mine_running(tasks: str) -> int:
    """This process's threads in state R (running or ready)."""
    mine = 0
    for tid in os.listdir(tasks):
        try:
            with open(os.path.join(tasks, tid, "stat"), encoding="ascii", errors="replace") as f:
                mine += f.read().rsplit(")", 1)[1].split()[0] == "R"
        except (OSError, IndexError):
            continue  # a thread that ended meanwhile
    return mine


# -- the user's count ------------------------------------------------------------------------


def _physical_cores(cpus: set[int]) -> int | None:
    seen = set()
    for cpu in cpus:
        base = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        try:
            seen.add(((base / "physical_package_id").read_text().strip(), (base / "core_id").read_text().strip()))
        except OSError:
            return None
    return len(seen) or None


def _torch_defaults(cpus: set[int]) -> set[int]:
    """Counts torch starts with when nobody chose one: the CPUs it may run on, or their physical cores."""
    return {n for n in (len(cpus), _physical_cores(cpus)) if n}


def user_thread_count(*, environ: dict[str, str] | None = None, current: int | None = None,
                      defaults: set[int] | None = None) -> tuple[int, str] | None:
    """The count the user set and where (``OMP_NUM_THREADS``, ``MKL_NUM_THREADS``,
    ``torch.set_num_threads``), or None when torch runs with its own default.

    A ``torch.set_num_threads(n)`` call is seen only when ``n`` differs from torch's default;
    to insist on the default count, pass ``threads=`` to ``fit``.
    """
    environ = os.environ if environ is None else environ
    current = torch.get_num_threads() if current is None else current
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        value = environ.get(var, "").strip()
        if value.isdigit() and int(value) > 0:
            return current, var  # torch read it at start; a later set_num_threads shows in current
    defaults = _torch_defaults(_affinity()) if defaults is None else defaults
    if current not in defaults:
        return current, "torch.set_num_threads"
    return None


# -- the decision ----------------------------------------------------------------------------


def decide_threads(flops: float, *, requested: int | None, user: tuple[int, str] | None, cores: int,
                   cpus: int | None = None, busy: Callable[[], float] | float = 0.0,
                   per_thread: float = FLOPS_PER_THREAD) -> ThreadChoice:
    """The thread count for a step of ``flops`` work.

    Args:
        requested: ``fit(threads=...)``; wins over everything.
        user: ``user_thread_count()``; wins over the automatic choice.
        cores: ``allowed_cores()``.
        cpus: the CPUs this process may run on (``cores`` when None); more than ``cores``
            under a cgroup quota, where other processes' load on the spare CPUs costs nothing.
        busy: cores other processes keep busy on those CPUs (a number, or a function called
            only when more than one thread is in question, so that a small step never waits
            for the sample).
    """
    if requested is not None:
        return ThreadChoice(requested, "threads=")
    if user is not None:
        return ThreadChoice(user[0], user[1])
    wanted = min(threads_for_work(flops, per_thread=per_thread), cores)
    if wanted <= 1:
        return ThreadChoice(1, "work")
    others = busy() if callable(busy) else float(busy)
    return ThreadChoice(min(wanted, free_cores(cores, cpus, others)), "work")


def settle_seconds(flops: float, steps: int | None) -> float:
    """How long ``running_elsewhere`` may wait for this process's own spinning threads: at most
    ``SETTLE_MAX``, and no more than ``TIMING_SHARE`` of the least time a fit of ``steps`` steps
    of ``flops`` each can take (at ``PEAK_FLOPS``)."""
    if steps is None:
        return SETTLE_MAX
    return min(SETTLE_MAX, TIMING_SHARE * steps * flops / PEAK_FLOPS)


def free_cores(cores: int, cpus: int | None, busy: float) -> int:
    """Of ``cores``, those that ``busy`` cores of other processes' work on ``cpus`` CPUs leave; at least one."""
    return max(1, math.floor(min(cores, (cpus or cores) - busy) + 0.5))  # half a busy core rounds to free


def check_threads(value: Any) -> int | None:
    """``threads`` as ``fit`` takes it: None (automatic) or a positive integer."""
    return check_optional_positive_int("threads", value, hint=" (None chooses the count from the work)")


def thread_candidates(flops: float, cores: int, first: int) -> tuple[int, ...]:
    """Counts worth timing: 1, 2, 4, ... up to what the work could keep busy (at least 2) on
    ``cores``, that count itself, and ``first`` (the count from the work and the load)."""
    top = min(cores, max(2, threads_for_work(flops)))
    counts = {first, top}
    n = 1
    while n < top:
        counts.add(n)
        n *= 2
    return tuple(sorted(c for c in counts if 1 <= c <= cores))


def pick_threads(times: Mapping[int, float], *, prefer: float = PREFER_FEWER) -> int:
    """The fewest threads whose time is within ``prefer`` of the fastest count's."""
    best = min(times.values())
    return min(n for n, t in times.items() if t <= prefer * best)


def choose_threads(flops: float, threads: int | None, device: torch.device, *,
                   shapes: tuple[tuple[int, int], ...] = (), rows: int = 0, dtype: torch.dtype = torch.float32,
                   steps: int | None = None, time_at: Callable[[int], float] | None = None,
                   cache: MeasuredCache = THREAD_TIMES, clock: Callable[[], float] = time.perf_counter,
                   ) -> ThreadChoice | None:
    """What ``fit`` calls: the count for training on ``device`` (None off the CPU: nothing to set).

    ``shapes`` and ``rows`` (``measure.linear_shapes`` of the model, the step's rows) let it
    time the step when more than one count is possible, within ``TIMING_SHARE`` of the fit's
    ``steps``; ``time_at(n)`` (seconds of a step at ``n`` threads) and ``clock`` replace that
    timing, in tests. Without shapes or ``time_at``, or when the fit is too short to pay for
    one round of timing, the count from the work and the load stands.
    """
    threads = check_threads(threads)
    if device.type != "cpu":
        return None if threads is None else ThreadChoice(threads, "threads=")
    cpus = _affinity()
    cores = allowed_cores(affinity=cpus)
    sampled: list[float] = []

    def elsewhere() -> float:  # read once, and only when more than one thread is in question
        if not sampled:
            sampled.append(running_elsewhere(settle=settle_seconds(flops, steps)))
        return sampled[0]

    first = decide_threads(flops, requested=threads, user=user_thread_count(), cores=cores, cpus=len(cpus),
                           busy=elsewhere)
    if first.reason != "work" or flops < MEASURE_MIN_FLOPS or not (shapes or time_at):
        return first  # the user's count, or a step one thread serves
    free = free_cores(cores, len(cpus), elsewhere())
    if free < 2:
        # No second core free at this instant: there, two threads wait for each other at every
        # product, and timing them alone can take longer than a short fit (0.9 s for one step's products at load 9 on 2 cores).
        return first
    key, stamp = (tuple(shapes), int(rows), str(dtype), cores, len(cpus)), min(cores, round(elsewhere()))
    hit = cache.get(key, stamp)
    if hit is not None:
        return ThreadChoice(hit[0], "measured", times=hit[1])  # type: ignore[index]
    candidates = thread_candidates(flops, free, first.threads)
    if steps is not None and TIMING_SHARE * steps < 1 + len(candidates):
        # A warm-up and one round cost at least one step's products per candidate and one more:
        # more than TIMING_SHARE of a fit this short, whatever a step takes, so building the
        # timer (10 ms for 64-256-256-10 at 1,024 rows) would be spent for nothing.
        return first
    if time_at is None:
        timer = step_timer(tuple(shapes), int(rows), device)
        time_at = lambda n: timer(dtype)  # noqa: E731  (run at the count set just before)
    previous = torch.get_num_threads()

    def at(n: int) -> float:
        if torch.get_num_threads() != n:
            torch.set_num_threads(n)
        return time_at(n)

    budget = None if steps is None else (lambda step: TIMING_SHARE * steps * step)
    try:
        times = median_times(candidates, at, budget=budget, clock=clock)
    finally:
        if torch.get_num_threads() != previous:
            torch.set_num_threads(previous)
    if not times:
        return first  # too short a fit to time
    chosen = pick_threads(times)
    cache.put(key, (chosen, times), stamp)
    return ThreadChoice(chosen, "measured", times=times)


@contextlib.contextmanager
def use_threads(choice: ThreadChoice | None) -> Iterator[ThreadChoice | None]:
    """Run the block with ``choice.threads`` intra-op threads; put the previous count back after
    (also when something inside the block changed it)."""
    if choice is None:
        yield None
        return
    previous = torch.get_num_threads()
    if choice.threads != previous:
        torch.set_num_threads(choice.threads)
    try:
        yield choice
    finally:
        if torch.get_num_threads() != previous:
            torch.set_num_threads(previous)
