"""The Pareto/NBD model (Schmittlein, Morrison & Colombo 1987).

While alive a customer buys as a Poisson process with rate lambda ~ Gamma(r, alpha) and has an
exponential lifetime with rate mu ~ Gamma(s, beta). The likelihood follows Fader & Hardie (2005),
"A Note on Deriving the Pareto/NBD Model and Related Expressions", equations (19)-(22):

    L = Gamma(r + x) alpha^r beta^s / Gamma(r)
        * [ 1 / ((alpha + T)^(r + x) (beta + T)^s) + s / (r + s + x) * A0 ]

where A0 = (r + s + x) * integral from t_x to T of (alpha + y)^-(r + x) (beta + y)^-(s + 1) dy,
in closed form a difference of two Gaussian hypergeometric terms (alpha >= beta and alpha < beta
cases). Everything is computed in log space; where the closed form is not finite or loses the
difference to rounding, A0 is computed from the integral by adaptive quadrature
(see `_log_a0_quadrature`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.integrate import quad
from scipy.special import gammaln, hyp2f1

from patronage.analytics.models.fitting import (
    FitDiagnostics,
    FloatArray,
    as_float_array,
    check_repeat_purchase_data,
    dot,
    encode_rows,
    maximize_log_likelihood,
    unique_pairs,
)

MODEL_NAME = "Pareto/NBD"


def _log_a0_quadrature(
    r: float, alpha: float, s: float, beta: float, x: FloatArray, t_x: FloatArray, T: FloatArray
) -> FloatArray:
    """log A0 from its integral form, by adaptive quadrature, one customer at a time.

    A0 = (r + s + x) * integral from t_x to T of exp(phi(y)) dy with
    phi(y) = -(r + x) log(alpha + y) - (s + 1) log(beta + y), which is decreasing and convex:
    the integrand is divided by its value at t_x and the decay length 1 / |phi'(t_x)| gives
    QUADPACK its break points. Used only where the closed form fails, so rows are few.
    """
    result = np.empty(x.size)
    for row, (count, last, age) in enumerate(zip(x, t_x, T, strict=True)):
        if last >= age:
            result[row] = -np.inf
            continue
        purchase_power, death_power = r + count, s + 1

        def phi(
            y: float, purchase_power: float = purchase_power, death_power: float = death_power
        ) -> float:
            return -purchase_power * math.log(alpha + y) - death_power * math.log(beta + y)

        start = phi(last)
        decay_length = 1.0 / (purchase_power / (alpha + last) + death_power / (beta + last))
        points = [last + decay_length * factor for factor in (1.0, 10.0, 100.0, 1000.0)]
        inside = [point for point in points if point < age]
        value, _ = quad(
            lambda y, start=start: math.exp(phi(y) - start),
            last,
            age,
            points=inside or None,
            limit=500,
            epsabs=0.0,
            epsrel=1e-12,
        )
        result[row] = math.log(r + s + count) + start + math.log(value)
    return result


@dataclass(frozen=True)
class _Pairs:
    """Distinct (x, t) pairs of a set of rows and each row's pair: 2F1 is computed per pair."""

    x: FloatArray
    t: FloatArray
    inverse: NDArray[np.intp]

    @classmethod
    def of(cls, x: FloatArray, t: FloatArray) -> _Pairs:
        unique_x, unique_t, inverse = unique_pairs(x, t)
        return cls(unique_x, unique_t, inverse)


def _log_power_term(
    r: float, alpha: float, s: float, beta: float, x: FloatArray, t: FloatArray
) -> FloatArray:
    """log of F(z_t) (m + t)^-(r + s + x), one of the two terms of A0 (equation 22)."""
    k = r + s + x
    second: float | FloatArray
    if alpha >= beta:
        largest, second = alpha, s + 1
    else:
        largest, second = beta, r + x
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        log_hypergeometric = np.log(hyp2f1(k, second, k + 1, abs(alpha - beta) / (largest + t)))
    return np.asarray(log_hypergeometric - k * np.log(largest + t), dtype=np.float64)


