"""From a transaction log to the per-customer summary the models fit: x, t_x, T, mean spend.

The rules are lifetimes' `summary_data_from_transaction_data` with daily periods: purchases on the
same calendar day count once (their amounts are added), frequency counts the purchase days after
the first, recency is the time from the first to the last purchase day, T the time from the first
purchase day to the end of the calibration period, and monetary_value the mean amount of the
repeat purchase days (the first day excluded). A week is 7 days (lifetimes' freq="D",
freq_multiplier=7, as in Fader and Hardie's CDNOW summary). Timestamps with a time zone are
taken as UTC days.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Literal

import numpy as np

from patronage.analytics.models.errors import ModelFitError
from patronage.analytics.models.fitting import FloatArray

TimeUnit = Literal["day", "week"]
DAYS_PER_UNIT: dict[str, int] = {"day": 1, "week": 7}
EPOCH = date(1970, 1, 1)
SUMMARY_COLUMNS = ("frequency", "recency", "T")


@dataclass(frozen=True)
class CustomerSummary:
    """Per-customer repeat-purchase summary over a calibration period, with the holdout counts."""

    customer_ids: Any  # a pyarrow Array, or None when the summary was given without ids
    frequency: FloatArray
    recency: FloatArray
    T: FloatArray
    monetary_value: FloatArray | None = None
    holdout_frequency: FloatArray | None = None
    holdout_duration: float | None = None
    time_unit: TimeUnit = "week"
    calibration_end: date | None = None
    observation_end: date | None = None
    dropped_rows: int = 0

    @property
    def customers(self) -> int:
        """Number of customers."""
        return int(self.frequency.size)

    @property
    def repeat_customers(self) -> int:
        """Number of customers with at least one repeat purchase."""
        return int(np.count_nonzero(self.frequency > 0))

    def to_table(self) -> Any:
        """The summary as a pyarrow Table (customer_id, frequency, recency, T, …)."""
        import pyarrow as pa

        columns: dict[str, Any] = {}
        if self.customer_ids is not None:
            columns["customer_id"] = self.customer_ids
        columns.update(frequency=self.frequency, recency=self.recency, T=self.T)
        if self.monetary_value is not None:
            columns["monetary_value"] = self.monetary_value
        if self.holdout_frequency is not None:
            columns["holdout_frequency"] = self.holdout_frequency
        return pa.table(columns)


def read_table(path: Path, *, text_columns: tuple[str, ...] = ()) -> Any:
    """Read a CSV or Parquet file (by suffix) into a pyarrow Table; `text_columns` stay text."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pa_parquet

    if path.suffix.lower() in {".parquet", ".pq"}:
        return pa_parquet.read_table(path)
    options = pa_csv.ConvertOptions(column_types={name: pa.string() for name in text_columns})
    return pa_csv.read_csv(path, convert_options=options)


