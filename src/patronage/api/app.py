"""The FastAPI application factory."""

from __future__ import annotations

from fastapi import FastAPI
from sqlalchemy import Engine

from patronage import __version__
from patronage.api.deps import KeyCache
from patronage.api.problems import install_problem_handlers
from patronage.db.engine import get_engine
from patronage.db.session import session_factory


def create_app(engine: Engine | None = None) -> FastAPI:
    """Build the API bound to `engine` (default: PATRONAGE_DATABASE_URL)."""
    app = FastAPI(
        title="Patronage",
        version=__version__,
        description="Service marketing and loyalty for cross-border e-commerce stores.",
    )
    app.state.engine = engine or get_engine()
    app.state.session_factory = session_factory(app.state.engine)
    app.state.key_cache = KeyCache()
    install_problem_handlers(app)

    from patronage.api.routers import include_routers

    include_routers(app)

    @app.get("/health", tags=["meta"])
    def health() -> dict[str, str]:
        """Liveness check."""
        return {"status": "ok", "version": __version__}

    return app
