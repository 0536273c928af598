"""What the model fits share: input checks, duplicate-row weights and the multi-start optimizer."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import minimize
from threadpoolctl import threadpool_limits

from patronage.analytics.models.errors import ModelFitError

FloatArray = NDArray[np.float64]

MINIMUM_CUSTOMERS = 20
MINIMUM_REPEAT_CUSTOMERS = 10
MINIMUM_REPEAT_SHARE = 0.05
LOG_PARAMETER_BOUND = math.log(1e6)
GRADIENT_TOLERANCE = 1e-3
BOUND_TOLERANCE = 1e-3
# A log-parameter whose standard error exceeds this is not identified by the data (the estimate
# drifts along a flat ridge of the likelihood, e.g. a, b -> 0 or b -> infinity).
MAXIMUM_LOG_STANDARD_ERROR = 10.0


@dataclass(frozen=True)
class FitDiagnostics:
    """How the optimizer got to the estimate."""

    iterations: int
    function_evaluations: int
    gradient_norm: float
    starts_tried: int
    message: str
    unique_rows: int
    log_standard_errors: tuple[float, ...] = ()


def dot(first: FloatArray, second: FloatArray) -> float:
    """Inner product of two vectors without BLAS.

    OpenBLAS's threaded ddot costs milliseconds a call on a busy machine (its threads wait for
    cores), more than the whole likelihood; einsum's own loop does not thread.
    """
    return float(np.einsum("i,i->", first, second))


def as_float_array(values: ArrayLike, name: str) -> FloatArray:
    """Return `values` as a one-dimensional float64 array, or raise ModelFitError."""
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ModelFitError(f"{name} must be numbers: {error}") from error
    if array.ndim != 1:
        array = array.reshape(-1)
    return array


def _count(mask: NDArray[np.bool_]) -> int:
    return int(np.count_nonzero(mask))


def check_repeat_purchase_data(
    frequency: ArrayLike, recency: ArrayLike, T: ArrayLike, *, model: str
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Check a (frequency, recency, T) summary can support a fit; return it as float arrays."""
    x = as_float_array(frequency, "frequency")
    t_x = as_float_array(recency, "recency")
    age = as_float_array(T, "T")
    if not x.shape == t_x.shape == age.shape:
        raise ModelFitError(
            f"frequency, recency and T differ in length ({x.size}, {t_x.size}, {age.size})"
        )
    customers = x.size
    if customers < MINIMUM_CUSTOMERS:
        raise ModelFitError(
            f"{model}: {customers} customers are too few to fit the model "
            f"(at least {MINIMUM_CUSTOMERS} are needed)"
        )
    non_finite = _count(~(np.isfinite(x) & np.isfinite(t_x) & np.isfinite(age)))
    if non_finite:
        raise ModelFitError(f"{model}: {non_finite} customers have a missing or infinite value")
    negative = _count((x < 0) | (t_x < 0) | (age < 0))
    if negative:
        raise ModelFitError(
            f"{model}: {negative} customers have a negative frequency, recency or T"
        )
    fractional = _count(x != np.floor(x))
    if fractional:
        raise ModelFitError(
            f"{model}: {fractional} customers have a fractional frequency "
            "(it counts repeat purchases)"
        )
    too_recent = _count(t_x > age)
    if too_recent:
        raise ModelFitError(
            f"{model}: {too_recent} customers have a recency after the end of the calibration "
            "period (T < recency)"
        )
    not_aged = _count(age <= 0)
    if not_aged:
        raise ModelFitError(
            f"{model}: {not_aged} customers have T = 0 (first purchase at the calibration end); "
            "drop them or move the calibration end"
        )
    inconsistent = _count((x == 0) & (t_x > 0))
    if inconsistent:
        raise ModelFitError(
            f"{model}: {inconsistent} customers have no repeat purchase but a positive recency"
        )
    repeat = _count(x > 0)
    needed = max(MINIMUM_REPEAT_CUSTOMERS, math.ceil(MINIMUM_REPEAT_SHARE * customers))
    if repeat < needed:
        raise ModelFitError(
            f"{model}: only {repeat} of {customers} customers bought again; at least {needed} "
            f"repeat buyers ({MINIMUM_REPEAT_CUSTOMERS} and {MINIMUM_REPEAT_SHARE:.0%}) are "
            "needed to estimate churn"
        )
    if not np.any(t_x > 0):
        raise ModelFitError(
            f"{model}: all recencies are zero: no repeat purchase falls after a first purchase"
        )
    return x, t_x, age


@dataclass(frozen=True)
class EncodedRows:
    """Distinct rows of a few columns: each column's distinct values, codes into them, weights.

    Row i of the distinct rows is (values[0][codes[0][i]], values[1][codes[1][i]], ...) and stands
    for weights[i] input rows. Likelihood terms that depend on one column only are computed once
    per distinct value and gathered by code.
    """

    values: list[FloatArray]
    codes: list[NDArray[np.intp]]
    weights: FloatArray

    @property
    def size(self) -> int:
        """Number of distinct rows."""
        return int(self.weights.size)

    def column(self, index: int) -> FloatArray:
        """Column `index` of the distinct rows."""
        return self.values[index][self.codes[index]]


