"""Data-parallel training under ``torchrun``: who this process is and how ranks agree.

``fit`` asks ``current_world()`` once. Alone, every ``World`` method is a no-op; inside an
initialised process group the model is wrapped in ``DistributedDataParallel``, epoch sums are
all-reduced and the stopping decision is rank 0's, so every rank reports and decides the same.

Three ways in, all through PyTorch's own machinery:

* ``torchrun --nproc-per-node N -m torchann train ...``: the command body runs inside
  ``session()``, which reads ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and
  ``MASTER_PORT`` and sets up the process group (gloo on CPU, NCCL for CUDA tensors).
* ``torchann train ... --nproc N``: ``launch_local`` starts ``torch.distributed.run`` with
  ``--standalone`` (a free local port) and waits for it.
* The Python API: call ``fit`` inside ``with session():`` (or inside a process group you
  initialised yourself; ``session`` then leaves it alone).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import timedelta
from typing import Iterator, Sequence

import torch
from torch import nn

from ..core.errors import UsageError

__all__ = [
    "World",
    "current_world",
    "launched_by_torchrun",
    "env_world",
    "session",
    "should_launch",
    "launch_local",
    "strip_nproc",
    "launcher_command",
]

BARRIER_SECONDS = 10  # how long a finished rank waits for its peers before leaving the group

# Set by torchrun for every worker; RANK and WORLD_SIZE are what marks a worker.
_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class World:
    """This process's place in a data-parallel job (``rank`` 0 of ``size`` 1 when alone)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0  # index on this machine: the GPU this process drives

    @property
    def is_distributed(self) -> bool:
        return self.size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that prints and writes files."""
        return self.rank == 0

    def wrap(self, model: nn.Module, device: torch.device) -> nn.Module:
        """``DistributedDataParallel(model)``; it copies rank 0's parameters to every rank."""
        if not self.is_distributed:
            return model
        from torch.nn.parallel import DistributedDataParallel

        ids = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """The sum of ``tensor`` over all ranks (a new tensor; the input is untouched)."""
        if not self.is_distributed:
            return tensor
        import torch.distributed as dist

        out = tensor.clone()
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out

    def broadcast_int(self, value: int, *, device: torch.device) -> int:
        """Rank 0's ``value`` on every rank (e.g. a seed drawn at random)."""
        if not self.is_distributed:
            return value
        import torch.distributed as dist

        t = torch.tensor([value], dtype=torch.int64, device=_comm_device(device))
        dist.broadcast(t, src=0)
        return int(t.item())

    def agree(self, flag: bool, *, device: torch.device) -> bool:
        """Rank 0's decision (stop, skip, ...) on every rank, so no rank waits alone."""
        return bool(self.broadcast_int(int(flag), device=device))

    def barrier(self) -> None:
        """Wait until every rank gets here (e.g. until rank 0 has written a file others read)."""
        if not self.is_distributed:
            return
        import torch.distributed as dist

        dist.barrier()

    def sync_buffers(self, model: nn.Module) -> None:
        """Copy rank 0's buffers (BatchNorm running statistics) to every rank.

        DDP broadcasts buffers before each training forward, so after the last step of an
        epoch each rank's statistics still hold its own shard's update. Syncing them makes
        evaluation and the saved model the same on every rank.
        """
        if not self.is_distributed:
            return
        import torch.distributed as dist

        for buf in model.buffers():
            if buf.is_floating_point() or buf.dtype in (torch.int64, torch.int32):
                dist.broadcast(buf.data, src=0)

    def shard(self, tensor: torch.Tensor) -> torch.Tensor:
        """This rank's contiguous share of ``tensor``'s rows (sizes differ by at most one)."""
        if not self.is_distributed:
            return tensor
        return torch.tensor_split(tensor, self.size)[self.rank]


def _comm_device(device: torch.device) -> torch.device | str:
    # NCCL moves CUDA tensors only; gloo moves CPU tensors.
    return device if device.type == "cuda" else "cpu"


