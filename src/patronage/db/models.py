"""Imports every table module so that Base.metadata is complete (Alembic, tests)."""

from patronage.analytics import tables as analytics_tables
from patronage.catalog import models as catalog_models
from patronage.customers import models as customer_models
from patronage.ingest import models as ingest_models
from patronage.loyalty import models as loyalty_models
from patronage.orders import models as order_models
from patronage.stores import models as store_models
from patronage.tracking import models as tracking_models

__all__ = [
    "analytics_tables",
    "catalog_models",
    "customer_models",
    "ingest_models",
    "loyalty_models",
    "order_models",
    "store_models",
    "tracking_models",
]
