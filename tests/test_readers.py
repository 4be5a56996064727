"""File readers: checked before they read (pipes, lying headers), decimal commas, one vocabulary of kinds."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from torchann.data import numpy_files, readers
from torchann.data.columns import ColumnKind, LabelKind, column_kind, label_kind, shown_name
from torchann.data.table import Table
from torchann.core.errors import DataError
from torchann.data.readers import load_table


def _npy_claiming(shape, dtype="<f8", data=b"\0" * 16) -> bytes:
    f = io.BytesIO()
    np.lib.format.write_array_header_1_0(f, {"descr": dtype, "fortran_order": False, "shape": shape})
    return f.getvalue() + data


def test_a_small_npy_claiming_a_huge_array_is_refused_before_allocating(tmp_path):
    path = tmp_path / "x.npy"
    path.write_bytes(_npy_claiming((10**12, 2)))
    assert path.stat().st_size == 144
    with pytest.raises(DataError) as err:
        load_table(path, target="x1")
    assert str(err.value) == (f"{path}: the header claims an array of shape (1000000000000, 2) (float64, "
                              f"16,000,000,000,000 bytes) but the file holds 16 bytes of data; the file is truncated "
                              f"or damaged: save it again with numpy.save")


def test_a_truncated_npy_is_refused(tmp_path):
    np.save(tmp_path / "ok.npy", np.ones((10, 3)))
    data = (tmp_path / "ok.npy").read_bytes()
    (tmp_path / "cut.npy").write_bytes(data[:-8])
    with pytest.raises(DataError, match=r"cut\.npy: the header claims an array of shape \(10, 3\) \(float64, 240 bytes\) "
                                        r"but the file holds 232 bytes"):
        load_table(tmp_path / "cut.npy")


def test_an_npz_member_claiming_a_huge_array_is_refused(tmp_path):
    path = tmp_path / "x.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("x.npy", _npy_claiming((10**9, 10**3)))
        z.writestr("y.npy", _npy_claiming((2,)))
    with pytest.raises(DataError, match=r"x\.npz: array 'x': the header claims an array of shape \(1000000000, 1000\) "
                                        r"\(float64, 8,000,000,000,000 bytes\) but the file holds 16 bytes"):
        load_table(path)


def test_an_npz_that_is_not_a_zip_is_refused(tmp_path):
    (tmp_path / "x.npz").write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(DataError, match=r"x\.npz: cannot read as a NumPy \.npz file"):
        load_table(tmp_path / "x.npz")


def test_arrays_larger_than_memory_are_refused(tmp_path, monkeypatch):
    np.save(tmp_path / "x.npy", np.ones((100, 2)))
    monkeypatch.setattr(numpy_files, "memory_bytes", lambda: 1000)
    with pytest.raises(DataError, match=r"x\.npy: the arrays need 1,600 bytes, more than half of this machine's 1,000 "
                                        r"bytes of memory; train from it in chunks with torchann.StreamingBatches"):
        load_table(tmp_path / "x.npy")


def test_refusing_a_huge_claim_costs_no_memory(tmp_path):
    """Peak memory of a process that refuses the 10^12-row claim, against one that only imports."""
    (tmp_path / "x.npy").write_bytes(_npy_claiming((10**12, 2)))
    code = ("import resource, sys; from torchann.data.readers import load_table\n"
            "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
            "try:\n    load_table(sys.argv[1])\nexcept Exception as e:\n    print(type(e).__name__)\n"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "x.npy")], capture_output=True, text=True,
                         timeout=120, check=True).stdout.split()
    assert out[0] == "DataError"
    assert int(out[1]) < 20_000  # KiB: the claim is 16 TB; refusing it grows the process by < 20 MB


@pytest.mark.parametrize("name", ["x.csv", "x.tsv", "x.parquet", "x.npy", "x.npz", "x.csv.gz"])
def test_a_named_pipe_is_refused_not_opened(tmp_path, name):
    os.mkfifo(tmp_path / name)  # opening it for reading would block until a writer comes
    with pytest.raises(DataError, match=rf"{name.replace('.', chr(92) + '.')} is a named pipe \(FIFO\), not a regular "
                                        r"file; give a data file"):
        load_table(tmp_path / name)


def test_a_symlink_to_a_regular_file_is_read(tmp_path):
    (tmp_path / "real.csv").write_text("a,y\n1,2\n3,4\n")
    (tmp_path / "link.csv").symlink_to(tmp_path / "real.csv")
    assert load_table(tmp_path / "link.csv").n_rows == 2


# -- ';'-separated files with decimal commas ---------------------------------------------------


def test_semicolons_and_decimal_commas_read_as_numbers_and_say_so(tmp_path):
    rows = "".join(f"{i},5;-{i},25;{2 * i + 1},0\n" for i in range(40))
    path = tmp_path / "eu.csv"
    path.write_text("a;b;y\n" + rows)
    t = load_table(path, target="y")
    assert [t.kind(n) for n in t.names] == [ColumnKind.NUMERIC] * 3
    np.testing.assert_array_equal(t.columns["a"][:3], [0.5, 1.5, 2.5])
    np.testing.assert_array_equal(t.columns["b"][:3], [-0.25, -1.25, -2.25])
    np.testing.assert_array_equal(t.columns["y"][:3], [1.0, 3.0, 5.0])
    assert t.notes == [f"{path}: read ';' as the column separator and ',' as the decimal mark in column(s) a, b, y"]
    from torchann.preprocess.target import infer_task

    assert infer_task(t) == "regression"  # before: 40 text classes


def test_thousands_dots_with_decimal_commas(tmp_path):
    path = tmp_path / "eu.csv"
    path.write_text("a;y\n1.234,5;1\n-12.345.678,25;2\n7;3\n,5;4\n")
    np.testing.assert_array_equal(load_table(path).columns["a"], [1234.5, -12345678.25, 7.0, 0.5])


@pytest.mark.parametrize("values", [["1,5", "x"], ["1.234", "2"], ["a,b", "c"]])
def test_columns_that_are_not_all_decimal_commas_stay_as_they_were(tmp_path, values):
    path = tmp_path / "d.csv"
    path.write_text("a;y\n" + "".join(f"{v};{i}\n" for i, v in enumerate(values)))
    t = load_table(path)
    assert t.notes == []
    assert t.kind("a") == (ColumnKind.NUMERIC if values == ["1.234", "2"] else ColumnKind.TEXT)


def test_decimal_commas_mixed_with_decimal_points_name_the_first_odd_value(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("a;y\n2.5;1\n1,5;2\n3.5;3\n")
    with pytest.raises(DataError, match=r"column 'a' holds numbers, but row 2 holds '1,5'"):
        load_table(path)


def test_comma_separated_files_are_not_touched(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text('a,y\n"1,5",1\n"2,5",2\n')
    t = load_table(path)
    assert t.columns["a"].tolist() == ["1,5", "2,5"] and t.notes == []


def test_notes_survive_select_and_take(tmp_path):
    path = tmp_path / "eu.csv"
    path.write_text("a;y\n1,5;1\n2,5;2\n")
    t = load_table(path, target="y", features=["a"])
    assert t.notes and t.take([1]).notes == t.notes


# -- one vocabulary of kinds -------------------------------------------------------------------


def test_column_kinds_from_reading_to_labels(tmp_path):
    t = Table.from_columns({"n": [1.0, 2.0], "s": ["a", None], "b": [True, False], "bm": [True, None]})
    assert [t.kind(n) for n in t.names] == [ColumnKind.NUMERIC, ColumnKind.TEXT, ColumnKind.BOOL, ColumnKind.BOOL]
    assert t.kind("n") == "numeric" and {t.kind("s")} == {"text"}  # equal to, and hashed like, the plain words
    assert column_kind(np.array([1, 2])) == ColumnKind.NUMERIC
    assert [label_kind(t.columns[n]) for n in ("n", "s", "b")] == [LabelKind.INT, LabelKind.STR, LabelKind.BOOL]
    assert label_kind(np.array([0.5, 1.0])) == LabelKind.FLOAT
    assert json.dumps([LabelKind.STR, ColumnKind.BOOL]) == '["str", "bool"]'


def test_names_with_control_codes_are_escaped_in_messages(tmp_path):
    assert shown_name("price") == "price" and shown_name("a\x1b[31m") == "'a\\x1b[31m'"
    path = tmp_path / "d.csv"
    path.write_bytes(b"a\x1b[2J,y\n1,2\n")
    with pytest.raises(DataError) as err:
        load_table(path, target="z")
    assert "\x1b" not in str(err.value) and "'a\\x1b[2J'" in str(err.value)


def test_the_table_module_imports_neither_datasets_nor_readers():
    import ast

    import torchann.data
    from torchann.data import readers, table

    tree = ast.parse(open(table.__file__, encoding="utf-8").read())
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names} | \
        {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not imported & {"readers", "datasets", ".readers", ".datasets"}
    assert not hasattr(table, "load_table")  # no forwarding names: load_table lives in readers
    assert torchann.data.load_table is readers.load_table is load_table
