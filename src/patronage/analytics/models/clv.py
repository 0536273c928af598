"""Customer lifetime value: BG/NBD expected purchases times Gamma-Gamma expected spend, discounted.

As lifetimes' `customer_lifetime_value`: over months i = 1..M,

    CLV = sum_i (E[Y(i m) | x, t_x, T] - E[Y((i - 1) m) | x, t_x, T]) * spend * margin / (1 + d)^i

with m the number of model time units in a month and d the MONTHLY discount rate
(`monthly_rate_from_annual` converts an annual one). For BG/NBD the expected purchases factor into
a part depending on (x, T) and horizon only, evaluated once per distinct (x, T) pair and month,
and P(alive | x, t_x, T); so the sum over months is done on the distinct pairs and the whole is a
few vectorised passes over the customers.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
from numpy.typing import ArrayLike

from patronage.analytics.models.bgnbd import PAIRING_THRESHOLD, BgNbdModel
from patronage.analytics.models.errors import ModelFitError
from patronage.analytics.models.fitting import FloatArray, as_float_array, unique_pairs
from patronage.analytics.models.gamma_gamma import GammaGammaModel

# Time units in a month, as lifetimes counts them (freq "D": 30, "W": 4.345).
UNITS_PER_MONTH: dict[str, float] = {"day": 30.0, "week": 4.345}


class PurchaseModel(Protocol):
    """A model that predicts a customer's purchases in the next t time units."""

    def conditional_expected_purchases(
        self, t: float, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
    ) -> FloatArray:
        """E[Y(t) | x, t_x, T]."""
        ...


def monthly_rate_from_annual(annual_rate: float) -> float:
    """The monthly discount rate equivalent to an annual one: (1 + annual)^(1/12) - 1."""
    return float((1.0 + annual_rate) ** (1.0 / 12.0) - 1.0)


def discounted_expected_purchases(
    model: PurchaseModel,
    frequency: ArrayLike,
    recency: ArrayLike,
    T: ArrayLike,
    *,
    months: int = 12,
    monthly_discount_rate: float = 0.01,
    units_per_month: float = UNITS_PER_MONTH["week"],
) -> FloatArray:
    """Sum over months of each month's expected purchases divided by (1 + d)^month."""
    if months < 1:
        raise ModelFitError(f"the CLV horizon must be at least one month, not {months}")
    if monthly_discount_rate <= -1:
        raise ModelFitError(f"the discount rate must be above -1, not {monthly_discount_rate}")
    x = as_float_array(frequency, "frequency")
    t_x = as_float_array(recency, "recency")
    age = as_float_array(T, "T")
    month_numbers = np.arange(1, months + 1, dtype=np.float64)
    discount = (1.0 + monthly_discount_rate) ** -month_numbers
    horizons = month_numbers * units_per_month
    if isinstance(model, BgNbdModel):
        # sum_i (growth(i) - growth(i - 1)) / (1 + d)^i per distinct (x, T), growth(0) = 0.
        if x.size > PAIRING_THRESHOLD:
            unique_x, unique_age, inverse = unique_pairs(x, age)
        else:
            unique_x, unique_age, inverse = x, age, np.arange(x.size)
        growth = model.purchase_growth(unique_x, unique_age, horizons)
        discounted = np.einsum("ij,j->i", np.diff(growth, axis=1, prepend=0.0), discount)
        return np.asarray(discounted[inverse] * model.probability_alive(x, t_x, age))
    total = np.zeros(x.size)
    previous = np.zeros(x.size)
    for horizon, factor in zip(horizons, discount, strict=True):
        cumulative = model.conditional_expected_purchases(float(horizon), x, t_x, age)
        total += (cumulative - previous) * factor
        previous = cumulative
    return total


def customer_lifetime_value(
    purchase_model: PurchaseModel,
    spend_model: GammaGammaModel,
    frequency: ArrayLike,
    recency: ArrayLike,
    T: ArrayLike,
    monetary_value: ArrayLike,
    *,
    months: int = 12,
    monthly_discount_rate: float = 0.01,
    margin: float = 1.0,
    units_per_month: float = UNITS_PER_MONTH["week"],
) -> FloatArray:
    """Discounted value of each customer's expected purchases over `months` (monthly rate)."""
    spend = spend_model.conditional_expected_spend(frequency, monetary_value)
    purchases = discounted_expected_purchases(
        purchase_model,
        frequency,
        recency,
        T,
        months=months,
        monthly_discount_rate=monthly_discount_rate,
        units_per_month=units_per_month,
    )
    return np.asarray(purchases * spend * margin, dtype=np.float64)
