""".npy and .npz files to a :class:`Table`, checked before they are read.

A NumPy file's header declares its array's shape and dtype; the declared bytes must equal the
bytes the file (or zip member) holds and fit in half of this machine's memory, so a small
file claiming a huge array is refused before anything is allocated. Pickled objects are
never loaded.
"""

from __future__ import annotations

import io
import os
import tokenize
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from .table import Table
from ..core.errors import DataError
from ..core.files import memory_bytes

__all__ = ["read_npy", "read_npz"]


def _npy_header(path: Path, stream: Any, size: int, what: str) -> tuple[tuple[int, ...], np.dtype, int]:
    """Shape, dtype and data bytes a ``.npy`` header declares, checked against ``size``, the
    bytes the file (or zip member) holds, before any array is allocated."""
    from numpy.lib import format as npformat

    try:
        version = npformat.read_magic(stream)
        if version == (1, 0):
            shape, _, dtype = npformat.read_array_header_1_0(stream)
        elif version == (2, 0):
            shape, _, dtype = npformat.read_array_header_2_0(stream)
        elif version == (3, 0):  # 2.0 with a UTF-8 header; numpy 2 moved the private reader (AttributeError)
            from numpy.lib import _format_impl as private  # numpy >= 2 (numpy 1: ImportError, refused below)
            shape, _, dtype = private._read_array_header(stream, version)
        else:
            raise ValueError(f"format version {version[0]}.{version[1]} is not one numpy writes")
    except (ValueError, EOFError, OSError, SyntaxError, TypeError, RecursionError, tokenize.TokenError,
            ImportError) as err:
        # (numpy tokenizes the header's text: a NUL byte in it was a TokenError before)
        detail = str(err).splitlines()[0] if str(err) else "the header ends too early"
        raise DataError(f"{path}: {what}cannot read as a NumPy file ({detail[:120]})") from None
    if dtype.hasobject:
        raise DataError(f"{path}: {what}the array holds Python objects; save numbers or fixed-width text (no pickle)")
    count = 1
    for n in shape:
        count *= int(n)
    need = count * dtype.itemsize
    have = size - stream.tell()
    if need != have:
        shape_text = "(" + ", ".join(str(n) for n in shape) + ("," if len(shape) == 1 else "") + ")"
        raise DataError(
            f"{path}: {what}the header claims an array of shape {shape_text} ({dtype}, {need:,} bytes) but the file "
            f"holds {have:,} bytes of data; the file is truncated or damaged: save it again with numpy.save"
        )
    return tuple(shape), dtype, need


def _fits_in_memory(path: Path, need: int) -> None:
    memory = memory_bytes()
    if need > memory // 2:
        raise DataError(f"{path}: the arrays need {need:,} bytes, more than half of this machine's {memory:,} bytes "
                        f"of memory; train from it in chunks with torchann.StreamingBatches instead")


def _check_npy(path: Path) -> None:
    with open(path, "rb") as f:
        _, _, need = _npy_header(path, f, os.fstat(f.fileno()).st_size, "")
    _fits_in_memory(path, need)


def _check_npz(path: Path) -> None:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as err:  # (a zip version it cannot read)
        raise DataError(f"{path}: cannot read as a NumPy .npz file ({err or 'not a zip archive'})") from None
    total = 0
    with archive:
        for info in archive.infolist():
            what = f"array {info.filename.removesuffix('.npy')!r}: "
            try:
                with archive.open(info) as member:
                    head = io.BytesIO(member.read(min(info.file_size, 1 << 17)))
            except (zipfile.BadZipFile, zlib.error, OSError, EOFError, NotImplementedError, RuntimeError) as err:
                raise DataError(f"{path}: {what}cannot read it ({err})") from None
            # numpy reads any member that starts with the magic as an array, whatever its name
            if info.filename.endswith(".npy") or head.getvalue().startswith(b"\x93NUMPY"):
                total += _npy_header(path, head, info.file_size, what)[2]
    _fits_in_memory(path, total)


def read_npy(path: Path) -> Table:
    _check_npy(path)
    arr = _np_load(path)
    if arr.dtype.names:  # structured array: one column per field
        return Table.from_columns({n: arr[n] for n in arr.dtype.names}, source=str(path))
    if arr.ndim != 2:
        raise DataError(f"{path}: the array has shape {arr.shape}; a .npy table must be 2-D (rows, columns)")
    return Table.from_columns({f"x{j}": arr[:, j] for j in range(arr.shape[1])}, source=str(path))


def read_npz(path: Path) -> Table:
    _check_npz(path)
    arrays = _np_load(path)
    columns: dict[str, np.ndarray] = {}
    targets: list[str] = []
    lengths: dict[str, int] = {}
    with arrays:
        for key in arrays.files:
            a = _np_array(path, arrays, key)
            if a.ndim not in (1, 2):
                raise DataError(
                    f"{path}: array {key!r} has shape {a.shape}; use 1-D (one column) or 2-D (rows, columns)"
                )
            lengths[key] = len(a)
            names = [key] if a.ndim == 1 or a.shape[1] == 1 else [f"{key}{j}" for j in range(a.shape[1])]
            for j, n in enumerate(names):
                if n in columns:
                    raise DataError(f"{path}: column name {n!r} comes from two arrays; rename one array")
                columns[n] = a if a.ndim == 1 else a[:, j]
            if key == "y":
                targets = names
    if len(set(lengths.values())) > 1:
        raise DataError(
            f"{path}: arrays have different numbers of rows {lengths}; every array needs one row per sample"
        )
    if not columns:
        raise DataError(f"{path}: the file holds no arrays; save arrays 'x' and 'y' with numpy.savez")
    return Table.from_columns(columns, source=str(path), targets=targets)


def _np_load(path: Path) -> Any:
    try:
        return np.load(str(path), allow_pickle=False)
    except ValueError as err:
        if "allow_pickle" in str(err):
            raise DataError(
                f"{path}: the array holds Python objects; save numbers or fixed-width text (no pickle)"
            ) from None
        raise DataError(f"{path}: cannot read as a NumPy file ({err})") from None
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError) as err:
        raise DataError(f"{path}: cannot read as a NumPy file ({err or 'empty file'})") from None


def _np_array(path: Path, arrays: Any, key: str) -> np.ndarray:
    try:
        return arrays[key]
    except ValueError as err:
        if "allow_pickle" in str(err):
            raise DataError(f"{path}: array {key!r} holds Python objects; save numbers or fixed-width text") from None
        raise DataError(f"{path}: cannot read array {key!r} ({err})") from None
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, NotImplementedError, RuntimeError) as err:
        raise DataError(f"{path}: cannot read array {key!r} ({str(err)[:160]}); the .npz file is damaged") from None
