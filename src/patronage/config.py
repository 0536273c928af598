"""Settings read from PATRONAGE_* environment variables, with defaults that need no set-up."""

from __future__ import annotations

from functools import lru_cache

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Process-wide configuration."""

    model_config = SettingsConfigDict(env_prefix="PATRONAGE_", extra="ignore")

    database_url: str = "sqlite:///patronage.db"
    secret_key: str | None = None
    secret_key_file: str = "patronage.key"
    host: str = "127.0.0.1"
    port: int = 8000
    sqlite_busy_timeout_ms: int = 30_000


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the settings of this process (read once)."""
    return Settings()
