"""The HTML customer report: standalone, offline, with every section."""

from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy.orm import Session
from typer.testing import CliRunner

from patronage.analytics.report import write_customer_report
from patronage.db.session import session_scope
from patronage.kit.clock import FrozenClock
from tests.analytics.analytics_fixture import FixtureStore, build_fixture_store
from tests.analytics.test_scoring import fixture_store, frozen_clock  # noqa: F401 - fixtures

SECTIONS = (
    "Revenue, customers and repurchase rate by month",
    "By market",
    "Cohort retention",
    "RFM grid",
    "Lifecycle and purchase funnels",
)


def test_report_is_one_offline_file_with_every_section(
    session: Session,
    fixture_store: FixtureStore,  # noqa: F811
    tmp_path: Path,
) -> None:
    path = write_customer_report(
        session,
        fixture_store.store.id,
        tmp_path / "report.html",
        start=None,
        end=None,
    )
    page = path.read_text(encoding="utf-8")
    for title in SECTIONS:
        assert title in page
    assert page.count("plotly.js v") >= 1 and len(page) > 3_000_000  # the library is inlined
    assert not re.search(r"<script[^>]+src=", page)  # nothing loaded from the network
    # The default period is the 365 days up to today (2026-07-01): Vera 6,600, Ned 30, Ava 50,
    # Rita 40 + 60, Dora 200 and the guest's 25; Chad's 2025 spring purchases are before it.
    assert ">7,005.00<" in page
    # Six buyers cannot support a BG/NBD fit: the model sections say so instead of drawing.
    assert "could not be fitted" in page or "not available" in page


def test_report_command(cli_database: str, frozen_clock: FrozenClock, tmp_path: Path) -> None:  # noqa: F811
    import typer

    from patronage.cli import analyze as analytics_cli
    from patronage.db.engine import get_engine
    from patronage.db.migrate import upgrade
    from patronage.stores.service import create_store

    app = typer.Typer()
    app.command("analyze")(analytics_cli.analyze)
    app.add_typer(analytics_cli.report_app, name="report")
    upgrade(get_engine())
    with session_scope() as session:
        store = create_store(session, name="Report", base_currency="USD")
        build_fixture_store(session, store.store)
        store_id = str(store.store.id)
    target = tmp_path / "out.html"
    result = CliRunner().invoke(
        app, ["report", "customers", "--store", store_id, "--html", str(target),
              "--from", "2026-01-01", "--to", "2026-06-30", "--market", "US"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    page = target.read_text(encoding="utf-8")
    assert "market US" in page and ">6,685.00<" in page


def test_without_a_spend_model_the_report_still_shows_churn_risk_and_calibration() -> None:
    from patronage.analytics.report import _calibration_figure, _model_figure

    models = {
        "bgnbd": {"r": 0.35, "alpha": 8.4, "a": 1.4, "b": 5.9},
        "gamma_gamma": None,
        "spend_note": "the spend model (Gamma-Gamma) could not be fitted, so no CLV: p",
        "calibration_end": "2026-05-25",
        "clv": None,
        "churn_risk": [0.1, 0.5, 0.9],
        "calibration": [{"frequency": "0", "predicted": 0.2, "actual": 0.1, "customers": 3}],
        "holdout_total": {"predicted": 580.0, "actual": 496.0},
    }
    assert [trace.name for trace in _model_figure(models).data] == ["churn risk"]
    assert [trace.name for trace in _calibration_figure(models).data] == ["predicted", "actual"]
