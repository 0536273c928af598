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


class ActionIn(BaseModel):
    """A bonus action the member did: `signup`, `review` with its `variant`, `birthday` …"""

    model_config = ConfigDict(extra="forbid")

    action: str = Field(min_length=1, max_length=64)
    variant: str | None = Field(None, max_length=64)
    reason: str | None = Field(None, max_length=500)


class ProgramOut(BaseModel):
    """A version of the store's program."""

    version: int
    source: str | None = None
    created_at: datetime | None = None
    program: dict[str, Any]


class ProgramVersionOut(BaseModel):
    """One stored version of the program (without its document)."""

    version: int
    source: str
    created_at: datetime
    in_force: bool


class ProgramVersionsOut(BaseModel):
    """Every version of the store's program, newest first."""

    versions: list[ProgramVersionOut]


class RewardOut(BaseModel):
    """A catalog reward and what it costs."""

    code: str
    name: str
    kind: str
    cost_points: int
    value: Decimal | None
    currency: str | None
    valid_days: int


class PointsForCashOut(BaseModel):
    """The points + cash rule: what points are worth and how much of an order they may pay."""

    enabled: bool
    points_per_unit: int
    max_share: Decimal
    min_points: int
    valid_days: int
    currency: str
    text: str


class CatalogOut(BaseModel):
    """The rewards catalog of the program in force."""

    program_version: int
    rewards: list[RewardOut]
    points_for_cash: PointsForCashOut


class ReferralIn(BaseModel):
    """A friend who signed up with a member's referral code."""

    model_config = ConfigDict(extra="forbid")

    code: str = Field(min_length=1, max_length=24)
    customer_id: int = Field(gt=0, description="The friend (the referred customer).")
    source: str | None = Field(None, max_length=200, description="e.g. the sign-up IP address")
    device_id: str | None = Field(None, max_length=200)
    address: str | None = Field(None, max_length=500)


class ReferralOut(BaseModel):
    """A referral and its state."""

    referral_id: int
    referrer_customer_id: int
    referred_customer_id: int
    code: str
    status: Literal["pending", "rewarded", "blocked"]
    reason: str | None = None
    created_at: datetime
    rewarded_at: datetime | None = None
    order_id: int | None = None


class MemberReferralsOut(BaseModel):
    """A member's referral code and the referrals made with it."""

    customer_id: int
    code: str
    referrer_points: int
    counts: dict[str, int]
    referrals: list[ReferralOut]


class CouponStatusOut(BaseModel):
    """A coupon as checkout sees it: can it be used now, for how much, until when."""

    code: str
    customer_id: int
    reward: str
    kind: str
    value: Decimal | None
    currency: str | None
    issued_at: datetime
    expires_at: datetime | None
    used: bool
    used_at: datetime | None
    used_reference: str | None
    valid: bool
    reason: str | None


class CouponUseIn(BaseModel):
    """Use a coupon at checkout."""

    model_config = ConfigDict(extra="forbid")

    order_reference: str = Field(min_length=1, max_length=64)


class NoticeOut(BaseModel):
    """One notice of the outbox (expiry reminder, tier change, referral, refund review …)."""

    id: int
    customer_id: int | None
    kind: str
    payload: dict[str, Any]
    created_at: datetime
    processed_at: datetime | None


class NoticesOut(BaseModel):
    """A page of notices, oldest first; continue with `after_id`."""

    notices: list[NoticeOut]
    next_after_id: int | None


class NoticesProcessedIn(BaseModel):
    """Notices a consumer has handled."""

    model_config = ConfigDict(extra="forbid")

    ids: list[int] = Field(min_length=1, max_length=1000)


class NoticesProcessedOut(BaseModel):
    """How many notices were marked processed now (already processed ones are left alone)."""

    processed: int
