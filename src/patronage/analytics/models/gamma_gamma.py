"""The Gamma-Gamma model of monetary value.

Fader, Hardie & Lee (2005), "RFM and CLV: Using Iso-value Curves for Customer Base Analysis", and
Fader & Hardie (2013), "The Gamma-Gamma Model of Monetary Value". A customer's spend per
transaction is Gamma(p, nu) with nu ~ Gamma(q, gamma) across customers; the mean spend z of their
x repeat transactions is then Gamma(p x, nu x). Spend is assumed independent of frequency.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import digamma, gammaln

from patronage.analytics.models.errors import ModelFitError
from patronage.analytics.models.fitting import (
    MINIMUM_REPEAT_CUSTOMERS,
    EncodedRows,
    FitDiagnostics,
    FloatArray,
    as_float_array,
    dot,
    encode_rows,
    maximize_log_likelihood,
)

MODEL_NAME = "Gamma-Gamma"


def log_likelihood(
    p: float, q: float, gamma: float, x: FloatArray, monetary_value: FloatArray
) -> FloatArray:
    """Log-density of each repeat customer's mean spend, equation (3) of Fader & Hardie (2013).

    f(z | p, q, gamma; x) = Gamma(p x + q) / (Gamma(p x) Gamma(q))
                            * gamma^q x^(p x) z^(p x - 1) / (gamma + x z)^(p x + q)
    """
    px = p * x
    return np.asarray(
        gammaln(px + q)
        - gammaln(px)
        - gammaln(q)
        + q * math.log(gamma)
        + px * np.log(x)
        + (px - 1) * np.log(monetary_value)
        - (px + q) * np.log(gamma + x * monetary_value),
        dtype=np.float64,
    )


def _negative_mean_log_likelihood_and_gradient(
    log_parameters: FloatArray,
    rows: EncodedRows,
    weight_by_x: FloatArray,
    total_spend: FloatArray,
    constant: float,
) -> tuple[float, FloatArray]:
    """Mean negative log-likelihood over distinct (x, z) rows and its gradient.

    Terms in x alone are computed once per distinct x; `total_spend` is x z per row and
    `constant` is sum w x log(x z), the factor of p in p x log x + (p x - 1) log z; the remaining
    -log z does not depend on the parameters and is added back to the reported log-likelihood.
    """
    p, q, gamma = np.exp(log_parameters)
    x_values = rows.values[0]
    x_codes = rows.codes[0]
    weights = rows.weights
    total = weights.sum()
    px_values = p * x_values
    log_total = np.log(gamma + total_spend)
    px_q = (px_values + q)[x_codes]
    digamma_px_q_values = digamma(px_values + q)
    value = float(
        dot(weight_by_x, gammaln(px_values + q) - gammaln(px_values))
        + total * (q * math.log(gamma) - gammaln(q))
        + p * constant
        - dot(weights, px_q * log_total)
    )
    d_p = float(
        dot(weight_by_x, x_values * (digamma_px_q_values - digamma(px_values)))
        + constant
        - dot(weights * rows.column(0), log_total)
    )
    d_q = float(
        dot(weight_by_x, digamma_px_q_values)
        - total * (digamma(q) - math.log(gamma))
        - dot(weights, log_total)
    )
    d_gamma = float(total * q / gamma - dot(weights, px_q / (gamma + total_spend)))
    gradient = np.array([p * d_p, q * d_q, gamma * d_gamma])
    return -value / total, -gradient / total


@dataclass(frozen=True)
class GammaGammaModel:
    """Gamma-Gamma parameters, with the fit's log-likelihood and the spend they predict."""

    p: float
    q: float
    gamma: float
    log_likelihood: float = math.nan
    customers: int = 0
    excluded_customers: int = 0
    frequency_spend_correlation: float = math.nan
    diagnostics: FitDiagnostics | None = None

    def parameters(self) -> dict[str, float]:
        """The three parameters by name."""
        return {"p": self.p, "q": self.q, "gamma": self.gamma}

    def population_mean_spend(self) -> float:
        """E[Z], the mean spend per transaction across customers: p gamma / (q - 1)."""
        return self.p * self.gamma / (self.q - 1) if self.q > 1 else math.inf

    def conditional_expected_spend(
        self, frequency: ArrayLike, monetary_value: ArrayLike
    ) -> FloatArray:
        """E[Z | z, x], equation (5) of Fader & Hardie (2013): a weighted mean of the population
        mean and the customer's own mean spend (the population mean for x = 0)."""
        x = as_float_array(frequency, "frequency")
        spend = np.where(x > 0, as_float_array(monetary_value, "monetary_value"), 0.0)
        px = self.p * x
        return np.asarray((self.p * self.gamma + px * spend) / (px + self.q - 1), dtype=np.float64)


