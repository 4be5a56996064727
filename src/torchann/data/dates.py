"""Date and timestamp values as the ISO text that a date feature parses.

pyarrow reads ISO dates in a CSV file as ``date32``, Parquet and pandas store dates and times
as dates or timestamps, and users pass ``datetime.date`` objects or ``numpy.datetime64``
arrays. The preprocessing learns a date feature from text (``preprocess/encoders.py``), so
every one of these becomes the same text first: a table gives one model whichever way its
dates arrive.
"""

from __future__ import annotations

import datetime
from typing import Any

import numpy as np

__all__ = ["dates_as_text", "is_date_values", "numpy_dates_as_text"]


def dates_as_text(col: Any) -> Any:
    """A pyarrow date or timestamp array as text: ``2024-03-01``, or ``2024-03-01 12:30:00`` (to
    the second) where any value has a time of day. Missing values stay missing."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_date(col.type):
        return pc.strftime(col.cast(pa.date32()), format="%Y-%m-%d")
    seconds = col.cast(pa.timestamp("s", col.type.tz), safe=False)
    if pc.all(pc.equal(seconds, pc.floor_temporal(seconds, unit="day"))).as_py() is not False:
        return pc.strftime(seconds, format="%Y-%m-%d")
    return pc.strftime(seconds, format="%Y-%m-%d %H:%M:%S")


def is_date_values(arr: np.ndarray) -> bool:
    """A numpy datetime64 array, or an object array whose first present value is a date."""
    if arr.dtype.kind == "M":
        return True
    if arr.dtype.kind != "O":
        return False
    first = next((v for v in arr.tolist() if v is not None and not (isinstance(v, float) and v != v)), None)
    return isinstance(first, datetime.date)


def numpy_dates_as_text(arr: np.ndarray) -> np.ndarray:
    """:func:`dates_as_text` of a numpy column, as an object array of text and None."""
    import pyarrow as pa

    return dates_as_text(pa.array(arr, from_pandas=True)).to_numpy(zero_copy_only=False).astype(object)
