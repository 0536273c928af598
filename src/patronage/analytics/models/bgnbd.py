"""The BG/NBD model of repeat buying.

Fader, Hardie & Lee (2005), "'Counting Your Customers' the Easy Way: An Alternative to the
Pareto/NBD Model", Marketing Science 24(2).

While alive a customer buys as a Poisson process with rate lambda ~ Gamma(r, alpha); after each
repeat purchase they drop out with probability p ~ Beta(a, b). A customer is summarised by
x (repeat purchases), t_x (time of the last purchase since the first) and T (time since the first
purchase to the end of the calibration period), all in one time unit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import betaln, digamma, expit, gammaln, hyp2f1

from patronage.analytics.models.fitting import (
    EncodedRows,
    FitDiagnostics,
    FloatArray,
    as_float_array,
    check_repeat_purchase_data,
    dot,
    encode_rows,
    maximize_log_likelihood,
    unique_pairs,
)

MODEL_NAME = "BG/NBD"
PAIRING_THRESHOLD = 4096


def log_likelihood(
    r: float, alpha: float, a: float, b: float, x: FloatArray, t_x: FloatArray, T: FloatArray
) -> FloatArray:
    """Log-likelihood of each customer, equation (6) of Fader, Hardie & Lee (2005) in log space.

    L = B(a, b + x) / B(a, b) * Gamma(r + x) alpha^r / Gamma(r)
        * [ (alpha + T)^-(r + x) + [x > 0] a / (b + x - 1) * (alpha + t_x)^-(r + x) ]
    """
    base = gammaln(r + x) - gammaln(r) + r * math.log(alpha) + betaln(a, b + x) - betaln(a, b)
    at_age = -(r + x) * np.log(alpha + T)
    repeat = x > 0
    at_last = np.where(
        repeat,
        math.log(a) - np.log(b + np.maximum(x, 1) - 1) - (r + x) * np.log(alpha + t_x),
        -np.inf,
    )
    return np.asarray(base + np.logaddexp(at_age, at_last), dtype=np.float64)


def _negative_mean_log_likelihood_and_gradient(
    log_parameters: FloatArray, rows: EncodedRows, weight_by_x: FloatArray
) -> tuple[float, FloatArray]:
    """Mean negative log-likelihood over distinct (x, t_x, T) rows and its gradient.

    Terms in x alone (the gamma and beta functions) are computed once per distinct x; per row only
    the two power terms and their log-sum-exp remain.
    """
    r, alpha, a, b = np.exp(log_parameters)
    x_values, t_x_values, age_values = rows.values
    x_codes, t_x_codes, age_codes = rows.codes
    weights = rows.weights
    total = weights.sum()
    repeat_values = x_values > 0
    b_x_1 = b + np.maximum(x_values, 1) - 1
    # Per distinct x.
    x_term = (
        gammaln(r + x_values)
        - gammaln(r)
        + r * math.log(alpha)
        + gammaln(b + x_values)
        - gammaln(a + b + x_values)
        + gammaln(a + b)
        - gammaln(b)
    )
    with np.errstate(divide="ignore"):
        dropout_term = np.where(repeat_values, math.log(a) - np.log(b_x_1), -np.inf)
    # Per row.
    log_alpha_T = np.log(alpha + age_values)[age_codes]
    log_alpha_t_x = np.log(alpha + t_x_values)[t_x_codes]
    r_x = (r + x_values)[x_codes]
    at_age = -r_x * log_alpha_T
    at_last = dropout_term[x_codes] - r_x * log_alpha_t_x
    mixed = np.logaddexp(at_age, at_last)
    weight_last = np.exp(at_last - mixed)
    weight_age = 1.0 - weight_last
    value = float(dot(weight_by_x, x_term) + dot(weights, mixed))
    last_by_x = np.asarray(
        np.bincount(x_codes, weights=weights * weight_last, minlength=x_values.size), np.float64
    )
    digamma_a_b = digamma(a + b)
    digamma_a_b_x = digamma(a + b + x_values)
    d_r = float(
        dot(weight_by_x, digamma(r + x_values) - digamma(r) + math.log(alpha))
        - dot(weights, weight_age * log_alpha_T + weight_last * log_alpha_t_x)
    )
    inverse_alpha_T = (1.0 / (alpha + age_values))[age_codes]
    inverse_alpha_t_x = (1.0 / (alpha + t_x_values))[t_x_codes]
    d_alpha = float(
        total * r / alpha
        - dot(weights * r_x, weight_age * inverse_alpha_T + weight_last * inverse_alpha_t_x)
    )
    d_a = float(dot(weight_by_x, digamma_a_b - digamma_a_b_x) + last_by_x.sum() / a)
    d_b = float(
        dot(weight_by_x, digamma_a_b + digamma(b + x_values) - digamma(b) - digamma_a_b_x)
        - dot(last_by_x, 1.0 / b_x_1)
    )
    gradient = np.array([r * d_r, alpha * d_alpha, a * d_a, b * d_b])
    return -value / total, -gradient / total


@dataclass(frozen=True)
class BgNbdModel:
    """BG/NBD parameters, with the fit's log-likelihood and the predictions they imply."""

    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float = math.nan
    customers: int = 0
    repeat_customers: int = 0
    diagnostics: FitDiagnostics | None = None

    def parameters(self) -> dict[str, float]:
        """The four parameters by name."""
        return {"r": self.r, "alpha": self.alpha, "a": self.a, "b": self.b}

    def log_likelihood_of(
        self, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
    ) -> FloatArray:
        """Log-likelihood of each customer under these parameters."""
        return log_likelihood(
            self.r,
            self.alpha,
            self.a,
            self.b,
            as_float_array(frequency, "frequency"),
            as_float_array(recency, "recency"),
            as_float_array(T, "T"),
        )

    def probability_alive(
        self, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
    ) -> FloatArray:
        """P(alive | x, t_x, T), equation (A10) of Fader, Hardie & Lee (2005)."""
        x = as_float_array(frequency, "frequency")
        t_x = as_float_array(recency, "recency")
        age = as_float_array(T, "T")
        log_odds_dead = (self.r + x) * np.log((self.alpha + age) / (self.alpha + t_x)) + np.log(
            self.a / (self.b + np.maximum(x, 1) - 1)
        )
        return np.asarray(np.where(x > 0, expit(-log_odds_dead), 1.0), dtype=np.float64)

    def expected_purchases(self, t: ArrayLike) -> FloatArray:
        """E[X(t)], the purchases a new customer makes in (0, t], equation (9) of the paper."""
        horizon = as_float_array(t, "t")
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        hypergeometric = hyp2f1(r, b, a + b - 1, horizon / (alpha + horizon))
        return np.asarray(
            (a + b - 1) / (a - 1) * (1 - hypergeometric * (alpha / (alpha + horizon)) ** r),
            dtype=np.float64,
        )

    def purchase_growth(
        self, frequency: ArrayLike, T: ArrayLike, horizons: ArrayLike
    ) -> FloatArray:
        """The part of E[Y(t) | x, t_x, T] that does not depend on t_x, for each horizon t.

        E[Y(t) | x, t_x, T] = purchase_growth * probability_alive, with purchase_growth =
        (a + b + x - 1) / (a - 1) * [1 - ((alpha + T) / (alpha + T + t))^(r + x)
        2F1(r + x, b + x; a + b + x - 1; t / (alpha + T + t))]. Returns shape (customers, horizons).
        """
        return self._growth(
            as_float_array(frequency, "frequency"),
            as_float_array(T, "T"),
            as_float_array(horizons, "horizons"),
        )

    def _growth(self, x: FloatArray, age: FloatArray, horizons: FloatArray) -> FloatArray:
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        x_column = x[:, None]
        age_column = age[:, None]
        first = r + x_column
        second = b + x_column
        third = a + b + x_column - 1
        z = horizons[None, :] / (alpha + age_column + horizons[None, :])
        with np.errstate(divide="ignore", invalid="ignore"):
            log_hypergeometric = np.log(hyp2f1(first, second, third, z))
            unstable = ~np.isfinite(log_hypergeometric)
            if np.any(unstable):
                # Euler's transformation, as lifetimes does where the direct series overflows.
                alternative = np.log(hyp2f1(third - first, third - second, third, z)) + (
                    third - first - second
                ) * np.log1p(-z)
                log_hypergeometric = np.where(unstable, alternative, log_hypergeometric)
        log_ratio = first * np.log((alpha + age_column) / (alpha + age_column + horizons[None, :]))
        growth = (a + b + x_column - 1) / (a - 1) * -np.expm1(log_hypergeometric + log_ratio)
        return np.asarray(growth, dtype=np.float64)

    def conditional_expected_purchases(
        self, t: float, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
    ) -> FloatArray:
        """E[Y(t) | x, t_x, T], expected purchases in the next t time units, equation (10).

        The Gaussian hypergeometric function is evaluated once per distinct (x, T) pair, which
        real summaries repeat a great deal.
        """
        x = as_float_array(frequency, "frequency")
        age = as_float_array(T, "T")
        alive = self.probability_alive(x, recency, age)
        if x.size > PAIRING_THRESHOLD:
            unique_x, unique_age, inverse = unique_pairs(x, age)
            growth = self._growth(unique_x, unique_age, np.array([float(t)]))[:, 0][inverse]
        else:
            growth = self._growth(x, age, np.array([float(t)]))[:, 0]
        return np.asarray(growth * alive, dtype=np.float64)


