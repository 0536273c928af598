"""order lines: index (store, category, order) in place of the store-only index

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 01:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_order_lines_store_category",
        "order_lines",
        ["store_id", "category", "order_id"],
        unique=False,
    )
    op.drop_index("ix_order_lines_store_id", table_name="order_lines")


def downgrade() -> None:
    op.create_index("ix_order_lines_store_id", "order_lines", ["store_id"], unique=False)
    op.drop_index("ix_order_lines_store_category", table_name="order_lines")
