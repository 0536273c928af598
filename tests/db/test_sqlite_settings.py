"""Every SQLite connection is set up for a busy single-file store: WAL, foreign keys, cache."""

from __future__ import annotations

from pathlib import Path

from patronage.db.engine import SQLITE_CACHE_KIB, SQLITE_CHECKPOINT_PAGES, create_engine_for


def test_a_sqlite_connection_gets_the_store_settings(tmp_path: Path) -> None:
    engine = create_engine_for(f"sqlite:///{tmp_path / 'settings.db'}")
    try:
        with engine.connect() as connection:

            def pragma(name: str) -> object:
                return connection.exec_driver_sql(f"PRAGMA {name}").scalar()

            assert pragma("journal_mode") == "wal"
            assert pragma("foreign_keys") == 1
            assert pragma("synchronous") == 1  # NORMAL: durable at checkpoints in WAL mode
            assert pragma("cache_size") == -SQLITE_CACHE_KIB
            assert pragma("wal_autocheckpoint") == SQLITE_CHECKPOINT_PAGES
    finally:
        engine.dispose()
