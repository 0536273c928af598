"""What the membership system takes in and gives out."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class PointsIn(BaseModel):
    """Credit or adjust a member's points.

    `earn` credits `points` now (goodwill, manual); `adjust` moves them either way (a negative
    adjustment never overdraws); `action` awards a bonus action of the program (`signup`,
    `review` with `variant` text/photo/video, `birthday`, `survey`), within the program's caps.
    """

    model_config = ConfigDict(extra="forbid")

    kind: Literal["earn", "adjust", "action"]
    points: int | None = None
    reason: str | None = Field(None, max_length=500)
    action: str | None = Field(None, max_length=64)
    variant: str | None = Field(None, max_length=64)

    @model_validator(mode="after")
    def _complete(self) -> PointsIn:
        if self.kind == "action":
            if not self.action:
                raise ValueError("an action needs `action`")
            return self
        if self.points is None or self.points == 0:
            raise ValueError("give a non-zero number of `points`")
        if self.kind == "earn" and self.points < 0:
            raise ValueError("`earn` credits points; use `adjust` to take them")
        if not self.reason:
            raise ValueError(f"`{self.kind}` needs a `reason`")
        return self


class RedemptionIn(BaseModel):
    """Spend points on a catalog reward, or as part payment of an order (points + cash)."""

    model_config = ConfigDict(extra="forbid")

    reward: str | None = Field(None, max_length=64)
    order_total: Decimal | None = Field(None, gt=0, max_digits=16, decimal_places=4)
    currency: str | None = Field(None, min_length=3, max_length=3)
    points: int | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _one_kind(self) -> RedemptionIn:
        if (self.reward is None) == (self.order_total is None):
            raise ValueError("give either `reward` or `order_total` (points + cash)")
        return self


class CouponOut(BaseModel):
    """A single-use code."""

    code: str
    reward: str
    kind: str
    value: Decimal | None = None
    currency: str | None = None
    expires_at: datetime | None = None


class MutationOut(BaseModel):
    """What a ledger mutation did, and the balances after it."""

    entry_id: int | None
    customer_id: int
    kind: str
    points: int
    available: int
    pending: int
    debt: int = 0
    coupon: CouponOut | None = None
    capped: bool = False
    note: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)


class ExpiringOut(BaseModel):
    """Points that lapse at one moment."""

    points: int
    expires_at: datetime


class ProgressOut(BaseModel):
    """How far the member is from the next tier."""

    next_tier: str | None
    spend_needed: Decimal = Decimal(0)
    orders_needed: int = 0
    repurchase_rate_needed: Decimal = Decimal(0)
    percent: int = 100
    text: str


class StandingOut(BaseModel):
    """Where the member stands among all members by rolling spend."""

    ahead_of_percent: int
    text: str


class TierOut(BaseModel):
    """The member's tier and its benefits."""

    name: str
    since: datetime | None
    benefits: dict[str, Any]
    downgrade_due_at: datetime | None = None


class MemberOut(BaseModel):
    """A member's points, tier, progress and standing."""

    customer_id: int
    member_id: int | None
    enrolled: bool
    available: int
    pending: int
    debt: int
    expiring_soon: list[ExpiringOut]
    tier: TierOut
    progress: ProgressOut
    standing: StandingOut
    rolling_spend: Decimal
    rolling_orders: int
    heritage: bool
    referral_code: str | None
    program_version: int


class LedgerEntryOut(BaseModel):
    """One entry of the ledger."""

    id: int
    kind: str
    available_delta: int
    pending_delta: int
    occurred_at: datetime
    reason: str | None
    order_id: int | None
    details: dict[str, Any]


class LedgerOut(BaseModel):
    """A page of a member's ledger, newest first."""

    customer_id: int
    entries: list[LedgerEntryOut]
    next_before_id: int | None