def current_world() -> World:
    """The process group set up by the caller (or by ``session()``)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        local = _env_int("LOCAL_RANK", default=0)
        return World(rank=dist.get_rank(), size=dist.get_world_size(), local_rank=local)
    return World()


def launched_by_torchrun() -> bool:
    """True in a worker started by ``torchrun`` (or anything that sets RANK and WORLD_SIZE)."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def _env_int(name: str, *, default: int | None = None) -> int:
    text = os.environ.get(name)
    if text is None:
        if default is None:
            raise UsageError(f"environment variable {name} is not set; start the job with torchrun, which sets it")
        return default
    try:
        return int(text)
    except ValueError:
        raise UsageError(f"environment variable {name}={text!r} is not an integer; start the job with torchrun") from None


def env_world() -> World:
    """The ``World`` that torchrun's environment describes (checked, nothing initialised)."""
    if not launched_by_torchrun():
        return World()
    rank, size = _env_int("RANK"), _env_int("WORLD_SIZE")
    local = _env_int("LOCAL_RANK", default=0)
    if size < 1 or not 0 <= rank < size:
        raise UsageError(f"RANK={rank} and WORLD_SIZE={size} do not fit (need 0 <= RANK < WORLD_SIZE); start with torchrun")
    missing = [name for name in ("MASTER_ADDR", "MASTER_PORT") if name not in os.environ]
    if missing:
        raise UsageError(
            f"RANK and WORLD_SIZE are set but {' and '.join(missing)} not; start the job with torchrun "
            "(it sets all of them) or set them to rank 0's address and a free port"
        )
    return World(rank=rank, size=size, local_rank=local)


def _wants_cuda(device: str | torch.device | None) -> bool:
    text = "auto" if device is None else str(device)
    if text == "auto":
        return torch.cuda.is_available()
    return text.startswith("cuda")


@contextlib.contextmanager
def session(
    *,
    device: str | torch.device | None = "auto",
    backend: str | None = None,
    timeout: float | None = None,
) -> Iterator[World]:
    """Join the torchrun job this process belongs to, and leave it on exit, also on error.

    Outside torchrun (no ``RANK``/``WORLD_SIZE``), or when a process group is already
    initialised, it does nothing and yields ``current_world()``.

    Args:
        device: the training device as ``fit`` will get it. For CUDA the process drives GPU
            ``LOCAL_RANK`` (``torch.cuda.set_device``), and the group uses NCCL for CUDA
            tensors and gloo for CPU tensors; otherwise gloo only.
        backend: a ``torch.distributed`` backend string, to override that choice.
        timeout: seconds a collective may wait for the other ranks (PyTorch's default if None).

    Example:
        >>> with torchann.distributed.session() as world:
        ...     history = torchann.fit(model, x, y, batch_size=64, seed=0)
        ...     if world.is_main:
        ...         torchann.save(model, "runs/ddp")
    """
    import torch.distributed as dist

    if not launched_by_torchrun() or (dist.is_available() and dist.is_initialized()):
        yield current_world()
        return
    if not dist.is_available():
        raise UsageError("this PyTorch build has no torch.distributed; install a build with distributed support")
    world = env_world()
    cuda = _wants_cuda(device)
    if cuda:
        if str(device).startswith("cuda:") and _env_int("LOCAL_WORLD_SIZE", default=1) > 1:
            raise UsageError(
                f"device {device!r} would put every process on the same GPU; under torchrun give --device cuda "
                "(or auto): each process then drives GPU LOCAL_RANK"
            )
        if world.local_rank >= torch.cuda.device_count():
            raise UsageError(
                f"LOCAL_RANK {world.local_rank} but this machine has {torch.cuda.device_count()} CUDA device(s); "
                "start at most one process per GPU (--nproc-per-node)"
            )
        torch.cuda.set_device(world.local_rank)
    if backend is None:
        backend = "cpu:gloo,cuda:nccl" if cuda else "gloo"
    options = {} if timeout is None else {"timeout": timedelta(seconds=timeout)}
    dist.init_process_group(backend=backend, init_method="env://", rank=world.rank, world_size=world.size, **options)
    failed = False
    try:
        yield current_world()
    except BaseException:
        failed = True
        raise
    finally:
        _teardown(dist, failed=failed)


