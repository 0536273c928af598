"""CLV models: our BG/NBD + Gamma-Gamma fit and CLV against lifetimes', on a synthetic base.

The customer summary is drawn from the BG/NBD process with the CDNOW estimates (r = 0.243,
alpha = 4.414, a = 0.793, b = 2.426; spend from Gamma-Gamma p = 6.25, q = 3.74, gamma = 15.44) on
whole days, like a summary made from a transaction log, with a fixed seed.

    python -m benchmarks.bench_clv --case patronage|lifetimes [--stage fit|clv] --customers N
"""

from __future__ import annotations

import argparse
import json
import warnings
from dataclasses import asdict
from typing import Any

import numpy as np

from benchmarks.common import Result, peak_rss_mb, stopwatch

CDNOW_BGNBD = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
CDNOW_GAMMA_GAMMA = {"p": 6.25, "q": 3.74, "gamma": 15.44}
SEED = 20260101


def synthetic_base(customers: int) -> dict[str, Any]:
    """A deterministic summary of `customers` customers: frequency, recency, T, monetary_value."""
    from patronage.analytics.models.bgnbd import simulate_summary

    x, t_x, age = simulate_summary(*CDNOW_BGNBD.values(), customers=customers, seed=SEED)
    generator = np.random.default_rng(SEED + 1)
    p, q, gamma = CDNOW_GAMMA_GAMMA.values()
    scale = generator.gamma(q, 1.0 / gamma, size=customers)  # nu, the rate of the spend
    shape = np.maximum(p * x, 1e-9)
    spend = generator.gamma(shape, 1.0 / (scale * np.maximum(x, 1)))
    monetary_value = np.where(x > 0, spend, 0.0)
    return {"frequency": x, "recency": t_x, "T": age, "monetary_value": monetary_value}


def _parameters_note(bgnbd: dict[str, float], gamma_gamma: dict[str, float]) -> str:
    shown = {**bgnbd, **gamma_gamma}
    return "fitted " + ", ".join(f"{name}={value:.4g}" for name, value in shown.items())


def _warm_up_pyarrow() -> None:
    """Load pyarrow's compute kernels (a one-time cost of a process, like an import)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    pc.dictionary_encode(pa.array(np.arange(10.0)))


def run_patronage_fit(base: dict[str, Any]) -> tuple[float, str]:
    """Fit our BG/NBD and Gamma-Gamma; return the seconds and a note with the parameters."""
    from patronage.analytics.models import fit_bgnbd, fit_gamma_gamma

    _warm_up_pyarrow()

    with stopwatch() as elapsed:
        purchase_model = fit_bgnbd(base["frequency"], base["recency"], base["T"])
        spend_model = fit_gamma_gamma(base["frequency"], base["monetary_value"])
    unique_rows = purchase_model.diagnostics.unique_rows if purchase_model.diagnostics else 0
    note = (
        _parameters_note(purchase_model.parameters(), spend_model.parameters())
        + f"; {unique_rows:,} distinct (x, t_x, T) rows"
    )
    return elapsed(), note


def run_lifetimes_fit(base: dict[str, Any]) -> tuple[float, str]:
    """Fit lifetimes' BetaGeoFitter and GammaGammaFitter as documented (one row per customer)."""
    from lifetimes import BetaGeoFitter, GammaGammaFitter

    repeat = base["frequency"] > 0
    with stopwatch() as elapsed:
        purchase_model = BetaGeoFitter().fit(base["frequency"], base["recency"], base["T"])
        spend_model = GammaGammaFitter().fit(
            base["frequency"][repeat], base["monetary_value"][repeat]
        )
    spend = dict(spend_model.params_)
    note = _parameters_note(
        dict(purchase_model.params_),
        {"p": spend["p"], "q": spend["q"], "gamma": spend["v"]},
    )
    return elapsed(), note


