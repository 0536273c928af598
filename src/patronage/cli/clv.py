"""`patronage clv …`: fit the customer-base models (BG/NBD, Pareto/NBD, Gamma-Gamma) to a file."""

from __future__ import annotations

import math
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from patronage.cli.output import console, fail, print_json

app = typer.Typer(
    help="Customer lifetime value: BG/NBD, Pareto/NBD and Gamma-Gamma.", no_args_is_help=True
)


class TimeUnitChoice(StrEnum):
    """Unit of recency, T and the model's rates."""

    day = "day"
    week = "week"


def _parse_date(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        fail(f"{option} must be a date YYYY-MM-DD, not {value!r}")


def _rounded(value: float, digits: int = 6) -> float | None:
    return None if not math.isfinite(value) else float(f"{value:.{digits}g}")


def _model_report(model: Any) -> dict[str, Any]:
    """Parameters, log-likelihood and standard errors (delta method from the log scale)."""
    parameters = model.parameters()
    report: dict[str, Any] = {name: _rounded(value) for name, value in parameters.items()}
    report["log_likelihood"] = _rounded(model.log_likelihood, 8)
    diagnostics = model.diagnostics
    if diagnostics is not None and diagnostics.log_standard_errors:
        report["standard_errors"] = {
            name: _rounded(value * error, 3)
            for (name, value), error in zip(
                parameters.items(), diagnostics.log_standard_errors, strict=True
            )
        }
    return report


def _holdout_accuracy(predicted: Any, actual: Any) -> dict[str, Any]:
    correlation = (
        float(np.corrcoef(predicted, actual)[0, 1])
        if np.ptp(actual) > 0 and np.ptp(predicted) > 0
        else math.nan
    )
    return {
        "predicted_purchases_total": _rounded(float(predicted.sum())),
        "actual_purchases_total": float(actual.sum()),
        "mean_absolute_error": _rounded(float(np.mean(np.abs(predicted - actual)))),
        "correlation": _rounded(correlation),
    }


@app.command("fit")
def fit(
    path: Annotated[Path, typer.Argument(help="Transaction log or summary, CSV or Parquet.")],
    customer_column: Annotated[
        str, typer.Option("--customer-col", help="Column with the customer id.")
    ] = "customer_id",
    date_column: Annotated[
        str, typer.Option("--date-col", help="Column with the purchase date or timestamp.")
    ] = "date",
    amount_column: Annotated[
        str | None, typer.Option("--amount-col", help="Column with the purchase amount.")
    ] = None,
    calibration_end: Annotated[
        str | None,
        typer.Option(help="Last day of the calibration period (YYYY-MM-DD); later is holdout."),
    ] = None,
    observation_end: Annotated[
        str | None, typer.Option(help="Last day to read (YYYY-MM-DD); default: the last date.")
    ] = None,
    time_unit: Annotated[
        TimeUnitChoice, typer.Option(help="Unit of recency and T: day or week (7 days).")
    ] = TimeUnitChoice.week,
    date_format: Annotated[
        str | None, typer.Option(help="strptime format of text dates, e.g. %Y%m%d.")
    ] = None,
    summary: Annotated[
        bool,
        typer.Option(
            "--summary",
            help="PATH is a per-customer summary (frequency, recency, T, monetary_value).",
        ),
    ] = False,
    months: Annotated[int, typer.Option(help="CLV horizon in months.")] = 12,
    monthly_discount_rate: Annotated[
        float, typer.Option(help="Monthly discount rate of the CLV.")
    ] = 0.01,
    annual_discount_rate: Annotated[
        float | None,
        typer.Option(help="Annual discount rate; replaces the monthly one: (1 + d)^(1/12) - 1."),
    ] = None,
    margin: Annotated[float, typer.Option(help="Profit margin applied to the spend.")] = 1.0,
    predictions: Annotated[
        Path | None,
        typer.Option(help="Write per-customer predictions here (.csv or .parquet)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")] = False,
) -> None:
    """Fit BG/NBD, Pareto/NBD and Gamma-Gamma to a transaction log or summary; report CLV."""
    from patronage.analytics.models import (
        ModelFitError,
        customer_lifetime_value,
        fit_bgnbd,
        fit_gamma_gamma,
        fit_pareto_nbd,
        monthly_rate_from_annual,
    )
    from patronage.analytics.models.clv import UNITS_PER_MONTH
    from patronage.analytics.models.summary import (
        read_table,
        summary_from_table,
        summary_from_transactions,
    )

    if not path.exists():
        fail(f"no such file: {path}")
    if annual_discount_rate is not None:
        monthly_discount_rate = monthly_rate_from_annual(annual_discount_rate)
    try:
        if summary:
            table = read_table(path)
            customer_summary = summary_from_table(table, time_unit=time_unit.value)
        else:
            table = read_table(path, text_columns=(customer_column,))
            customer_summary = summary_from_transactions(
                table,
                customer_column=customer_column,
                date_column=date_column,
                amount_column=amount_column,
                calibration_end=_parse_date(calibration_end, "--calibration-end"),
                observation_end=_parse_date(observation_end, "--observation-end"),
                time_unit=time_unit.value,
                date_format=date_format,
            )
        frequency = customer_summary.frequency
        recency = customer_summary.recency
        age = customer_summary.T
        purchase_model = fit_bgnbd(frequency, recency, age)
    except ModelFitError as error:
        fail(error.detail)
    except (OSError, ValueError) as error:
        fail(f"cannot read {path}: {error}")

    result: dict[str, Any] = {
        "customers": customer_summary.customers,
        "repeat_customers": customer_summary.repeat_customers,
        "time_unit": time_unit.value,
    }
    if customer_summary.calibration_end is not None:
        result["calibration_end"] = customer_summary.calibration_end.isoformat()
        result["observation_end"] = (
            customer_summary.observation_end.isoformat()
            if customer_summary.observation_end
            else None
        )
    if customer_summary.dropped_rows:
        result["dropped_rows"] = customer_summary.dropped_rows
    errors: dict[str, str] = {}
    result["bgnbd"] = _model_report(purchase_model)
    pareto_model = None
    try:
        pareto_model = fit_pareto_nbd(frequency, recency, age)
        result["pareto_nbd"] = _model_report(pareto_model)
    except ModelFitError as error:
        errors["pareto_nbd"] = error.detail
    spend_model = None
    if customer_summary.monetary_value is not None:
        try:
            spend_model = fit_gamma_gamma(frequency, customer_summary.monetary_value)
            result["gamma_gamma"] = {
                **_model_report(spend_model),
                "customers": spend_model.customers,
                "frequency_spend_correlation": _rounded(spend_model.frequency_spend_correlation, 4),
            }
        except ModelFitError as error:
            errors["gamma_gamma"] = error.detail
    else:
        errors["gamma_gamma"] = "no amounts: give --amount-col (or a monetary_value column)"

    holdout = customer_summary.holdout_frequency
    if holdout is not None and customer_summary.holdout_duration:
        duration = customer_summary.holdout_duration
        accuracy: dict[str, Any] = {"duration": duration}
        accuracy["bgnbd"] = _holdout_accuracy(
            purchase_model.conditional_expected_purchases(duration, frequency, recency, age),
            holdout,
        )
        if pareto_model is not None:
            accuracy["pareto_nbd"] = _holdout_accuracy(
                pareto_model.conditional_expected_purchases(duration, frequency, recency, age),
                holdout,
            )
        result["holdout"] = accuracy

    values = None
    if spend_model is not None and customer_summary.monetary_value is not None:
        values = customer_lifetime_value(
            purchase_model,
            spend_model,
            frequency,
            recency,
            age,
            customer_summary.monetary_value,
            months=months,
            monthly_discount_rate=monthly_discount_rate,
            margin=margin,
            units_per_month=UNITS_PER_MONTH[time_unit.value],
        )
        result["clv"] = {
            "months": months,
            "monthly_discount_rate": _rounded(monthly_discount_rate),
            "margin": margin,
            "total": _rounded(float(values.sum()), 10),
            "mean": _rounded(float(values.mean())),
        }
    if errors:
        result["errors"] = errors
    if predictions is not None:
        _write_predictions(predictions, customer_summary, purchase_model, spend_model, values)
        result["predictions"] = str(predictions)

    if as_json:
        print_json(result)
        return
    _print_text(result)


def _write_predictions(
    path: Path, customer_summary: Any, purchase_model: Any, spend_model: Any, values: Any
) -> None:
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pa_parquet

    table = customer_summary.to_table()
    frequency, recency, age = (
        customer_summary.frequency,
        customer_summary.recency,
        customer_summary.T,
    )
    table = table.append_column(
        "probability_alive", [purchase_model.probability_alive(frequency, recency, age)]
    )
    if spend_model is not None:
        table = table.append_column(
            "expected_spend",
            [spend_model.conditional_expected_spend(frequency, customer_summary.monetary_value)],
        )
    if values is not None:
        table = table.append_column("clv", [values])
    if path.suffix.lower() in {".parquet", ".pq"}:
        pa_parquet.write_table(table, path)
    else:
        pa_csv.write_csv(table, path)


def _print_text(result: dict[str, Any]) -> None:
    console.print(
        f"[bold]{result['customers']:,} customers[/], {result['repeat_customers']:,} bought again"
    )
    for key, title in (
        ("bgnbd", "BG/NBD"),
        ("pareto_nbd", "Pareto/NBD"),
        ("gamma_gamma", "Gamma-Gamma"),
    ):
        if key in result:
            fitted = result[key]
            parameters = ", ".join(
                f"{name} = {value}"
                for name, value in fitted.items()
                if name
                not in {
                    "log_likelihood",
                    "customers",
                    "frequency_spend_correlation",
                    "standard_errors",
                }
            )
            console.print(f"{title}: {parameters}  (log-likelihood {fitted['log_likelihood']})")
    if "holdout" in result:
        holdout = result["holdout"]
        bgnbd = holdout["bgnbd"]
        console.print(
            f"holdout {holdout['duration']:g} {result['time_unit']}s: predicted "
            f"{bgnbd['predicted_purchases_total']} purchases, actual "
            f"{bgnbd['actual_purchases_total']:g}, MAE {bgnbd['mean_absolute_error']}, "
            f"correlation {bgnbd['correlation']}"
        )
    if "clv" in result:
        clv = result["clv"]
        console.print(
            f"CLV over {clv['months']} months at {clv['monthly_discount_rate']:.2%} a month: "
            f"total {clv['total']:,.2f}, mean {clv['mean']:,.2f}"
        )
    for model, message in result.get("errors", {}).items():
        console.print(f"[yellow]{model}:[/] {message}")