def log_a0(
    r: float,
    alpha: float,
    s: float,
    beta: float,
    x: FloatArray,
    t_x: FloatArray,
    T: FloatArray,
    *,
    pairs: tuple[_Pairs, _Pairs] | None = None,
) -> FloatArray:
    """log A0 of equation (22) of the note (-inf where t_x = T).

    A0 = F(z_tx) (m + t_x)^-k - F(z_T) (m + T)^-k is taken in log space as
    log G(t_x) + log(1 - G(T) / G(t_x)); `pairs` (the distinct (x, t_x) and (x, T) pairs, which
    the fit precomputes) lets 2F1 be evaluated once per pair.
    """
    if pairs is None:
        at_last = _log_power_term(r, alpha, s, beta, x, t_x)
        at_age = _log_power_term(r, alpha, s, beta, x, T)
    else:
        last, age = pairs
        at_last = _log_power_term(r, alpha, s, beta, last.x, last.t)[last.inverse]
        at_age = _log_power_term(r, alpha, s, beta, age.x, age.t)[age.inverse]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        exponent = at_age - at_last
        result = at_last + np.log(-np.expm1(exponent))
    equal = t_x >= T
    result = np.where(equal, -np.inf, result)
    # The closed form fails where 2F1 overflows or rounding eats the difference.
    unstable = ~equal & (~np.isfinite(result) | ~(exponent < -1e-6))
    if np.any(unstable):
        result[unstable] = _log_a0_quadrature(
            r, alpha, s, beta, x[unstable], t_x[unstable], T[unstable]
        )
    return np.asarray(result, dtype=np.float64)