def fit_gamma_gamma(
    frequency: ArrayLike, monetary_value: ArrayLike, *, weights: ArrayLike | None = None
) -> GammaGammaModel:
    """Fit the Gamma-Gamma model on the customers with x > 0 and a positive mean spend.

    Customers with x = 0 carry no repeat spend and are left out, as are repeat customers whose
    mean spend is zero (the model needs positive spend; their number is reported). Raises
    ModelFitError for negative or missing spend, too few repeat customers, non-convergence, or
    q <= 1 (a spend distribution without a finite mean).
    """
    x = as_float_array(frequency, "frequency")
    spend = as_float_array(monetary_value, "monetary_value")
    if x.shape != spend.shape:
        raise ModelFitError(
            f"frequency and monetary_value differ in length ({x.size}, {spend.size})"
        )
    row_weights = np.ones_like(x) if weights is None else as_float_array(weights, "weights")
    repeat = x > 0
    non_finite = int(np.count_nonzero(repeat & ~np.isfinite(spend))) + int(
        np.count_nonzero(~np.isfinite(x))
    )
    if non_finite:
        raise ModelFitError(
            f"{MODEL_NAME}: {non_finite} customers have a missing or infinite value"
        )
    negative = int(np.count_nonzero(repeat & (spend < 0)))
    if negative:
        raise ModelFitError(
            f"{MODEL_NAME}: {negative} repeat customers have a negative mean spend (refunds "
            "larger than purchases?)"
        )
    usable = repeat & (spend > 0)
    excluded = int(np.count_nonzero(repeat & (spend == 0)))
    count = int(np.count_nonzero(usable))
    if count < MINIMUM_REPEAT_CUSTOMERS:
        raise ModelFitError(
            f"{MODEL_NAME}: only {count} customers have repeat purchases with a positive spend; "
            f"at least {MINIMUM_REPEAT_CUSTOMERS} are needed"
        )
    x_used = x[usable]
    spend_used = spend[usable]
    if np.all(spend_used == spend_used[0]):
        raise ModelFitError(
            f"{MODEL_NAME}: every repeat customer has the same mean spend; there is no variation "
            "to fit"
        )
    scale = 1.0 / float(np.average(spend_used, weights=row_weights[usable]))
    rows = encode_rows([x_used, spend_used * scale], row_weights[usable])
    unique_x = rows.column(0)
    scaled_spend = rows.column(1)
    unique_weights = rows.weights
    weight_by_x = np.asarray(
        np.bincount(rows.codes[0], weights=unique_weights, minlength=rows.values[0].size),
        np.float64,
    )
    total_spend = unique_x * scaled_spend
    # sum of w x (log x + log z): the p-linear part of p x log x + (p x - 1) log z.
    constant = float(dot(unique_weights * unique_x, np.log(total_spend)))

    def objective(log_parameters: FloatArray) -> tuple[float, FloatArray]:
        return _negative_mean_log_likelihood_and_gradient(
            log_parameters, rows, weight_by_x, total_spend, constant
        )

    starts = [(1.0, 1.0, 1.0), (2.0, 3.0, 2.0), (5.0, 3.0, 10.0), (0.5, 2.0, 0.5)]
    log_parameters, _, diagnostics = maximize_log_likelihood(
        lambda parameters: objective(parameters)[0],
        starts,
        names=("p", "q", "gamma"),
        model=MODEL_NAME,
        unique_rows=int(unique_x.size),
        observations=float(unique_weights.sum()),
        value_and_gradient=objective,
    )
    p, q, scaled_gamma = (float(value) for value in np.exp(log_parameters))
    gamma = scaled_gamma / scale
    if q <= 1:
        raise ModelFitError(
            f"{MODEL_NAME}: the fitted q = {q:.3g} is not above 1, so the spend distribution has "
            "no finite mean; look for outlying spends"
        )
    total = float(dot(unique_weights, log_likelihood(p, q, gamma, unique_x, scaled_spend / scale)))
    correlation = float(np.corrcoef(x_used, spend_used)[0, 1]) if np.ptp(x_used) > 0 else math.nan
    return GammaGammaModel(
        p=p,
        q=q,
        gamma=gamma,
        log_likelihood=total,
        customers=count,
        excluded_customers=excluded,
        frequency_spend_correlation=correlation,
        diagnostics=diagnostics,
    )
