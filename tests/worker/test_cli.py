"""`patronage jobs list` shows the schedule the docs describe; `patronage jobs run` runs a job
now with a summary, refuses while the job is locked, and names bad input."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from patronage.cli.main import app
from patronage.worker.jobs import ANALYTICS
from patronage.worker.queue import store_lock
from patronage.worker.tasks import get_worker

runner = CliRunner()
DOCS = Path(__file__).resolve().parents[2] / "docs" / "worker.md"
SETTINGS = ("QUEUE_URL", "QUEUE_NAME", "RESCORE_HOUR", "TIERS_HOUR", "WORKERS")


@pytest.fixture
def jobs_cli(cli_database: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The command on a fresh SQLite database, with the default settings and queue."""
    for name in SETTINGS:
        monkeypatch.delenv(f"PATRONAGE_{name}", raising=False)
    get_worker.cache_clear()
    yield cli_database
    get_worker.cache_clear()


def documented_schedule() -> list[tuple[str, str]]:
    """The (job, when) rows of the schedule table in docs/worker.md."""
    rows = re.findall(r"^\| `([a-z-]+)` \| ([^|]+) \|", DOCS.read_text(), flags=re.MULTILINE)
    return [(job, when.strip()) for job, when in rows]


def test_jobs_list_is_the_schedule_of_the_docs(jobs_cli: str) -> None:
    result = runner.invoke(app, ["jobs", "list", "--json"])
    assert result.exit_code == 0, result.output
    listed = [(row["job"], row["when"]) for row in json.loads(result.stdout)]
    assert listed == documented_schedule()
    assert listed[:4] == [
        ("activate-points", "hourly, at minute 0 (UTC)"),
        ("expire-points", "hourly, at minute 0 (UTC)"),
        ("evaluate-tiers", "daily, at 01:00 in the store's time zone"),
        ("rescore", "daily, at 03:00 in the store's time zone"),
    ]
    text = runner.invoke(app, ["jobs", "list"])
    unwrapped = text.output.replace("\n", "")  # Rich wraps the path at the terminal's width
    assert "queue: sqlite" in unwrapped and "cli-queue.db" in unwrapped


def test_the_hours_follow_the_settings(jobs_cli: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATRONAGE_RESCORE_HOUR", "22")
    rows = json.loads(runner.invoke(app, ["jobs", "list", "--json"]).stdout)
    assert {row["job"]: row["local_hour"] for row in rows}["rescore"] == 22
    monkeypatch.setenv("PATRONAGE_RESCORE_HOUR", "24")
    bad = runner.invoke(app, ["jobs", "list"])
    assert bad.exit_code == 1
    assert "PATRONAGE_RESCORE_HOUR" in bad.output


def test_jobs_run_prints_what_the_job_did(jobs_cli: str) -> None:
    created = json.loads(runner.invoke(app, ["stores", "create", "S", "--json"]).stdout)
    store = str(created["id"])
    assert runner.invoke(app, ["loyalty", "program", "set", "--store", store]).exit_code == 0
    result = runner.invoke(app, ["jobs", "run", "evaluate-tiers", "--store", store])
    assert result.exit_code == 0, result.output
    assert f"evaluate-tiers store {store}: members 0, upgraded 0" in result.output
    every = runner.invoke(app, ["jobs", "run", "rescore", "--json"])
    assert every.exit_code == 0, every.output
    [report] = json.loads(every.stdout)
    assert (report["job"], report["store_id"], report["details"]["customers"]) == (
        "rescore",
        int(store),
        0,
    )
    assert report["cpu_seconds"] >= 0


def test_jobs_run_refuses_a_locked_job_and_names_bad_input(jobs_cli: str) -> None:
    created = json.loads(runner.invoke(app, ["stores", "create", "S", "--json"]).stdout)
    store = str(created["id"])
    with store_lock(get_worker().huey, ANALYTICS, int(store), 600):
        locked = runner.invoke(app, ["jobs", "run", "rescore", "--store", store])
    assert locked.exit_code == 1
    assert f"rescore for store {store} is already running" in locked.output
    unknown = runner.invoke(app, ["jobs", "run", "nightly", "--store", store])
    assert unknown.exit_code == 1 and "no job 'nightly'; jobs: activate-points" in unknown.output
    missing = runner.invoke(app, ["jobs", "run", "rescore", "--store", "9999"])
    assert missing.exit_code == 1 and "store 9999 does not exist" in missing.output


def test_a_bad_queue_url_is_named(jobs_cli: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATRONAGE_QUEUE_URL", "amqp://127.0.0.1")
    result = runner.invoke(app, ["jobs", "run", "rescore"])
    assert result.exit_code == 1
    assert "PATRONAGE_QUEUE_URL 'amqp://127.0.0.1'" in result.output
