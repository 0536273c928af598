"""Transaction log to per-customer summary, checked against lifetimes and the CDNOW files."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pa_parquet
import pytest
from lifetimes.utils import calibration_and_holdout_data, summary_data_from_transaction_data

from patronage.analytics.models import ModelFitError, summary_from_transactions
from patronage.analytics.models.summary import read_table, summary_from_table
from tests.analytics import (
    CALIBRATION_END,
    OBSERVATION_END,
    cdnow_summary,
    cdnow_transactions,
)


@pytest.fixture(scope="module")
def transactions() -> dict[str, object]:
    return cdnow_transactions()


def cdnow_table(transactions: dict[str, object]) -> pa.Table:
    return pa.table(transactions)


def lifetimes_frame(transactions: dict[str, object]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer": transactions["customer"],
            "date": pd.to_datetime(pd.Series(transactions["date"]), format="%Y%m%d"),
            "amount": transactions["amount"],
        }
    )


def by_customer(summary_ids: pa.Array) -> np.ndarray:
    return np.argsort(np.asarray(summary_ids.to_numpy(zero_copy_only=False), dtype=np.int64))


def test_cdnow_log_gives_the_published_summary_and_lifetimes_holdout(
    transactions: dict[str, object],
) -> None:
    summary = summary_from_transactions(
        cdnow_table(transactions),
        customer_column="customer",
        date_column="date",
        amount_column="amount",
        calibration_end=CALIBRATION_END,
        observation_end=OBSERVATION_END,
        time_unit="week",
        date_format="%Y%m%d",
    )
    order = by_customer(summary.customer_ids)
    published = cdnow_summary()
    assert summary.customers == 2357 and summary.repeat_customers == 946
    np.testing.assert_array_equal(summary.frequency[order], published["frequency"])
    np.testing.assert_allclose(summary.recency[order], published["recency"], atol=0.005 + 1e-9)
    np.testing.assert_allclose(summary.T[order], published["T"], atol=0.005 + 1e-9)
    assert summary.monetary_value is not None
    np.testing.assert_allclose(
        summary.monetary_value[order], published["monetary_value"], atol=0.005 + 1e-9
    )

    baseline = calibration_and_holdout_data(
        lifetimes_frame(transactions),
        "customer",
        "date",
        calibration_period_end="1997-09-30",
        observation_period_end="1998-06-30",
        freq="D",
        freq_multiplier=7,
        monetary_value_col="amount",
    ).sort_index()
    np.testing.assert_array_equal(summary.frequency[order], baseline["frequency_cal"])
    np.testing.assert_allclose(summary.recency[order], baseline["recency_cal"], rtol=1e-12)
    np.testing.assert_allclose(summary.T[order], baseline["T_cal"], rtol=1e-12)
    np.testing.assert_allclose(
        summary.monetary_value[order], baseline["monetary_value_cal"], rtol=1e-9
    )
    assert summary.holdout_frequency is not None
    np.testing.assert_array_equal(summary.holdout_frequency[order], baseline["frequency_holdout"])
    assert summary.holdout_duration == baseline["duration_holdout"].iloc[0] == 39.0


def test_daily_summary_matches_lifetimes(transactions: dict[str, object]) -> None:
    summary = summary_from_transactions(
        cdnow_table(transactions),
        customer_column="customer",
        date_column="date",
        amount_column="amount",
        time_unit="day",
        date_format="%Y%m%d",
    )
    baseline = summary_data_from_transaction_data(
        lifetimes_frame(transactions), "customer", "date", monetary_value_col="amount", freq="D"
    ).sort_index()
    order = by_customer(summary.customer_ids)
    for ours, theirs in (
        (summary.frequency, "frequency"),
        (summary.recency, "recency"),
        (summary.T, "T"),
        (summary.monetary_value, "monetary_value"),
    ):
        assert ours is not None
        np.testing.assert_allclose(ours[order], baseline[theirs], rtol=1e-9, err_msg=theirs)
    assert summary.holdout_frequency is None
    assert summary.observation_end == date(1998, 6, 30)


def test_same_day_purchases_count_once_and_their_amounts_add() -> None:
    log = pa.table(
        {
            "customer": ["a", "a", "a", "a", "b", "c", "c"],
            "at": [
                datetime(2024, 1, 1, 9),
                datetime(2024, 1, 1, 18),  # same day: one purchase of 10 + 5
                datetime(2024, 1, 8, 12),
                datetime(2024, 1, 8, 13),  # same day: one purchase of 20 + 40
                datetime(2024, 1, 3),
                datetime(2024, 1, 2),
                datetime(2024, 1, 20),  # holdout
            ],
            "amount": [10.0, 5.0, 20.0, 40.0, 7.0, 3.0, 9.0],
        }
    )
    summary = summary_from_transactions(
        log,
        customer_column="customer",
        date_column="at",
        amount_column="amount",
        calibration_end=date(2024, 1, 15),
        time_unit="day",
    )
    ids = summary.customer_ids.to_pylist()
    rows = {
        ids[index]: (
            summary.frequency[index],
            summary.recency[index],
            summary.T[index],
            summary.monetary_value[index] if summary.monetary_value is not None else None,
            summary.holdout_frequency[index] if summary.holdout_frequency is not None else None,
        )
        for index in range(len(ids))
    }
    assert rows == {
        "a": (1.0, 7.0, 14.0, 60.0, 0.0),
        "b": (0.0, 0.0, 12.0, 0.0, 0.0),
        "c": (0.0, 0.0, 13.0, 0.0, 1.0),
    }
    assert summary.holdout_duration == 5.0  # through the last date, 2024-01-20


def test_customers_first_seen_in_the_holdout_are_left_out() -> None:
    log = pa.table({"customer": [1, 1, 2], "date": ["2024-01-01", "2024-02-01", "2024-02-02"]})
    summary = summary_from_transactions(
        log,
        customer_column="customer",
        date_column="date",
        calibration_end=date(2024, 1, 15),
        time_unit="week",
    )
    assert summary.customer_ids.to_pylist() == [1]
    assert summary.holdout_frequency is not None and summary.holdout_frequency.tolist() == [1.0]
    assert summary.monetary_value is None


def test_rows_without_customer_date_or_amount_are_dropped_and_counted() -> None:
    log = pa.table(
        {
            "customer": ["a", None, "a", "b"],
            "date": ["2024-01-01", "2024-01-02", None, "2024-01-03"],
            "amount": [1.0, 2.0, 3.0, None],
        }
    )
    summary = summary_from_transactions(
        log, customer_column="customer", date_column="date", amount_column="amount"
    )
    assert summary.dropped_rows == 3 and summary.customers == 1


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"customer_column": "who"}, "no column who"),
        ({"calibration_end": date(2025, 1, 1), "observation_end": date(2024, 6, 1)}, "after the"),
        ({"calibration_end": date(2020, 1, 1)}, "no transaction falls on or before"),
        ({"date_format": "%d/%m/%Y"}, "cannot read the dates"),
        ({"time_unit": "month"}, "time unit must be day or week"),
    ],
)
def test_bad_logs_and_options_say_why(options: dict[str, object], message: str) -> None:
    log = pa.table({"customer": ["a", "b"], "date": ["2024-01-01", "2024-01-09"]})
    arguments: dict[str, object] = {"customer_column": "customer", "date_column": "date"}
    arguments.update(options)
    with pytest.raises(ModelFitError, match=message):
        summary_from_transactions(log, **arguments)  # type: ignore[arg-type]


def test_csv_and_parquet_files_read_alike(tmp_path: Path) -> None:
    csv_path = tmp_path / "log.csv"
    csv_path.write_text(
        "customer,date,amount\n007,2024-01-01,5\n007,2024-01-04,6\n8,2024-01-02,1\n"
    )
    from_csv = read_table(csv_path, text_columns=("customer",))
    parquet_path = tmp_path / "log.parquet"
    pa_parquet.write_table(from_csv, parquet_path)
    from_parquet = read_table(parquet_path)
    for table in (from_csv, from_parquet):
        summary = summary_from_transactions(
            table, customer_column="customer", date_column="date", amount_column="amount",
            time_unit="day",
        )  # fmt: skip
        assert summary.customer_ids.to_pylist() == ["007", "8"]
        assert summary.frequency.tolist() == [1.0, 0.0]
        assert summary.to_table().column_names == [
            "customer_id", "frequency", "recency", "T", "monetary_value"
        ]  # fmt: skip


def test_a_ready_summary_is_read_from_its_columns() -> None:
    table = pa.table({"customer_id": [1, 2], "frequency": [0, 2], "recency": [0, 3.5], "T": [4, 5]})
    summary = summary_from_table(table)
    assert summary.repeat_customers == 1 and summary.monetary_value is None
    with pytest.raises(ModelFitError, match="no column T"):
        summary_from_table(pa.table({"frequency": [1], "recency": [1]}))


def test_a_table_in_several_chunks_is_one_log() -> None:
    first = pa.table({"customer": ["a", "b"], "date": ["2024-01-01", "2024-01-02"]})
    second = pa.table(
        {"customer": ["b", "a", "z"], "date": ["2024-01-05", "2024-01-09", "2024-01-03"]}
    )
    summary = summary_from_transactions(
        pa.concat_tables([first, second]),
        customer_column="customer",
        date_column="date",
        time_unit="day",
    )
    assert summary.customer_ids.to_pylist() == ["a", "b", "z"]
    assert summary.frequency.tolist() == [1.0, 1.0, 0.0]
    assert summary.recency.tolist() == [8.0, 3.0, 0.0]
    assert summary.T.tolist() == [8.0, 7.0, 6.0]
