"""Errors of the customer-base models."""

from __future__ import annotations

from patronage.errors import ValidationFailedError


class ModelFitError(ValidationFailedError):
    """The data cannot support fitting the model, or the optimizer did not converge; says why."""

    title = "Model cannot be fitted"
