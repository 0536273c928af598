"""Database engine, sessions, the declarative base and column types."""

from patronage.db.base import Base
from patronage.db.engine import create_engine_for, get_engine, reset_engine
from patronage.db.session import session_scope

__all__ = ["Base", "create_engine_for", "get_engine", "reset_engine", "session_scope"]
