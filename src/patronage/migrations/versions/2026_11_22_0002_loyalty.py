"""loyalty

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 21:39:05.256329
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import patronage.db.types

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "loyalty_idempotency_keys",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column(
            "response",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", patronage.db.types.UTCDateTime(), nullable=False),
        sa.Column("store_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["store_id"],
            ["stores.id"],
            name=op.f("fk_loyalty_idempotency_keys_store_id_stores"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_loyalty_idempotency_keys")),
        sa.UniqueConstraint(
            "store_id", "key", name=op.f("uq_loyalty_idempotency_keys_store_id_key")
        ),
    )
    with op.batch_alter_table("loyalty_idempotency_keys", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_loyalty_idempotency_keys_store_id"), ["store_id"], unique=False
        )

    op.create_table(
        "loyalty_programs",
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column(
            "document",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("created_at", patronage.db.types.UTCDateTime(), nullable=False),
        sa.Column("store_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["store_id"],
            ["stores.id"],
            name=op.f("fk_loyalty_programs_store_id_stores"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_loyalty_programs")),
        sa.UniqueConstraint(
            "store_id", "version", name=op.f("uq_loyalty_programs_store_id_version")
        ),
    )
    with op.batch_alter_table("loyalty_programs", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_loyalty_programs_store_id"), ["store_id"], unique=False
        )

    op.create_table(
        "loyalty_members",
        sa.Column(
            "customer_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("available_points", sa.BigInteger(), nullable=False),
        sa.Column("pending_points", sa.BigInteger(), nullable=False),
        sa.Column("debt_points", sa.BigInteger(), nullable=False),
        sa.Column("tier", sa.String(length=32), nullable=False),
        sa.Column("tier_since_at", patronage.db.types.UTCDateTime(), nullable=False),
        sa.Column("tier_reviewed_at", patronage.db.types.UTCDateTime(), nullable=True),
        sa.Column("downgrade_due_at", patronage.db.types.UTCDateTime(), nullable=True),
        sa.Column("rolling_spend", patronage.db.types.ScaledDecimal(), nullable=False),
        sa.Column("rolling_orders", sa.Integer(), nullable=False),
        sa.Column("heritage_since_at", patronage.db.types.UTCDateTime(), nullable=True),
        sa.Column("referral_code", sa.String(length=24), nullable=True),
        sa.Column("enrolled_at", patronage.db.types.UTCDateTime(), nullable=False),
        sa.Column("updated_at", patronage.db.types.UTCDateTime(), nullable=False),
        sa.Column("store_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_loyalty_members_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["store_id"],
            ["stores.id"],
            name=op.f("fk_loyalty_members_store_id_stores"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_loyalty_members")),
        sa.UniqueConstraint(
            "store_id", "customer_id", name=op.f("uq_loyalty_members_store_id_customer_id")
        ),
        sa.UniqueConstraint(
            "store_id", "referral_code", name=op.f("uq_loyalty_members_store_id_referral_code")
        ),
    )
    with op.batch_alter_table("loyalty_members", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_loyalty_members_store_id"), ["store_id"], unique=False)
        batch_op.create_index(
            "ix_loyalty_members_store_spend", ["store_id", "rolling_spend"], unique=False
        )

    op.create_table(
        "loyalty_entries",
        sa.Column(
            "member_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("available_delta", sa.BigInteger(), nullable=False),
        sa.Column("pending_delta", sa.BigInteger(), nullable=False),
        sa.Column("occurred_at", patronage.db.types.UTCDateTime(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=240), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("order_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column(
            "reverses_entry_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("program_version", sa.Integer(), nullable=True),
        sa.Column(
            "details",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("store_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["member_id"],
            ["loyalty_members.id"],
            name=op.f("fk_loyalty_entries_member_id_loyalty_members"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["store_id"],
            ["stores.id"],
            name=op.f("fk_loyalty_entries_store_id_stores"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_loyalty_entries")),
        sa.UniqueConstraint(
            "store_id", "idempotency_key", name=op.f("uq_loyalty_entries_store_id_idempotency_key")
        ),
    )
    with op.batch_alter_table("loyalty_entries", schema=None) as batch_op:
        batch_op.create_index("ix_loyalty_entries_member", ["member_id", "id"], unique=False)
        batch_op.create_index("ix_loyalty_entries_order", ["store_id", "order_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_loyalty_entries_store_id"), ["store_id"], unique=False)

    op.create_table(
        "loyalty_notices",
        sa.Column(
            "member_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("dedupe_key", sa.String(length=240), nullable=False),
        sa.Column(
            "payload",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", patronage.db.types.UTCDateTime(), nullable=False),
        sa.Column("processed_at", patronage.db.types.UTCDateTime(), nullable=True),
        sa.Column("store_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["member_id"],
            ["loyalty_members.id"],
            name=op.f("fk_loyalty_notices_member_id_loyalty_members"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["store_id"],
            ["stores.id"],
            name=op.f("fk_loyalty_notices_store_id_stores"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_loyalty_notices")),
        sa.UniqueConstraint(
            "store_id", "dedupe_key", name=op.f("uq_loyalty_notices_store_id_dedupe_key")
        ),
    )
    with op.batch_alter_table("loyalty_notices", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_loyalty_notices_member_id"), ["member_id"], unique=False
        )
        batch_op.create_index(
            "ix_loyalty_notices_pending", ["store_id", "processed_at", "id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_loyalty_notices_store_id"), ["store_id"], unique=False)

    op.create_table(
        "loyalty_orders",
        sa.Column("order_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "member_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("placed_at", patronage.db.types.UTCDateTime(), nullable=False),
        sa.Column("earned_points", sa.BigInteger(), nullable=False),
        sa.Column("reversed_points", sa.BigInteger(), nullable=False),
        sa.Column("cancelled", sa.Boolean(), nullable=False),
        sa.Column("updated_at", patronage.db.types.UTCDateTime(), nullable=False),
        sa.Column("store_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["member_id"],
            ["loyalty_members.id"],
            name=op.f("fk_loyalty_orders_member_id_loyalty_members"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["orders.id"],
            name=op.f("fk_loyalty_orders_order_id_orders"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["store_id"],
            ["stores.id"],
            name=op.f("fk_loyalty_orders_store_id_stores"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_loyalty_orders")),
        sa.UniqueConstraint(
            "store_id", "order_id", name=op.f("uq_loyalty_orders_store_id_order_id")
        ),
    )
    with op.batch_alter_table("loyalty_orders", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_loyalty_orders_member_id"), ["member_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_loyalty_orders_store_id"), ["store_id"], unique=False)

    op.create_table(
        "loyalty_referrals",
        sa.Column(
            "referrer_member_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
        ),
        sa.Column(
            "referred_customer_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
        ),
        sa.Column("code", sa.String(length=24), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("source", sa.String(length=200), nullable=True),
        sa.Column("device_id", sa.String(length=200), nullable=True),
        sa.Column("created_at", patronage.db.types.UTCDateTime(), nullable=False),
        sa.Column("rewarded_at", patronage.db.types.UTCDateTime(), nullable=True),
        sa.Column("order_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("store_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["referred_customer_id"],
            ["customers.id"],
            name=op.f("fk_loyalty_referrals_referred_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["referrer_member_id"],
            ["loyalty_members.id"],
            name=op.f("fk_loyalty_referrals_referrer_member_id_loyalty_members"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["store_id"],
            ["stores.id"],
            name=op.f("fk_loyalty_referrals_store_id_stores"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_loyalty_referrals")),
        sa.UniqueConstraint(
            "store_id",
            "referred_customer_id",
            name=op.f("uq_loyalty_referrals_store_id_referred_customer_id"),
        ),
    )
    with op.batch_alter_table("loyalty_referrals", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_loyalty_referrals_referrer_member_id"),
            ["referrer_member_id"],
            unique=False,
        )
        batch_op.create_index(
            "ix_loyalty_referrals_source", ["store_id", "source", "created_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_loyalty_referrals_store_id"), ["store_id"], unique=False
        )

    op.create_table(
        "loyalty_coupons",
        sa.Column(
            "member_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("entry_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("reward", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("value", patronage.db.types.ScaledDecimal(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("issued_at", patronage.db.types.UTCDateTime(), nullable=False),
        sa.Column("expires_at", patronage.db.types.UTCDateTime(), nullable=True),
        sa.Column("used_at", patronage.db.types.UTCDateTime(), nullable=True),
        sa.Column("used_reference", sa.String(length=64), nullable=True),
        sa.Column("store_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["entry_id"],
            ["loyalty_entries.id"],
            name=op.f("fk_loyalty_coupons_entry_id_loyalty_entries"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["member_id"],
            ["loyalty_members.id"],
            name=op.f("fk_loyalty_coupons_member_id_loyalty_members"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["store_id"],
            ["stores.id"],
            name=op.f("fk_loyalty_coupons_store_id_stores"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_loyalty_coupons")),
        sa.UniqueConstraint("store_id", "code", name=op.f("uq_loyalty_coupons_store_id_code")),
    )
    with op.batch_alter_table("loyalty_coupons", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_loyalty_coupons_member_id"), ["member_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_loyalty_coupons_store_id"), ["store_id"], unique=False)

    op.create_table(
        "loyalty_lots",
        sa.Column(
            "member_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("entry_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("order_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("remaining", sa.BigInteger(), nullable=False),
        sa.Column("created_at", patronage.db.types.UTCDateTime(), nullable=False),
        sa.Column("activates_at", patronage.db.types.UTCDateTime(), nullable=True),
        sa.Column("activated_at", patronage.db.types.UTCDateTime(), nullable=True),
        sa.Column("expires_at", patronage.db.types.UTCDateTime(), nullable=True),
        sa.Column("store_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["entry_id"],
            ["loyalty_entries.id"],
            name=op.f("fk_loyalty_lots_entry_id_loyalty_entries"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["member_id"],
            ["loyalty_members.id"],
            name=op.f("fk_loyalty_lots_member_id_loyalty_members"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["store_id"],
            ["stores.id"],
            name=op.f("fk_loyalty_lots_store_id_stores"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_loyalty_lots")),
        sa.UniqueConstraint("entry_id", name=op.f("uq_loyalty_lots_entry_id")),
    )
    with op.batch_alter_table("loyalty_lots", schema=None) as batch_op:
        batch_op.create_index("ix_loyalty_lots_member", ["member_id", "expires_at"], unique=False)
        batch_op.create_index("ix_loyalty_lots_order", ["store_id", "order_id"], unique=False)
        batch_op.create_index(
            "ix_loyalty_lots_store_activation", ["store_id", "activates_at"], unique=False
        )
        batch_op.create_index(
            "ix_loyalty_lots_store_expiry", ["store_id", "expires_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_loyalty_lots_store_id"), ["store_id"], unique=False)

    op.create_table(
        "loyalty_consumptions",
        sa.Column(
            "member_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("entry_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("lot_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("consumed_at", patronage.db.types.UTCDateTime(), nullable=False),
        sa.Column("store_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["entry_id"],
            ["loyalty_entries.id"],
            name=op.f("fk_loyalty_consumptions_entry_id_loyalty_entries"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["lot_id"],
            ["loyalty_lots.id"],
            name=op.f("fk_loyalty_consumptions_lot_id_loyalty_lots"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["member_id"],
            ["loyalty_members.id"],
            name=op.f("fk_loyalty_consumptions_member_id_loyalty_members"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["store_id"],
            ["stores.id"],
            name=op.f("fk_loyalty_consumptions_store_id_stores"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_loyalty_consumptions")),
    )
    with op.batch_alter_table("loyalty_consumptions", schema=None) as batch_op:
        batch_op.create_index("ix_loyalty_consumptions_entry", ["entry_id"], unique=False)
        batch_op.create_index("ix_loyalty_consumptions_lot", ["lot_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_loyalty_consumptions_store_id"), ["store_id"], unique=False
        )


def downgrade() -> None:

    with op.batch_alter_table("loyalty_consumptions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_loyalty_consumptions_store_id"))
        batch_op.drop_index("ix_loyalty_consumptions_lot")
        batch_op.drop_index("ix_loyalty_consumptions_entry")

    op.drop_table("loyalty_consumptions")
    with op.batch_alter_table("loyalty_lots", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_loyalty_lots_store_id"))
        batch_op.drop_index("ix_loyalty_lots_store_expiry")
        batch_op.drop_index("ix_loyalty_lots_store_activation")
        batch_op.drop_index("ix_loyalty_lots_order")
        batch_op.drop_index("ix_loyalty_lots_member")

    op.drop_table("loyalty_lots")
    with op.batch_alter_table("loyalty_coupons", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_loyalty_coupons_store_id"))
        batch_op.drop_index(batch_op.f("ix_loyalty_coupons_member_id"))

    op.drop_table("loyalty_coupons")
    with op.batch_alter_table("loyalty_referrals", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_loyalty_referrals_store_id"))
        batch_op.drop_index("ix_loyalty_referrals_source")
        batch_op.drop_index(batch_op.f("ix_loyalty_referrals_referrer_member_id"))

    op.drop_table("loyalty_referrals")
    with op.batch_alter_table("loyalty_orders", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_loyalty_orders_store_id"))
        batch_op.drop_index(batch_op.f("ix_loyalty_orders_member_id"))

    op.drop_table("loyalty_orders")
    with op.batch_alter_table("loyalty_notices", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_loyalty_notices_store_id"))
        batch_op.drop_index("ix_loyalty_notices_pending")
        batch_op.drop_index(batch_op.f("ix_loyalty_notices_member_id"))

    op.drop_table("loyalty_notices")
    with op.batch_alter_table("loyalty_entries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_loyalty_entries_store_id"))
        batch_op.drop_index("ix_loyalty_entries_order")
        batch_op.drop_index("ix_loyalty_entries_member")

    op.drop_table("loyalty_entries")
    with op.batch_alter_table("loyalty_members", schema=None) as batch_op:
        batch_op.drop_index("ix_loyalty_members_store_spend")
        batch_op.drop_index(batch_op.f("ix_loyalty_members_store_id"))

    op.drop_table("loyalty_members")
    with op.batch_alter_table("loyalty_programs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_loyalty_programs_store_id"))

    op.drop_table("loyalty_programs")
    with op.batch_alter_table("loyalty_idempotency_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_loyalty_idempotency_keys_store_id"))

    op.drop_table("loyalty_idempotency_keys")
