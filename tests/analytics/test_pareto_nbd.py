"""Pareto/NBD: the published CDNOW estimates, lifetimes' predictions, the robust likelihood."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from lifetimes import ParetoNBDFitter

from patronage.analytics.models import ModelFitError, ParetoNbdModel, fit_pareto_nbd
from patronage.analytics.models.pareto_nbd import _log_a0_quadrature, log_a0
from tests.analytics import cdnow_summary, same_to_significant_digits

# Fader & Hardie (2005), "A Note on Deriving the Pareto/NBD Model and Related Expressions".
PUBLISHED = {"r": 0.553, "alpha": 10.578, "s": 0.606, "beta": 11.669}
PUBLISHED_LOG_LIKELIHOOD = -9595.0


@pytest.fixture(scope="module")
def summary() -> dict[str, np.ndarray]:
    return cdnow_summary()


@pytest.fixture(scope="module")
def fitted(summary: dict[str, np.ndarray]) -> ParetoNbdModel:
    return fit_pareto_nbd(summary["frequency"], summary["recency"], summary["T"])


def test_fit_reproduces_the_published_cdnow_estimates(fitted: ParetoNbdModel) -> None:
    for name, published in PUBLISHED.items():
        assert same_to_significant_digits(fitted.parameters()[name], published), name
    assert round(fitted.log_likelihood, 1) == PUBLISHED_LOG_LIKELIHOOD


def test_predictions_match_lifetimes_on_the_same_parameters(
    fitted: ParetoNbdModel, summary: dict[str, np.ndarray]
) -> None:
    x, t_x, age = summary["frequency"], summary["recency"], summary["T"]
    baseline = ParetoNBDFitter()
    baseline.params_ = pd.Series(fitted.parameters())
    np.testing.assert_allclose(
        fitted.probability_alive(x, t_x, age),
        baseline.conditional_probability_alive(x, t_x, age),
        rtol=1e-6,
    )
    for horizon in (1.0, 39.0):
        np.testing.assert_allclose(
            fitted.conditional_expected_purchases(horizon, x, t_x, age),
            baseline.conditional_expected_number_of_purchases_up_to_time(horizon, x, t_x, age),
            rtol=1e-6,
        )
    horizons = np.array([1.0, 39.0, 78.0])
    np.testing.assert_allclose(
        fitted.expected_purchases(horizons),
        baseline.expected_number_of_purchases_up_to_time(horizons),
        rtol=1e-6,
    )
    log_parameters = np.array(list(fitted.parameters().values()))
    per_customer = baseline._conditional_log_likelihood(log_parameters, x, t_x, age)
    np.testing.assert_allclose(fitted.log_likelihood_of(x, t_x, age), per_customer, rtol=1e-9)


@pytest.mark.parametrize(
    "parameters",
    [
        (0.553, 10.578, 0.606, 11.669),  # alpha < beta
        (0.553, 11.669, 0.606, 10.578),  # alpha > beta
        (1.0, 5.0, 1.0, 5.0),  # alpha = beta: 2F1 = 1
        (2.0, 50.0, 1.5, 1.0),
        (5.0, 0.01, 3.0, 1000.0),  # z close to 1
        (0.2, 1000.0, 3.0, 0.01),
    ],
)
def test_closed_form_and_integral_agree(
    parameters: tuple[float, float, float, float], summary: dict[str, np.ndarray]
) -> None:
    every_fifth = slice(None, None, 5)  # the quadrature goes customer by customer
    x, t_x, age = (summary[name][every_fifth] for name in ("frequency", "recency", "T"))
    closed = log_a0(*parameters, x, t_x, age)
    integral = _log_a0_quadrature(*parameters, x, t_x, age)
    finite = np.isfinite(closed)
    assert np.all(np.isneginf(closed[~finite]) & (t_x[~finite] == age[~finite]))
    np.testing.assert_allclose(closed[finite], integral[finite], rtol=1e-9)


def test_the_integral_takes_over_where_the_closed_form_breaks_down() -> None:
    # Hundreds of purchases and a tiny alpha: 2F1 overflows, the quadrature does not.
    x = np.array([200.0, 500.0, 1000.0])
    t_x = np.array([10.0, 20.0, 5.0])
    age = np.full(3, 39.0)
    values = log_a0(0.5, 1e-3, 0.6, 1e4, x, t_x, age)
    assert np.all(np.isfinite(values))
    # A direct check of the first: A0 = k * integral of (alpha + y)^-(r + x) (beta + y)^-(s + 1).
    r, alpha, s, beta = 0.5, 1e-3, 0.6, 1e4
    k = r + s + x[0]
    # The integrand falls by e^-(r + x) per factor e of (alpha + y), so it is over by t_x + 1.
    grid = np.linspace(t_x[0], t_x[0] + 1.0, 200_001)
    log_integrand = -(r + x[0]) * np.log(alpha + grid) - (s + 1) * np.log(beta + grid)
    peak = log_integrand.max()
    integral = np.trapezoid(np.exp(log_integrand - peak), grid)
    assert values[0] == pytest.approx(math.log(k) + peak + math.log(integral), rel=1e-6)


def test_too_few_repeat_buyers_cannot_support_a_fit() -> None:
    with pytest.raises(ModelFitError, match="Pareto/NBD: only 2 of 40 customers bought again"):
        fit_pareto_nbd([0] * 38 + [1, 2], [0] * 38 + [3, 4], [10] * 40)
