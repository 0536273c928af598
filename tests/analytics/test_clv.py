"""CLV: lifetimes' customer_lifetime_value on the same parameters, vectorised paths, options."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from lifetimes import BetaGeoFitter, GammaGammaFitter

from patronage.analytics.models import (
    BgNbdModel,
    GammaGammaModel,
    ModelFitError,
    customer_lifetime_value,
    fit_bgnbd,
    fit_gamma_gamma,
    fit_pareto_nbd,
    monthly_rate_from_annual,
    summary_from_transactions,
)
from patronage.analytics.models.clv import UNITS_PER_MONTH, discounted_expected_purchases
from tests.analytics import CALIBRATION_END, cdnow_summary, cdnow_transactions


@pytest.fixture(scope="module")
def summary() -> dict[str, np.ndarray]:
    return cdnow_summary()


@pytest.fixture(scope="module")
def models(summary: dict[str, np.ndarray]) -> tuple[BgNbdModel, GammaGammaModel]:
    return (
        fit_bgnbd(summary["frequency"], summary["recency"], summary["T"]),
        fit_gamma_gamma(summary["frequency"], summary["monetary_value"]),
    )


def lifetimes_clv(
    purchase_model: BgNbdModel,
    spend_model: GammaGammaModel,
    columns: dict[str, np.ndarray],
    *,
    months: int,
    rate: float,
    freq: str,
) -> np.ndarray:
    purchases = BetaGeoFitter()
    purchases.params_ = pd.Series(purchase_model.parameters())
    purchases.predict = purchases.conditional_expected_number_of_purchases_up_to_time
    spend = GammaGammaFitter()
    spend.params_ = pd.Series({"p": spend_model.p, "q": spend_model.q, "v": spend_model.gamma})
    index = pd.RangeIndex(columns["frequency"].size)
    series = {name: pd.Series(values, index=index) for name, values in columns.items()}
    values = spend.customer_lifetime_value(
        purchases,
        series["frequency"],
        series["recency"],
        series["T"],
        series["monetary_value"],
        time=months,
        discount_rate=rate,
        freq=freq,
    )
    return np.asarray(values, dtype=np.float64)


@pytest.mark.parametrize(("months", "rate"), [(12, 0.01), (3, 0.0), (36, 0.02)])
def test_weekly_clv_matches_lifetimes(
    models: tuple[BgNbdModel, GammaGammaModel],
    summary: dict[str, np.ndarray],
    months: int,
    rate: float,
) -> None:
    purchase_model, spend_model = models
    ours = customer_lifetime_value(
        purchase_model,
        spend_model,
        summary["frequency"],
        summary["recency"],
        summary["T"],
        summary["monetary_value"],
        months=months,
        monthly_discount_rate=rate,
    )
    theirs = lifetimes_clv(purchase_model, spend_model, summary, months=months, rate=rate, freq="W")
    np.testing.assert_allclose(ours, theirs, rtol=1e-6)


def test_daily_clv_matches_lifetimes() -> None:
    log = summary_from_transactions(
        pa.table(cdnow_transactions()),
        customer_column="customer",
        date_column="date",
        amount_column="amount",
        calibration_end=CALIBRATION_END,
        time_unit="day",
        date_format="%Y%m%d",
    )
    assert log.monetary_value is not None
    purchase_model = fit_bgnbd(log.frequency, log.recency, log.T)
    spend_model = fit_gamma_gamma(log.frequency, log.monetary_value)
    # alpha in days is the weekly alpha times 7.
    assert purchase_model.alpha == pytest.approx(4.414 * 7, rel=2e-3)
    ours = customer_lifetime_value(
        purchase_model,
        spend_model,
        log.frequency,
        log.recency,
        log.T,
        log.monetary_value,
        units_per_month=UNITS_PER_MONTH["day"],
    )
    columns = {
        "frequency": log.frequency,
        "recency": log.recency,
        "T": log.T,
        "monetary_value": log.monetary_value,
    }
    theirs = lifetimes_clv(purchase_model, spend_model, columns, months=12, rate=0.01, freq="D")
    np.testing.assert_allclose(ours, theirs, rtol=1e-6)


def test_many_customers_take_the_distinct_pairs_path(
    models: tuple[BgNbdModel, GammaGammaModel], summary: dict[str, np.ndarray]
) -> None:
    purchase_model, spend_model = models
    columns = [summary[name] for name in ("frequency", "recency", "T", "monetary_value")]
    single = customer_lifetime_value(purchase_model, spend_model, *columns)
    tiled = customer_lifetime_value(
        purchase_model, spend_model, *(np.tile(column, 4) for column in columns)
    )
    np.testing.assert_allclose(tiled, np.tile(single, 4), rtol=1e-12)


def test_margin_discount_and_horizon(
    models: tuple[BgNbdModel, GammaGammaModel], summary: dict[str, np.ndarray]
) -> None:
    purchase_model, spend_model = models
    columns = [summary[name][:50] for name in ("frequency", "recency", "T", "monetary_value")]
    base = customer_lifetime_value(purchase_model, spend_model, *columns)
    half = customer_lifetime_value(purchase_model, spend_model, *columns, margin=0.5)
    np.testing.assert_allclose(half, base / 2)
    undiscounted = customer_lifetime_value(
        purchase_model, spend_model, *columns, monthly_discount_rate=0.0
    )
    assert np.all(undiscounted > base)
    # Undiscounted, the CLV is 12 months of expected purchases times the expected spend.
    expected = purchase_model.conditional_expected_purchases(
        12 * UNITS_PER_MONTH["week"], columns[0], columns[1], columns[2]
    ) * spend_model.conditional_expected_spend(columns[0], columns[3])
    np.testing.assert_allclose(undiscounted, expected, rtol=1e-9)
    with pytest.raises(ModelFitError, match="at least one month"):
        customer_lifetime_value(purchase_model, spend_model, *columns, months=0)


def test_pareto_nbd_takes_the_general_path(
    summary: dict[str, np.ndarray], models: tuple[BgNbdModel, GammaGammaModel]
) -> None:
    pareto = fit_pareto_nbd(summary["frequency"], summary["recency"], summary["T"])
    x, t_x, age = summary["frequency"][:30], summary["recency"][:30], summary["T"][:30]
    ours = discounted_expected_purchases(pareto, x, t_x, age, months=6)
    expected = sum(
        (
            pareto.conditional_expected_purchases(month * 4.345, x, t_x, age)
            - pareto.conditional_expected_purchases((month - 1) * 4.345, x, t_x, age)
        )
        / 1.01**month
        for month in range(1, 7)
    )
    np.testing.assert_allclose(ours, expected, rtol=1e-12)


def test_an_annual_rate_converts_to_the_equivalent_monthly_one() -> None:
    monthly = monthly_rate_from_annual(0.12)
    assert (1 + monthly) ** 12 == pytest.approx(1.12)
    assert monthly == pytest.approx(0.009489, rel=1e-3)
