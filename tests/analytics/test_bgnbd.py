"""BG/NBD: the published CDNOW estimates, lifetimes' predictions, weights and fit errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from lifetimes import BetaGeoFitter

from patronage.analytics.models import BgNbdModel, ModelFitError, fit_bgnbd
from patronage.analytics.models.bgnbd import (
    _negative_mean_log_likelihood_and_gradient,
    simulate_summary,
)
from patronage.analytics.models.fitting import encode_rows, maximize_log_likelihood
from tests.analytics import cdnow_summary, same_to_significant_digits

# Fader, Hardie & Lee (2005), table 1 / section 4.
PUBLISHED = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
PUBLISHED_LOG_LIKELIHOOD = -9582.4


@pytest.fixture(scope="module")
def summary() -> dict[str, np.ndarray]:
    return cdnow_summary()


@pytest.fixture(scope="module")
def fitted(summary: dict[str, np.ndarray]) -> BgNbdModel:
    return fit_bgnbd(summary["frequency"], summary["recency"], summary["T"])


def lifetimes_model(model: BgNbdModel) -> BetaGeoFitter:
    baseline = BetaGeoFitter()
    baseline.params_ = pd.Series(model.parameters())
    return baseline


def test_fit_reproduces_the_published_cdnow_estimates(fitted: BgNbdModel) -> None:
    for name, published in PUBLISHED.items():
        assert same_to_significant_digits(fitted.parameters()[name], published), name
    assert round(fitted.log_likelihood, 1) == PUBLISHED_LOG_LIKELIHOOD
    assert fitted.customers == 2357 and fitted.repeat_customers == 946
    assert fitted.diagnostics is not None and fitted.diagnostics.gradient_norm < 1e-3


def test_predictions_match_lifetimes_on_the_same_parameters(
    fitted: BgNbdModel, summary: dict[str, np.ndarray]
) -> None:
    x, t_x, age = summary["frequency"], summary["recency"], summary["T"]
    baseline = lifetimes_model(fitted)
    np.testing.assert_allclose(
        fitted.probability_alive(x, t_x, age),
        baseline.conditional_probability_alive(x, t_x, age),
        rtol=1e-6,
    )
    for horizon in (1.0, 10.0, 39.0, 104.0):
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


def test_distinct_pairs_path_equals_the_direct_one(
    fitted: BgNbdModel, summary: dict[str, np.ndarray]
) -> None:
    # Over 4,096 customers, 2F1 is computed once per distinct (x, T) pair.
    x, t_x, age = (np.tile(summary[name], 3) for name in ("frequency", "recency", "T"))
    direct = fitted.purchase_growth(x, age, [39.0])[:, 0] * fitted.probability_alive(x, t_x, age)
    np.testing.assert_allclose(
        fitted.conditional_expected_purchases(39.0, x, t_x, age), direct, rtol=1e-12
    )


def test_log_likelihood_sums_to_the_fit(fitted: BgNbdModel, summary: dict[str, np.ndarray]) -> None:
    per_customer = fitted.log_likelihood_of(summary["frequency"], summary["recency"], summary["T"])
    assert per_customer.sum() == pytest.approx(fitted.log_likelihood, rel=1e-10)


def test_analytic_gradient_matches_finite_differences(summary: dict[str, np.ndarray]) -> None:
    rows = encode_rows([summary["frequency"], summary["recency"] / 39, summary["T"] / 39])
    weight_by_x = np.bincount(rows.codes[0], weights=rows.weights).astype(np.float64)
    at = np.log([0.3, 2.0, 0.8, 2.0])
    _, gradient = _negative_mean_log_likelihood_and_gradient(at, rows, weight_by_x)
    step = 1e-6
    numeric = []
    for index in range(4):
        shift = np.zeros(4)
        shift[index] = step
        upper, _ = _negative_mean_log_likelihood_and_gradient(at + shift, rows, weight_by_x)
        lower, _ = _negative_mean_log_likelihood_and_gradient(at - shift, rows, weight_by_x)
        numeric.append((upper - lower) / (2 * step))
    np.testing.assert_allclose(gradient, numeric, rtol=1e-5, atol=1e-8)


def test_weights_stand_for_repeated_rows(summary: dict[str, np.ndarray]) -> None:
    x, t_x, age = summary["frequency"][:600], summary["recency"][:600], summary["T"][:600]
    counts = np.arange(600) % 3 + 1
    weighted = fit_bgnbd(x, t_x, age, weights=counts)
    expanded = fit_bgnbd(np.repeat(x, counts), np.repeat(t_x, counts), np.repeat(age, counts))
    for name, value in weighted.parameters().items():
        assert value == pytest.approx(expanded.parameters()[name], rel=1e-5)
    assert weighted.log_likelihood == pytest.approx(expanded.log_likelihood, rel=1e-9)


def test_fit_recovers_the_parameters_of_simulated_customers() -> None:
    truth = {"r": 0.5, "alpha": 6.0, "a": 0.8, "b": 3.0}
    x, t_x, age = simulate_summary(*truth.values(), customers=60_000, seed=7)
    fitted = fit_bgnbd(x, t_x, age)
    for name, value in truth.items():
        assert fitted.parameters()[name] == pytest.approx(value, rel=0.15), name


def test_a_new_customer_is_alive_and_an_old_silent_one_less_so(fitted: BgNbdModel) -> None:
    alive = fitted.probability_alive([0, 5, 5], [0, 38, 2], [39, 39, 39])
    assert alive[0] == 1.0
    assert alive[1] > 0.8 > 0.2 > alive[2]


@pytest.mark.parametrize(
    ("frequency", "recency", "T", "message"),
    [
        ([1, 0] * 5, [2, 0] * 5, [5, 5] * 5, "10 customers are too few"),
        (
            [0] * 95 + [1] * 5,
            [0] * 95 + [1] * 5,
            [10] * 100,
            "only 5 of 100 customers bought again",
        ),
        ([1] * 30, [0] * 30, [10] * 30, "all recencies are zero"),
        ([1] * 29 + [np.nan], [1] * 30, [10] * 30, "1 customers have a missing or infinite value"),
        ([1] * 27 + [1] * 3, [1] * 27 + [12] * 3, [10] * 30, "3 customers have a recency after"),
        ([1] * 29 + [-1], [1] * 30, [10] * 30, "1 customers have a negative"),
        ([1.5] * 30, [1] * 30, [10] * 30, "fractional frequency"),
        ([0] * 20 + [1] * 10, [1] * 20 + [2] * 10, [10] * 30, "no repeat purchase but a positive"),
    ],
)
def test_data_that_cannot_support_a_fit_says_why(
    frequency: list[float], recency: list[float], T: list[float], message: str
) -> None:
    with pytest.raises(ModelFitError, match=message):
        fit_bgnbd(frequency, recency, T)


def test_model_fit_error_is_a_validation_error() -> None:
    from patronage.errors import ValidationFailedError

    error = ModelFitError("x")
    assert isinstance(error, ValidationFailedError) and error.status_code == 422


def test_an_estimate_at_a_bound_or_a_non_finite_likelihood_is_reported() -> None:
    with pytest.raises(ModelFitError, match="went to the bound"):
        maximize_log_likelihood(
            lambda p: float(np.exp(-p[0])),
            [(1.0,)],
            names=("b",),
            model="test",
            unique_rows=1,
            observations=1,
        )
    with pytest.raises(ModelFitError, match="did not converge: start 1: the log-likelihood is not"):
        maximize_log_likelihood(
            lambda p: float("nan"),
            [(1.0,)],
            names=("b",),
            model="test",
            unique_rows=1,
            observations=1,
        )


def test_customers_who_never_drop_out_cannot_identify_the_dropout(
    summary: dict[str, np.ndarray],
) -> None:
    # Everybody buys steadily up to the end: no sign of dropout, so b runs off to infinity.
    generator = np.random.default_rng(3)
    age = np.full(400, 52.0)
    x = generator.poisson(6.0, size=400).astype(float) + 1
    t_x = age - generator.uniform(0, 0.01, size=400)
    with pytest.raises(
        ModelFitError, match=r"BG/NBD: the optimizer did not converge.*do not identify"
    ):
        fit_bgnbd(x, t_x, age)
