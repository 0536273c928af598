"""Tables of the membership system.

The ledger is `loyalty_entries` (append-only), `loyalty_lots` (one per credit, with what is left
of it) and `loyalty_consumptions` (which debit took how much of which lot). `loyalty_members`
holds the derived balances, updated in the same transaction as the entries while the member row
is locked; `verify` proves they agree.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from patronage.db.base import Base
from patronage.db.mixins import IdType, StoreOwnedMixin
from patronage.db.types import JSONDocument, Money, UTCDateTime

# Entry kinds that take points out of lots (their consumptions must account for them).
DEBIT_KINDS = ("redeem", "expire", "reverse", "cancel", "adjust_debit", "transfer_out")
CREDIT_KINDS = ("earn", "bonus", "task", "referral", "adjust_credit", "transfer_in")
TRANSFER_KINDS = ("activate",)


class LoyaltyProgram(StoreOwnedMixin, Base):
    """One version of a store's program; the highest version is in force."""

    __tablename__ = "loyalty_programs"
    __table_args__ = (UniqueConstraint("store_id", "version"),)

    version: Mapped[int] = mapped_column(Integer)
    document: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    source: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class LoyaltyMember(StoreOwnedMixin, Base):
    """A customer's membership: derived balances (kept with the ledger), tier and standing."""

    __tablename__ = "loyalty_members"
    __table_args__ = (
        UniqueConstraint("store_id", "customer_id"),
        UniqueConstraint("store_id", "referral_code"),
        Index("ix_loyalty_members_store_spend", "store_id", "rolling_spend"),
    )

    customer_id: Mapped[int] = mapped_column(IdType, ForeignKey("customers.id", ondelete="CASCADE"))
    available_points: Mapped[int] = mapped_column(BigInteger, default=0)
    pending_points: Mapped[int] = mapped_column(BigInteger, default=0)
    debt_points: Mapped[int] = mapped_column(BigInteger, default=0)
    tier: Mapped[str] = mapped_column(String(32))
    tier_since_at: Mapped[datetime] = mapped_column(UTCDateTime())
    tier_reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    downgrade_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    rolling_spend: Mapped[Decimal] = mapped_column(Money(), default=Decimal(0))
    rolling_orders: Mapped[int] = mapped_column(Integer, default=0)
    heritage_since_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    referral_code: Mapped[str | None] = mapped_column(String(24), nullable=True)
    enrolled_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class LedgerEntry(StoreOwnedMixin, Base):
    """One append-only change of a member's points, in the available and pending buckets."""

    __tablename__ = "loyalty_entries"
    __table_args__ = (
        UniqueConstraint("store_id", "idempotency_key"),
        Index("ix_loyalty_entries_member", "member_id", "id"),
        Index("ix_loyalty_entries_order", "store_id", "order_id"),
    )

    member_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("loyalty_members.id", ondelete="CASCADE")
    )
    kind: Mapped[str] = mapped_column(String(16))
    available_delta: Mapped[int] = mapped_column(BigInteger)
    pending_delta: Mapped[int] = mapped_column(BigInteger)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())
    idempotency_key: Mapped[str] = mapped_column(String(240))
    reason: Mapped[str | None] = mapped_column(String(500), nullable=True)
    order_id: Mapped[int | None] = mapped_column(IdType, nullable=True)
    reverses_entry_id: Mapped[int | None] = mapped_column(IdType, nullable=True)
    program_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    details: Mapped[dict[str, Any]] = mapped_column(JSONDocument, default=dict)


