"""Tables from files and built-in datasets, and seeded splits (torchann.data, torchann.datasets)."""

from __future__ import annotations

import gzip
import importlib

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from torchann.data.table import Table
from torchann.data.readers import load_table
from torchann.data.splits import split_indices
from torchann.data.datasets import dataset_names, describe_datasets, friedman1_target, load_dataset, BLOB_CENTERS
from torchann.core.errors import DataError, UsageError


def write(path, text: str):
    path.write_bytes(text.encode("utf-8", errors="surrogateescape"))
    return path


# ------------------------------------------------------------------------------------ reading


def test_csv_columns_types_and_missing_values(tmp_path):
    f = write(tmp_path / "d.csv", "a,b,c,d\n1,x,true,2.5\n,y,false,NA\n3,,true,4\n")
    t = load_table(f)
    assert t.names == ["a", "b", "c", "d"] and t.n_rows == 3 and t.source == str(f)
    assert t.columns["a"].dtype == np.float64
    np.testing.assert_array_equal(t.columns["a"], [1.0, np.nan, 3.0])
    assert t.columns["b"].dtype == object and t.columns["b"].tolist() == ["x", "y", None]
    assert t.columns["c"].dtype == bool and t.columns["c"].tolist() == [True, False, True]
    np.testing.assert_array_equal(t.columns["d"], [2.5, np.nan, 4.0])
    assert t.targets == [] and t.feature_names == ["a", "b", "c", "d"]


@pytest.mark.parametrize(
    "name, text",
    [("d.tsv", "a\tb\n1\t2\n3\t4\n"), ("d.csv", "a;b\n1;2\n3;4\n"), ("d.txt", "a|b\n1|2\n3|4\n")],
)
def test_delimiter_from_extension_or_header(tmp_path, name, text):
    t = load_table(write(tmp_path / name, text), target="b")
    assert t.targets == ["b"] and t.feature_names == ["a"]
    np.testing.assert_array_equal(t.columns["a"], [1, 3])
    np.testing.assert_array_equal(t.columns["b"], [2, 4])


def test_gzip_csv(tmp_path):
    f = tmp_path / "d.csv.gz"
    f.write_bytes(gzip.compress(b"a;b\n1;2\n5;6\n"))
    np.testing.assert_array_equal(load_table(f).columns["b"], [2, 6])


def test_parquet_types_and_unsupported_columns(tmp_path):
    f = tmp_path / "d.parquet"
    pq.write_table(pa.table({
        "i": pa.array([1, None, 3], pa.int32()),
        "f": pa.array([0.5, 1.5, None]),
        "s": pa.array(["a", "b", None]),
        "cat": pa.array(["p", "q", "p"]).dictionary_encode(),
        "flag": pa.array([True, None, False]),
        "when": pa.array([1, 2, 3], pa.timestamp("s")),
        "bag": pa.array([[1], [2, 3], []], pa.list_(pa.int32())),
    }), f)
    t = load_table(f)
    np.testing.assert_array_equal(t.columns["i"], [1.0, np.nan, 3.0])
    np.testing.assert_array_equal(t.columns["f"], [0.5, 1.5, np.nan])
    assert t.columns["s"].tolist() == ["a", "b", None]
    assert t.columns["cat"].tolist() == ["p", "q", "p"]
    assert t.columns["flag"].tolist() == [True, None, False] and t.kind("flag") == "bool"
    # timestamps become ISO text, which the date features read
    assert t.columns["when"].tolist() == ["1970-01-01 00:00:01", "1970-01-01 00:00:02", "1970-01-01 00:00:03"]
    assert "bag" not in t.columns and "list" in t.skipped["bag"]
    with pytest.raises(DataError, match=r"target column 'bag' cannot be used: its type list"):
        load_table(f, target="bag")


def test_npy_columns_and_target_by_position(tmp_path):
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.save(tmp_path / "d.npy", x)
    for target in ("x3", "-1", "3", -1):
        t = load_table(tmp_path / "d.npy", target=target)
        assert t.names == ["x0", "x1", "x2", "x3"] and t.targets == ["x3"]
        assert t.feature_names == ["x0", "x1", "x2"]
        np.testing.assert_array_equal(t.columns["x3"], [3, 7, 11])