def _log_likelihood_parts(
    r: float,
    alpha: float,
    s: float,
    beta: float,
    x: FloatArray,
    t_x: FloatArray,
    T: FloatArray,
    pairs: tuple[_Pairs, _Pairs] | None = None,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(common factor, log of the 'alive at T' term, log of the 'died in (t_x, T]' term)."""
    common = gammaln(r + x) - gammaln(r) + r * math.log(alpha) + s * math.log(beta)
    alive = -(r + x) * np.log(alpha + T) - s * np.log(beta + T)
    died = math.log(s) - np.log(r + s + x) + log_a0(r, alpha, s, beta, x, t_x, T, pairs=pairs)
    return (
        np.asarray(common, dtype=np.float64),
        np.asarray(alive, dtype=np.float64),
        np.asarray(died, dtype=np.float64),
    )


def log_likelihood(
    r: float,
    alpha: float,
    s: float,
    beta: float,
    x: FloatArray,
    t_x: FloatArray,
    T: FloatArray,
    *,
    pairs: tuple[_Pairs, _Pairs] | None = None,
) -> FloatArray:
    """Log-likelihood of each customer, equation (19) of Fader & Hardie (2005)."""
    common, alive, died = _log_likelihood_parts(r, alpha, s, beta, x, t_x, T, pairs)
    return np.asarray(common + np.logaddexp(alive, died), dtype=np.float64)


def _power_difference_ratio(ratio: FloatArray, exponent: float) -> FloatArray:
    """(1 - ratio^exponent) / exponent, with its limit -log(ratio) as exponent -> 0."""
    if abs(exponent) < 1e-10:
        return np.asarray(-np.log(ratio), dtype=np.float64)
    return np.asarray(-np.expm1(exponent * np.log(ratio)) / exponent, dtype=np.float64)


@dataclass(frozen=True)
class ParetoNbdModel:
    """Pareto/NBD parameters, with the fit's log-likelihood and the predictions they imply."""

    r: float
    alpha: float
    s: float
    beta: float
    log_likelihood: float = math.nan
    customers: int = 0
    repeat_customers: int = 0
    diagnostics: FitDiagnostics | None = None

    def parameters(self) -> dict[str, float]:
        """The four parameters by name."""
        return {"r": self.r, "alpha": self.alpha, "s": self.s, "beta": self.beta}

    def log_likelihood_of(
        self, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
    ) -> FloatArray:
        """Log-likelihood of each customer under these parameters."""
        return log_likelihood(
            self.r,
            self.alpha,
            self.s,
            self.beta,
            as_float_array(frequency, "frequency"),
            as_float_array(recency, "recency"),
            as_float_array(T, "T"),
        )

    def probability_alive(
        self, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
    ) -> FloatArray:
        """P(alive | x, t_x, T), equation (23) of the note."""
        _, alive, died = _log_likelihood_parts(
            self.r,
            self.alpha,
            self.s,
            self.beta,
            as_float_array(frequency, "frequency"),
            as_float_array(recency, "recency"),
            as_float_array(T, "T"),
        )
        return np.asarray(np.exp(alive - np.logaddexp(alive, died)), dtype=np.float64)

    def expected_purchases(self, t: ArrayLike) -> FloatArray:
        """E[X(t)] = r beta / (alpha (s - 1)) [1 - (beta / (beta + t))^(s - 1)], equation (27)."""
        horizon = as_float_array(t, "t")
        ratio = self.beta / (self.beta + horizon)
        return np.asarray(
            self.r * self.beta / self.alpha * _power_difference_ratio(ratio, self.s - 1),
            dtype=np.float64,
        )

    def conditional_expected_purchases(
        self, t: float, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
    ) -> FloatArray:
        """E[Y(t) | x, t_x, T], equation (28): (r + x)(beta + T) / ((alpha + T)(s - 1))
        [1 - ((beta + T) / (beta + T + t))^(s - 1)] P(alive)."""
        x = as_float_array(frequency, "frequency")
        age = as_float_array(T, "T")
        alive = self.probability_alive(x, recency, age)
        ratio = (self.beta + age) / (self.beta + age + t)
        rate = (self.r + x) * (self.beta + age) / (self.alpha + age)
        return np.asarray(
            rate * _power_difference_ratio(ratio, self.s - 1) * alive, dtype=np.float64
        )


def fit_pareto_nbd(
    frequency: ArrayLike,
    recency: ArrayLike,
    T: ArrayLike,
    *,
    weights: ArrayLike | None = None,
) -> ParetoNbdModel:
    """Fit the Pareto/NBD model by maximum likelihood; raise ModelFitError when the data cannot.

    Identical rows are collapsed into weights; time is scaled so that the largest T is 1 while
    fitting; the gradient is taken by finite differences; 2F1 is evaluated once per distinct
    (x, t_x) and (x, T) pair.
    """
    x, t_x, age = check_repeat_purchase_data(frequency, recency, T, model=MODEL_NAME)
    row_weights = None if weights is None else as_float_array(weights, "weights")
    scale = 1.0 / float(age.max())
    rows = encode_rows([x, t_x * scale, age * scale], row_weights)
    unique_x, scaled_t_x, scaled_age = rows.column(0), rows.column(1), rows.column(2)
    unique_weights = rows.weights
    total_weight = float(unique_weights.sum())
    pairs = (_Pairs.of(unique_x, scaled_t_x), _Pairs.of(unique_x, scaled_age))

    def objective(log_parameters: FloatArray) -> float:
        r, alpha, s, beta = np.exp(log_parameters)
        with np.errstate(all="ignore"):
            per_row = log_likelihood(
                r, alpha, s, beta, unique_x, scaled_t_x, scaled_age, pairs=pairs
            )
        return -float(dot(unique_weights, per_row)) / total_weight

    purchase_rate = float(dot(unique_weights, unique_x) / dot(unique_weights, scaled_age))
    starts = [
        (1.0, 1.0 / max(purchase_rate, 1e-3), 1.0, 1.0),
        (0.5, 0.5 / max(purchase_rate, 1e-3), 0.5, 0.5),
        (1.1, 1.1, 1.1, 1.1),
        (2.0, 2.0, 2.0, 5.0),
    ]
    log_parameters, _, diagnostics = maximize_log_likelihood(
        objective,
        starts,
        names=("r", "alpha", "s", "beta"),
        model=MODEL_NAME,
        unique_rows=int(unique_x.size),
        observations=total_weight,
    )
    r, scaled_alpha, s, scaled_beta = (float(value) for value in np.exp(log_parameters))
    alpha, beta = scaled_alpha / scale, scaled_beta / scale
    total = float(
        dot(
            unique_weights,
            log_likelihood(r, alpha, s, beta, unique_x, scaled_t_x / scale, scaled_age / scale),
        )
    )
    return ParetoNbdModel(
        r=r,
        alpha=alpha,
        s=s,
        beta=beta,
        log_likelihood=total,
        customers=int(x.size),
        repeat_customers=int(np.count_nonzero(x > 0)),
        diagnostics=diagnostics,
    )