class PointLot(StoreOwnedMixin, Base):
    """The points one credit added: what is left, when they become spendable, when they lapse."""

    __tablename__ = "loyalty_lots"
    __table_args__ = (
        UniqueConstraint("entry_id"),
        Index("ix_loyalty_lots_member", "member_id", "expires_at"),
        Index("ix_loyalty_lots_store_activation", "store_id", "activates_at"),
        Index("ix_loyalty_lots_store_expiry", "store_id", "expires_at"),
        Index("ix_loyalty_lots_order", "store_id", "order_id"),
    )

    member_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("loyalty_members.id", ondelete="CASCADE")
    )
    entry_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("loyalty_entries.id", ondelete="CASCADE")
    )
    source: Mapped[str] = mapped_column(String(16))
    order_id: Mapped[int | None] = mapped_column(IdType, nullable=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    remaining: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    activates_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    activated_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class LotConsumption(StoreOwnedMixin, Base):
    """How many points a debit entry took from one lot (soonest-expiring lots first)."""

    __tablename__ = "loyalty_consumptions"
    __table_args__ = (
        Index("ix_loyalty_consumptions_lot", "lot_id"),
        Index("ix_loyalty_consumptions_entry", "entry_id"),
    )

    member_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("loyalty_members.id", ondelete="CASCADE")
    )
    entry_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("loyalty_entries.id", ondelete="CASCADE")
    )
    lot_id: Mapped[int] = mapped_column(IdType, ForeignKey("loyalty_lots.id", ondelete="CASCADE"))
    amount: Mapped[int] = mapped_column(BigInteger)
    consumed_at: Mapped[datetime] = mapped_column(UTCDateTime())


class IdempotencyRecord(StoreOwnedMixin, Base):
    """A mutation already performed: the hash of its request and the result it returned."""

    __tablename__ = "loyalty_idempotency_keys"
    __table_args__ = (UniqueConstraint("store_id", "key"),)

    key: Mapped[str] = mapped_column(String(200))
    request_hash: Mapped[str] = mapped_column(String(64))
    response: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class LoyaltyOrder(StoreOwnedMixin, Base):
    """What the ledger has done for one order: points earned, reversed, cancelled."""

    __tablename__ = "loyalty_orders"
    __table_args__ = (UniqueConstraint("store_id", "order_id"),)

    order_id: Mapped[int] = mapped_column(IdType, ForeignKey("orders.id", ondelete="CASCADE"))
    member_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("loyalty_members.id", ondelete="CASCADE"), index=True
    )
    placed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    earned_points: Mapped[int] = mapped_column(BigInteger)
    reversed_points: Mapped[int] = mapped_column(BigInteger, default=0)
    cancelled: Mapped[bool] = mapped_column(default=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Coupon(StoreOwnedMixin, Base):
    """A unique, single-use code issued for a redemption."""

    __tablename__ = "loyalty_coupons"
    __table_args__ = (UniqueConstraint("store_id", "code"),)

    member_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("loyalty_members.id", ondelete="CASCADE"), index=True
    )
    entry_id: Mapped[int | None] = mapped_column(
        IdType, ForeignKey("loyalty_entries.id", ondelete="SET NULL"), nullable=True
    )
    code: Mapped[str] = mapped_column(String(32))
    reward: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(24))
    value: Mapped[Decimal | None] = mapped_column(Money(), nullable=True)
    currency: Mapped[str | None] = mapped_column(String(3), nullable=True)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    used_reference: Mapped[str | None] = mapped_column(String(64), nullable=True)


class Referral(StoreOwnedMixin, Base):
    """A friend who came with a member's code: pending, rewarded or blocked (with the reason)."""

    __tablename__ = "loyalty_referrals"
    __table_args__ = (
        UniqueConstraint("store_id", "referred_customer_id"),
        Index("ix_loyalty_referrals_source", "store_id", "source", "created_at"),
    )

    referrer_member_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("loyalty_members.id", ondelete="CASCADE"), index=True
    )
    referred_customer_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("customers.id", ondelete="CASCADE")
    )
    code: Mapped[str] = mapped_column(String(24))
    status: Mapped[str] = mapped_column(String(16))  # pending | rewarded | blocked
    reason: Mapped[str | None] = mapped_column(String(500), nullable=True)
    source: Mapped[str | None] = mapped_column(String(200), nullable=True)
    device_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    rewarded_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    order_id: Mapped[int | None] = mapped_column(IdType, nullable=True)


class LoyaltyNotice(StoreOwnedMixin, Base):
    """Outbox of things to tell members or operators (expiry reminders, tier changes, reviews).

    Written in the same transaction as the change that caused it; flows and messaging read it
    after commit. `dedupe_key` makes each notice happen once.
    """

    __tablename__ = "loyalty_notices"
    __table_args__ = (
        UniqueConstraint("store_id", "dedupe_key"),
        Index("ix_loyalty_notices_pending", "store_id", "processed_at", "id"),
    )

    member_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("loyalty_members.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(40))
    dedupe_key: Mapped[str] = mapped_column(String(240))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONDocument, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
