"""Scoring on Dask (``torchann.dask``, ``torchann predict --cluster``).

Every test runs a real scheduler and real worker processes on loopback (``LocalCluster`` with
processes, or ``python -m dask scheduler`` / ``dask worker`` subprocesses), and compares what
the cluster wrote with what single-process ``torchann predict`` writes for the same rows.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import torchann
from torchann.cli import app
from torchann.dask import loader
from torchann.dask.cluster import parse_cluster
from torchann.dask.inputs import input_files, plan
from torchann.core.errors import ClusterError, DataError, UsageError

runner = CliRunner()
FAULTS = Path(__file__).with_name("dask_faults.py")
ROWS_A, GROUP_A, ROWS_B = 5003, 777, 2100  # 777-row groups: partitions start off the 1024-row passes


def _frame(n: int, seed: int, start: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    size = rng.uniform(20, 200, n)
    colour = rng.choice(["blue", "green", "red"], n)
    age = rng.normal(30, 10, n)
    age[rng.random(n) < 0.1] = np.nan
    label = np.where(size > 140, "big", np.where(colour == "red", "dear", "cheap"))
    return pa.table({"id": pa.array(np.arange(start, start + n), pa.int64()), "size": size,
                     "age": pa.array(age, from_pandas=True), "colour": colour, "kind": label,
                     "price": 3 * size + 10 * (colour == "red")})


@pytest.fixture(scope="module")
def d(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("dask")
    train = _frame(300, seed=1)
    common = dict(features=["size", "age", "colour"], fill_missing="mean", epochs=3, seed=0)
    torchann.train(train, target="kind", hidden=[16], **common).save(folder / "kind")
    torchann.train(train, target="price", hidden=[16], **common).save(folder / "price")
    torchann.train(train, target="price", hidden=[256, 256], **common).save(folder / "wide")  # 270 KB of weights
    (folder / "in").mkdir()
    pq.write_table(_frame(ROWS_A, seed=2), folder / "in" / "a.parquet", row_group_size=GROUP_A)
    pacsv.write_csv(_frame(ROWS_B, seed=3, start=10**6), folder / "in" / "b.csv")
    bad = _frame(3000, seed=4).to_pydict()
    bad["size"] = [str(v) for v in bad["size"]]
    bad["size"][2500] = "12,5"  # a decimal comma in a column of numbers, deep in the file
    pacsv.write_csv(pa.table(bad), folder / "bad.csv")
    return folder


@pytest.fixture(scope="module")
def client():
    """Two single-threaded worker processes behind a scheduler on 127.0.0.1, for the module."""
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                           dashboard_address="127.0.0.1:0")
    client = Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


@contextlib.contextmanager
def dask_processes(folder: Path, *, env: dict[str, str], workers: int = 2):
    """``python -m dask scheduler`` and ``python -m dask worker`` (``--preload tests/dask_faults.py``),
    as a person starts them on two hosts, here on loopback; stopped (process groups) at the end."""
    from distributed import Client

    folder.mkdir(parents=True, exist_ok=True)
    scheduler_file = folder / "scheduler.json"
    environ = {**os.environ, **env}
    log = open(folder / "dask.log", "wb")
    procs = []
    try:
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "dask", "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
             "--dashboard-address", "127.0.0.1:0", "--scheduler-file", str(scheduler_file)],
            env=environ, stdout=log, stderr=log, start_new_session=True))
        address = None
        for _ in range(1200):  # the scheduler writes its address there once it listens
            with contextlib.suppress(OSError, ValueError, KeyError):
                address = json.loads(scheduler_file.read_text())["address"]
                break
            assert procs[0].poll() is None, (folder / "dask.log").read_text()
            time.sleep(0.05)
        assert address is not None, (folder / "dask.log").read_text()
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "dask", "worker", address, "--host", "127.0.0.1", "--nworkers", str(workers),
             "--nthreads", "1", "--no-dashboard", "--dashboard-address", "127.0.0.1:0",
             "--local-directory", str(folder / "w"), "--preload", str(FAULTS)],
            env=environ, stdout=log, stderr=log, start_new_session=True))
        with Client(address, timeout=60) as client:
            client.wait_for_workers(workers, timeout=120)
            yield client, address
    finally:
        # Workers first, at once and whole (nanny, workers, a replacement being spawned): a worker
        # restarted as the scheduler goes would wait ~30 s to reach it. Then the scheduler.
        for proc, sig in [(p, signal.SIGKILL) for p in procs[1:]] + [(p, signal.SIGTERM) for p in procs[:1]]:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()


def _single(d: Path, run: str, data: Path, out: Path, *extra: str) -> pa.Table:
    """``torchann predict RUN --data DATA --out OUT`` in one process: the oracle."""
    result = runner.invoke(app, ["predict", str(d / run), "--data", str(data), "--out", str(out), *extra])
    assert result.exit_code == 0, result.output
    return pq.read_table(out)


def _parts(out: Path) -> pa.Table:
    names = sorted(p.name for p in out.iterdir() if p.name.startswith("part-"))
    assert names == [f"part-{i:05d}.parquet" for i in range(len(names))]
    return pa.concat_tables([pq.read_table(out / n) for n in names])


def _expected(d: Path, tmp: Path, run: str, *extra: str) -> pa.Table:
    """The oracle for the folder ``in/``: each file scored alone, concatenated in name order."""
    return pa.concat_tables([_single(d, run, d / "in" / name, tmp / f"single-{name}.parquet", *extra)
                             for name in ("a.parquet", "b.csv")])


def _bits(table: pa.Table) -> dict[str, list]:
    """Columns as exact values: floats as their 64-bit patterns."""
    out = {}
    for name in table.column_names:
        col = table.column(name).to_numpy(zero_copy_only=False)
        out[name] = col.view(np.int64).tolist() if col.dtype == np.float64 else col.tolist()
    return out


# -- files --------------------------------------------------------------------------------------------


def test_files_on_two_workers_equal_torchann_predict_bit_for_bit(d, client, tmp_path):
    from torchann.dask.jobs import score_files

    out = tmp_path / "preds"
    result = score_files(d / "kind", d / "in" / "*", out, client=client, keep=["id"], proba=True,
                         partition_rows=1000)
    assert (result.rows, result.parts, result.workers) == (ROWS_A + ROWS_B, 7 + 1, 2)
    got, expected = _parts(out), _expected(d, tmp_path, "kind", "--keep", "id", "--proba")
    assert got.schema == expected.schema
    assert got.column_names == ["id", "kind", "p(big)", "p(cheap)", "p(dear)"]
    assert _bits(got) == _bits(expected)  # every row once, in order, with the same float bits
    assert _bits(pq.read_table(out)) == _bits(expected)  # Parquet readers take the folder in that order
    manifest = json.loads((out / "_torchann.json").read_text())
    assert [p["first_row"] for p in manifest["parts"]] == [i * GROUP_A for i in range(7)] + [0]
    assert [p["rows"] for p in manifest["parts"]] == [GROUP_A] * 6 + [ROWS_A - 6 * GROUP_A, ROWS_B]
    assert manifest["rows"] == ROWS_A + ROWS_B
    assert sorted(p.name for p in out.iterdir()) == ["_torchann.json"] + [f"part-{i:05d}.parquet" for i in range(8)]
    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE((out / "part-00003.parquet").stat().st_mode) == 0o666 & ~umask
    assert stat.S_IMODE(out.stat().st_mode) == 0o777 & ~umask
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging folder left


def test_each_worker_loads_the_model_once_and_tasks_carry_only_its_path(d, client, tmp_path):
    from torchann.dask.loader import ModelRef
    from torchann.dask.jobs import score_files

    client.run(loader.clear)
    recorded = Recording(client)
    result = score_files(d / "wide", d / "in", tmp_path / "preds", client=recorded, keep=["id"], partition_rows=800)
    assert result.parts == 7 + 1 == len(recorded.calls)
    loads = client.run(loader.loads)  # worker address -> models loaded in that process
    assert sorted(loads.values()) in ([1, 1], [0, 1]), loads
    weights = (d / "wide" / "weights.safetensors").stat().st_size
    assert weights > 250_000
    for args in recorded.calls:
        assert isinstance(args[0], ModelRef) and args[0].path == str(d / "wide")
        assert len(pickle.dumps(args)) < 2_000  # a path, a checksum, a file name: never the weights
    got, expected = _parts(tmp_path / "preds"), _expected(d, tmp_path, "wide", "--keep", "id")
    assert _bits(got) == _bits(expected)


class Recording:
    """A client that records the arguments of every task it submits."""

    def __init__(self, client):
        self.client, self.calls = client, []

    def submit(self, fn, *args, **kwargs):
        self.calls.append(args)
        return self.client.submit(fn, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.client, name)


def test_cli_on_a_scheduler_address_equals_single_process(d, client, tmp_path):
    out = tmp_path / "preds"
    result = runner.invoke(app, ["predict", str(d / "price"), "--data", str(d / "in" / "*"), "--out", str(out),
                                 "--keep", "id", "--cluster", client.scheduler.address, "--partition-rows", "2000"])
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert f"wrote {ROWS_A + ROWS_B} predictions of 2 file(s) in 4 part(s) to {out}" in result.stderr
    assert _bits(_parts(out)) == _bits(_expected(d, tmp_path, "price", "--keep", "id"))


def test_cli_local_cluster_in_a_real_process(d, tmp_path):
    out = tmp_path / "preds"
    proc = subprocess.run([sys.executable, "-m", "torchann", "predict", str(d / "price"), "--data",
                           str(d / "in" / "a.parquet"), "--out", str(out), "--keep", "id", "--cluster", "local:2",
                           "--partition-rows", "1500"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    assert proc.stderr.startswith(f"wrote {ROWS_A} predictions of 1 file(s) in 6 part(s)")  # and nothing else
    assert proc.stderr.count("\n") == 1
    expected = _single(d, "price", d / "in" / "a.parquet", tmp_path / "single.parquet", "--keep", "id")
    assert _bits(_parts(out)) == _bits(expected)


def test_cli_local_cluster_bad_file_prints_one_line_and_nothing_of_the_workers(d, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "torchann", "predict", str(d / "price"), "--data", str(d / "bad.csv"),
                           "--out", str(tmp_path / "preds"), "--cluster", "local:1"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.startswith(f"error: {d / 'bad.csv'}: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_bad_file_fails_the_job_in_one_line_and_leaves_the_old_output(d, client, tmp_path):
    from torchann.dask.jobs import score_files

    (tmp_path / "in").mkdir()
    for name in ("a.parquet", "b.csv"):
        (tmp_path / "in" / name).write_bytes((d / "in" / name).read_bytes())
    out = tmp_path / "preds"
    score_files(d / "price", tmp_path / "in", out, client=client, partition_rows=1000)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    (tmp_path / "in" / "c.csv").write_bytes((d / "bad.csv").read_bytes())
    single = runner.invoke(app, ["predict", str(d / "price"), "--data", str(tmp_path / "in" / "c.csv"), "--out",
                                 str(tmp_path / "single.csv")])
    assert single.exit_code == 2 and single.stderr.startswith("error: ")
    result = runner.invoke(app, ["predict", str(d / "price"), "--data", str(tmp_path / "in"), "--out", str(out),
                                 "--cluster", client.scheduler.address, "--partition-rows", "1000"])
    assert result.exit_code == 2, result.output
    assert result.stderr == single.stderr  # the line single-process predict prints, naming the file
    assert str(tmp_path / "in" / "c.csv") in result.stderr and result.stderr.count("\n") == 1
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # the old output, untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "preds"]  # no staging folder, no part
    with pytest.raises(DataError) as err:
        score_files(d / "price", tmp_path / "in", tmp_path / "other", client=client)
    assert str(err.value) == single.stderr.removeprefix("error: ").strip()
    assert not (tmp_path / "other").exists()


def test_a_worker_killed_mid_job_is_replaced_and_every_row_is_written_once(d, tmp_path):
    from torchann.dask.jobs import score_files

    mark = tmp_path / "killed"
    with dask_processes(tmp_path / "cluster", env={"TORCHANN_TEST_KILL_MARK": str(mark)}) as (client, _):
        result = score_files(d / "kind", d / "in", tmp_path / "preds", client=client, keep=["id"], proba=True,
                             partition_rows=1000)
    pid, name = mark.read_text().split()  # the worker died as it was renaming this part into place
    assert name.startswith(".part-") and name.endswith(".tmp")
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid), 0)
    assert result.rows == ROWS_A + ROWS_B
    got, expected = _parts(tmp_path / "preds"), _expected(d, tmp_path, "kind", "--keep", "id", "--proba")
    assert got.column("id").to_pylist() == expected.column("id").to_pylist()  # each id once, in order
    assert _bits(got) == _bits(expected)
    assert not [p.name for p in (tmp_path / "preds").iterdir() if p.name.startswith(".")]  # its temporary went


def test_a_partition_that_kills_every_worker_it_meets_ends_in_one_line(d, tmp_path):
    mark = tmp_path / "killed"
    env = {"TORCHANN_TEST_KILL_MARK": str(mark), "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "0"}
    with dask_processes(tmp_path / "cluster", env=env) as (_, address):
        result = runner.invoke(app, ["predict", str(d / "price"), "--data", str(d / "in" / "b.csv"), "--out",
                                     str(tmp_path / "preds"), "--cluster", address])
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith(f"error: {d / 'in' / 'b.csv'}: every worker that ran it died")
    assert result.stderr.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cluster", "killed"]


# -- dataframes -----------------------------------------------------------------------------------------


def test_dataframe_predict_equals_torchann_predict(d, client, tmp_path):
    import dask.dataframe as dd

    from torchann.dask.frames import predict

    frame = dd.read_parquet(d / "in" / "a.parquet", split_row_groups=True)  # one partition per 777-row group
    assert frame.npartitions == 7
    preds = predict(frame, d / "kind", keep=["id"], proba=True)
    assert list(preds.columns) == ["id", "kind", "p(big)", "p(cheap)", "p(dear)"]
    got = preds.compute()  # on the workers: the module's client is the default
    expected = _single(d, "kind", d / "in" / "a.parquet", tmp_path / "single.parquet", "--keep", "id", "--proba")
    assert got["id"].tolist() == expected.column("id").to_pylist()
    assert got["kind"].tolist() == expected.column("kind").to_pylist()
    for name in ("p(big)", "p(cheap)", "p(dear)"):
        np.testing.assert_array_equal(got[name].to_numpy(), expected.column(name).to_numpy())
    import pandas as pd

    assert pd.api.types.is_string_dtype(got["kind"])  # text labels (Dask makes them Arrow strings)
    assert {k: str(v) for k, v in got.dtypes.items() if k != "kind"} == {
        "id": "int64", "p(big)": "float64", "p(cheap)": "float64", "p(dear)": "float64"}
    assert got.dtypes.to_dict() == preds.dtypes.to_dict()  # the partitions are what the metadata says
    assert got.index.tolist() == frame.compute().index.tolist()


def test_dataframe_partitions_of_any_size_get_the_answers_of_the_whole_table(d, client):
    import dask.dataframe as dd
    import pandas as pd

    from torchann.dask.frames import predict

    table = pd.read_parquet(d / "in" / "a.parquet")
    frame = dd.from_pandas(table, npartitions=3).repartition(divisions=[0, 5, 1500, 1501, 4000, ROWS_A - 1])
    got = predict(frame, d / "price").compute()
    whole = torchann.load(d / "price").predict(table)  # one table, one process, as predict reads it
    assert np.array_equal(got["price"].to_numpy(), whole)
    assert got.index.tolist() == list(range(ROWS_A))


def test_dataframe_bad_value_names_the_partition_and_the_row(d, client):
    import dask.dataframe as dd
    import pandas as pd

    from torchann.dask.frames import predict

    table = pd.read_parquet(d / "in" / "a.parquet")
    table["size"] = table["size"].astype(object)
    table.loc[2100, "size"] = "big"
    frame = dd.from_pandas(table, npartitions=4)
    with pytest.raises(DataError) as err:
        predict(frame, d / "price").compute()
    assert str(err.value).startswith("dataframe partition 1: ")
    assert "row 2101" in str(err.value)


def test_dataframe_checks_come_before_the_cluster(d):
    import dask.dataframe as dd
    import pandas as pd

    from torchann.dask.frames import predict

    frame = dd.from_pandas(pd.DataFrame({"size": [1.0, 2.0]}), npartitions=1)
    with pytest.raises(DataError, match="the dataframe has no column 'age', 'colour'"):
        predict(frame, d / "price")
    full = dd.from_pandas(pd.DataFrame({"size": [1.0], "age": [2.0], "colour": ["red"]}), npartitions=1)
    with pytest.raises(UsageError, match="proba needs a classifier"):
        predict(full, d / "price", proba=True)
    with pytest.raises(UsageError, match="takes a dask.dataframe.DataFrame, got DataFrame"):
        predict(pd.DataFrame({"size": [1.0]}), d / "price")


# -- without the extra, and the command's help -------------------------------------------------------------


def test_without_the_extra_one_line_says_what_to_install(d, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if it were not installed
    result = runner.invoke(app, ["predict", str(d / "price"), "--data", str(d / "in"), "--out",
                                 str(tmp_path / "p"), "--cluster", "local:2"])
    assert result.exit_code == 2
    assert result.stderr == ("error: scoring on a Dask cluster needs distributed, which is not installed; run: "
                             "pip install 'torchann[dask]' (dask[dataframe] and distributed)\n")
    assert list(tmp_path.iterdir()) == []


def test_predict_help_imports_neither_torch_nor_dask():
    code = ("import sys; from torchann.cli import main; main(['predict', '--help']); "
            "print(sorted(m for m in ('torch', 'dask', 'distributed', 'pandas') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "--cluster" in proc.stdout
    assert proc.stdout.strip().splitlines()[-1] == "[]"


# -- the pieces -----------------------------------------------------------------------------------------------


def test_cluster_addresses():
    assert parse_cluster("local").address is None and parse_cluster("local").workers is None
    assert parse_cluster("local:3").workers == 3
    assert parse_cluster("tcp://10.0.0.5:8786").address == "tcp://10.0.0.5:8786"
    assert parse_cluster("tls://[::1]:8786").address == "tls://[::1]:8786"
    for bad in ("local:0", "local:x", "10.0.0.5:8786", "tcp://host", "tcp://host:0", "http://host:8786", ""):
        with pytest.raises(UsageError, match="--cluster"):
            parse_cluster(bad)


def test_parquet_files_are_cut_at_row_groups(d):
    files = input_files(d / "in" / "*")
    assert [f.name for f in files] == ["a.parquet", "b.csv"]
    pieces = plan(files, ["id", "size"], partition_rows=2000)
    assert [(p.path.rsplit("/", 1)[-1], p.row_groups, p.first_row, p.rows) for p in pieces] == [
        ("a.parquet", (0, 1), 0, 1554), ("a.parquet", (2, 3), 1554, 1554), ("a.parquet", (4, 5, 6), 3108, 1895),
        ("b.csv", None, 0, None)]
    assert len(plan(files, [], partition_rows=10**9)) == 2  # a whole file, however large, is one partition
    with pytest.raises(DataError, match=r"a.parquet: no column 'weight'"):
        plan(files, ["weight"])
    with pytest.raises(DataError, match="no file matches"):
        input_files(d / "in" / "*.tsv")


def test_a_worker_with_another_model_at_the_same_path_refuses_it(d, tmp_path):
    from torchann.dask.loader import ModelRef

    run = tmp_path / "run"
    run.mkdir()
    for name in ("spec.json", "weights.safetensors"):
        (run / name).write_bytes((d / "price" / name).read_bytes())
    ref = ModelRef.of(run)
    loader.clear()
    assert loader.worker_model(ref).target_names == ["price"]
    for name in ("spec.json", "weights.safetensors"):  # the path now holds another model
        (run / name).write_bytes((d / "kind" / name).read_bytes())
    loader.clear()
    with pytest.raises(torchann.ModelFileError, match=r"spec.json is not the model the job was started with"):
        loader.worker_model(ref)
    assert ClusterError.exit_code == 1