def fit_bgnbd(
    frequency: ArrayLike,
    recency: ArrayLike,
    T: ArrayLike,
    *,
    weights: ArrayLike | None = None,
) -> BgNbdModel:
    """Fit the BG/NBD model by maximum likelihood; raise ModelFitError when the data cannot.

    Identical (x, t_x, T) rows are collapsed into weighted unique rows first, and time is scaled
    so that the largest T is 1 while fitting (alpha is scaled back).
    """
    x, t_x, age = check_repeat_purchase_data(frequency, recency, T, model=MODEL_NAME)
    row_weights = None if weights is None else as_float_array(weights, "weights")
    scale = 1.0 / float(age.max())
    rows = encode_rows([x, t_x * scale, age * scale], row_weights)
    weight_by_x = np.asarray(
        np.bincount(rows.codes[0], weights=rows.weights, minlength=rows.values[0].size),
        np.float64,
    )
    unique_x = rows.column(0)
    scaled_age = rows.column(2)
    unique_weights = rows.weights

    def objective(log_parameters: FloatArray) -> tuple[float, FloatArray]:
        return _negative_mean_log_likelihood_and_gradient(log_parameters, rows, weight_by_x)

    purchase_rate = float(dot(unique_weights, unique_x) / dot(unique_weights, scaled_age))
    starts = [
        (1.0, 1.0 / max(purchase_rate, 1e-3), 1.0, 1.0),
        (0.5, 0.5 / max(purchase_rate, 1e-3), 1.0, 3.0),
        (1.1, 1.1, 1.1, 1.1),
        (0.2, 0.2, 0.5, 2.0),
        (2.0, 2.0, 2.0, 10.0),
    ]
    log_parameters, _, diagnostics = maximize_log_likelihood(
        lambda p: objective(p)[0],
        starts,
        names=("r", "alpha", "a", "b"),
        model=MODEL_NAME,
        unique_rows=int(unique_x.size),
        observations=float(unique_weights.sum()),
        value_and_gradient=objective,
    )
    r, scaled_alpha, a, b = (float(value) for value in np.exp(log_parameters))
    alpha = scaled_alpha / scale
    total = float(
        dot(
            unique_weights,
            log_likelihood(r, alpha, a, b, unique_x, rows.column(1) / scale, scaled_age / scale),
        )
    )
    return BgNbdModel(
        r=r,
        alpha=alpha,
        a=a,
        b=b,
        log_likelihood=total,
        customers=int(x.size),
        repeat_customers=int(np.count_nonzero(x > 0)),
        diagnostics=diagnostics,
    )


