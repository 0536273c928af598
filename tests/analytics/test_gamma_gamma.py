"""Gamma-Gamma: the published CDNOW estimates, lifetimes' spend predictions and fit errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from lifetimes import GammaGammaFitter

from patronage.analytics.models import GammaGammaModel, ModelFitError, fit_gamma_gamma
from patronage.analytics.models.fitting import encode_rows
from patronage.analytics.models.gamma_gamma import _negative_mean_log_likelihood_and_gradient
from tests.analytics import cdnow_summary, same_to_significant_digits

# Fader & Hardie (2013), "The Gamma-Gamma Model of Monetary Value", on the 946 repeat buyers.
PUBLISHED = {"p": 6.25, "q": 3.74, "gamma": 15.44}


@pytest.fixture(scope="module")
def summary() -> dict[str, np.ndarray]:
    return cdnow_summary()


@pytest.fixture(scope="module")
def fitted(summary: dict[str, np.ndarray]) -> GammaGammaModel:
    return fit_gamma_gamma(summary["frequency"], summary["monetary_value"])


def test_fit_reproduces_the_published_cdnow_estimates(fitted: GammaGammaModel) -> None:
    for name, published in PUBLISHED.items():
        assert same_to_significant_digits(fitted.parameters()[name], published), name
    assert fitted.customers == 946 and fitted.excluded_customers == 0
    assert round(fitted.log_likelihood, 1) == -4055.9
    assert 0 < fitted.frequency_spend_correlation < 0.2  # the note's check of independence


def test_log_likelihood_and_spend_match_lifetimes(
    fitted: GammaGammaModel, summary: dict[str, np.ndarray]
) -> None:
    repeat = summary["frequency"] > 0
    x, spend = summary["frequency"], summary["monetary_value"]
    baseline = GammaGammaFitter()
    log_parameters = np.log([fitted.p, fitted.q, fitted.gamma])
    baseline_negative_mean = baseline._negative_log_likelihood(
        log_parameters, x[repeat], spend[repeat], np.ones(repeat.sum()), 0.0
    )
    assert fitted.log_likelihood == pytest.approx(-baseline_negative_mean * 946, rel=1e-9)
    baseline.params_ = pd.Series({"p": fitted.p, "q": fitted.q, "v": fitted.gamma})
    np.testing.assert_allclose(
        fitted.conditional_expected_spend(x, spend),
        baseline.conditional_expected_average_profit(x, spend),
        rtol=1e-6,
    )


def test_expected_spend_shrinks_towards_the_population_mean(fitted: GammaGammaModel) -> None:
    mean = fitted.population_mean_spend()
    assert mean == pytest.approx(fitted.p * fitted.gamma / (fitted.q - 1))
    new, few, many = fitted.conditional_expected_spend([0, 1, 50], [0.0, 100.0, 100.0])
    assert new == pytest.approx(mean)
    assert mean < few < many < 100.0


def test_analytic_gradient_matches_finite_differences(summary: dict[str, np.ndarray]) -> None:
    repeat = summary["frequency"] > 0
    x, spend = summary["frequency"][repeat], summary["monetary_value"][repeat] / 30
    rows = encode_rows([x, spend])
    unique_x, unique_spend = rows.column(0), rows.column(1)
    weight_by_x = np.bincount(rows.codes[0], weights=rows.weights).astype(np.float64)
    total_spend = unique_x * unique_spend
    constant = float(np.sum(rows.weights * unique_x * np.log(total_spend)))
    arguments = (rows, weight_by_x, total_spend, constant)
    at = np.log([3.0, 2.0, 1.5])
    _, gradient = _negative_mean_log_likelihood_and_gradient(at, *arguments)
    numeric = []
    for index in range(3):
        shift = np.zeros(3)
        shift[index] = 1e-6
        upper, _ = _negative_mean_log_likelihood_and_gradient(at + shift, *arguments)
        lower, _ = _negative_mean_log_likelihood_and_gradient(at - shift, *arguments)
        numeric.append((upper - lower) / 2e-6)
    np.testing.assert_allclose(gradient, numeric, rtol=1e-5, atol=1e-8)


def test_repeat_customers_without_spend_are_left_out_and_counted(
    summary: dict[str, np.ndarray],
) -> None:
    spend = summary["monetary_value"].copy()
    repeat = np.flatnonzero(summary["frequency"] > 0)
    spend[repeat[:4]] = 0.0
    fitted = fit_gamma_gamma(summary["frequency"], spend)
    assert fitted.customers == 942 and fitted.excluded_customers == 4


@pytest.mark.parametrize(
    ("frequency", "spend", "message"),
    [
        ([1] * 9 + [0] * 50, [10.0] * 59, "only 9 customers have repeat purchases"),
        ([1] * 20, [10.0] * 19 + [-5.0], "1 repeat customers have a negative mean spend"),
        ([1] * 20, [10.0] * 19 + [np.nan], "1 customers have a missing or infinite value"),
        ([2] * 20, [10.0] * 20, "every repeat customer has the same mean spend"),
        ([1, 2], [1.0], "differ in length"),
    ],
)
def test_spend_that_cannot_support_a_fit_says_why(
    frequency: list[float], spend: list[float], message: str
) -> None:
    with pytest.raises(ModelFitError, match=message):
        fit_gamma_gamma(frequency, spend)


def test_a_spend_distribution_without_a_mean_is_refused() -> None:
    # Spends spread over six orders of magnitude: the fitted q falls to 1 or below.
    generator = np.random.default_rng(5)
    spend = np.exp(generator.uniform(0, 14, size=400))
    with pytest.raises(ModelFitError, match=r"the fitted q = 0\.\d+ is not above 1"):
        fit_gamma_gamma(np.ones(400), spend)
