"""`patronage clv fit` on small files written in tmp_path."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pa_parquet
import pytest
import typer
from typer.testing import CliRunner

from patronage.cli import clv
from tests.analytics import cdnow_summary

runner = CliRunner()
app = typer.Typer()
app.add_typer(clv.app, name="clv")
START = date(2024, 1, 1)


def simulated_log(customers: int, seed: int = 11) -> pa.Table:
    """Purchases of `customers` customers drawn from the BG/NBD process, with amounts."""
    generator = np.random.default_rng(seed)
    rows: list[tuple[str, str, float]] = []
    for customer in range(customers):
        day = float(generator.integers(0, 60))
        rate = generator.gamma(0.8, 1 / 12.0)  # purchases per day
        dropout = generator.beta(1.0, 4.0)
        spend = generator.gamma(4.0, 10.0)
        while day < 300:
            rows.append((f"c{customer:04d}", (START + timedelta(days=int(day))).isoformat(),
                         round(float(generator.gamma(6.0, spend / 6.0)), 2)))  # fmt: skip
            day += generator.exponential(1 / rate)
            if len(rows) > 1 and rows[-1][0] == rows[-2][0] and generator.random() < dropout:
                break
    customer_ids, dates, amounts = zip(*rows, strict=True)
    return pa.table({"customer": customer_ids, "ordered_on": dates, "total": amounts})


@pytest.fixture(scope="module")
def log_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("clv") / "orders.csv"
    pa_csv.write_csv(simulated_log(600), path)
    return path


def test_fit_a_log_with_a_holdout_prints_the_models_as_json(log_csv: Path, tmp_path: Path) -> None:
    predictions = tmp_path / "predictions.parquet"
    result = runner.invoke(
        app,
        ["clv", "fit", str(log_csv), "--customer-col", "customer", "--date-col", "ordered_on",
         "--amount-col", "total", "--calibration-end", "2024-07-18", "--observation-end",
         "2024-10-26", "--time-unit", "week", "--predictions", str(predictions), "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["customers"] == 600
    assert 60 <= report["repeat_customers"] < 600
    assert set(report["bgnbd"]) == {"r", "alpha", "a", "b", "log_likelihood", "standard_errors"}
    assert set(report["bgnbd"]["standard_errors"]) == {"r", "alpha", "a", "b"}
    assert set(report["gamma_gamma"]) >= {"p", "q", "gamma", "log_likelihood"}
    assert report["gamma_gamma"]["q"] > 1
    assert "pareto_nbd" in report or "pareto_nbd" in report["errors"]
    holdout = report["holdout"]
    assert holdout["duration"] == pytest.approx(100 / 7)
    accuracy = holdout["bgnbd"]
    assert accuracy["actual_purchases_total"] > 0
    assert 0.5 < accuracy["predicted_purchases_total"] / accuracy["actual_purchases_total"] < 2
    assert accuracy["correlation"] > 0.3
    assert report["clv"]["months"] == 12 and report["clv"]["total"] > 0
    written = pa_parquet.read_table(predictions)
    assert written.num_rows == 600
    assert {"probability_alive", "expected_spend", "clv"} <= set(written.column_names)


def test_fit_a_summary_reproduces_the_published_cdnow_estimates(tmp_path: Path) -> None:
    summary = cdnow_summary()
    path = tmp_path / "summary.csv"
    pa_csv.write_csv(pa.table(summary), path)
    result = runner.invoke(app, ["clv", "fit", str(path), "--summary", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["customers"] == 2357 and report["repeat_customers"] == 946
    assert round(report["bgnbd"]["r"], 3) == 0.243 and round(report["bgnbd"]["b"], 2) == 2.43
    assert round(report["pareto_nbd"]["s"], 3) == 0.606
    assert round(report["gamma_gamma"]["p"], 2) == 6.25
    assert "holdout" not in report
    annual = runner.invoke(
        app, ["clv", "fit", str(path), "--summary", "--annual-discount-rate", "0.12", "--json"]
    )
    assert json.loads(annual.stdout)["clv"]["monthly_discount_rate"] == pytest.approx(0.00948879)


def test_text_output_for_people(log_csv: Path) -> None:
    result = runner.invoke(
        app, ["clv", "fit", str(log_csv), "--customer-col", "customer", "--date-col",
              "ordered_on", "--time-unit", "day"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "600 customers" in result.output and "BG/NBD: r = " in result.output
    assert "gamma_gamma: no amounts" in result.output


def test_data_that_cannot_support_a_fit_fails_with_the_reason(tmp_path: Path) -> None:
    path = tmp_path / "few.csv"
    path.write_text("customer,date\n1,2024-01-01\n1,2024-02-01\n2,2024-01-05\n")
    result = runner.invoke(app, ["clv", "fit", str(path), "--customer-col", "customer"])
    assert result.exit_code == 1
    assert "2 customers are too few" in result.output


def test_missing_file_and_column_and_bad_date_fail_cleanly(log_csv: Path) -> None:
    missing = runner.invoke(app, ["clv", "fit", "/nonexistent.csv"])
    assert missing.exit_code == 1 and "no such file" in missing.output
    no_column = runner.invoke(app, ["clv", "fit", str(log_csv), "--customer-col", "who"])
    assert no_column.exit_code == 1 and "no column who" in no_column.output
    bad_date = runner.invoke(
        app, ["clv", "fit", str(log_csv), "--customer-col", "customer", "--date-col",
              "ordered_on", "--calibration-end", "July"],
    )  # fmt: skip
    assert bad_date.exit_code == 1 and "YYYY-MM-DD" in bad_date.output
