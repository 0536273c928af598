"""The customer report: one standalone HTML file (Plotly inlined) that opens offline."""

from __future__ import annotations

import html
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import ibis
import ibis.expr.types as ir
from sqlalchemy.orm import Session

from patronage.analytics import repository
from patronage.analytics.engines import AnalyticsEngine, DatabaseEngine
from patronage.analytics.kpis import KpiQuery, store_kpis
from patronage.analytics.scoring import (
    SECONDS_PER_DAY,
    SEGMENT_GRID,
    epoch_seconds,
    full_score_rows,
    only_live,
    revenue_orders,
)
from patronage.analytics.service import settings_for, store_zone_offsets
from patronage.kit.clock import utcnow
from patronage.stores.models import Store
from patronage.stores.service import get_store

LIFECYCLE_ORDER = ("new", "active", "repeat", "at_risk", "dormant", "churned")
FM_BANDS = ((8, 10, "4-5"), (6, 7, "3-3.5"), (4, 5, "2-2.5"), (2, 3, "1-1.5"))
HOLDOUT_DAYS = 182
DAYS_PER_WEEK = 7


def write_customer_report(
    session: Session,
    store_id: int,
    path: Path,
    *,
    start: date | None = None,
    end: date | None = None,
    market: str | None = None,
) -> Path:
    """Compute the store's KPIs, scores and (when available) model outputs; write the HTML."""
    store = get_store(session, store_id)
    engine = DatabaseEngine(session)
    query = KpiQuery.for_dates(
        store_id, start=start, end=end, market=market, currency=store.base_currency
    )
    kpis = store_kpis(engine, query)
    as_of = min(query.end, utcnow())
    distribution = repository.stored_distribution(session, store_id) or score_distribution(
        session, engine, store, as_of
    )
    models = model_outputs(engine, store, as_of)
    path.write_text(render_report(store, kpis, distribution, models), encoding="utf-8")
    return path


def score_distribution(
    session: Session, engine: AnalyticsEngine, store: Store, as_of: datetime
) -> dict[str, Any]:
    """Count customers by RFM cell, segment, lifecycle stage and VIP flag, computed in place.

    Used when the store has no stored scores yet (the report prefers `analyze --rescore`'s).
    """
    offsets, default = store_zone_offsets(session, store, as_of)
    scores = full_score_rows(
        engine.sources(),
        store.id,
        as_of=as_of,
        settings=settings_for(store),
        zone_offsets=offsets,
        default_offset=default,
        ranking=engine.ranking,
    )
    # Counted here rather than by one more GROUP BY around the scoring expression: SQLite's
    # parser overflows on that much nesting. Only stores never scored take this path.
    cells: dict[tuple[Any, Any, Any], int] = {}
    stages: dict[str, int] = {}
    vip = 0
    for row in engine.fetch(scores):
        total = None
        if row["frequency_score"] is not None:
            total = row["frequency_score"] + row["monetary_score"]
        key = (row["recency_score"], total, row["rfm_segment"])
        cells[key] = cells.get(key, 0) + 1
        stages[row["lifecycle_stage"]] = stages.get(row["lifecycle_stage"], 0) + 1
        vip += bool(row["is_vip"])
    return {
        "as_of": as_of,
        "cells": [
            {"recency": recency, "fm_total": total, "segment": segment, "customers": count}
            for (recency, total, segment), count in cells.items()
        ],
        "stages": stages,
        "vip": vip,
    }