def simulate_summary(
    r: float,
    alpha: float,
    a: float,
    b: float,
    *,
    customers: int,
    seed: int = 0,
    calibration_days: int = 273,
    acquisition_days: int = 84,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Draw (x, t_x, T) in weeks from the BG/NBD process, on whole days like a real log.

    First purchases fall on one of the first `acquisition_days` days of a `calibration_days`
    window (CDNOW: 12 weeks of a 39-week window). A customer with Poisson count N of purchases in
    (0, T] and geometric number J of repeat purchases before dropping out shows x = min(N, J);
    the x-th of N uniform purchase times is T * Beta(x, N - x + 1); t_x is rounded up to a day.
    """
    generator = np.random.default_rng(seed)
    first_day = generator.integers(0, acquisition_days, size=customers)
    age_days = (calibration_days - 1) - first_day
    age = age_days / 7.0
    rate = generator.gamma(r, 1.0 / alpha, size=customers)
    dropout = generator.beta(a, b, size=customers)
    purchases = generator.poisson(rate * age)
    repeat_purchases_before_dropout = generator.geometric(dropout)
    x = np.minimum(purchases, repeat_purchases_before_dropout)
    fraction = generator.beta(np.maximum(x, 1), purchases - x + 1)
    last_day = np.where(x > 0, np.clip(np.ceil(fraction * age_days), 1, age_days), 0)
    return x.astype(np.float64), last_day / 7.0, age.astype(np.float64)
