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
  shared by the ``torchrun`` processes on this machine), less the cores other processes keep
  busy. That load is looked at only when more than one thread is in question, in two steps
  that cost training nothing: training starts on the count that the tasks running elsewhere
  at that instant leave free (``procs_running`` in ``/proc/stat``, less this process's own
  running threads), while a background thread (``BusyLook``) samples the busy ticks of this
  process's CPUs over 50 ms, less this process's own CPU time; after the first step that ends
  once the sample is in, the loop switches to the count it gives, once. (A look that made
  training wait 30 ms cost a one-epoch fit of 50 ms a third of its time.)

``fit`` sets the count for the duration of training and puts the previous one back after
(``use_threads``). The decision itself (``decide_threads``) is a pure function, so that it
can be checked without timing anything.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from ..core.checks import as_integer
from ..core.errors import UsageError

__all__ = [
    "FLOPS_PER_THREAD", "ThreadChoice", "step_flops", "rows_per_step", "threads_for_work", "allowed_cores",
    "busy_cores", "running_elsewhere", "BusyLook", "user_thread_count", "decide_threads", "check_threads",
    "choose_threads", "use_threads",
]

LOOK_SECONDS = 0.05  # the background look's window: 5 ticks of /proc/stat on each CPU

# Work (floating-point operations of one step, forward and backward) that keeps one more
# thread busy enough to pay for waking it and for the waits at every operator. On a quiet
# 2-core machine a 14 MFLOP step (32-256-256-1, batch 32) still ran 2-12% faster on two
# threads than on one, so a second thread comes at 10 MFLOP; a 2-8-1 step (under 1 kFLOP)
# gains nothing from it (docs/benchmarks.md, "Threads"). Under load the free cores decide.
FLOPS_PER_THREAD = 5e6


@dataclass(frozen=True)
class ThreadChoice:
    """The intra-op thread count for training and why (recorded in ``history.info``)."""

    threads: int
    reason: str  # "threads=", "OMP_NUM_THREADS", "torch.set_num_threads", "work" or "device"
    look: "BusyLook | None" = field(default=None, compare=False)  # a refinement under way (``BusyLook``)


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


def _cpu_times(path: str = "/proc/stat") -> dict[int, tuple[int, int]]:
    """{cpu: (busy ticks, all ticks)} from ``/proc/stat``; empty where there is none."""
    out = {}
    try:
        with open(path, encoding="ascii") as f:
            for line in f:
                name, *fields = line.split()
                if not name.startswith("cpu") or name == "cpu":
                    continue
                ticks = [int(v) for v in fields[:8]]  # user nice system idle iowait irq softirq steal
                out[int(name[3:])] = (sum(ticks) - ticks[3] - ticks[4], sum(ticks))
    except (OSError, ValueError, IndexError):
        return {}
    return out


def busy_cores(cpus: set[int] | None = None, *, window: float = 0.03,
               read: Callable[[], dict[int, tuple[int, int]]] = _cpu_times,
               sleep: Callable[[float], None] = time.sleep,
               own: Callable[[], float] | None = None) -> float:
    """Cores that other processes kept busy on ``cpus`` during ``window`` seconds.

    ``/proc/stat`` counts in ticks of 10 ms, so 30 ms gives 3 ticks a CPU: enough to tell a
    core that another process keeps busy from an idle one, which is all the decision needs.
    ``own`` (``time.process_time``) is this process's CPU time: what it used meanwhile (when
    it trains while another thread looks) is taken off.
    """
    cpus = cpus if cpus is not None else _affinity()
    before = read()
    if not before:
        return 0.0
    own_before = own() if own is not None else 0.0
    sleep(window)
    after = read()
    own_used = (own() - own_before) / window if own is not None else 0.0
    busy = total = 0
    for cpu in cpus:
        if cpu in before and cpu in after:
            busy += after[cpu][0] - before[cpu][0]
            total += after[cpu][1] - before[cpu][1]
    return 0.0 if total <= 0 else max(0.0, len(cpus) * busy / total - own_used)


def running_elsewhere(stat: str = "/proc/stat", tasks: str = "/proc/self/task") -> float:
    """Tasks of other processes running or ready to run at this instant (no waiting): the
    ``procs_running`` line of ``/proc/stat``, less this process's threads in state R. It counts
    the whole machine, not only this process's CPUs; ``BusyLook`` then measures those. 0 where
    there is no ``/proc``."""
    try:
        with open(stat, encoding="ascii") as f:
            running = next((int(line.split()[1]) for line in f if line.startswith("procs_running ")), 0)
        mine = 0
        for tid in os.listdir(tasks):
            try:
                with open(os.path.join(tasks, tid, "stat"), encoding="ascii", errors="replace") as f:
                    mine += f.read().rsplit(")", 1)[1].split()[0] == "R"
            except (OSError, IndexError):
                continue  # a thread that ended meanwhile
    except (OSError, ValueError, IndexError):
        return 0.0
    return float(max(0, running - mine))


class BusyLook:
    """The load of other processes, sampled in a background thread while training runs.

    ``sample()`` gives the cores others keep busy (``busy_cores`` over ``LOOK_SECONDS``, less
    this process's own CPU time) and ``decide(busy)`` the count for that load. The training
    loop calls ``ready()`` after each step: None until the look is done, then the choice.
    """

    def __init__(self, sample: Callable[[], float], decide: Callable[[float], ThreadChoice]) -> None:
        self._sample, self._decide = sample, decide
        self._choice: ThreadChoice | None = None
        self._done = threading.Event()
        threading.Thread(target=self._run, name="torchann-load-look", daemon=True).start()

    def _run(self) -> None:
        try:
            self._choice = self._decide(self._sample())
        finally:
            self._done.set()  # a failed look leaves the first count in place

    def ready(self) -> ThreadChoice | None:
        return self._choice if self._done.is_set() else None


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
    free = max(1, math.floor(min(cores, (cpus or cores) - others) + 0.5))  # half a busy core rounds to free
    return ThreadChoice(min(wanted, free), "work")


def check_threads(value: Any) -> int | None:
    """``threads`` as ``fit`` takes it: None (automatic) or a positive integer."""
    if value is None:
        return None
    number = as_integer(value)
    if number is None or number < 1:
        raise UsageError(f"threads must be a positive integer or None (chosen from the work), got {value!r}")
    return number


def choose_threads(flops: float, threads: int | None, device: torch.device) -> ThreadChoice | None:
    """What ``fit`` calls: the count for training on ``device`` (None off the CPU: nothing to set)."""
    threads = check_threads(threads)
    if device.type != "cpu":
        return None if threads is None else ThreadChoice(threads, "threads=")
    cpus = _affinity()
    cores = allowed_cores(affinity=cpus)
    first = decide_threads(flops, requested=threads, user=user_thread_count(), cores=cores, cpus=len(cpus),
                           busy=running_elsewhere)
    if first.reason != "work" or min(threads_for_work(flops), cores) <= 1:
        return first  # the user's count, or one thread: no load to look at

    def decide(busy: float) -> ThreadChoice:
        return decide_threads(flops, requested=None, user=None, cores=cores, cpus=len(cpus), busy=busy)

    look = BusyLook(lambda: busy_cores(cpus, window=LOOK_SECONDS, own=time.process_time), decide)
    return ThreadChoice(first.threads, first.reason, look=look)


@contextlib.contextmanager
def use_threads(choice: ThreadChoice | None) -> Iterator[ThreadChoice | None]:
    """Run the block with ``choice.threads`` intra-op threads; put the previous count back after
    (also the count a ``BusyLook`` switched to inside the block)."""
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