def purchase_summary(
    engine: AnalyticsEngine, store_id: int, calibration_end: datetime, holdout_end: datetime
) -> ir.Table:
    """Per customer, in days: repeat purchases, recency and age at calibration end; holdout count.

    Days with several purchases count once (the convention of the BG/NBD papers).
    """
    sources = engine.sources(with_lines=False, with_events=False)
    revenue = revenue_orders(sources, store_id)
    purchases = revenue.filter(revenue.is_purchase)
    days = purchases.select(
        customer_id=purchases.customer_id,
        day=epoch_seconds(purchases.placed_at) // SECONDS_PER_DAY,
        net=purchases.net,
    )
    calibration_day = int(calibration_end.timestamp()) // SECONDS_PER_DAY
    holdout_day = int(holdout_end.timestamp()) // SECONDS_PER_DAY
    daily = days.group_by(["customer_id", "day"]).aggregate(net=days.net.sum())
    before = daily.day < calibration_day
    in_holdout = (daily.day >= calibration_day) & (daily.day < holdout_day)
    summary = daily.group_by("customer_id").aggregate(
        first_day=daily.day.min(where=before),
        last_day=daily.day.max(where=before),
        days=before.ifelse(1, 0).sum(),
        net=daily.net.sum(where=before),
        holdout=in_holdout.ifelse(1, 0).sum(),
    )
    summary = only_live(summary.filter(summary.days > 0), sources, store_id)
    return summary.select(
        customer_id=summary.customer_id,
        frequency=summary.days - 1,
        recency=summary.last_day - summary.first_day,
        age=ibis.literal(calibration_day) - summary.first_day,
        average_value=summary.net / summary.days / 10_000,
        holdout=summary.holdout,
    )


def model_outputs(engine: AnalyticsEngine, store: Store, as_of: datetime) -> dict[str, Any]:
    """CLV, churn risk and a holdout calibration from the BG/NBD and Gamma-Gamma models.

    Returns {"note": …} when the models are not available or the data cannot support a fit.
    """
    try:
        import numpy as np

        from patronage.analytics.models.bgnbd import fit_bgnbd
        from patronage.analytics.models.clv import customer_lifetime_value
        from patronage.analytics.models.gamma_gamma import fit_gamma_gamma
    except ImportError as error:
        return {"note": f"the probabilistic models are not available ({error})"}
    calibration_end = as_of - timedelta(days=HOLDOUT_DAYS)
    try:
        rows = engine.fetch(purchase_summary(engine, store.id, calibration_end, as_of))
        if not rows:
            return {"note": "no purchases before the calibration period ends"}
        weeks = float(DAYS_PER_WEEK)
        frequency = np.array([row["frequency"] for row in rows], dtype=float)
        recency = np.array([row["recency"] for row in rows], dtype=float) / weeks
        age = np.array([row["age"] for row in rows], dtype=float) / weeks
        value = np.array([row["average_value"] or 0.0 for row in rows], dtype=float)
        actual = np.array([row["holdout"] for row in rows], dtype=float)
        purchases = fit_bgnbd(frequency, recency, age)
        horizon = HOLDOUT_DAYS / weeks
        predicted = purchases.probability_alive(
            frequency, recency, age
        ) * purchases.purchase_growth(frequency, age, np.array([horizon])).reshape(-1)
        alive = purchases.probability_alive(frequency, recency, age)
    except Exception as error:  # the models raise ModelFitError; anything else is reported too
        return {"note": f"the purchase model (BG/NBD) could not be fitted on this store: {error}"}
    # Calibration and churn risk need only BG/NBD; CLV also needs the spend model.
    spend_parameters: dict[str, float] | None = None
    clv: list[float] | None = None
    spend_note = ""
    try:
        spend = fit_gamma_gamma(frequency, value)
        spend_parameters = spend.parameters()
        clv = [float(item) for item in customer_lifetime_value(
            purchases, spend, frequency, recency, age, value
        )]  # fmt: skip
    except Exception as error:
        spend_note = f"the spend model (Gamma-Gamma) could not be fitted, so no CLV: {error}"
    groups = []
    for bucket in range(8):
        chosen = frequency >= bucket if bucket == 7 else frequency == bucket
        if chosen.any():
            groups.append(
                {
                    "frequency": f"{bucket}+" if bucket == 7 else str(bucket),
                    "predicted": float(predicted[chosen].mean()),
                    "actual": float(actual[chosen].mean()),
                    "customers": int(chosen.sum()),
                }
            )
    return {
        "bgnbd": purchases.parameters(),
        "gamma_gamma": spend_parameters,
        "spend_note": spend_note,
        "calibration_end": calibration_end.date().isoformat(),
        "clv": clv,
        "churn_risk": [float(1 - item) for item in alive],
        "calibration": groups,
        "holdout_total": {"predicted": float(predicted.sum()), "actual": float(actual.sum())},
    }


