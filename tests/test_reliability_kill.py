"""Never lose work: SIGKILL a training process at random moments, then resume.

A process is forked (cheap: torch is already imported), trains with a checkpoint after
every epoch, and is killed with SIGKILL after a random delay, or the moment a checkpoint
write is seen in progress. After every kill ``latest.json`` must name a checkpoint that
loads and is no older than the one seen before; the next process resumes from it. The
chain's final weights must equal, bit for bit, those of a run that was never interrupted.

Checkpoints are written every epoch on a tiny data set, so writing them is most of the
running time and many kills land inside a write.
"""

from __future__ import annotations

import hashlib
import json
import os
import random

import signal
import sys
import time
import traceback
from pathlib import Path

import pytest
import torch

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not hasattr(os, "fork") or sys.platform == "darwin", reason="needs os.fork on Linux"),
]

EPOCHS = 60
KILLS = 24
SEED = 7


class _Paced:
    """Sleeps a little after each step, so that an epoch outlasts the kill delays however fast
    the machine or the loop is; the arithmetic of training is untouched."""

    def on_train_start(self, **_):
        pass

    def on_step(self, **_):
        time.sleep(0.002)

    def on_epoch_end(self, record):
        pass


def _train(ckdir: Path, result: Path) -> None:
    """What each forked process runs: resume if a checkpoint exists, train, write the result."""
    import torchann
    from safetensors.torch import save_file
    from torchann.training.arguments import Checkpointing
    from torchann.training.fitting import fit

    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(32, 4, generator=gen)
    y = x.sum(1, keepdim=True) + 0.1 * torch.randn(32, 1, generator=gen)
    torch.manual_seed(123)
    model = torchann.mlp(4, [64, 64], 1, dropout=0.1)
    resume = ckdir if (ckdir / "latest.json").exists() else None
    history = fit(model, x, y, epochs=EPOCHS, batch_size=8, lr=1e-3, seed=SEED, device="cpu",
                  checkpoint=Checkpointing(ckdir, every=1), resume=resume, progress=_Paced(), optimizer="adam", early_stopping=None)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(result))
    (result.with_suffix(".json")).write_text(json.dumps(history.losses))


def _fork(ckdir: Path, result: Path, log: Path) -> int:
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 0
        try:
            _train(ckdir, result)
        except BaseException:  # noqa: BLE001 - report anything to the parent through the log
            log.write_text(traceback.format_exc())
            code = 1
        finally:
            os._exit(code)
    return pid


_REAPED: dict[int, int] = {}  # exit statuses of children that ended before they could be killed


def _wait(pid: int, timeout: float = 60.0) -> int:
    if pid in _REAPED:
        return _REAPED.pop(pid)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        time.sleep(0.002)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    raise AssertionError("a training process did not finish in time")


def _write_in_progress(ckdir: Path) -> bool:
    try:
        return any(name.endswith(".tmp") for name in os.listdir(ckdir))
    except FileNotFoundError:
        return False


def _kill_when(pid: int, ckdir: Path, rng: random.Random, mode: str) -> bool:
    """Kill ``pid`` after a random delay, or as soon as a checkpoint write shows; False if it ended first."""
    deadline = time.monotonic() + (rng.uniform(0.002, 0.04) if mode == "delay" else 5.0)
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            _REAPED[pid] = status
            return False
        if mode == "write" and _write_in_progress(ckdir):
            time.sleep(rng.uniform(0, 0.004))
            break
        time.sleep(0.0005 if mode == "write" else 0.001)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return True


