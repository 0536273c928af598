"""`patronage loyalty …`: program show/set in YAML, member, verify's exit code, the jobs."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import text
from typer.testing import CliRunner

from patronage.cli.loyalty import app as loyalty_app
from patronage.cli.main import app
from patronage.customers.schemas import CustomerIn
from patronage.customers.service import resolve_customers
from patronage.db.session import session_scope
from patronage.loyalty.program import default_program, program_from_yaml
from patronage.loyalty.schemas import PointsIn
from patronage.loyalty.service import change_points

runner = CliRunner()


def test_program_member_verify_and_jobs(cli_database: str, tmp_path: Path) -> None:
    created = json.loads(runner.invoke(app, ["stores", "create", "Tea", "--json"]).stdout)
    store = str(created["id"])

    shown = runner.invoke(loyalty_app, ["program", "show", "--store", store])
    assert shown.exit_code == 0 and "has no program yet" in shown.stdout
    assert program_from_yaml(shown.stdout) == default_program()

    program_file = tmp_path / "program.yaml"
    program_file.write_text(shown.stdout.replace("points_per_unit: 10", "points_per_unit: 20", 1))
    assert runner.invoke(loyalty_app, ["program", "set", "--store", store]).exit_code == 0
    result = runner.invoke(loyalty_app, ["program", "set", "--store", store, str(program_file)])
    assert result.exit_code == 0 and "version 2" in result.stdout
    now_in_force = runner.invoke(loyalty_app, ["program", "show", "--store", store])
    assert "points_per_unit: 20" in now_in_force.stdout
    first = runner.invoke(loyalty_app, ["program", "show", "--store", store, "--version", "1"])
    assert "points_per_unit: 10" in first.stdout

    bad = tmp_path / "bad.yaml"
    bad.write_text("tiers: []\n")
    refused = runner.invoke(loyalty_app, ["program", "set", "--store", store, str(bad)])
    assert refused.exit_code == 1 and "at least one tier" in " ".join(refused.output.split())

    with session_scope() as session:
        customer = resolve_customers(
            session, int(store), [CustomerIn(source="test", email="ana@example.com")]
        )[0].customer_id
        change_points(
            session,
            store_id=int(store),
            customer_id=customer,
            points_in=PointsIn(kind="earn", points=250, reason="hello"),
            idempotency_key="cli-1",
        )
    member = runner.invoke(loyalty_app, ["member", str(customer), "--store", store, "--json"])
    assert member.exit_code == 0, member.output
    assert json.loads(member.stdout)["available"] == 250
    shown_member = runner.invoke(loyalty_app, ["member", str(customer), "--store", store])
    assert "available 250" in shown_member.stdout

    verified = runner.invoke(loyalty_app, ["verify", "--store", store])
    assert verified.exit_code == 0 and "balance = sum of entries" in verified.stdout
    for command in ("expire", "activate", "evaluate-tiers", "sync"):
        outcome = runner.invoke(loyalty_app, [command, "--store", store])
        assert outcome.exit_code == 0, outcome.output

    with session_scope() as session:
        session.execute(text("UPDATE loyalty_members SET available_points = available_points + 1"))
    broken = runner.invoke(loyalty_app, ["verify", "--store", store, "--json"])
    assert broken.exit_code == 1
    assert not json.loads(broken.stdout)["ok"]