def test_npz_x_y_defaults_target_to_y(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.array([[1, 2], [3, 4]]), y=np.array([3, 7]))
    t = load_table(tmp_path / "d.npz")
    assert t.names == ["x0", "x1", "y"] and t.targets == ["y"]
    np.savez(tmp_path / "m.npz", x=np.ones((2, 1)), y=np.array([[1, 2], [3, 4]]), label=np.array(["a", "b"]))
    t = load_table(tmp_path / "m.npz")
    assert t.names == ["x", "y0", "y1", "label"] and t.targets == ["y0", "y1"]
    assert t.columns["label"].tolist() == ["a", "b"]


def test_features_selects_and_orders_columns(tmp_path):
    f = write(tmp_path / "d.csv", "a,b,c,y\n1,2,3,4\n")
    t = load_table(f, target="y", features=["c", "a"])
    assert t.feature_names == ["c", "a"] and t.names == ["a", "c", "y"]
    with pytest.raises(DataError, match=r"column 'y' is chosen as both target and feature"):
        load_table(f, target="y", features=["a", "y"])


def test_missing_values_are_not_a_load_error(tmp_path):
    t = load_table(write(tmp_path / "d.csv", "a,b\n,\n2,x\n"))
    assert np.isnan(t.columns["a"][0]) and t.columns["b"][0] is None


# ------------------------------------------------------------------------------ bad tables