def run_kill_chain(tmp: Path, *, kills: int = KILLS, seed: int = 0) -> dict:
    """Train to the end through ``kills`` SIGKILLs; return what was observed."""
    from torchann.training.checkpoint import latest_checkpoint, load_state

    rng = random.Random(seed)
    ckdir, result, log = tmp / "ck", tmp / "chain.safetensors", tmp / "child.log"
    seen_epoch, survived, during_write, lost = 0, 0, 0, 0
    for i in range(kills + 50):
        pid = _fork(ckdir, result, log)
        if survived < kills and _kill_when(pid, ckdir, rng, "write" if i % 2 else "delay"):
            survived += 1
            during_write += _write_in_progress(ckdir)
            if latest_checkpoint(ckdir) is not None:
                state = load_state(ckdir)  # must load: JSON + safetensors, complete
                if state["epoch"] < seen_epoch:
                    lost += 1
                seen_epoch = max(seen_epoch, state["epoch"])
            continue
        status = _wait(pid)
        assert status == 0, log.read_text() if log.exists() else f"exit status {status}"
        break
    return {"kills": survived, "kills_during_write": during_write, "checkpoints_lost": lost,
            "result": result, "losses": json.loads(result.with_suffix(".json").read_text())}


def test_sigkill_at_random_moments_loses_nothing_and_resumes_bit_identically(tmp_path):
    from safetensors.torch import load_file

    # The uninterrupted run, in a forked process like the others.
    ref_dir = tmp_path / "ref"
    ref_dir.mkdir()
    pid = _fork(ref_dir / "ck", ref_dir / "w.safetensors", ref_dir / "log")
    assert _wait(pid) == 0, (ref_dir / "log").read_text() if (ref_dir / "log").exists() else ""
    reference = load_file(str(ref_dir / "w.safetensors"))
    ref_losses = json.loads((ref_dir / "w.json").read_text())

    chain_dir = tmp_path / "chain"
    chain_dir.mkdir()
    seen = run_kill_chain(chain_dir)
    print(f"\nkills survived: {seen['kills']}, during a checkpoint write: {seen['kills_during_write']}, "
          f"checkpoints lost: {seen['checkpoints_lost']}")

    assert seen["kills"] == KILLS
    # How many kills landed inside a checkpoint write is luck; the test below cuts every write
    # at each of its file operations instead, and benchmarks/kill_stress.py counts random kills.
    assert seen["checkpoints_lost"] == 0
    final = load_file(str(seen["result"]))
    assert final.keys() == reference.keys()
    for key in reference:
        assert torch.equal(final[key], reference[key]), key
    assert seen["losses"] == ref_losses and len(ref_losses) == EPOCHS
    # Nothing but the one checkpoint remains: partial writes were cleaned up.
    names = sorted(os.listdir(chain_dir / "ck"))
    assert len(names) == 2 and names[0].startswith(f"epoch-{EPOCHS:06d}-step-000000") and names[1] == "latest.json", names


# -- a save over an existing model directory, killed at each of its file operations ----------

_FILE_OPS = ("replace", "rename", "link", "unlink", "rmdir")  # the operations that change what a reader finds


def _save_events(save) -> list[tuple[str, str]]:
    """The file operations ``save()`` performs, in order, as (operation, file name)."""
    events: list[tuple[str, str]] = []
    real = {op: getattr(os, op) for op in _FILE_OPS}

    def recorder(op):
        def wrapped(*args, **kwargs):
            events.append((op, Path(args[-1] if op != "unlink" else args[0]).name))
            return real[op](*args, **kwargs)
        return wrapped

    try:
        for op in _FILE_OPS:
            setattr(os, op, recorder(op))
        save()
    finally:
        for op in _FILE_OPS:
            setattr(os, op, real[op])
    return events


def _save_killed_at(save, k: int, when: str) -> int:
    """Fork a child that runs ``save()`` and SIGKILLs itself at file operation ``k``, before or
    after it takes effect; returns the child's wait status."""
    pid = os.fork()
    if pid == 0:
        try:
            count = [0]
            real = {op: getattr(os, op) for op in _FILE_OPS}

            def killer(op):
                def wrapped(*args, **kwargs):
                    count[0] += 1
                    if count[0] - 1 == k and when == "before":
                        os.kill(os.getpid(), signal.SIGKILL)
                    try:
                        return real[op](*args, **kwargs)  # may raise: unlink(missing_ok=True) of nothing
                    finally:
                        if count[0] - 1 == k and when == "after":
                            os.kill(os.getpid(), signal.SIGKILL)
                return wrapped

            for op in _FILE_OPS:
                setattr(os, op, killer(op))
            save()
        finally:
            os._exit(0)  # reached only if the kill point was never hit
    _, status = os.waitpid(pid, 0)
    return status


