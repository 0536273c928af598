"""analytics: kept customer aggregates and customer scores

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 22:00:00
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

import patronage.db.types

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _customer_key(table: str) -> list[Any]:
    return [
        sa.Column(
            "customer_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
            autoincrement=False,
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f(f"fk_{table}_customer_id_customers"),
            ondelete="CASCADE",
        ),
    ]


def upgrade() -> None:
    op.create_table(
        "customer_aggregates",
        *_customer_key("customer_aggregates"),
        sa.Column("order_count", sa.Integer(), nullable=False),
        sa.Column("first_order_at", patronage.db.types.UTCDateTime(), nullable=True),
        sa.Column("last_order_at", patronage.db.types.UTCDateTime(), nullable=True),
        sa.Column("gross_revenue", patronage.db.types.ScaledDecimal(), nullable=False),
        sa.Column("net_revenue", patronage.db.types.ScaledDecimal(), nullable=False),
        sa.Column("best_contact_hour", sa.Integer(), nullable=True),
        sa.Column("refreshed_at", patronage.db.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("customer_id", name=op.f("pk_customer_aggregates")),
    )
    op.create_table(
        "customer_category_aggregates",
        *_customer_key("customer_category_aggregates"),
        sa.Column("category", sa.String(length=200), nullable=False),
        sa.Column("order_count", sa.Integer(), nullable=False),
        sa.Column("net_revenue", patronage.db.types.ScaledDecimal(), nullable=False),
        sa.PrimaryKeyConstraint(
            "customer_id", "category", name=op.f("pk_customer_category_aggregates")
        ),
    )
    op.create_table(
        "customer_scores",
        *_customer_key("customer_scores"),
        sa.Column("computed_at", patronage.db.types.UTCDateTime(), nullable=False),
        sa.Column("as_of", patronage.db.types.UTCDateTime(), nullable=False),
        sa.Column("order_count", sa.Integer(), nullable=False),
        sa.Column("first_order_at", patronage.db.types.UTCDateTime(), nullable=True),
        sa.Column("last_order_at", patronage.db.types.UTCDateTime(), nullable=True),
        sa.Column("recency_days", sa.Integer(), nullable=True),
        sa.Column("gross_revenue", patronage.db.types.ScaledDecimal(), nullable=False),
        sa.Column("net_revenue", patronage.db.types.ScaledDecimal(), nullable=False),
        sa.Column("average_order_value", patronage.db.types.ScaledDecimal(), nullable=True),
        sa.Column("recency_score", sa.Integer(), nullable=True),
        sa.Column("frequency_score", sa.Integer(), nullable=True),
        sa.Column("monetary_score", sa.Integer(), nullable=True),
        sa.Column("rfm_segment", sa.String(length=32), nullable=True),
        sa.Column("lifecycle_stage", sa.String(length=16), nullable=False),
        sa.Column("average_repurchase_interval_days", sa.Float(), nullable=True),
        sa.Column("expected_next_order_date", sa.Date(), nullable=True),
        sa.Column("orders_per_year", sa.Float(), nullable=True),
        sa.Column("is_vip", sa.Boolean(), nullable=False),
        sa.Column("preferred_category_1", sa.String(length=200), nullable=True),
        sa.Column("preferred_category_2", sa.String(length=200), nullable=True),
        sa.Column("preferred_category_3", sa.String(length=200), nullable=True),
        sa.Column("best_contact_hour", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("customer_id", name=op.f("pk_customer_scores")),
    )


def downgrade() -> None:
    op.drop_table("customer_scores")
    op.drop_table("customer_category_aggregates")
    op.drop_table("customer_aggregates")