@pytest.mark.parametrize(
    "name, text, fragments",
    [
        ("empty.csv", "", ["empty.csv", "the file is empty"]),
        ("head.csv", "a,b,c\n", ["head.csv", "no data rows", "a, b, c"]),
        ("ragged.csv", "a,b,c\n1,2,3\n4,5\n6,7,8\n", ["ragged.csv", "row 2 (line 3)", "2 fields", "3 columns"]),
        ("long.csv", "a,b\n1,2\n3,4\n5,6,7\n", ["long.csv", "row 3 (line 4)", "3 fields"]),
        ("text.csv", "a,b\n1,2\n3,4\n5,x7\n8,9\n", ["text.csv", "column 'b'", "row 3", "'x7'", "empty"]),
        ("dup.csv", "a,a\n1,2\n", ["dup.csv", "'a' appears more than once"]),
        ("latin.csv", "a,b\n1,caf\udce9\n", ["latin.csv", "column 'b'", "not UTF-8"]),
        ("d.xlsx", "junk", ["d.xlsx", "unknown file type '.xlsx'", ".csv", ".parquet", ".npz"]),
    ],
)
def test_bad_files_name_file_row_column(tmp_path, name, text, fragments):
    f = write(tmp_path / name, text)
    with pytest.raises(DataError) as err:
        load_table(f)
    message = str(err.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message


def test_text_column_of_mostly_words_stays_text(tmp_path):
    t = load_table(write(tmp_path / "d.csv", "size\nS\nM\nL\n2\n"))
    assert t.columns["size"].tolist() == ["S", "M", "L", "2"]


def test_missing_file_and_dataset_suggestion(tmp_path):
    with pytest.raises(DataError, match=r"file not found: .*nope\.csv; check the path"):
        load_table(tmp_path / "nope.csv")
    with pytest.raises(DataError, match=r"did you mean the built-in dataset 'moons'"):
        load_table("mons")
    with pytest.raises(DataError, match=r"is a folder"):
        load_table(tmp_path)


def test_unknown_target_and_feature_list_names_and_suggest(tmp_path):
    f = write(tmp_path / "d.csv", "price,rooms,area\n1,2,3\n")
    with pytest.raises(DataError) as err:
        load_table(f, target="prise")
    assert all(s in str(err.value) for s in ["d.csv", "no target column 'prise' (--target)",
                                             "columns are: price, rooms, area", "Did you mean 'price'?"])
    with pytest.raises(DataError, match=r"no feature column 'room' \(--features\).*Did you mean 'rooms'"):
        load_table(f, target="price", features=["room"])


def test_bad_numpy_files(tmp_path):
    np.save(tmp_path / "v.npy", np.arange(3.0))
    with pytest.raises(DataError, match=r"v\.npy: the array has shape \(3,\); a \.npy table must be 2-D"):
        load_table(tmp_path / "v.npy")
    np.save(tmp_path / "o.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match=r"o\.npy: the array holds Python objects"):
        load_table(tmp_path / "o.npy")
    np.savez(tmp_path / "l.npz", x=np.ones((3, 2)), y=np.ones(2))
    with pytest.raises(DataError, match=r"l\.npz: arrays have different numbers of rows \{'x': 3, 'y': 2\}"):
        load_table(tmp_path / "l.npz")
    (tmp_path / "e.npy").write_bytes(b"")
    with pytest.raises(DataError, match=r"e\.npy: cannot read as a NumPy file"):
        load_table(tmp_path / "e.npy")
    (tmp_path / "bad.parquet").write_text("not parquet")
    with pytest.raises(DataError, match=r"bad\.parquet: cannot read as Parquet"):
        load_table(tmp_path / "bad.parquet")


def test_from_columns_normalises_and_rejects_mixed_columns():
    t = Table.from_columns({"n": [1, 2], "s": np.array(["a", "b"]), "b": [True, None]})
    assert t.columns["n"].dtype == np.float64 and t.columns["s"].dtype == object
    assert t.columns["b"].tolist() == [True, None] and t.kind("b") == "bool" and t.kind("s") == "text"
    with pytest.raises(DataError, match=r"column 'm' mixes numbers \(row 1\) and text \(row 3\); make the column one type"):
        Table.from_columns({"m": [1, None, "x"]})
    with pytest.raises(DataError, match=r"columns differ in length"):
        Table({"a": np.zeros(2), "b": np.zeros(3)})


@pytest.mark.parametrize("values", [
    ["north", "south", "north"],                 # a JSON request's text column: the quick way
    ("north", "south", "north"),                 # the columns of zip(*rows)
    np.array(["north", "south", "north"]),       # fixed-width numpy text: the checked way
    np.array(["north", "south", "north"], dtype=object),
])
def test_text_columns_read_alike_whichever_way_they_come(values):
    column = Table.from_columns({"city": values}).columns["city"]
    assert column.dtype == object and column.tolist() == ["north", "south", "north"]
    assert all(type(v) is str for v in column)


def test_a_text_column_with_a_gap_or_a_number_still_takes_the_checks():
    t = Table.from_columns({"city": ["north", None, "east"]})
    assert t.columns["city"].tolist() == ["north", None, "east"]  # None stays missing, not "None"
    # a number among text: numpy's reading of the list, as before the quick way existed
    assert Table.from_columns({"city": ["north", 3.5]}).columns["city"].tolist() == ["north", "3.5"]


def test_take_keeps_source_row_numbers():
    t = Table.from_columns({"a": [10, 20, 30, 40]})
    sub = t.take([3, 1]).take([1])
    np.testing.assert_array_equal(sub.columns["a"], [20])
    assert sub.row(0) == 2


# ------------------------------------------------------------------------------------ splits


def test_split_sizes_disjoint_and_seeded():
    tr, va = split_indices(10, 0.3, seed=1)
    assert len(va) == 3 and len(tr) == 7
    assert sorted(np.concatenate([tr, va]).tolist()) == list(range(10))
    tr2, va2 = split_indices(10, 0.3, seed=1)
    np.testing.assert_array_equal(va, va2)
    others = [split_indices(10, 0.3, seed=s)[1].tolist() for s in range(2, 8)]
    assert any(o != va.tolist() for o in others)
    assert len(split_indices(7, 0.5, seed=0)[1]) == 4  # round(3.5) -> 4: half rounds up
    assert len(split_indices(4, 0.2, seed=0)[1]) == 1  # 0.8 -> 1
    tr, va = split_indices(5, 0.0, seed=0)
    assert tr.tolist() == [0, 1, 2, 3, 4] and va.size == 0
    with pytest.raises(UsageError, match=r"validation fraction must be in \[0, 1\), got 1.5"):
        split_indices(10, 1.5, seed=0)


def test_stratified_split_keeps_class_proportions():
    labels = np.array(["a"] * 60 + ["b"] * 30 + ["c"] * 10)
    np.random.default_rng(0).shuffle(labels)
    tr, va = split_indices(100, 0.2, seed=3, stratify=labels)
    # 20 validation rows: 20% of each class, 12 / 6 / 2 by hand
    assert [int((labels[va] == c).sum()) for c in "abc"] == [12, 6, 2]
    assert [int((labels[tr] == c).sum()) for c in "abc"] == [48, 24, 8]
    # largest remainder: 5 / 3 / 2 rows at half -> quotas 2.5 / 1.5 / 1.0 -> 3 / 1 / 1
    small = np.array([0] * 5 + [1] * 3 + [2] * 2)
    _, va = split_indices(10, 0.5, seed=0, stratify=small)
    assert np.bincount(small[va], minlength=3).tolist() == [3, 1, 1]
    # a class of one row stays in training
    tr, va = split_indices(5, 0.4, seed=0, stratify=[0, 0, 0, 0, 1])
    assert 4 in tr.tolist() and len(va) == 2
    with pytest.raises(DataError, match=r"stratify has 3 labels for 4 rows"):
        split_indices(4, 0.5, seed=0, stratify=[1, 2, 3])


# ---------------------------------------------------------------------------------- datasets


def test_add_is_the_tutorial_data():
    t = load_table("add")
    x = [[1, 2], [3, 4], [5, 6], [7, 8]]
    np.testing.assert_array_equal(np.stack([t.columns["a"], t.columns["b"]], 1), x)
    np.testing.assert_array_equal(t.columns["sum"], [3, 7, 11, 15])
    assert t.targets == ["sum"] and t.feature_names == ["a", "b"]


def test_generated_datasets_have_their_shapes():
    moons = load_dataset("moons")
    x, y = np.stack([moons.columns["x1"], moons.columns["x2"]], 1), moons.columns["label"]
    assert np.bincount(y.astype(int)).tolist() == [100, 100]
    r0 = np.hypot(*(x[y == 0] - [0.0, 0.0]).T)
    r1 = np.hypot(*(x[y == 1] - [1.0, 0.5]).T)
    assert np.abs(r0 - 1).max() < 0.5 and np.abs(r1 - 1).max() < 0.5
    assert x[y == 0, 1].mean() > 0.3 and x[y == 1, 1].mean() < 0.2  # upper and lower half circles
    circles = load_dataset("circles")
    r = np.hypot(circles.columns["x1"], circles.columns["x2"])
    lab = circles.columns["label"]
    assert abs(r[lab == 0].mean() - 1.0) < 0.05 and abs(r[lab == 1].mean() - 0.5) < 0.05
    blobs = load_dataset("blobs")
    for k, centre in enumerate(BLOB_CENTERS):
        rows = blobs.columns["label"] == k
        assert rows.sum() == 100
        assert np.allclose([blobs.columns["x1"][rows].mean(), blobs.columns["x2"][rows].mean()], centre, atol=0.4)
    fr = load_dataset("friedman1")
    xs = np.stack([fr.columns[f"x{j}"] for j in range(10)], 1)
    assert fr.targets == ["y"] and ((xs >= 0) & (xs < 1)).all()
    x0 = xs[0]
    by_hand = 10 * np.sin(np.pi * x0[0] * x0[1]) + 20 * (x0[2] - 0.5) ** 2 + 10 * x0[3] + 5 * x0[4]
    assert fr.columns["y"][0] == pytest.approx(by_hand, rel=1e-12)
    np.testing.assert_allclose(fr.columns["y"], friedman1_target(xs))
    np.testing.assert_array_equal(load_dataset("moons").columns["x1"], moons.columns["x1"])  # fixed seed


@pytest.mark.parametrize("name, loader", [("iris", "load_iris"), ("wine", "load_wine"),
                                          ("breast_cancer", "load_breast_cancer"), ("digits", "load_digits"),
                                          ("diabetes", "load_diabetes")])
def test_sklearn_datasets_equal_sklearn(name, loader):
    bunch = getattr(pytest.importorskip("sklearn.datasets"), loader)()
    t = load_table(f"sklearn:{name}")
    assert t.targets == ["target"] and t.feature_names == list(bunch.feature_names)
    np.testing.assert_array_equal(np.stack([t.columns[n] for n in bunch.feature_names], 1), bunch.data)
    np.testing.assert_array_equal(t.columns["target"], bunch.target)


def test_dataset_target_and_features_can_be_chosen():
    t = load_table("sklearn:iris", target="petal width (cm)", features=["sepal length (cm)"])
    assert t.targets == ["petal width (cm)"] and t.names == ["sepal length (cm)", "petal width (cm)"]


def test_unknown_dataset_and_missing_sklearn(monkeypatch):
    with pytest.raises(DataError) as err:
        load_dataset("moonz")
    assert "unknown dataset 'moonz'" in str(err.value) and "add, moons, circles" in str(err.value)
    assert "Did you mean 'moons'?" in str(err.value)
    real = importlib.import_module

    def no_sklearn(name, *args):
        if name.startswith("sklearn"):
            raise ImportError(name)
        return real(name, *args)

    monkeypatch.setattr(importlib, "import_module", no_sklearn)
    with pytest.raises(DataError, match=r"'sklearn:wine' comes with scikit-learn.*pip install torchann\[sklearn\]"):
        load_dataset("sklearn:wine")


def test_dataset_listing():
    names = dataset_names()
    assert names[:5] == ["add", "moons", "circles", "blobs", "friedman1"]
    info = {d["name"]: d for d in describe_datasets()}
    assert info["sklearn:iris"]["needs_sklearn"] is True and info["add"]["target"] == "sum"
