"""``score_files``: score CSV/Parquet files on a Dask cluster into a folder of Parquet parts.

The client checks everything first (the model, the files and their columns, ``out``), cuts the
input into partitions (``inputs.plan``) and submits one task per partition (``parts.
score_piece``). The parts go into a staging folder beside ``out``; only when every task has
finished is the folder given its final name (an old output there is replaced whole), with a
``_torchann.json`` manifest saying which rows of which file each part holds.

A worker that dies takes its task with it; Dask runs it again on another worker, which writes
the same part again. A task that fails (bad data) fails the job: tasks not yet started skip
their work, the client waits for those running, removes the staging folder and raises the
task's error, which names the file.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from .cluster import ClusterSpec, connect
from .extra import require
from .inputs import DEFAULT_PARTITION_ROWS, Piece, input_files, plan
from .internals import ClusterError, TorchannError, UsageError, atomic_dir, atomic_write_text, file_mode
from .loader import ModelRef
from .parts import ABORT, TEMP_SUFFIX, part_name, score_piece

__all__ = ["score_files", "ScoreResult", "MANIFEST", "FORMAT"]

MANIFEST = "_torchann.json"  # names starting with "_" are not data to Parquet readers (pyarrow, Dask, Spark)
FORMAT = "torchann.scores/1"
_REFUSED_SUFFIXES = (".csv", ".tsv", ".jsonl", ".ndjson", ".json", ".txt")


@dataclass(frozen=True)
class ScoreResult:
    """What a file job wrote.

    Attributes:
        out: the folder of parts.
        rows: rows scored, in all parts.
        parts: one per input partition, ``part-00000.parquet`` first.
        workers: the cluster's workers when the job started.
    """

    out: Path
    rows: int
    parts: int
    workers: int
    files: list[str] = field(default_factory=list)


def score_files(run: str | os.PathLike, data: str | os.PathLike, out: str | os.PathLike, *,
                cluster: str | ClusterSpec | None = None, client: Any = None, keep: Sequence[str] = (),
                proba: bool = False, partition_rows: int = DEFAULT_PARTITION_ROWS) -> ScoreResult:
    """Score the files ``data`` names with the model directory ``run`` into the folder ``out``.

    Args:
        run: a model directory every worker reads at this same path.
        data: a CSV/TSV/Parquet file, a folder of them, or a glob (``"data/*.parquet"``).
        out: the folder to write: new, empty, or an earlier output of this function (replaced).
        cluster: ``"tcp://HOST:PORT"``, ``"local"`` or ``"local:N"``; or pass ``client``.
        client: a ``distributed.Client`` to run on (left open).
        keep: input columns copied first into every part (identifiers).
        proba: add one ``p(<class>)`` column per class (classification).
        partition_rows: Parquet files are cut at row groups into partitions of about this many rows.

    Returns:
        A ``ScoreResult``. Rows keep their order: the parts in name order, each in input order.
    """
    require()
    if (cluster is None) == (client is None):
        raise UsageError("give a cluster address (cluster='tcp://HOST:8786' or 'local:N') or a client, not both")
    from ..api.model import load

    keep = _keep_names(keep)
    model = load(run)
    if proba and model.task != "classification":
        raise UsageError(f"--proba needs a classifier, but {run} predicts {', '.join(model.target_names)} as "
                         f"numbers (regression); leave out --proba")
    ref = ModelRef.of(model.path if model.path is not None else run)
    final = _check_out(Path(out))
    files = input_files(data)
    columns = [*keep, *([] if model.bare else model.feature_names)]
    pieces = plan(files, columns, partition_rows=partition_rows)
    mode = _file_mode()
    with atomic_dir(final) as stage:
        # atomic_dir's folder and files have a plain mkdir's and open's bits; the workers' parts get ``mode``
        if client is not None:
            rows, workers = _run(client, ref, pieces, stage, final, keep, proba, mode)
        else:
            with connect(cluster) as own:
                rows, workers = _run(own, ref, pieces, stage, final, keep, proba, mode)
        _tidy(stage)
        manifest = {"format": FORMAT, "model": ref.path, "model_spec_sha256": ref.checksum, "rows": sum(rows),
                    "parts": [{"file": part_name(i), "source": p.path, "first_row": p.first_row, "rows": n}
                              for i, (p, n) in enumerate(zip(pieces, rows))]}
        atomic_write_text(stage / MANIFEST, json.dumps(manifest, indent=1) + "\n")
    return ScoreResult(final, sum(rows), len(pieces), workers, [str(f) for f in files])


def _run(client: Any, ref: ModelRef, pieces: list[Piece], stage: Path, final: Path, keep: list[str],
         proba: bool, mode: int) -> tuple[list[int], int]:
    """Submit one task per piece; wait for every one; the rows of each, in order."""
    from distributed import as_completed, wait

    workers = len(client.nthreads())
    token = secrets.token_hex(6)
    keys = [f"torchann-score-{token}-{i:05d}" for i in range(len(pieces))]
    futures = [client.submit(score_piece, ref, piece, str(stage), str(final), i, keep=keep, proba=proba,
                             mode=mode, key=key)
               for i, (piece, key) in enumerate(zip(pieces, keys))]
    index = {f.key: i for i, f in enumerate(futures)}
    rows: list[int | None] = [None] * len(futures)
    try:
        for future in as_completed(futures):
            try:
                rows[index[future.key]] = future.result()
            except BaseException as err:
                _abort(stage)
                wait(futures)  # pending tasks see the abort and return; running ones finish first
                raise _job_error(err, pieces[index[future.key]]) from _cause(err)
    except KeyboardInterrupt:
        _abort(stage)
        client.cancel(futures)
        raise
    missing = [pieces[i] for i, n in enumerate(rows) if n is None]
    if missing:  # cannot happen unless the staging folder vanished under the job
        raise ClusterError(f"{missing[0]}: its part was not written (was {stage} removed?); run the job again")
    return [int(n) for n in rows], workers  # type: ignore[arg-type]


def _job_error(err: BaseException, piece: Piece) -> BaseException:
    """The error the job ends with: torchann's own as it came (it names the file), Dask's named."""
    if isinstance(err, TorchannError):
        return err
    try:
        from distributed import KilledWorker
    except ImportError:  # pragma: no cover
        KilledWorker = ()  # noqa: N806
    if isinstance(err, KilledWorker):
        return ClusterError(f"{piece}: every worker that ran it died ({err}); look for 'out of memory' in the "
                            f"workers' logs, or cut the data into smaller partitions (--partition-rows)")
    if isinstance(err, KeyboardInterrupt):
        return err
    reason = str(err).splitlines()[0] if str(err) else ""
    return ClusterError(f"{piece}: the job failed on the cluster ({type(err).__name__}: {reason})")


def _cause(err: BaseException) -> BaseException | None:
    return None if isinstance(err, TorchannError) else err


def _abort(stage: Path) -> None:
    try:
        (stage / ABORT).touch()
    except OSError:
        pass


def _tidy(stage: Path) -> None:
    """Remove what killed workers left: temporary parts, and the abort mark."""
    for path in stage.iterdir():
        if path.name.startswith(".") and (path.name.endswith(TEMP_SUFFIX) or path.name == ABORT):
            path.unlink(missing_ok=True)


def _keep_names(keep: Sequence[str] | str) -> list[str]:
    names = [k.strip() for k in keep.split(",")] if isinstance(keep, str) else [str(k) for k in keep]
    names = [k for k in names if k]
    twice = next((k for k in names if names.count(k) > 1), None)
    if twice is not None:
        raise UsageError(f"--keep lists {twice!r} twice; name each column once")
    return names


def _check_out(out: Path) -> Path:
    """``out`` if a job may write it: new, an empty folder, or an earlier output (replaced whole)."""
    if str(out).strip() in ("", "."):
        raise UsageError("--out needs a new folder for the parts, such as preds/")
    if out.suffix.lower() in _REFUSED_SUFFIXES:
        raise UsageError(f"--out {out}: a cluster job writes a folder of Parquet parts, not one {out.suffix} file; "
                         f"give a folder name such as {out.with_suffix('')}/")
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} exists and is not a folder; choose another --out")
    if out.is_dir():
        entries = [p.name for p in out.iterdir()]
        if entries and MANIFEST not in entries:
            raise UsageError(f"--out {out} is not empty and not an earlier scoring output (it holds "
                             f"{sorted(entries)[0]}); choose a new folder")
        here = Path.cwd().resolve()
        if out.resolve() == here or out.resolve() in here.parents:
            raise UsageError(f"--out {out} is the current folder or one above it; choose a new folder")
    return out


def _file_mode() -> int:
    """``0o666`` less this process's umask: the bits a part and the manifest get (read without
    setting the umask, which would race with other threads: ``core.files.current_umask``)."""
    return file_mode()
