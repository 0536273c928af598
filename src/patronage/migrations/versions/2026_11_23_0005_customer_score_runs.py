"""analytics: the inputs of each store's stored scores (for selective rescoring)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 02:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import patronage.db.types

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.JSON:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "customer_score_runs",
        sa.Column(
            "store_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
            autoincrement=False,
        ),
        sa.Column("computed_at", patronage.db.types.UTCDateTime(), nullable=False),
        sa.Column("as_of", patronage.db.types.UTCDateTime(), nullable=False),
        sa.Column("settings", _json(), nullable=False),
        sa.Column("bounds", _json(), nullable=False),
        sa.Column("categories", _json(), nullable=False),
        sa.ForeignKeyConstraint(
            ["store_id"],
            ["stores.id"],
            name=op.f("fk_customer_score_runs_store_id_stores"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("store_id", name=op.f("pk_customer_score_runs")),
    )


def downgrade() -> None:
    op.drop_table("customer_score_runs")
