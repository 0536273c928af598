"""The worker's settings, read from PATRONAGE_* environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url

from patronage.errors import ValidationFailedError


class WorkerSettings(BaseSettings):
    """Where the queue lives, when the daily jobs run, how locks and retries behave."""

    model_config = SettingsConfigDict(env_prefix="PATRONAGE_", extra="ignore")

    database_url: str = "sqlite:///patronage.db"
    queue_url: str | None = None
    queue_name: str = "patronage"
    workers: int = Field(2, ge=1)
    rescore_hour: int = Field(3, ge=0, le=23)
    tiers_hour: int = Field(1, ge=0, le=23)
    lock_ttl_seconds: int = Field(6 * 3600, ge=60)
    rescore_delay_seconds: int = Field(60, ge=0)
    rescore_after_orders: bool = True
    result_ttl_seconds: int = Field(86_400, ge=60)

    def resolved_queue_url(self) -> str:
        """The queue URL: PATRONAGE_QUEUE_URL, else a SQLite file beside the SQLite database."""
        if self.queue_url:
            return self.queue_url
        return f"sqlite:///{default_queue_path(self.database_url)}"


def default_queue_path(database_url: str) -> Path:
    """`<database>-queue.db` beside a SQLite database file, else `patronage-queue.db` here."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        database = Path(url.database)
        return database.with_name(f"{database.stem}-queue.db")
    return Path("patronage-queue.db")


def load_settings() -> WorkerSettings:
    """Read the settings from the environment; a bad value names its variable."""
    try:
        return WorkerSettings()
    except ValidationError as error:
        problems = "; ".join(
            f"PATRONAGE_{str(problem['loc'][0]).upper()}: {problem['msg']}"
            for problem in error.errors()
        )
        raise ValidationFailedError(f"bad worker settings: {problems}") from error
