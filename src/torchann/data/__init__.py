"""Tables as read, nothing fitted: the ``Table`` (``table``), column kinds and missing masks
(``columns``), file readers for CSV/TSV/Parquet/.npy/.npz (``readers``), built-in datasets
(``datasets``), seeded splits (``splits``), the rows a model trained on (``run_rows``), what a
user may pass as data (``table_input``) and as tensors (``tensors``).
May import: ``core``.
"""

from .table import Table, Key
from .readers import load_table, table_from_arrow, FORMATS
from .datasets import load_dataset, dataset_names
from .splits import split_indices
from .run_rows import RunRows
from .table_input import as_table

__all__ = ["Table", "Key", "load_table", "table_from_arrow", "FORMATS", "load_dataset", "dataset_names", "split_indices", "RunRows", "as_table"]
