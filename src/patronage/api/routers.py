"""Every domain's router, mounted in one place."""

from __future__ import annotations

from fastapi import FastAPI


def include_routers(app: FastAPI) -> None:
    """Mount the domain routers on the app."""
    from patronage.customers.routes import router as customers_router

    app.include_router(customers_router)

    from patronage.ingest.routes import router as webhooks_router

    app.include_router(webhooks_router)

    from patronage.tracking.routes import router as tracking_router

    app.include_router(tracking_router)

    from patronage.loyalty.routes import router as members_router

    app.include_router(members_router)

    from patronage.loyalty.store_routes import coupons_router, program_router, referrals_router

    app.include_router(program_router)
    app.include_router(referrals_router)
    app.include_router(coupons_router)

    from patronage.analytics.routes import router as analytics_router

    app.include_router(analytics_router)