def _teardown(dist, *, failed: bool) -> None:
    """Leave the group. After an error, abort NCCL communicators instead of waiting on peers."""
    if not dist.is_initialized():
        return
    if failed and "nccl" in str(dist.get_backend()):
        abort = getattr(dist.distributed_c10d, "_abort_process_group", None)
        if abort is not None:
            with contextlib.suppress(Exception):
                abort()
                return
    if not failed and "gloo" in str(dist.get_backend()):
        # Every rank arrives before any leaves: a rank that tore its group down while a peer still
        # used the store that rank 0 hosts could abort at exit ("terminate called without an
        # active exception", a store thread still joinable). Bounded, so a peer that died cannot
        # hold the others here.
        with contextlib.suppress(Exception):
            dist.monitored_barrier(timeout=timedelta(seconds=BARRIER_SECONDS))
    with contextlib.suppress(Exception):
        dist.destroy_process_group()


# -- starting a local job ---------------------------------------------------------------------


def should_launch(nproc: int | None) -> bool:
    """Whether ``--nproc`` asks this process to start a local job rather than train itself."""
    if nproc is None:
        return False
    if isinstance(nproc, bool) or not isinstance(nproc, int) or nproc < 1:
        raise UsageError(f"--nproc must be a positive integer, got {nproc!r}")
    if launched_by_torchrun():
        local = _env_int("LOCAL_WORLD_SIZE", default=_env_int("WORLD_SIZE"))
        if nproc != local:
            raise UsageError(
                f"--nproc {nproc} given inside a torchrun job of {local} process(es) per machine; "
                "drop --nproc when starting with torchrun"
            )
        return False
    return nproc > 1


def strip_nproc(argv: Sequence[str]) -> list[str]:
    """``argv`` without ``--nproc N`` / ``--nproc=N``, to hand to the workers."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg == "--nproc":
            skip = True
            continue
        if arg.startswith("--nproc="):
            continue
        out.append(arg)
    return out


def launcher_command(nproc: int, argv: Sequence[str], *, module: str | None = "torchann") -> list[str]:
    """The ``python -m torch.distributed.run`` command line that ``launch_local`` runs."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}"]
    if module is not None:
        cmd += ["-m", module]
    return cmd + list(argv)


def launch_local(
    nproc: int,
    argv: Sequence[str],
    *,
    module: str | None = "torchann",
    env: dict[str, str] | None = None,
    timeout: float | None = None,
) -> int:
    """Run ``python -m <module> <argv>`` in ``nproc`` processes on this machine; return the exit code.

    It is ``torchrun --standalone --nproc-per-node nproc -m torchann ...``: torch's own launcher
    picks a free port, starts the workers, stops them all when one fails, and exits non-zero.
    The workers' stdout and stderr go straight to this process's.

    Args:
        nproc: processes to start (one per GPU on a GPU machine).
        argv: the workers' arguments, e.g. ``["train", "data.csv", "--target", "y"]``.
        module: the module the workers run with ``python -m``; None to run ``argv[0]`` as a
            script instead.
        env: extra environment variables for the launcher and the workers.
        timeout: seconds before the whole job is stopped (exit code 124); None waits.
    """
    if isinstance(nproc, bool) or not isinstance(nproc, int) or nproc < 1:
        raise UsageError(f"nproc must be a positive integer, got {nproc!r}")
    if module is None and not argv:
        raise UsageError("launch_local needs a script path as argv[0] when module is None")
    child_env = dict(os.environ)
    # A launcher inside a worker would join the outer job: drop the outer job's variables.
    for name in (*_ENV, "LOCAL_WORLD_SIZE", "GROUP_RANK", "ROLE_RANK", "TORCHELASTIC_RUN_ID"):
        child_env.pop(name, None)
    child_env.update(env or {})
    proc = subprocess.Popen(launcher_command(nproc, argv, module=module), env=child_env)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.terminate()  # torchrun forwards SIGTERM to its workers
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        return 124
    except KeyboardInterrupt:
        # The terminal sent SIGINT to the whole process group; give torchrun time to stop them.
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        raise