# --- Rendering ----------------------------------------------------------------------------


def render_report(
    store: Store, kpis: dict[str, Any], distribution: dict[str, Any], models: dict[str, Any]
) -> str:
    """Return the report as one HTML document with Plotly's JavaScript inlined once."""
    figures = [
        ("Revenue, customers and repurchase rate by month", _monthly_figure(kpis)),
        ("By market", _market_figure(kpis)),
        ("Cohort retention (share of each first-purchase month buying again k months later)",
         _cohort_figure(kpis)),
        ("RFM grid (customers by recency score and F/M average)", _rfm_figure(distribution)),
        ("Lifecycle and purchase funnels", _funnel_figure(kpis, distribution)),
    ]  # fmt: skip
    if "note" in models:
        note = html.escape(models["note"])
        model_html = (
            f'<p class="note">Customer lifetime value, churn risk and calibration: {note}.</p>'
        )
    else:
        title = "Customer lifetime value (12 months) and churn risk"
        figures.append((title if models["clv"] is not None else "Churn risk",
                        _model_figure(models)))  # fmt: skip
        figures.append(("Calibration: predicted vs actual purchases in the holdout period",
                        _calibration_figure(models)))  # fmt: skip
        spend = (
            f"Gamma-Gamma {_parameters(models['gamma_gamma'])}"
            if models["gamma_gamma"] is not None
            else html.escape(models["spend_note"])
        )
        model_html = (
            f'<p class="note">BG/NBD {_parameters(models["bgnbd"])}; {spend}; calibration ends '
            f"{models['calibration_end']}, holdout {HOLDOUT_DAYS} days: predicted "
            f"{models['holdout_total']['predicted']:,.0f} purchases, actual "
            f"{models['holdout_total']['actual']:,.0f}.</p>"
        )
    sections = []
    for index, (title, figure) in enumerate(figures):
        body = figure.to_html(
            full_html=False, include_plotlyjs=index == 0, config={"displaylogo": False}
        )
        sections.append(f"<section><h2>{html.escape(title)}</h2>{body}</section>")
    period = kpis["period"]
    market = f" · market {kpis['market']}" if kpis["market"] else ""
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>{html.escape(store.name)} — customer report</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 24px auto; max-width: 1300px; color: #222; }}
h1 {{ margin-bottom: 4px; }} h2 {{ font-size: 18px; margin-top: 28px; }}
.sub {{ color: #666; }} .note {{ color: #555; background: #f6f6f6; padding: 8px 12px; }}
.tiles {{ display: grid; grid-template-columns: repeat(5, 1fr); gap: 12px; margin-top: 16px; }}
.tile {{ border: 1px solid #ddd; border-radius: 8px; padding: 12px; }}
.tile .value {{ font-size: 24px; font-weight: 600; }}
.tile .label {{ color: #666; font-size: 13px; }}
</style></head><body>
<h1>{html.escape(store.name)}: the customer situation</h1>
<div class="sub">{period["from"]} - {period["to"]}{market} · amounts in {kpis["currency"]} (net of
refunds) · scores as of {distribution["as_of"]:%Y-%m-%d} · generated {generated}</div>
{_tiles(kpis, distribution)}
{"".join(sections)}
{model_html}
</body></html>
"""


def _tiles(kpis: dict[str, Any], distribution: dict[str, Any]) -> str:
    customers, rates, members = kpis["customers"], kpis["repurchase_rate"], kpis["members"]
    tiles = [
        ("Net revenue", _amount(kpis["revenue"]["net"])),
        ("Gross revenue", _amount(kpis["revenue"]["gross"])),
        ("Orders", f"{kpis['orders']:,}"),
        ("Average order value", _amount(kpis["average_order_value"])),
        ("Active customers", f"{customers['active']:,}"),
        ("New customers", f"{customers['new']:,}"),
        ("Returning customers", f"{customers['returning']:,}"),
        ("Repurchase rate (period)", _percent(rates["period"])),
        ("Repurchase rate (lifetime)", _percent(rates["lifetime"])),
        ("Member activity", _percent(members["activity_rate"])),
        ("Members", f"{members['count']:,}"),
        ("Returning customers' revenue", _percent(members["returning_revenue_share"])),
        ("VIP customers", f"{distribution['vip']:,}"),
        ("At risk + dormant", f"{_stage(distribution, 'at_risk', 'dormant'):,}"),
        ("Churned", f"{_stage(distribution, 'churned'):,}"),
    ]
    cells = "".join(
        f'<div class="tile"><div class="value">{html.escape(str(value))}</div>'
        f'<div class="label">{html.escape(label)}</div></div>'
        for label, value in tiles
    )
    return f'<div class="tiles">{cells}</div>'


def _stage(distribution: dict[str, Any], *names: str) -> int:
    return sum(distribution["stages"].get(name, 0) for name in names)


def _monthly_figure(kpis: dict[str, Any]) -> Any:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    months = [row["month"] for row in kpis["by_month"]]
    figure = make_subplots(
        rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.06,
        subplot_titles=("Revenue", "Customers", "Repurchase rate (lifetime, at month end)"),
    )  # fmt: skip
    rows = kpis["by_month"]
    figure.add_trace(go.Bar(x=months, y=[float(r["net"]) for r in rows], name="net revenue"), 1, 1)
    figure.add_trace(
        go.Scatter(x=months, y=[float(r["gross"]) for r in rows], name="gross revenue"), 1, 1
    )
    figure.add_trace(
        go.Bar(x=months, y=[r["active_customers"] for r in rows], name="active customers"), 2, 1
    )
    figure.add_trace(
        go.Bar(x=months, y=[r["new_customers"] for r in rows], name="new customers"), 2, 1
    )
    figure.add_trace(
        go.Scatter(x=months, y=[r["repurchase_rate"] for r in rows], name="repurchase rate"), 3, 1
    )
    figure.update_yaxes(tickformat=".0%", row=3, col=1)
    figure.update_layout(height=720, barmode="group", margin={"t": 40})
    return figure


def _market_figure(kpis: dict[str, Any]) -> Any:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    rows = kpis["by_market"]
    markets = [row["market"] for row in rows]
    figure = make_subplots(
        rows=1, cols=3, subplot_titles=("Net revenue", "Customers", "Repurchase rate (period)")
    )
    figure.add_trace(go.Bar(x=markets, y=[float(r["net"]) for r in rows], name="net"), 1, 1)
    figure.add_trace(go.Bar(x=markets, y=[r["customers"] for r in rows], name="customers"), 1, 2)
    figure.add_trace(
        go.Bar(x=markets, y=[r["repurchase_rate"] for r in rows], name="repurchase"), 1, 3
    )
    figure.update_yaxes(tickformat=".0%", row=1, col=3)
    figure.update_layout(height=380, showlegend=False, margin={"t": 40})
    return figure


def _cohort_figure(kpis: dict[str, Any]) -> Any:
    import plotly.graph_objects as go

    cohorts = kpis["cohorts"]
    width = max((len(row["retention"]) for row in cohorts), default=1)
    values = [
        [*row["retention"][1:], *([None] * (width - len(row["retention"])))] for row in cohorts
    ]
    labels = [f"{row['cohort']} ({row['customers']:,})" for row in cohorts]
    figure = go.Figure(
        go.Heatmap(
            z=values,
            x=[f"+{k}" for k in range(1, width)],
            y=labels,
            colorscale="Blues",
            zmin=0,
            texttemplate="%{z:.0%}",
            hovertemplate="cohort %{y}, month %{x}: %{z:.1%}<extra></extra>",
        )
    )
    figure.update_layout(
        height=max(300, 28 * len(labels) + 120),
        yaxis={"autorange": "reversed"},
        xaxis_title="months after the first purchase",
        margin={"t": 20},
    )
    return figure


def _rfm_figure(distribution: dict[str, Any]) -> Any:
    import plotly.graph_objects as go

    counts: dict[tuple[int, int], int] = {}
    for cell in distribution["cells"]:
        if cell["recency"] is None:
            continue
        for row, (low, high, _) in enumerate(FM_BANDS):
            if low <= cell["fm_total"] <= high:
                key = (row, int(cell["recency"]))
                counts[key] = counts.get(key, 0) + int(cell["customers"])
    z, text = [], []
    for row, (low, high, _) in enumerate(FM_BANDS):
        names = SEGMENT_GRID[(low, high)]
        z.append([counts.get((row, recency), 0) for recency in range(1, 6)])
        text.append(
            [
                f"{names[recency - 1]}<br>{counts.get((row, recency), 0):,}"
                for recency in range(1, 6)
            ]
        )
    figure = go.Figure(
        go.Heatmap(
            z=z,
            x=[f"R {score}" for score in range(1, 6)],
            y=[f"F/M {label}" for _, _, label in FM_BANDS],
            text=text,
            texttemplate="%{text}",
            colorscale="YlGn",
            hovertemplate="%{text}<extra></extra>",
        )
    )
    figure.update_layout(
        height=420,
        margin={"t": 20},
        xaxis_title="recency score (5 = recent)",
        yaxis={"autorange": "reversed"},
    )
    return figure


def _funnel_figure(kpis: dict[str, Any], distribution: dict[str, Any]) -> Any:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    figure = make_subplots(
        rows=1, cols=2, specs=[[{"type": "funnel"}, {"type": "funnel"}]],
        subplot_titles=("Customers by lifecycle stage", "Purchase funnel (people, from events)"),
    )  # fmt: skip
    stages = distribution["stages"]
    figure.add_trace(
        go.Funnel(
            y=[stage.replace("_", " ") for stage in LIFECYCLE_ORDER],
            x=[stages.get(stage, 0) for stage in LIFECYCLE_ORDER],
            name="lifecycle",
        ),
        1,
        1,
    )
    figure.add_trace(
        go.Funnel(
            y=[step["step"] for step in kpis["funnel"]],
            x=[step["people"] for step in kpis["funnel"]],
            name="purchase funnel",
            textinfo="value+percent initial",
        ),
        1,
        2,
    )
    figure.update_layout(height=420, showlegend=False, margin={"t": 40})
    return figure


def _model_figure(models: dict[str, Any]) -> Any:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    if models["clv"] is None:  # no spend model: churn risk alone
        figure = make_subplots(rows=1, cols=1, subplot_titles=("Churn risk (1 - P(alive))",))
        figure.add_trace(go.Histogram(x=models["churn_risk"], nbinsx=20, name="churn risk"))
        figure.update_layout(height=380, showlegend=False, margin={"t": 40})
        return figure
    figure = make_subplots(
        rows=1, cols=2, subplot_titles=("12-month CLV", "Churn risk (1 - P(alive))")
    )
    figure.add_trace(go.Histogram(x=models["clv"], nbinsx=40, name="CLV"), 1, 1)
    figure.add_trace(go.Histogram(x=models["churn_risk"], nbinsx=20, name="churn risk"), 1, 2)
    figure.update_layout(height=380, showlegend=False, margin={"t": 40})
    return figure


def _calibration_figure(models: dict[str, Any]) -> Any:
    import plotly.graph_objects as go

    groups = models["calibration"]
    labels = [group["frequency"] for group in groups]
    figure = go.Figure(
        [
            go.Scatter(x=labels, y=[g["predicted"] for g in groups], name="predicted"),
            go.Scatter(x=labels, y=[g["actual"] for g in groups], name="actual"),
        ]
    )
    figure.update_layout(
        height=380,
        xaxis_title="repeat purchases in the calibration period",
        yaxis_title="purchases per customer in the holdout",
        margin={"t": 20},
    )
    return figure


def _parameters(values: dict[str, float]) -> str:
    return ", ".join(f"{name} = {value:.4g}" for name, value in values.items())


def _amount(value: str) -> str:
    whole, _, fraction = value.partition(".")
    return f"{int(whole):,}" + (f".{fraction}" if fraction else "")


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"