def run_patronage_clv(base: dict[str, Any]) -> tuple[float, str]:
    """Our 12-month CLV (1 % a month) for every customer, with the CDNOW parameters."""
    from patronage.analytics.models import BgNbdModel, GammaGammaModel, customer_lifetime_value

    bgnbd, gamma_gamma = CDNOW_BGNBD, CDNOW_GAMMA_GAMMA
    purchase_model = BgNbdModel(r=bgnbd["r"], alpha=bgnbd["alpha"], a=bgnbd["a"], b=bgnbd["b"])
    spend_model = GammaGammaModel(
        p=gamma_gamma["p"], q=gamma_gamma["q"], gamma=gamma_gamma["gamma"]
    )

    def compute(size: int) -> Any:
        return customer_lifetime_value(
            purchase_model,
            spend_model,
            base["frequency"][:size],
            base["recency"][:size],
            base["T"][:size],
            base["monetary_value"][:size],
            months=12,
            monthly_discount_rate=0.01,
        )

    _warm_up_pyarrow()
    compute(20_000)
    with stopwatch() as elapsed:
        values = compute(base["frequency"].size)
    return elapsed(), f"total CLV {values.sum():,.0f}, mean {values.mean():.2f}"


def run_lifetimes_clv(base: dict[str, Any]) -> tuple[float, str]:
    """lifetimes' GammaGammaFitter.customer_lifetime_value with the same parameters."""
    import pandas as pd
    from lifetimes import BetaGeoFitter, GammaGammaFitter

    purchase_model = BetaGeoFitter()
    purchase_model.params_ = pd.Series(CDNOW_BGNBD)
    purchase_model.predict = purchase_model.conditional_expected_number_of_purchases_up_to_time
    spend_model = GammaGammaFitter()
    spend_model.params_ = pd.Series(
        {"p": CDNOW_GAMMA_GAMMA["p"], "q": CDNOW_GAMMA_GAMMA["q"], "v": CDNOW_GAMMA_GAMMA["gamma"]}
    )
    index = pd.RangeIndex(base["frequency"].size)
    columns = {name: pd.Series(values, index=index) for name, values in base.items()}
    with stopwatch() as elapsed:
        values = spend_model.customer_lifetime_value(
            purchase_model,
            columns["frequency"],
            columns["recency"],
            columns["T"],
            columns["monetary_value"],
            time=12,
            discount_rate=0.01,
            freq="W",
        )
    return elapsed(), f"total CLV {values.sum():,.0f}, mean {values.mean():.2f}"


def main() -> None:
    """Run one case and print its Result as one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--case", choices=("patronage", "lifetimes"), required=True)
    parser.add_argument("--stage", choices=("fit", "clv"), default="fit")
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument(
        "--baseline-seconds",
        type=float,
        default=None,
        help="lifetimes' time for the same fit, to judge the ≥ 5x target",
    )
    options = parser.parse_args()
    warnings.filterwarnings("ignore")
    base = synthetic_base(options.customers)
    runners = {
        ("patronage", "fit"): run_patronage_fit,
        ("lifetimes", "fit"): run_lifetimes_fit,
        ("patronage", "clv"): run_patronage_clv,
        ("lifetimes", "clv"): run_lifetimes_clv,
    }
    seconds, note = runners[(options.case, options.stage)](base)
    if options.stage == "fit":
        benchmark = "CLV models: BG/NBD + Gamma-Gamma fit"
        variant = (
            "Patronage (duplicate rows weighted, analytic gradient)"
            if options.case == "patronage"
            else "baseline: lifetimes BetaGeoFitter + GammaGammaFitter"
        )
        target = "≥ 5x faster than lifetimes" if options.case == "patronage" else ""
        met = (
            options.baseline_seconds / seconds >= 5
            if options.case == "patronage" and options.baseline_seconds
            else None
        )
    else:
        benchmark = "CLV models: 12-month CLV"
        variant = (
            "Patronage (vectorised over customers and months)"
            if options.case == "patronage"
            else "baseline: lifetimes customer_lifetime_value"
        )
        target = "1,000,000 customers in < 1 s" if options.case == "patronage" else ""
        met = seconds * 1_000_000 / options.customers < 1.0 if options.case == "patronage" else None
    result = Result(
        benchmark=benchmark,
        variant=variant,
        backend="—",
        items=options.customers,
        unit="customers",
        seconds=seconds,
        peak_mb=peak_rss_mb(),
        target=target,
        met=met,
        note=note,
    )
    print(json.dumps(asdict(result), ensure_ascii=False))


if __name__ == "__main__":
    main()
