"""Tests of the analytics domain; the helpers below read the CDNOW data shipped with lifetimes.

lifetimes (a dev dependency) is the baseline our models are checked against. Its own dataset
loader needs pkg_resources, so the files are read through importlib.resources.
"""

from __future__ import annotations

import math
import warnings
from datetime import date
from importlib.resources import files
from typing import Any

import numpy as np

with warnings.catch_warnings():
    # lifetimes 0.11 sets a pandas option that pandas 3 deprecates, on import.
    warnings.simplefilter("ignore")
    import lifetimes  # noqa: F401

CALIBRATION_END = date(1997, 9, 30)
OBSERVATION_END = date(1998, 6, 30)


def dataset_path(name: str) -> str:
    """Path of one of lifetimes' data files."""
    return str(files("lifetimes") / "datasets" / name)


def cdnow_summary() -> dict[str, Any]:
    """The 2,357-customer CDNOW summary (weeks) with the mean spend of the repeat purchases."""
    rows = np.genfromtxt(
        dataset_path("cdnow_customers_summary_with_transactions.csv"), delimiter=",", names=True
    )
    return {
        "customer_id": rows["ID"].astype(np.int64),
        "frequency": rows["x"],
        "recency": rows["t_x"],
        "T": rows["T"],
        "monetary_value": rows["zbar"],
    }


def cdnow_transactions() -> dict[str, Any]:
    """CDNOW_sample.txt: customer (sample id), date (YYYYMMDD as text), CDs, amount."""
    raw = np.loadtxt(dataset_path("CDNOW_sample.txt"))
    return {
        "customer": raw[:, 1].astype(np.int64),
        "date": [str(int(value)) for value in raw[:, 2]],
        "amount": raw[:, 4],
    }


def same_to_significant_digits(ours: float, published: float, digits: int = 3) -> bool:
    """Whether `ours` rounds to `published` at `digits` significant digits (half a unit)."""
    unit = 10 ** (math.floor(math.log10(abs(published))) - digits + 1)
    return abs(ours - published) <= unit / 2 + 1e-12