def _day_numbers(column: Any, date_format: str | None) -> Any:
    """Days since 1970-01-01 of a date, timestamp or text column (nulls stay null)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_integer(column.type):
        column = pc.cast(column, pa.string())
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        try:
            if date_format:
                column = pc.strptime(column, format=date_format, unit="s", error_is_null=False)
            else:
                column = pc.cast(column, pa.timestamp("s"))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
            raise ModelFitError(f"cannot read the dates: {error}") from error
    if pa.types.is_timestamp(column.type):
        seconds = pc.cast(column, pa.timestamp("s"), safe=False)
        return pc.floor(pc.divide(pc.cast(seconds, pa.int64()), 86400.0))
    if pa.types.is_date(column.type):
        return pc.cast(pc.cast(column, pa.date32()), pa.int32())
    raise ModelFitError(f"the date column has type {column.type}, not a date, timestamp or text")


def _day_number(value: date) -> int:
    return (value - EPOCH).days


def summary_from_transactions(
    transactions: Any,
    *,
    customer_column: str,
    date_column: str,
    amount_column: str | None = None,
    calibration_end: date | None = None,
    observation_end: date | None = None,
    time_unit: TimeUnit = "week",
    date_format: str | None = None,
) -> CustomerSummary:
    """Summarise a transaction log (a pyarrow Table) per customer over the calibration period.

    Transactions after `observation_end` (default: the last date in the log) are ignored; those
    after `calibration_end` (default: `observation_end`) are counted per customer, as distinct
    purchase days, in the holdout. Customers whose first purchase falls in the holdout are left
    out, as lifetimes does. Rows without a customer, date or amount are dropped and counted.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if time_unit not in DAYS_PER_UNIT:
        raise ModelFitError(f"time unit must be day or week, not {time_unit!r}")
    missing = [
        name
        for name in (customer_column, date_column, amount_column)
        if name is not None and name not in transactions.column_names
    ]
    if missing:
        raise ModelFitError(
            f"the transactions have no column {', '.join(missing)} "
            f"(columns: {', '.join(transactions.column_names)})"
        )
    customers = transactions.column(customer_column)
    days = _day_numbers(transactions.column(date_column), date_format)
    valid = pc.and_(pc.is_valid(customers), pc.is_valid(days))
    amounts = None
    if amount_column is not None:
        amount_values = transactions.column(amount_column)
        if (
            not pa.types.is_floating(amount_values.type)
            and not pa.types.is_integer(amount_values.type)
            and not pa.types.is_decimal(amount_values.type)
        ):
            try:
                amount_values = pc.cast(amount_values, pa.float64())
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
                raise ModelFitError(f"cannot read the amounts as numbers: {error}") from error
        valid = pc.and_(valid, pc.is_valid(amount_values))
        amounts = pc.cast(amount_values, pa.float64())
    valid_mask = np.asarray(valid.to_numpy(zero_copy_only=False), dtype=bool)
    dropped = int(valid_mask.size - np.count_nonzero(valid_mask))
    encoded = pc.dictionary_encode(customers)
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.unify_dictionaries().combine_chunks()
    codes_all = np.asarray(encoded.indices.to_numpy(zero_copy_only=False))
    day_all = np.asarray(days.to_numpy(zero_copy_only=False))
    codes = codes_all[valid_mask].astype(np.int64)
    day = day_all[valid_mask].astype(np.int64)
    amount = (
        np.asarray(amounts.to_numpy(zero_copy_only=False), dtype=np.float64)[valid_mask]
        if amounts is not None
        else None
    )
    if day.size == 0:
        raise ModelFitError("the transaction log has no usable rows")
    observation_day = _day_number(observation_end) if observation_end else int(day.max())
    calibration_day = _day_number(calibration_end) if calibration_end else observation_day
    if calibration_day > observation_day:
        raise ModelFitError(
            f"the calibration end {EPOCH + timedelta(days=calibration_day)} is after the "
            f"observation end {EPOCH + timedelta(days=observation_day)}"
        )
    in_calibration = day <= calibration_day
    if not np.any(in_calibration):
        raise ModelFitError("no transaction falls on or before the calibration end")
    unit = float(DAYS_PER_UNIT[time_unit])

    # Calibration: distinct (customer, day) pairs, sorted by customer then day.
    first_day = int(day[in_calibration].min())
    span = calibration_day - first_day + 1
    key = codes[in_calibration] * span + (day[in_calibration] - first_day)
    unique_keys, inverse = np.unique(key, return_inverse=True)
    pair_customer = unique_keys // span
    pair_day = unique_keys % span + first_day
    starts = np.flatnonzero(np.r_[True, pair_customer[1:] != pair_customer[:-1]])
    ends = np.r_[starts[1:], pair_customer.size]
    purchase_days = (ends - starts).astype(np.float64)
    customer_codes = pair_customer[starts]
    first_purchase = pair_day[starts]
    last_purchase = pair_day[ends - 1]
    frequency = purchase_days - 1
    recency = (last_purchase - first_purchase) / unit
    age = (calibration_day - first_purchase) / unit
    monetary_value = None
    if amount is not None:
        day_amounts = np.bincount(
            inverse, weights=amount[in_calibration], minlength=unique_keys.size
        )
        totals = np.add.reduceat(day_amounts, starts)
        repeat_totals = totals - day_amounts[starts]
        with np.errstate(invalid="ignore", divide="ignore"):
            monetary_value = np.where(frequency > 0, repeat_totals / frequency, 0.0)

    holdout_frequency = None
    holdout_duration = None
    if calibration_day < observation_day:
        in_holdout = (day > calibration_day) & (day <= observation_day)
        holdout_duration = (observation_day - calibration_day) / unit
        holdout_keys = np.unique(codes[in_holdout] * (observation_day + 1) + day[in_holdout])
        holdout_counts = np.bincount(
            holdout_keys // (observation_day + 1), minlength=len(encoded.dictionary)
        )
        holdout_frequency = holdout_counts[customer_codes].astype(np.float64)

    return CustomerSummary(
        customer_ids=encoded.dictionary.take(pa.array(customer_codes)),
        frequency=frequency,
        recency=np.asarray(recency, dtype=np.float64),
        T=np.asarray(age, dtype=np.float64),
        monetary_value=monetary_value,
        holdout_frequency=holdout_frequency,
        holdout_duration=holdout_duration,
        time_unit=time_unit,
        calibration_end=EPOCH + timedelta(days=calibration_day),
        observation_end=EPOCH + timedelta(days=observation_day),
        dropped_rows=dropped,
    )


def summary_from_table(table: Any, *, time_unit: TimeUnit = "week") -> CustomerSummary:
    """Read a ready summary (frequency, recency, T and optionally monetary_value) from a Table."""
    missing = [name for name in SUMMARY_COLUMNS if name not in table.column_names]
    if missing:
        raise ModelFitError(
            f"the summary has no column {', '.join(missing)} (it needs frequency, recency, T "
            "and optionally monetary_value)"
        )

    def column(name: str) -> FloatArray:
        values = table.column(name).to_numpy()
        try:
            return np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError) as error:
            raise ModelFitError(f"the summary column {name} is not numeric: {error}") from error

    identifier = next(
        (name for name in ("customer_id", "ID", "id") if name in table.column_names), None
    )
    return CustomerSummary(
        customer_ids=table.column(identifier).combine_chunks() if identifier else None,
        frequency=column("frequency"),
        recency=column("recency"),
        T=column("T"),
        monetary_value=column("monetary_value") if "monetary_value" in table.column_names else None,
        time_unit=time_unit,
    )
