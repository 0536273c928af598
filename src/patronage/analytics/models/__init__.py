"""Probabilistic customer-base models: BG/NBD, Pareto/NBD, Gamma-Gamma and the CLV built on them.

See docs/clv.md for the papers, the published estimates they reproduce and the command line.
"""

from patronage.analytics.models.bgnbd import BgNbdModel, fit_bgnbd
from patronage.analytics.models.clv import customer_lifetime_value, monthly_rate_from_annual
from patronage.analytics.models.errors import ModelFitError
from patronage.analytics.models.gamma_gamma import GammaGammaModel, fit_gamma_gamma
from patronage.analytics.models.pareto_nbd import ParetoNbdModel, fit_pareto_nbd
from patronage.analytics.models.summary import CustomerSummary, summary_from_transactions

__all__ = [
    "BgNbdModel",
    "CustomerSummary",
    "GammaGammaModel",
    "ModelFitError",
    "ParetoNbdModel",
    "customer_lifetime_value",
    "fit_bgnbd",
    "fit_gamma_gamma",
    "fit_pareto_nbd",
    "monthly_rate_from_annual",
    "summary_from_transactions",
]
