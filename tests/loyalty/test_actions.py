"""Bonus actions: points by variant, once-per periods, daily and monthly caps."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.orm import Session

from patronage.errors import ConflictError, ValidationFailedError
from patronage.kit.clock import FrozenClock
from patronage.loyalty.program import Caps, Program, set_program
from patronage.loyalty.schemas import MutationOut, PointsIn
from patronage.loyalty.service import change_points
from patronage.stores.models import Store
from tests.loyalty.conftest import CustomerFactory


def _action(
    session: Session, store: Store, customer: int, key: str, action: str, variant: str | None
) -> MutationOut:
    result, _ = change_points(
        session,
        store_id=store.id,
        customer_id=customer,
        points_in=PointsIn(kind="action", action=action, variant=variant),
        idempotency_key=key,
    )
    return result


def test_caps_cut_bonuses_per_day_and_month(
    session: Session,
    loyal_store: Store,
    program: Program,
    make_customer: CustomerFactory,
    clock: FrozenClock,
) -> None:
    program.caps = Caps(daily=250, monthly=400)
    set_program(session, loyal_store.id, program, source="test")
    customer = make_customer()
    video = _action(session, loyal_store, customer, "r1", "review", "video")
    assert (video.points, video.capped) == (200, False)
    photo = _action(session, loyal_store, customer, "r2", "review", "photo")
    assert (photo.points, photo.capped, photo.available) == (50, True, 250)
    assert photo.note == "capped from 100 by the program's limits"
    nothing = _action(session, loyal_store, customer, "r3", "review", "text")
    assert (nothing.points, nothing.capped, nothing.entry_id) == (0, True, None)
    clock.advance(timedelta(days=1))
    next_day = _action(session, loyal_store, customer, "r4", "review", "video")
    assert next_day.points == 150  # the month's 400 is reached
    with pytest.raises(ValidationFailedError, match="unknown variant"):
        _action(session, loyal_store, customer, "r5", "review", "hologram")


def test_once_per_actions(
    session: Session, loyal_store: Store, make_customer: CustomerFactory, clock: FrozenClock
) -> None:
    customer = make_customer()
    assert _action(session, loyal_store, customer, "s1", "signup", None).points == 100
    with pytest.raises(ConflictError, match="already awarded"):
        _action(session, loyal_store, customer, "s2", "signup", None)
    assert _action(session, loyal_store, customer, "b1", "birthday", None).points == 200
    with pytest.raises(ConflictError, match="for 2026"):
        _action(session, loyal_store, customer, "b2", "birthday", None)
    clock.advance(timedelta(days=366))
    assert _action(session, loyal_store, customer, "b3", "birthday", None).points == 200
