"""The cell that stops a column of numbers from being numbers, in a delimited text file.

pyarrow fixes a CSV column's type from its first block: a word further down a column of
numbers then fails the whole read with ``In CSV column #4: CSV conversion error to double:
invalid value 'unknown'`` (columns counted from 0, no row). These helpers turn that into the
column's name, and find the row by reading that one column again as text, block by block, so
the message can be the one a table read whole gives (``readers.numeric_text_error``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np

__all__ = ["conversion_column", "first_text_cell", "is_number"]

_CONVERSION = re.compile(r"In CSV column #(\d+): (?:Row #\d+: )?CSV conversion error to [^:]+: invalid value")
SCAN_BLOCK_BYTES = 16 << 20


def is_number(text: str) -> bool:
    """Whether ``float`` reads ``text``: the rule by which a text column "holds numbers"."""
    try:
        float(text)
    except ValueError:
        return False
    return True


def conversion_column(message: str, names: Sequence[str]) -> str | None:
    """The name of the column pyarrow's conversion error ``message`` is about (None: not one)."""
    match = _CONVERSION.search(message)
    if match is None:
        return None
    index = int(match.group(1))
    return names[index] if index < len(names) else None


def first_text_cell(path: str | Path, delimiter: str, name: str) -> tuple[int, Any, bool] | None:
    """Column ``name`` of ``path`` read as text: the 1-based row of its first value that is not
    a number, that value, and whether numbers are most of the column's values; None when
    every value is a number. Memory holds one block of the one column."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv

    reader = pacsv.open_csv(
        str(path), parse_options=pacsv.ParseOptions(delimiter=delimiter),
        read_options=pacsv.ReadOptions(block_size=SCAN_BLOCK_BYTES),
        convert_options=pacsv.ConvertOptions(strings_can_be_null=True, include_columns=[name],
                                             column_types={name: pa.string()}),
    )
    first: tuple[int, Any] | None = None
    numbers = words = start = 0
    for batch in reader:
        column = batch.column(0)
        counts = pc.value_counts(column)
        values, n = counts.field("values").to_pylist(), counts.field("counts").to_pylist()
        bad = [v for v in values if v is not None and not is_number(v)]
        words_here = sum(c for v, c in zip(values, n) if v in set(bad))
        words += words_here
        numbers += sum(c for v, c in zip(values, n) if v is not None) - words_here
        if first is None and bad:
            i = int(np.argmax(pc.is_in(column, value_set=pa.array(bad)).to_numpy(zero_copy_only=False)))
            first = (start + i + 1, column[i].as_py())
        start += batch.num_rows
    return None if first is None else (first[0], first[1], numbers >= words)