def test_sigkill_at_every_step_of_saving_over_a_model_directory_leaves_the_old_or_the_new_model(tmp_path):
    import torchann
    from torchann.model import directory as modeldir

    torch.manual_seed(0)
    first = torchann.mlp(2, [64], 1)
    torch.manual_seed(1)
    second = torchann.mlp(2, [64], 1)
    x = torch.randn(3, 2)
    old, new = first(x), second(x)
    files = {"history.jsonl": "{}\n", "loss.png": b"png"}
    probe = tmp_path / "probe"
    modeldir.save(first, probe)
    events = _save_events(lambda: modeldir.save(second, probe, files=files))
    # keep the old weights aside, then weights, history, plot and spec.json, then drop the aside copy
    assert [e[0] for e in events] == ["unlink", "link", "replace", "replace", "replace", "replace", "unlink"], events
    assert events[2][1] == "weights.safetensors" and events[5][1] == "spec.json", events
    outcomes = []
    for k in range(len(events)):
        for when in ("before", "after"):
            target = tmp_path / f"run-{k}-{when}"
            modeldir.save(first, target)
            status = _save_killed_at(lambda: modeldir.save(second, target, files=files), k, when)
            assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
            vouched = json.loads((target / "spec.json").read_text())["weights"]["sha256"]
            torn = hashlib.sha256((target / "weights.safetensors").read_bytes()).hexdigest() != vouched
            out = modeldir.load(target)(x)  # must load: a torn pair falls back to the kept weights
            got = "old" if torch.equal(out, old) else "new" if torch.equal(out, new) else "neither"
            outcomes.append((events[k][1], when, torn, got))
            leftovers = [n for n in os.listdir(target) if n.endswith(".tmp")]
            assert not leftovers or when == "before", (k, when, leftovers)
    print("\n" + "\n".join(f"killed {w} {op:<22} torn={t!s:<5} loaded the {g} model" for op, w, t, g in outcomes))
    assert all(got in ("old", "new") for *_, got in outcomes)
    # Killed between the new weights and the new spec.json: torn on disk, and the old model loads.
    between = [o for o in outcomes if o[2]]
    assert between and all(got == "old" for *_, got in between)
    assert outcomes[-1][3] == "new" and outcomes[0][3] == "old"


def test_sigkill_at_every_step_of_a_checkpoint_write_keeps_a_loadable_checkpoint(tmp_path):
    from torchann.training import checkpoint as ckpt

    def state(epoch):
        return {"n": epoch, "w": torch.full((64,), float(epoch))}

    probe = tmp_path / "probe"
    ckpt.save_state(probe, "epoch-000001-step-000000", state(1))
    events = _save_events(lambda: ckpt.save_state(probe, "epoch-000002-step-000000", state(2)))
    assert ("rename", "epoch-000002-step-000000") in events and ("replace", "latest.json") in events, events
    seen = []
    for k in range(len(events)):
        for when in ("before", "after"):
            folder = tmp_path / f"ck-{k}-{when}"
            ckpt.save_state(folder, "epoch-000001-step-000000", state(1))
            status = _save_killed_at(lambda: ckpt.save_state(folder, "epoch-000002-step-000000", state(2)), k, when)
            assert os.WIFSIGNALED(status), (k, when)
            loaded = ckpt.load_state(folder)  # latest.json names a complete checkpoint, old or new
            assert loaded["n"] in (1, 2) and torch.equal(loaded["w"], torch.full((64,), float(loaded["n"])))
            seen.append(loaded["n"])
            ckpt.save_state(folder, "epoch-000003-step-000000", state(3))  # the next write cleans up
            assert sorted(os.listdir(folder)) == ["epoch-000003-step-000000", "latest.json"], (k, when, events[k], os.listdir(folder))
    print(f"\ncheckpoint writes killed at {len(seen)} points: old checkpoint loaded {seen.count(1)} times, "
          f"new {seen.count(2)} times")
    assert seen[0] == 1 and seen[-1] == 2
