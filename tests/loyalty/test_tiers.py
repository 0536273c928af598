"""Tiers: upgrade at once, downgrade only at a review after grace, progress and standing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy.orm import Session

from patronage.kit.clock import FrozenClock
from patronage.loyalty import repository
from patronage.loyalty.program import default_program
from patronage.loyalty.schemas import PointsIn
from patronage.loyalty.service import change_points, member_summary
from patronage.loyalty.tiers import Metrics, evaluate_tiers, progress, standing_percent
from patronage.stores.models import Store
from tests.loyalty.conftest import START
from tests.loyalty.test_orders import customer_of, make_order, record


def test_progress_text_names_what_is_missing() -> None:
    program = default_program()
    text = progress(program, "bronze", Metrics(Decimal("300"), 1), "USD")
    assert text["next_tier"] == "silver"
    assert text["text"] == "Spend $200.00 more and place 1 more order to reach Silver."
    assert progress(program, "silver", Metrics(Decimal("1800"), 3), "USD")["text"] == (
        "Spend $200.00 more to reach Gold."
    )
    top = progress(program, "diamond", Metrics(Decimal("9000"), 9), "USD")
    assert top["next_tier"] is None and "highest tier" in top["text"]


def test_repurchase_rate_gates_diamond() -> None:
    assert Metrics(Decimal(6000), 1).repurchase_rate == 0
    assert Metrics(Decimal(6000), 5).repurchase_rate == Decimal("0.8")
    program = default_program()
    from patronage.loyalty.tiers import entry_rank

    assert program.tiers[entry_rank(program, Metrics(Decimal(6000), 2))].name == "silver"
    assert program.tiers[entry_rank(program, Metrics(Decimal(6000), 3))].name == "diamond"
    program.tiers[3].entry.min_orders = 1
    program.tiers[2].entry.min_orders = 1
    # One $6,000 order: a 0 % repurchase rate keeps the member out of diamond.
    assert program.tiers[entry_rank(program, Metrics(Decimal(6000), 1))].name == "gold"


def test_standing_percent() -> None:
    assert standing_percent(92, 101) == 92
    assert standing_percent(0, 1) == 100


def test_orders_upgrade_at_once_and_spending_points_never_demotes(
    session: Session, loyal_store: Store, clock: FrozenClock
) -> None:
    record(session, loyal_store, make_order("1", subtotal=Decimal(300), total=Decimal(300)))
    customer = customer_of(session, loyal_store)
    summary = member_summary(session, store_id=loyal_store.id, customer_id=customer)
    assert summary.tier.name == "bronze"
    assert summary.progress.text == "Spend $200.00 more and place 1 more order to reach Silver."
    clock.advance(timedelta(days=1))
    second = START + timedelta(days=1)
    record(
        session,
        loyal_store,
        make_order("2", subtotal=Decimal(300), total=Decimal(300), placed_at=second),
    )
    summary = member_summary(session, store_id=loyal_store.id, customer_id=customer)
    assert summary.tier.name == "silver"
    assert summary.tier.benefits["discount_percent"] == "5"
    change_points(
        session,
        store_id=loyal_store.id,
        customer_id=customer,
        points_in=PointsIn(kind="earn", points=1000, reason="x"),
        idempotency_key="e",
    )
    change_points(
        session,
        store_id=loyal_store.id,
        customer_id=customer,
        points_in=PointsIn(kind="adjust", points=-1000, reason="y"),
        idempotency_key="s",
    )
    assert member_summary(session, store_id=loyal_store.id, customer_id=customer).tier.name == (
        "silver"
    )
    notices = [n["kind"] for n in repository.notices_of(session, loyal_store.id)]
    assert "tier_upgraded" in notices


def test_downgrade_waits_for_a_review_after_the_grace_period(
    session: Session, loyal_store: Store, clock: FrozenClock
) -> None:
    for number in range(2):
        moment = START - timedelta(days=number)
        record(
            session,
            loyal_store,
            make_order(str(number), subtotal=Decimal(300), total=Decimal(300), placed_at=moment),
        )
    customer = customer_of(session, loyal_store)

    def tier() -> str:
        return member_summary(session, store_id=loyal_store.id, customer_id=customer).tier.name

    assert tier() == "silver"
    # 13 months later nothing is left in the rolling window; the review warns, grace begins.
    clock.advance(timedelta(days=395))
    changes = evaluate_tiers(session, loyal_store.id, clock.now())
    assert changes.warned and not changes.downgraded
    assert tier() == "silver"
    # Later in the same quarter: no second review, nothing changes.
    clock.advance(timedelta(days=10))
    assert not evaluate_tiers(session, loyal_store.id, clock.now()).downgraded
    assert tier() == "silver"
    # The next quarter's review, after the grace: down to bronze.
    clock.advance(timedelta(days=92))
    changes = evaluate_tiers(session, loyal_store.id, clock.now())
    assert [(old, new) for _, old, new in changes.downgraded] == [("silver", "bronze")]
    assert tier() == "bronze"
    kinds = [n["kind"] for n in repository.notices_of(session, loyal_store.id)]
    assert "tier_downgrade_warning" in kinds and "tier_downgraded" in kinds


def test_standing_among_members(session: Session, loyal_store: Store) -> None:
    for index, amount in enumerate((Decimal(50), Decimal(100), Decimal(600))):
        record(
            session,
            loyal_store,
            make_order(
                f"s{index}",
                email=f"s{index}@example.com",
                subtotal=amount,
                total=amount,
            ),
        )
    top = member_summary(
        session,
        store_id=loyal_store.id,
        customer_id=customer_of(session, loyal_store, "s2@example.com"),
    )
    middle = member_summary(
        session,
        store_id=loyal_store.id,
        customer_id=customer_of(session, loyal_store, "s1@example.com"),
    )
    assert top.standing.ahead_of_percent == 100
    assert middle.standing.ahead_of_percent == 50
    assert middle.standing.text == "You are ahead of 50% of members."


def test_heritage_members_after_five_years(
    session: Session, loyal_store: Store, clock: FrozenClock
) -> None:
    long_ago = datetime(2020, 1, 10, tzinfo=UTC)
    record(session, loyal_store, make_order("old", placed_at=long_ago, paid_at=long_ago))
    # The sync already recognised them; the evaluation finds nothing new to do.
    assert not evaluate_tiers(session, loyal_store.id, clock.now()).heritage
    kinds = [n["kind"] for n in repository.notices_of(session, loyal_store.id)]
    assert kinds.count("heritage_member") == 1
    customer = customer_of(session, loyal_store)
    assert member_summary(session, store_id=loyal_store.id, customer_id=customer).heritage