def encode_rows(columns: Sequence[FloatArray], weights: FloatArray | None = None) -> EncodedRows:
    """Collapse identical rows of `columns` into distinct rows with summed weights (hash-based)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    values: list[FloatArray] = []
    column_codes: list[NDArray[np.int64]] = []
    for column in columns:
        encoded = pc.dictionary_encode(pa.array(np.asarray(column, dtype=np.float64)))
        values.append(np.asarray(encoded.dictionary.to_numpy(), dtype=np.float64))
        column_codes.append(np.asarray(encoded.indices.to_numpy(), dtype=np.int64))
    cardinalities = [max(value.size, 1) for value in values]
    if math.prod(cardinalities) < 2**62:
        key = np.zeros(columns[0].size, dtype=np.int64)
        for codes, cardinality in zip(column_codes, cardinalities, strict=True):
            key = key * cardinality + codes
        encoded_key = pc.dictionary_encode(pa.array(key))
        inverse = np.asarray(encoded_key.indices.to_numpy(), dtype=np.intp)
        remaining = np.asarray(encoded_key.dictionary.to_numpy(), dtype=np.int64)
        unique_codes: list[NDArray[np.intp]] = []
        for cardinality in reversed(cardinalities):
            unique_codes.append((remaining % cardinality).astype(np.intp))
            remaining = remaining // cardinality
        unique_codes.reverse()
    else:
        stacked = np.stack(column_codes, axis=1)
        unique_rows, inverse = np.unique(stacked, axis=0, return_inverse=True)
        inverse = inverse.reshape(-1)
        unique_codes = [unique_rows[:, index].astype(np.intp) for index in range(len(columns))]
    row_weights = np.ones(columns[0].size) if weights is None else np.asarray(weights, np.float64)
    summed = np.asarray(
        np.bincount(inverse, weights=row_weights, minlength=unique_codes[0].size), np.float64
    )
    return EncodedRows(values=values, codes=unique_codes, weights=summed)


Objective = Callable[[FloatArray], tuple[float, FloatArray]]


def _finite_difference_gradient(
    function: Callable[[FloatArray], float], at: FloatArray
) -> FloatArray:
    step = 1e-5
    gradient = np.empty_like(at)
    for index in range(at.size):
        forward = at.copy()
        backward = at.copy()
        forward[index] += step
        backward[index] -= step
        gradient[index] = (function(forward) - function(backward)) / (2 * step)
    return gradient


def _log_standard_errors(
    gradient_at: Callable[[FloatArray], FloatArray],
    log_parameters: FloatArray,
    names: Sequence[str],
    observations: float,
) -> tuple[FloatArray, str]:
    """Standard errors of the log-parameters, and what is wrong when they are not finite."""
    step = 1e-4
    size = log_parameters.size
    hessian = np.empty((size, size))
    for index in range(size):
        shift = np.zeros(size)
        shift[index] = step
        hessian[index] = (
            gradient_at(log_parameters + shift) - gradient_at(log_parameters - shift)
        ) / (2 * step)
    hessian = (hessian + hessian.T) / 2
    if not np.all(np.isfinite(hessian)) or np.linalg.eigvalsh(hessian)[0] <= 0:
        return np.full(size, np.inf), "the log-likelihood has no proper maximum there"
    errors = np.sqrt(np.diag(np.linalg.inv(hessian)) / observations)
    loose = [
        f"{name} (standard error of log {name}: {error:.3g})"
        for name, error in zip(names, errors, strict=True)
        if not error <= MAXIMUM_LOG_STANDARD_ERROR
    ]
    if loose:
        return errors, "the data do not identify " + ", ".join(loose)
    return errors, ""


def maximize_log_likelihood(
    negative_mean_log_likelihood: Callable[[FloatArray], float],
    starts: Sequence[Sequence[float]],
    *,
    names: Sequence[str],
    model: str,
    unique_rows: int,
    observations: float,
    value_and_gradient: Objective | None = None,
) -> tuple[FloatArray, float, FitDiagnostics]:
    """Minimise a mean negative log-likelihood over log-parameters with L-BFGS-B from `starts`.

    Each start runs until one converges: the gradient norm is small, no parameter rests on its
    bound (1e-6 or 1e6, after time is scaled to max T = 1), and the Hessian of the
    log-likelihood is positive definite with every log-parameter's standard error (from the
    inverse of `observations` times the mean Hessian) at most MAXIMUM_LOG_STANDARD_ERROR.
    Raises ModelFitError with the optimizer's message when no start converges.
    """

    def safe_value(log_parameters: FloatArray) -> float:
        value = negative_mean_log_likelihood(log_parameters)
        return value if math.isfinite(value) else 1e300

    def safe_value_and_gradient(log_parameters: FloatArray) -> tuple[float, FloatArray]:
        assert value_and_gradient is not None
        value, gradient = value_and_gradient(log_parameters)
        if math.isfinite(value) and np.all(np.isfinite(gradient)):
            return value, gradient
        return 1e300, np.zeros_like(log_parameters)

    def gradient_at(log_parameters: FloatArray) -> FloatArray:
        if value_and_gradient is not None:
            return value_and_gradient(log_parameters)[1]
        return _finite_difference_gradient(safe_value, log_parameters)

    bounds = [(-LOG_PARAMETER_BOUND, LOG_PARAMETER_BOUND)] * len(names)
    failures: list[str] = []
    # The optimizer works on 3-4 parameters: threaded BLAS only makes its threads wait for cores.
    with threadpool_limits(limits=1, user_api="blas"):
        for number, start in enumerate(starts, start=1):
            log_start = np.log(np.asarray(start, dtype=np.float64))
            log_start = np.clip(log_start, -LOG_PARAMETER_BOUND + 1, LOG_PARAMETER_BOUND - 1)
            if value_and_gradient is not None:
                result = minimize(
                    safe_value_and_gradient,
                    log_start,
                    jac=True,
                    method="L-BFGS-B",
                    bounds=bounds,
                    options={"maxiter": 2000, "ftol": 1e-15, "gtol": 1e-9, "maxcor": 20},
                )
            else:
                result = minimize(
                    safe_value,
                    log_start,
                    method="L-BFGS-B",
                    bounds=bounds,
                    options={"maxiter": 2000, "ftol": 1e-15, "gtol": 1e-9, "eps": 1e-9},
                )
            log_parameters = np.asarray(result.x, dtype=np.float64)
            value = float(result.fun)
            message = str(result.message)
            if not math.isfinite(value) or value >= 1e299:
                failures.append(f"start {number}: the log-likelihood is not finite ({message})")
                continue
            gradient_norm = float(np.max(np.abs(gradient_at(log_parameters))))
            at_bound = [
                name
                for name, log_value in zip(names, log_parameters, strict=True)
                if abs(abs(log_value) - LOG_PARAMETER_BOUND) < BOUND_TOLERANCE
            ]
            if at_bound:
                failures.append(
                    f"start {number}: {', '.join(at_bound)} went to the bound of its range "
                    "(the data do not identify it)"
                )
                continue
            if not math.isfinite(gradient_norm) or gradient_norm > GRADIENT_TOLERANCE:
                failures.append(
                    f"start {number}: did not converge ({message}; "
                    f"gradient norm {gradient_norm:.2g})"
                )
                continue
            standard_errors, problem = _log_standard_errors(
                gradient_at, log_parameters, names, observations
            )
            if problem:
                failures.append(f"start {number}: {problem} ({message})")
                continue
            diagnostics = FitDiagnostics(
                iterations=int(result.nit),
                function_evaluations=int(result.nfev),
                gradient_norm=gradient_norm,
                starts_tried=number,
                message=message,
                unique_rows=unique_rows,
                log_standard_errors=tuple(float(error) for error in standard_errors),
            )
            return log_parameters, value, diagnostics
    raise ModelFitError(f"{model}: the optimizer did not converge: " + "; ".join(failures))


def unique_pairs(
    first: FloatArray, second: FloatArray
) -> tuple[FloatArray, FloatArray, NDArray[np.intp]]:
    """Distinct (first, second) pairs and, for each row, the index of its pair (hash-based).

    `first` is used as its own code when it holds small non-negative whole numbers (a frequency).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    second_encoded = pc.dictionary_encode(pa.array(second))
    second_count = max(len(second_encoded.dictionary), 1)
    whole = first.size > 0 and bool(
        np.all((first >= 0) & (first < 2**31 // second_count) & (first == np.floor(first)))
    )
    if whole:
        first_values = np.arange(int(first.max()) + 1, dtype=np.float64)
        first_codes = first.astype(np.int64)
    else:
        first_encoded = pc.dictionary_encode(pa.array(first))
        first_values = np.asarray(first_encoded.dictionary.to_numpy(), dtype=np.float64)
        first_codes = np.asarray(first_encoded.indices.to_numpy(), dtype=np.int64)
    key = first_codes * second_count + second_encoded.indices.to_numpy()
    key_encoded = pc.dictionary_encode(pa.array(key))
    unique_keys = key_encoded.dictionary.to_numpy()
    second_values = second_encoded.dictionary.to_numpy()
    inverse = key_encoded.indices.to_numpy().astype(np.intp)
    return (
        np.asarray(first_values[unique_keys // second_count], dtype=np.float64),
        np.asarray(second_values[unique_keys % second_count], dtype=np.float64),
        inverse,
    )
