"""All SQL of the membership system."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from sqlalchemy import (
    JSON,
    BigInteger,
    BindParameter,
    CursorResult,
    Select,
    String,
    and_,
    bindparam,
    case,
    func,
    insert,
    literal,
    literal_column,
    or_,
    select,
    true,
    type_coerce,
    update,
)
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from patronage.customers.models import Customer, CustomerIdentity
from patronage.db.base import table_of
from patronage.db.conflicts import insert_ignoring_conflicts
from patronage.db.types import Money, UTCDateTime
from patronage.loyalty.models import (
    DEBIT_KINDS,
    Coupon,
    IdempotencyRecord,
    LedgerEntry,
    LotConsumption,
    LoyaltyMember,
    LoyaltyNotice,
    LoyaltyOrder,
    LoyaltyProgram,
    PointLot,
    Referral,
)
from patronage.orders.models import Order
from patronage.stores.models import Store

programs = table_of(LoyaltyProgram)
members = table_of(LoyaltyMember)
entries = table_of(LedgerEntry)
lots = table_of(PointLot)
consumptions = table_of(LotConsumption)
idempotency = table_of(IdempotencyRecord)
order_state = table_of(LoyaltyOrder)
coupons = table_of(Coupon)
referrals = table_of(Referral)
notices = table_of(LoyaltyNotice)
orders = table_of(Order)

_CHUNK = 500


def _first_row(session: Session, statement: Any) -> dict[str, Any] | None:
    """The first row of a query as a dict (None when there is none)."""
    row = session.execute(statement).mappings().first()
    return None if row is None else dict(row)


def _rows_in_chunks(
    session: Session, values: Iterable[Any], statement_for: Callable[[Sequence[Any]], Any]
) -> list[dict[str, Any]]:
    """The rows of `statement_for(chunk)` for every chunk of the distinct `values`, as dicts."""
    found: list[dict[str, Any]] = []
    for chunk in _chunks(sorted(set(values))):
        found.extend(dict(row) for row in session.execute(statement_for(chunk)).mappings())
    return found


def _chunks(values: Sequence[Any], size: int = _CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


# ---- driver SQL for the statements of every mutation on PostgreSQL --------------------------


@dataclass(frozen=True)
class _DriverStatement:
    """A statement compiled once for psycopg, run on the session's own connection without
    SQLAlchemy's per-execution work (parameter processing, result set-up), which profiles showed
    costs more client CPU than the driver and the round trip together."""

    sql: str
    defaults: dict[str, Any]
    times: tuple[str, ...]  # UTCDateTime parameters: aware UTC in, naive UTC to the column
    documents: tuple[str, ...]  # JSONB parameters

    def parameters(self, values: dict[str, Any]) -> dict[str, Any]:
        """The driver's parameters for `values` (bound like the column types would)."""
        parameters = {**self.defaults, **values}
        for name in self.times:
            moment = parameters[name]
            if moment is not None:
                if moment.tzinfo is None:
                    raise ValueError(f"naive datetime given for {name}; use timezone-aware UTC")
                parameters[name] = moment.astimezone(UTC).replace(tzinfo=None)
        for name in self.documents:
            parameters[name] = Jsonb(parameters[name])
        return parameters


def _for_driver(statement: Any, column_keys: Sequence[str] | None = None) -> _DriverStatement:
    compiled = statement.compile(dialect=PGDialect_psycopg(), column_keys=column_keys)
    binds = compiled.binds
    return _DriverStatement(
        sql=str(compiled),
        defaults={
            name: value
            for name, value in compiled.params.items()
            if binds[name].value is not None and not binds[name].required
        },
        times=tuple(name for name, bind in binds.items() if isinstance(bind.type, UTCDateTime)),
        documents=tuple(name for name, bind in binds.items() if isinstance(bind.type, JSON)),
    )


def _driver(session: Session) -> bool:
    """Whether the session runs on PostgreSQL through psycopg (the driver SQL path)."""
    return session.get_bind().dialect.driver == "psycopg"


# Per pooled connection: (its psycopg connection, a cursor of tuples, a cursor of dicts).
_CURSORS = "patronage.loyalty.driver_cursors"


def _run(
    session: Session, statement: _DriverStatement, values: dict[str, Any], *, rows: bool = False
) -> psycopg.Cursor[Any]:
    """Run a driver statement on the session's connection, in its transaction; `rows` gives
    rows as dicts. Listeners of `before_cursor_execute` still see it, and driver errors are
    raised as SQLAlchemy's (IntegrityError for a lost unique-key race, as `run_atomically`
    expects). The cursor is the connection's own, reused by the next statement: read what it
    holds first."""
    connection = session.connection()
    pooled = connection.connection
    raw: psycopg.Connection[Any] = pooled.driver_connection  # type: ignore[assignment]
    held = pooled.info.get(_CURSORS)
    if held is None or held[0] is not raw:
        held = (raw, raw.cursor(), raw.cursor(row_factory=dict_row))
        pooled.info[_CURSORS] = held
    cursor = held[2] if rows else held[1]
    parameters = statement.parameters(values)
    listeners = connection.dispatch.before_cursor_execute
    if listeners:
        listeners(connection, cursor, statement.sql, parameters, None, False)
    try:
        cursor.execute(statement.sql, parameters, prepare=True)
    except psycopg.Error as error:
        raise DBAPIError.instance(statement.sql, parameters, error, psycopg.Error) from error
    return cursor


# ---- programs ----------------------------------------------------------------------------------


def latest_program(session: Session, store_id: int) -> tuple[int, dict[str, Any]] | None:
    """The highest program version of the store and its document."""
    row = session.execute(
        select(programs.c.version, programs.c.document)
        .where(programs.c.store_id == store_id)
        .order_by(programs.c.version.desc())
        .limit(1)
    ).first()
    return None if row is None else (row[0], row[1])


def latest_program_version(session: Session, store_id: int) -> int:
    """The highest program version of the store (0 when none)."""
    version = session.scalar(
        select(func.max(programs.c.version)).where(programs.c.store_id == store_id)
    )
    return int(version or 0)


def insert_program(
    session: Session,
    *,
    store_id: int,
    version: int,
    document: dict[str, Any],
    source: str,
    created_at: datetime,
) -> None:
    """Insert one program version."""
    session.execute(
        insert(programs).values(
            store_id=store_id,
            version=version,
            document=document,
            source=source,
            created_at=created_at,
        )
    )


def program_document(session: Session, store_id: int, version: int) -> dict[str, Any] | None:
    """The document of one program version."""
    document = session.scalar(
        select(programs.c.document).where(
            programs.c.store_id == store_id, programs.c.version == version
        )
    )
    return None if document is None else dict(document)


def program_versions(session: Session, store_id: int) -> list[tuple[int, str, datetime]]:
    """Every program version of the store: (version, source, created at)."""
    rows = session.execute(
        select(programs.c.version, programs.c.source, programs.c.created_at)
        .where(programs.c.store_id == store_id)
        .order_by(programs.c.version)
    )
    return [(version, source, created_at) for version, source, created_at in rows]


# ---- members -----------------------------------------------------------------------------------


def ensure_members(session: Session, rows: list[dict[str, Any]]) -> None:
    """Insert member rows, skipping customers that are members already."""
    insert_ignoring_conflicts(session, members, rows, keys=("store_id", "customer_id"))


def lock_member(session: Session, store_id: int, customer_id: int) -> dict[str, Any] | None:
    """Read a member row and lock it until the transaction ends (FOR UPDATE on PostgreSQL).

    On SQLite the transaction began with BEGIN IMMEDIATE and already holds the write lock.
    """
    return _first_row(
        session,
        select(members)
        .where(members.c.store_id == store_id, members.c.customer_id == customer_id)
        .with_for_update(),
    )


def _due_lot(now: datetime | BindParameter[Any]) -> Any:
    """A lot with points left that is due to activate or past its expiry at `now`."""
    return and_(
        lots.c.remaining > 0,
        or_(
            and_(lots.c.activated_at.is_(None), lots.c.activates_at <= now),
            and_(lots.c.activated_at.is_not(None), lots.c.expires_at <= now),
        ),
    )


def lock_member_for_request(
    session: Session,
    store_id: int,
    customer_id: int,
    *,
    key: str,
    now: datetime,
    known_program: str | None = None,
) -> dict[str, Any] | None:
    """Lock a member row and read, in the same round trip, what a mutation of it needs: the
    member's balances and tier, the program in force (`program_version`, `program_document`; on
    PostgreSQL also `program_row`, a token of the program row, and the document only when the
    token is not `known_program`), what is stored under the
    request's idempotency key (`stored_hash`, `stored_response`, None when new), whether any lot
    is due to activate or lapse (`lots_due`), and the store's `base_currency` and `timezone`.

    None when the customer is not a member (the caller then takes the slow path).
    """
    parameters = {
        "store_id": store_id,
        "customer_id": customer_id,
        "key": key,
        "now": now,
        "known_program": known_program,
    }
    if _driver(session):
        found = _run(session, _MEMBER_FOR_REQUEST_DRIVER, parameters, rows=True).fetchone()
        return None if found is None else dict(found)
    del parameters["known_program"]
    row = session.execute(_MEMBER_FOR_REQUEST, parameters).mappings().first()
    return None if row is None else dict(row)


# What a member's ledger book reads of the member row.
_BOOK_COLUMNS = (
    members.c.id,
    members.c.customer_id,
    members.c.tier,
    members.c.available_points,
    members.c.pending_points,
    members.c.debt_points,
)


def _member_for_request_statement() -> Select[Any]:
    stores = table_of(Store)
    store_id = bindparam("store_id", type_=members.c.store_id.type)
    now = bindparam("now", type_=lots.c.expires_at.type)
    latest = (
        select(programs.c.version, programs.c.document)
        .where(programs.c.store_id == store_id)
        .order_by(programs.c.version.desc())
        .limit(1)
    )
    stored = select(idempotency.c.request_hash, idempotency.c.response).where(
        idempotency.c.store_id == store_id, idempotency.c.key == bindparam("key")
    )
    store = select(stores.c.base_currency, stores.c.timezone).where(stores.c.id == store_id)

    def scalar(query: Select[Any], column: Any, label: str) -> Any:
        return query.with_only_columns(column).scalar_subquery().label(label)

    return (
        select(
            *_BOOK_COLUMNS,
            scalar(latest, programs.c.version, "program_version"),
            scalar(latest, programs.c.document, "program_document"),
            scalar(stored, idempotency.c.request_hash, "stored_hash"),
            scalar(stored, idempotency.c.response, "stored_response"),
            select(literal(1))
            .where(lots.c.member_id == members.c.id, _due_lot(now))
            .exists()
            .label("lots_due"),
            scalar(store, stores.c.base_currency, "base_currency"),
            scalar(store, stores.c.timezone, "timezone"),
        )
        .where(members.c.store_id == store_id, members.c.customer_id == bindparam("customer_id"))
        .with_for_update(of=members)
    )


def _member_for_request_postgres() -> Select[Any]:
    """`_member_for_request_statement` for PostgreSQL: the program, key and store joined once
    each (LATERAL for the latest program) instead of a subquery a column, and the document left
    out when the caller already holds that program row (`known_program`)."""
    stores = table_of(Store)
    store_id = bindparam("store_id", type_=members.c.store_id.type)
    now = bindparam("now", type_=lots.c.expires_at.type)
    # The row's id (a sequence never hands one out twice, even after a rollback) and the
    # transaction that wrote it (cluster-wide, so a database made again anew differs) name one
    # document for good.
    token = func.concat(programs.c.id, ":", literal_column(f"{programs.name}.xmin"))
    latest = (
        select(programs.c.version, token.label("token"), programs.c.document)
        .where(programs.c.store_id == store_id)
        .order_by(programs.c.version.desc())
        .limit(1)
        .lateral("latest")
    )
    known = bindparam("known_program", type_=String())
    key = and_(idempotency.c.store_id == store_id, idempotency.c.key == bindparam("key"))
    return (
        select(
            *_BOOK_COLUMNS,
            latest.c.version.label("program_version"),
            latest.c.token.label("program_row"),
            case((latest.c.token == known, None), else_=latest.c.document).label(
                "program_document"
            ),
            idempotency.c.request_hash.label("stored_hash"),
            idempotency.c.response.label("stored_response"),
            _lots_due_of_member(now).label("lots_due"),
            stores.c.base_currency,
            stores.c.timezone,
        )
        .select_from(
            members.join(stores, stores.c.id == members.c.store_id)
            .outerjoin(latest, true())
            .outerjoin(idempotency, key)
        )
        .where(members.c.store_id == store_id, members.c.customer_id == bindparam("customer_id"))
        .with_for_update(of=members)
    )


def _lots_due_of_member(now: BindParameter[Any]) -> Any:
    """`_due_lot` for the member row, as two EXISTS that the (member, expiry) index answers
    without visiting the member's spent or unexpired lots: active lots past expiry, and lots
    without expiry (every pending lot: a lot gets its expiry when it activates) due to activate.
    """
    lapsed = select(literal(1)).where(
        lots.c.member_id == members.c.id,
        lots.c.expires_at <= now,
        lots.c.activated_at.is_not(None),
        lots.c.remaining > 0,
    )
    activating = select(literal(1)).where(
        lots.c.member_id == members.c.id,
        lots.c.expires_at.is_(None),
        lots.c.activated_at.is_(None),
        lots.c.activates_at <= now,
        lots.c.remaining > 0,
    )
    return or_(lapsed.exists(), activating.exists())


_MEMBER_FOR_REQUEST = _member_for_request_statement()
_MEMBER_FOR_REQUEST_DRIVER = _for_driver(_member_for_request_postgres())


def store_currency_and_timezone(session: Session, store_id: int) -> tuple[str, str] | None:
    """The store's base currency and time zone."""
    stores = table_of(Store)
    row = session.execute(
        select(stores.c.base_currency, stores.c.timezone).where(stores.c.id == store_id)
    ).first()
    return None if row is None else (row[0], row[1])


def lock_members_by_id(session: Session, store_id: int, member_ids: Sequence[int]) -> list[dict]:
    """Read and lock member rows in id order (a fixed order, so lockers never deadlock)."""
    return _lock_members(session, store_id, members.c.id, member_ids)


def _lock_members(
    session: Session, store_id: int, column: Any, values: Iterable[int]
) -> list[dict[str, Any]]:
    """Read and lock the member rows whose `column` is one of `values`, in member id order
    within each chunk of values."""
    return _rows_in_chunks(
        session,
        values,
        lambda chunk: (
            select(members)
            .where(members.c.store_id == store_id, column.in_(chunk))
            .order_by(members.c.id)
            .with_for_update()
        ),
    )


def get_member(session: Session, store_id: int, customer_id: int) -> dict[str, Any] | None:
    """Read a member row without locking it."""
    return _first_row(
        session,
        select(members).where(members.c.store_id == store_id, members.c.customer_id == customer_id),
    )


def member_ids_by_customer(
    session: Session, store_id: int, customer_ids: Iterable[int]
) -> dict[int, int]:
    """Member id by customer id, for the customers that are members."""
    found: dict[int, int] = {}
    for chunk in _chunks(sorted(set(customer_ids))):
        rows = session.execute(
            select(members.c.customer_id, members.c.id).where(
                members.c.store_id == store_id, members.c.customer_id.in_(chunk)
            )
        )
        found.update({customer_id: member_id for customer_id, member_id in rows})
    return found


def update_member_balances(
    session: Session,
    *,
    member_id: int,
    expected: tuple[int, int, int],
    balances: tuple[int, int, int],
    now: datetime,
) -> None:
    """Write a locked member's new (available, pending, debt); refuse if they moved meanwhile."""
    parameters = {
        "member_id": member_id,
        "read_available": expected[0],
        "read_pending": expected[1],
        "read_debt": expected[2],
        "available_points": balances[0],
        "pending_points": balances[1],
        "debt_points": balances[2],
        "updated_at": now,
    }
    if _driver(session):
        updated = _run(session, _UPDATE_BALANCES_DRIVER, parameters).rowcount
    else:
        result: CursorResult[Any] = session.execute(_UPDATE_BALANCES, parameters)  # type: ignore[assignment]
        updated = result.rowcount
    if updated != 1:
        raise RuntimeError(f"member {member_id} changed under its lock; refusing to write")


_UPDATE_BALANCES = update(members).where(
    members.c.id == bindparam("member_id"),
    members.c.available_points == bindparam("read_available"),
    members.c.pending_points == bindparam("read_pending"),
    members.c.debt_points == bindparam("read_debt"),
)
_UPDATE_BALANCES_DRIVER = _for_driver(
    _UPDATE_BALANCES, ["available_points", "pending_points", "debt_points", "updated_at"]
)


def records_balances_with_key(session: Session) -> bool:
    """Whether `update_balances_and_record` can serve this session (PostgreSQL via psycopg)."""
    return _driver(session)


def update_balances_and_record(
    session: Session,
    *,
    member_id: int,
    expected: tuple[int, int, int],
    balances: tuple[int, int, int],
    record: dict[str, Any],
) -> None:
    """`update_member_balances` and `insert_idempotency` (the fields of `record`) in one
    statement, through psycopg on PostgreSQL: the key is recorded only if the balances moved."""
    now = record["created_at"]
    parameters = {
        "member_id": member_id,
        "read_available": expected[0],
        "read_pending": expected[1],
        "read_debt": expected[2],
        "available_points": balances[0],
        "pending_points": balances[1],
        "debt_points": balances[2],
        "updated_at": now,
        **record,
    }
    if _run(session, _BALANCES_AND_KEY_DRIVER, parameters).rowcount != 1:
        raise RuntimeError(f"member {member_id} changed under its lock; refusing to write")


def _balances_and_key_statement() -> Any:
    names = ("available_points", "pending_points", "debt_points", "updated_at")
    moved = (
        _UPDATE_BALANCES.values(
            {name: bindparam(name, type_=members.c[name].type) for name in names}
        )
        .returning(members.c.id)
        .cte("moved")
    )
    columns = ("store_id", "key", "request_hash", "response", "created_at")
    values = [bindparam(name, type_=idempotency.c[name].type) for name in columns]
    return insert(idempotency).from_select(columns, select(*values).select_from(moved))


_BALANCES_AND_KEY_DRIVER = _for_driver(_balances_and_key_statement())


def update_members(session: Session, rows: list[dict[str, Any]]) -> None:
    """Update member columns in bulk; each row holds `member_id` and the same other keys."""
    _update_by_id(session, members, "member_id", rows)


def _update_by_id(session: Session, table: Any, id_name: str, rows: list[dict[str, Any]]) -> None:
    """Update rows of `table` in bulk, one executemany per set of columns; each row holds its id
    under `id_name` and the new values of its columns."""
    by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        by_columns.setdefault(tuple(sorted(row)), []).append(row)
    for columns, group in by_columns.items():
        values: dict[str, Any] = {name: bindparam(name) for name in columns if name != id_name}
        session.execute(
            update(table).where(table.c.id == bindparam(id_name)).values(**values), group
        )


def set_referral_code(session: Session, member_id: int, code: str) -> None:
    """Give a member their referral code."""
    session.execute(update(members).where(members.c.id == member_id).values(referral_code=code))


def member_by_referral_code(session: Session, store_id: int, code: str) -> dict[str, Any] | None:
    """The member who owns a referral code."""
    return _first_row(
        session,
        select(members).where(members.c.store_id == store_id, members.c.referral_code == code),
    )


def all_member_rows(session: Session, store_id: int) -> list[dict[str, Any]]:
    """Tier-related columns of every member of the store."""
    rows = session.execute(
        select(*_TIER_COLUMNS).where(members.c.store_id == store_id).order_by(members.c.id)
    ).mappings()
    return [dict(row) for row in rows]


_TIER_COLUMNS = (
    members.c.id,
    members.c.customer_id,
    members.c.tier,
    members.c.tier_since_at,
    members.c.tier_reviewed_at,
    members.c.downgrade_due_at,
    members.c.heritage_since_at,
    members.c.rolling_spend,
    members.c.rolling_orders,
)


def member_tier_rows(
    session: Session, store_id: int, member_ids: Sequence[int]
) -> list[dict[str, Any]]:
    """Tier-related columns of some members."""
    return _rows_in_chunks(
        session,
        member_ids,
        lambda chunk: select(*_TIER_COLUMNS).where(
            members.c.store_id == store_id, members.c.id.in_(chunk)
        ),
    )


def standing(session: Session, store_id: int, spend: Decimal) -> tuple[int, int]:
    """(members with less rolling spend than `spend`, all members)."""
    spend_column = members.c.rolling_spend
    below, total = session.execute(
        select(
            func.coalesce(func.sum(case((spend_column < spend, 1), else_=0)), 0),
            func.count(),
        ).where(members.c.store_id == store_id)
    ).one()
    return int(below), int(total)


# ---- idempotency -------------------------------------------------------------------------------


def find_idempotency(
    session: Session, store_id: int, key: str
) -> tuple[str, dict[str, Any]] | None:
    """The stored request hash and response of a key."""
    row = session.execute(
        select(idempotency.c.request_hash, idempotency.c.response).where(
            idempotency.c.store_id == store_id, idempotency.c.key == key
        )
    ).first()
    return None if row is None else (row[0], row[1])


def insert_idempotency(
    session: Session,
    *,
    store_id: int,
    key: str,
    request_hash: str,
    response: dict[str, Any],
    now: datetime,
) -> None:
    """Record a performed mutation (unique on store and key: a racing duplicate fails here)."""
    parameters = {
        "store_id": store_id,
        "key": key,
        "request_hash": request_hash,
        "response": response,
        "created_at": now,
    }
    if _driver(session):
        _run(session, _INSERT_IDEMPOTENCY_DRIVER, parameters)
    else:
        session.execute(_INSERT_IDEMPOTENCY, parameters)


_INSERT_IDEMPOTENCY = insert(idempotency)
_INSERT_IDEMPOTENCY_DRIVER = _for_driver(
    insert(idempotency).values(
        {
            name: bindparam(name, type_=idempotency.c[name].type)
            for name in ("store_id", "key", "request_hash", "response", "created_at")
        }
    )
)


# ---- entries, lots, consumptions ---------------------------------------------------------------


# Statements run for every mutation are built once.
_INSERT_ENTRY = insert(entries).returning(entries.c.id)
_INSERT_LOT = insert(lots).returning(lots.c.id)


def insert_entry(session: Session, row: dict[str, Any]) -> int:
    """Append one ledger entry and return its id."""
    return int(session.execute(_INSERT_ENTRY, row).scalar_one())


def insert_lot(session: Session, row: dict[str, Any]) -> int:
    """Insert one lot and return its id."""
    return int(session.execute(_INSERT_LOT, row).scalar_one())


def insert_consumptions(session: Session, rows: list[dict[str, Any]]) -> None:
    """Insert consumption rows."""
    if rows:
        session.execute(insert(consumptions), rows)


def update_lots(session: Session, rows: list[dict[str, Any]]) -> None:
    """Update lots in bulk; rows hold `lot_id` and the same other columns."""
    _update_by_id(session, lots, "lot_id", rows)


_LOT_COLUMNS = (
    lots.c.id,
    lots.c.member_id,
    lots.c.source,
    lots.c.order_id,
    lots.c.amount,
    lots.c.remaining,
    lots.c.activates_at,
    lots.c.activated_at,
    lots.c.expires_at,
)


def open_lots(session: Session, member_id: int) -> list[dict[str, Any]]:
    """Lots of a member with points left, soonest-expiring first (never-expiring last)."""
    rows = session.execute(
        select(*_LOT_COLUMNS)
        .where(lots.c.member_id == member_id, lots.c.remaining > 0)
        .order_by(lots.c.expires_at.is_(None), lots.c.expires_at, lots.c.id)
    ).mappings()
    return [dict(row) for row in rows]


def open_order_lots(session: Session, member_id: int, order_id: int) -> list[dict[str, Any]]:
    """A member's lots of one order with points left."""
    rows = session.execute(
        select(*_LOT_COLUMNS)
        .where(lots.c.member_id == member_id, lots.c.order_id == order_id, lots.c.remaining > 0)
        .order_by(lots.c.id)
    ).mappings()
    return [dict(row) for row in rows]


def due_lots(session: Session, member_id: int, now: datetime) -> list[dict[str, Any]]:
    """A member's pending lots due to activate and active lots past expiry, with points left."""
    rows = session.execute(
        select(*_LOT_COLUMNS)
        .where(lots.c.member_id == member_id, _due_lot(now))
        .order_by(lots.c.id)
    ).mappings()
    return [dict(row) for row in rows]


def spendable_lots(
    session: Session, member_id: int, *, limit: int, offset: int
) -> list[dict[str, Any]]:
    """A page of a member's active lots with points left, soonest-expiring first."""
    rows = session.execute(
        select(*_LOT_COLUMNS)
        .where(
            lots.c.member_id == member_id,
            lots.c.remaining > 0,
            lots.c.activated_at.is_not(None),
        )
        .order_by(lots.c.expires_at.is_(None), lots.c.expires_at, lots.c.id)
        .limit(limit)
        .offset(offset)
    ).mappings()
    return [dict(row) for row in rows]


def insert_credit(session: Session, entry: dict[str, Any], lot: dict[str, Any]) -> tuple[int, int]:
    """Append a credit entry and its lot (whose `entry_id` is filled in); return their ids.

    One statement on PostgreSQL (the entry's INSERT is a CTE the lot's INSERT reads), two on
    SQLite, where statements cost no round trip.
    """
    if session.get_bind().dialect.name != "postgresql":
        entry_id = insert_entry(session, entry)
        return entry_id, insert_lot(session, {**lot, "entry_id": entry_id})
    parameters = {**_prefixed("entry_", entry), **_prefixed("lot_", lot)}
    if _driver(session):
        found = _run(session, _INSERT_CREDIT_DRIVER, parameters).fetchone()
        assert found is not None
        entry_id, lot_id = found
    else:
        entry_id, lot_id = session.execute(_INSERT_CREDIT, parameters).one()
    return int(entry_id), int(lot_id)


def insert_spending(
    session: Session, entry: dict[str, Any], points: int
) -> tuple[int, list[tuple[int, int]]]:
    """Append a debit entry of `points` and take them from the member's active lots,
    soonest-expiring first (never-expiring last): each take is recorded as a consumption and
    lowers its lot's `remaining`.

    The takes are computed in SQL from a running sum over the lots in consumption order, however
    many lots it takes: one statement on PostgreSQL (entry, consumptions and lots in CTEs), three
    on SQLite. Returns the entry id and the (lot id, points) taken, in consumption order; the
    caller checks they add up to `points`, and must hold the member's lock.
    """
    parameters = {
        "store": entry["store_id"],
        "member": entry["member_id"],
        "points": points,
        "now": entry["occurred_at"],
    }
    rows: list[tuple[Any, ...]]
    if session.get_bind().dialect.name != "postgresql":
        entry_id = insert_entry(session, entry)
        found = session.execute(_CONSUME_SPENDABLE, {**parameters, "debit": entry_id})
        rows = [tuple(row) for row in found]
        session.execute(_LOWER_CONSUMED_LOTS, {"debit": entry_id})
    else:
        parameters.update(_prefixed("entry_", entry))
        spent: Iterable[Sequence[Any]] = (
            _run(session, _INSERT_SPENDING_DRIVER, parameters).fetchall()
            if _driver(session)
            else session.execute(_INSERT_SPENDING, parameters)
        )
        joined = [tuple(row) for row in spent]  # (entry id, consumption id, lot id, amount)
        entry_id = int(joined[0][0])
        rows = [row[1:] for row in joined if row[1] is not None]
    # Consumption ids follow the insert order, which is the order of consumption.
    return entry_id, [(int(lot_id), int(amount)) for _, lot_id, amount in sorted(rows)]


def _prefixed(prefix: str, row: dict[str, Any]) -> dict[str, Any]:
    return {f"{prefix}{name}": value for name, value in row.items()}


_ENTRY_COLUMNS = [
    "store_id", "member_id", "kind", "available_delta", "pending_delta", "occurred_at",
    "idempotency_key", "reason", "order_id", "reverses_entry_id", "program_version", "details",
]  # fmt: skip
_CREDIT_LOT_COLUMNS = [
    "store_id", "member_id", "source", "order_id", "amount", "remaining", "created_at",
    "activates_at", "activated_at", "expires_at",
]  # fmt: skip


def _new_entry_cte() -> Any:
    """INSERT of an entry from `entry_…` parameters, returning its id, as a CTE."""
    values: dict[str, Any] = {name: bindparam(f"entry_{name}") for name in _ENTRY_COLUMNS}
    return insert(entries).values(values).returning(entries.c.id).cte("new_entry")


def _insert_credit_statement() -> Any:
    entry = _new_entry_cte()
    lot_values = [bindparam(f"lot_{name}", type_=lots.c[name].type) for name in _CREDIT_LOT_COLUMNS]
    return (
        insert(lots)
        .from_select([*_CREDIT_LOT_COLUMNS, "entry_id"], select(*lot_values, entry.c.id))
        .returning(lots.c.entry_id, lots.c.id)
    )


def _takes(debit: Any, entry: Any = None) -> Any:
    """The consumption rows that take `points` from member `member`'s active lots for the debit
    entry `debit` (a column of the one-row `entry`, when given), soonest-expiring first,
    never-expiring last."""
    fifo = (lots.c.expires_at.is_(None), lots.c.expires_at, lots.c.id)
    spendable = (
        select(
            lots.c.id,
            lots.c.remaining,
            (func.sum(lots.c.remaining).over(order_by=fifo) - lots.c.remaining).label("before"),
            func.row_number().over(order_by=fifo).label("position"),
        )
        .where(
            lots.c.member_id == bindparam("member", type_=BigInteger()),
            lots.c.remaining > 0,
            lots.c.activated_at.is_not(None),
        )
        .subquery()
    )
    points = bindparam("points", type_=BigInteger())
    take = case(
        (spendable.c.before + spendable.c.remaining <= points, spendable.c.remaining),
        else_=points - spendable.c.before,
    )
    return (
        select(
            bindparam("store", type_=BigInteger()),
            bindparam("member", type_=BigInteger()),
            debit,
            spendable.c.id,
            take,
            bindparam("now", type_=UTCDateTime()),
        )
        .select_from(spendable if entry is None else spendable.join(entry, true()))
        .where(spendable.c.before < points)
        .order_by(spendable.c.position)
    )


_CONSUMPTION_COLUMNS = ["store_id", "member_id", "entry_id", "lot_id", "amount", "consumed_at"]
_CONSUME_SPENDABLE = (
    insert(consumptions)
    .from_select(_CONSUMPTION_COLUMNS, _takes(bindparam("debit", type_=BigInteger())))
    .returning(consumptions.c.id, consumptions.c.lot_id, consumptions.c.amount)
)
_this_debit = consumptions.c.entry_id == bindparam("debit", type_=BigInteger())
_LOWER_CONSUMED_LOTS = (
    update(lots)
    .where(lots.c.id.in_(select(consumptions.c.lot_id).where(_this_debit)))
    .values(
        remaining=lots.c.remaining
        - select(func.sum(consumptions.c.amount))
        .where(_this_debit, consumptions.c.lot_id == lots.c.id)
        .scalar_subquery()
    )
)


def _insert_spending_statement() -> Any:
    entry = _new_entry_cte()
    taken = (
        insert(consumptions)
        .from_select(_CONSUMPTION_COLUMNS, _takes(entry.c.id, entry))
        .returning(consumptions.c.id, consumptions.c.lot_id, consumptions.c.amount)
        .cte("taken")
    )
    lowered = (
        update(lots)
        .where(lots.c.id == taken.c.lot_id)
        .values(remaining=lots.c.remaining - taken.c.amount)
        .returning(lots.c.id)
        .cte("lowered")
    )
    return (
        select(entry.c.id, taken.c.id, taken.c.lot_id, taken.c.amount)
        .select_from(entry.outerjoin(taken, true()))
        .add_cte(lowered)
    )


_INSERT_CREDIT = _insert_credit_statement()
_INSERT_SPENDING = _insert_spending_statement()
_INSERT_CREDIT_DRIVER = _for_driver(_INSERT_CREDIT)
_INSERT_SPENDING_DRIVER = _for_driver(_INSERT_SPENDING)


def lots_of_orders(session: Session, store_id: int, order_ids: Sequence[int]) -> list[dict]:
    """Every lot attached to these orders."""
    return _rows_in_chunks(
        session,
        order_ids,
        lambda chunk: (
            select(*_LOT_COLUMNS)
            .where(lots.c.store_id == store_id, lots.c.order_id.in_(chunk))
            .order_by(lots.c.id)
        ),
    )


def entry_key_exists(session: Session, store_id: int, key: str) -> bool:
    """Whether an entry with this idempotency key exists."""
    return (
        session.scalar(
            select(entries.c.id).where(
                entries.c.store_id == store_id, entries.c.idempotency_key == key
            )
        )
        is not None
    )


def uncovered_debits(session: Session, member_id: int) -> list[tuple[int, int]]:
    """Debit entries whose consumptions fall short of their amount: (entry id, shortfall)."""
    consumed = (
        select(consumptions.c.entry_id, func.sum(consumptions.c.amount).label("consumed"))
        .where(consumptions.c.member_id == member_id)
        .group_by(consumptions.c.entry_id)
        .subquery()
    )
    debited = -(entries.c.available_delta + entries.c.pending_delta)
    shortfall = debited - func.coalesce(consumed.c.consumed, 0)
    rows = session.execute(
        select(entries.c.id, shortfall)
        .select_from(entries.outerjoin(consumed, consumed.c.entry_id == entries.c.id))
        .where(
            entries.c.member_id == member_id,
            entries.c.kind.in_(DEBIT_KINDS),
            shortfall > 0,
        )
        .order_by(entries.c.id)
    )
    return [(int(entry_id), int(missing)) for entry_id, missing in rows]


def credited_since(session: Session, member_id: int, kinds: Sequence[str], since: datetime) -> int:
    """Points credited to a member by entries of `kinds` since a moment."""
    total = session.scalar(
        select(
            func.coalesce(func.sum(entries.c.available_delta + entries.c.pending_delta), 0)
        ).where(
            entries.c.member_id == member_id,
            entries.c.kind.in_(kinds),
            entries.c.occurred_at >= since,
        )
    )
    return int(total or 0)


def ledger_page(
    session: Session, store_id: int, member_id: int, *, limit: int, before_id: int | None
) -> list[dict[str, Any]]:
    """A member's entries, newest first."""
    statement = select(entries).where(
        entries.c.store_id == store_id, entries.c.member_id == member_id
    )
    if before_id is not None:
        statement = statement.where(entries.c.id < before_id)
    rows = session.execute(statement.order_by(entries.c.id.desc()).limit(limit)).mappings()
    return [dict(row) for row in rows]


def _lapsing(after: datetime, until: datetime) -> Any:
    """Active lots with points left that lapse in (after, until]."""
    return and_(
        lots.c.remaining > 0,
        lots.c.activated_at.is_not(None),
        lots.c.expires_at > after,
        lots.c.expires_at <= until,
    )


def expiring_points(
    session: Session, member_id: int, *, after: datetime, until: datetime
) -> list[tuple[datetime, int]]:
    """Active points of a member that lapse in (after, until], by expiry moment."""
    rows = session.execute(
        select(lots.c.expires_at, func.sum(lots.c.remaining))
        .where(lots.c.member_id == member_id, _lapsing(after, until))
        .group_by(lots.c.expires_at)
        .order_by(lots.c.expires_at)
    )
    return [(expires_at, int(points)) for expires_at, points in rows]


def lapsed_unprocessed(session: Session, member_id: int, now: datetime) -> int:
    """Active points of a member past their expiry that the expiry job has not yet taken."""
    total = session.scalar(
        select(func.coalesce(func.sum(lots.c.remaining), 0)).where(
            lots.c.member_id == member_id,
            lots.c.remaining > 0,
            lots.c.activated_at.is_not(None),
            lots.c.expires_at <= now,
        )
    )
    return int(total or 0)


def members_with_due_lots(session: Session, store_id: int, now: datetime) -> list[int]:
    """Members with pending lots due to activate or active lots past expiry."""
    due_activation = select(lots.c.member_id).where(
        lots.c.store_id == store_id,
        lots.c.remaining > 0,
        lots.c.activated_at.is_(None),
        lots.c.activates_at <= now,
    )
    due_expiry = select(lots.c.member_id).where(
        lots.c.store_id == store_id,
        lots.c.remaining > 0,
        lots.c.activated_at.is_not(None),
        lots.c.expires_at <= now,
    )
    rows = session.execute(due_activation.union(due_expiry))
    return sorted(int(row[0]) for row in rows)


def lots_expiring_between(
    session: Session, store_id: int, after: datetime, until: datetime
) -> list[tuple[int, int, datetime, int]]:
    """(member id, customer id, expiry, points) of active points lapsing in (after, until]."""
    rows = session.execute(
        select(members.c.id, members.c.customer_id, lots.c.expires_at, func.sum(lots.c.remaining))
        .select_from(lots.join(members, members.c.id == lots.c.member_id))
        .where(lots.c.store_id == store_id, _lapsing(after, until))
        .group_by(members.c.id, members.c.customer_id, lots.c.expires_at)
    )
    return [(int(m), int(c), expires_at, int(points)) for m, c, expires_at, points in rows]


# ---- orders ------------------------------------------------------------------------------------

_ORDER_COLUMNS = (
    orders.c.id,
    orders.c.customer_id,
    orders.c.currency,
    orders.c.subtotal,
    orders.c.discount,
    orders.c.shipping,
    orders.c.tax,
    orders.c.total,
    orders.c.refunded,
    orders.c.fx_rate,
    orders.c.placed_at,
    orders.c.paid_at,
    orders.c.shipped_at,
    orders.c.delivered_at,
    orders.c.cancelled_at,
    orders.c.financial_status,
)


def orders_for_points(session: Session, store_id: int, order_ids: Sequence[int]) -> list[dict]:
    """The columns points depend on, for these orders of the store."""
    return _rows_in_chunks(
        session,
        order_ids,
        lambda chunk: select(*_ORDER_COLUMNS).where(
            orders.c.store_id == store_id, orders.c.id.in_(chunk)
        ),
    )


def order_ids_needing_points(session: Session, store_id: int) -> list[int]:
    """Orders of customers that may earn or change points: every order with a customer."""
    rows = session.execute(
        select(orders.c.id)
        .where(orders.c.store_id == store_id, orders.c.customer_id.is_not(None))
        .order_by(orders.c.id)
    )
    return [int(row[0]) for row in rows]


def order_states(session: Session, store_id: int, order_ids: Sequence[int]) -> dict[int, dict]:
    """What the ledger has done for these orders, by order id."""
    found: dict[int, dict[str, Any]] = {}
    for chunk in _chunks(sorted(set(order_ids))):
        rows = session.execute(
            select(order_state).where(
                order_state.c.store_id == store_id, order_state.c.order_id.in_(chunk)
            )
        ).mappings()
        found.update({row["order_id"]: dict(row) for row in rows})
    return found


def insert_order_state(session: Session, row: dict[str, Any]) -> None:
    """Record that an order earned points."""
    session.execute(insert(order_state), row)


def update_order_state(session: Session, order_id: int, store_id: int, **values: Any) -> None:
    """Change what the ledger recorded for an order."""
    session.execute(
        update(order_state)
        .where(order_state.c.store_id == store_id, order_state.c.order_id == order_id)
        .values(**values)
    )


def earned_orders_between(session: Session, member_id: int, start: datetime, end: datetime) -> int:
    """Orders of a member that earned points, placed in [start, end), not cancelled."""
    count = session.scalar(
        select(func.count()).where(
            order_state.c.member_id == member_id,
            order_state.c.placed_at >= start,
            order_state.c.placed_at < end,
            order_state.c.cancelled.is_(False),
        )
    )
    return int(count or 0)


def birthdays(session: Session, store_id: int, customer_ids: Iterable[int]) -> dict[int, Any]:
    """Birthday by customer id (customers without one are left out)."""
    customers = table_of(Customer)
    found: dict[int, Any] = {}
    for chunk in _chunks(sorted(set(customer_ids))):
        rows = session.execute(
            select(customers.c.id, customers.c.birthday).where(
                customers.c.store_id == store_id,
                customers.c.id.in_(chunk),
                customers.c.birthday.is_not(None),
            )
        )
        found.update({customer_id: birthday for customer_id, birthday in rows})
    return found


def _paid_order_filter(window_start: datetime, now: datetime) -> Any:
    return and_(
        orders.c.placed_at >= window_start,
        orders.c.placed_at <= now,
        orders.c.cancelled_at.is_(None),
        or_(
            orders.c.paid_at.is_not(None),
            orders.c.shipped_at.is_not(None),
            orders.c.delivered_at.is_not(None),
        ),
        orders.c.refunded_base < orders.c.total_base,
    )


def _members_with_orders() -> Any:
    """Members joined to their customers' orders."""
    return members.join(
        orders,
        and_(
            orders.c.store_id == members.c.store_id,
            orders.c.customer_id == members.c.customer_id,
        ),
    )


def tier_metrics(
    session: Session,
    store_id: int,
    *,
    window_start: datetime,
    now: datetime,
    member_ids: Sequence[int] | None = None,
) -> dict[int, tuple[Decimal, int]]:
    """Net spend (base currency) and paid orders per member over the window."""
    statement: Select[Any] = (
        select(
            members.c.id,
            func.sum(type_coerce(orders.c.total_base - orders.c.refunded_base, Money())),
            func.count(orders.c.id),
        )
        .select_from(_members_with_orders())
        .where(members.c.store_id == store_id, _paid_order_filter(window_start, now))
        .group_by(members.c.id)
    )
    found: dict[int, tuple[Decimal, int]] = {}
    if member_ids is None:
        for member_id, spend, count in session.execute(statement):
            found[int(member_id)] = (spend or Decimal(0), int(count))
        return found
    for chunk in _chunks(sorted(set(member_ids))):
        for member_id, spend, count in session.execute(statement.where(members.c.id.in_(chunk))):
            found[int(member_id)] = (spend or Decimal(0), int(count))
    return found


def first_order_at(
    session: Session, store_id: int, member_ids: Sequence[int]
) -> dict[int, datetime]:
    """When each member first ordered (or was first seen, when earlier)."""
    customers = table_of(Customer)
    found: dict[int, datetime] = {}
    for chunk in _chunks(sorted(set(member_ids))):
        first_orders = session.execute(
            select(members.c.id, func.min(orders.c.placed_at))
            .select_from(_members_with_orders())
            .where(members.c.store_id == store_id, members.c.id.in_(chunk))
            .group_by(members.c.id)
        )
        for member_id, first in first_orders:
            found[int(member_id)] = first
        first_seen = session.execute(
            select(members.c.id, customers.c.first_seen_at)
            .select_from(members.join(customers, customers.c.id == members.c.customer_id))
            .where(members.c.id.in_(chunk), customers.c.first_seen_at.is_not(None))
        )
        for member_id, seen in first_seen:
            key = int(member_id)
            found[key] = min(found.get(key, seen), seen)
    return found


# ---- coupons -----------------------------------------------------------------------------------


def insert_coupon(session: Session, row: dict[str, Any]) -> None:
    """Insert a coupon (unique code per store)."""
    session.execute(insert(coupons), row)


def coupon_code_exists(session: Session, store_id: int, code: str) -> bool:
    """Whether a coupon code is taken."""
    return (
        session.scalar(
            select(coupons.c.id).where(coupons.c.store_id == store_id, coupons.c.code == code)
        )
        is not None
    )


def mark_coupon_used(
    session: Session, store_id: int, code: str, *, now: datetime, reference: str | None
) -> bool:
    """Use a coupon once: true only for the first use of an unexpired code."""
    result: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        update(coupons)
        .where(
            coupons.c.store_id == store_id,
            coupons.c.code == code,
            coupons.c.used_at.is_(None),
            or_(coupons.c.expires_at.is_(None), coupons.c.expires_at > now),
        )
        .values(used_at=now, used_reference=reference)
    )
    return result.rowcount == 1


def coupons_of(session: Session, member_id: int) -> list[dict[str, Any]]:
    """A member's coupons, newest first."""
    rows = session.execute(
        select(coupons).where(coupons.c.member_id == member_id).order_by(coupons.c.id.desc())
    ).mappings()
    return [dict(row) for row in rows]


# ---- notices -----------------------------------------------------------------------------------


def add_notices(session: Session, rows: list[dict[str, Any]]) -> None:
    """Queue notices, each at most once (by dedupe key)."""
    insert_ignoring_conflicts(session, notices, rows, keys=("store_id", "dedupe_key"))


def notices_of(session: Session, store_id: int, member_id: int | None = None) -> list[dict]:
    """Notices of the store (or of one member), oldest first."""
    statement = select(notices).where(notices.c.store_id == store_id)
    if member_id is not None:
        statement = statement.where(notices.c.member_id == member_id)
    rows = session.execute(statement.order_by(notices.c.id)).mappings()
    return [dict(row) for row in rows]


# ---- referrals ---------------------------------------------------------------------------------


def find_referral(session: Session, store_id: int, customer_id: int) -> dict[str, Any] | None:
    """The referral that brought a customer."""
    return _first_row(
        session,
        select(referrals).where(
            referrals.c.store_id == store_id, referrals.c.referred_customer_id == customer_id
        ),
    )


def insert_referral(session: Session, row: dict[str, Any]) -> int:
    """Record a referral and return its id."""
    return int(session.execute(insert(referrals).returning(referrals.c.id), row).scalar_one())


def referrals_from_source(session: Session, store_id: int, *, source: str, since: datetime) -> int:
    """Referrals recorded from one source (IP, device) since a moment."""
    return _referrals_since(session, store_id, referrals.c.source == source, since)


def referrals_from_device(
    session: Session, store_id: int, *, device_id: str, since: datetime
) -> int:
    """Referrals recorded from one device since a moment."""
    return _referrals_since(session, store_id, referrals.c.device_id == device_id, since)


def _referrals_since(session: Session, store_id: int, origin: Any, since: datetime) -> int:
    count = session.scalar(
        select(func.count()).where(
            referrals.c.store_id == store_id, origin, referrals.c.created_at >= since
        )
    )
    return int(count or 0)


def pending_referrals_due(
    session: Session, store_id: int, *, window_days: int, now: datetime
) -> list[dict[str, Any]]:
    """Pending referrals whose friend has a first order past the return window.

    The friend's first paid, uncancelled, not wholly refunded order counts; it is due once it was
    delivered `window_days` ago.
    """
    from datetime import timedelta

    cutoff = now - timedelta(days=window_days)
    rows = session.execute(
        select(referrals, func.min(orders.c.id).label("first_order_id"))
        .select_from(
            referrals.join(
                orders,
                and_(
                    orders.c.store_id == referrals.c.store_id,
                    orders.c.customer_id == referrals.c.referred_customer_id,
                ),
            )
        )
        .where(
            referrals.c.store_id == store_id,
            referrals.c.status == "pending",
            orders.c.cancelled_at.is_(None),
            orders.c.delivered_at.is_not(None),
            orders.c.delivered_at <= cutoff,
            orders.c.refunded_base < orders.c.total_base,
        )
        .group_by(*referrals.c)
    ).mappings()
    return [dict(row) for row in rows]


def update_referral(session: Session, referral_id: int, **values: Any) -> None:
    """Change a referral's status."""
    session.execute(update(referrals).where(referrals.c.id == referral_id).values(**values))


def customer_fingerprint(session: Session, store_id: int, customer_id: int) -> dict[str, Any]:
    """What identifies a customer for fraud checks: email, phone, address, devices."""
    customers = table_of(Customer)
    identities = table_of(CustomerIdentity)
    row = (
        session.execute(
            select(customers.c.email, customers.c.phone, customers.c.attributes).where(
                customers.c.store_id == store_id, customers.c.id == customer_id
            )
        )
        .mappings()
        .first()
    )
    if row is None:
        return {}
    known: dict[str, list[str]] = {"anonymous_id": [], "email": [], "phone": []}
    for kind, value in session.execute(
        select(identities.c.kind, identities.c.value).where(
            identities.c.store_id == store_id,
            identities.c.customer_id == customer_id,
            identities.c.kind.in_(list(known)),
        )
    ):
        known[kind].append(value)
    devices, emails, phones = known["anonymous_id"], known["email"], known["phone"]
    attributes = row["attributes"] or {}
    return {
        "emails": {value.lower() for value in [row["email"], *emails] if value},
        "phones": {value for value in [row["phone"], *phones] if value},
        "addresses": {str(attributes["address"])} if attributes.get("address") else set(),
        "devices": set(devices) | set(attributes.get("device_ids") or []),
    }


def customer_exists(session: Session, store_id: int, customer_id: int) -> bool:
    """Whether the customer belongs to the store."""
    customers = table_of(Customer)
    return (
        session.scalar(
            select(literal(1)).where(
                customers.c.store_id == store_id, customers.c.id == customer_id
            )
        )
        is not None
    )


def customer_birthday_and_email(
    session: Session, store_id: int, customer_id: int
) -> dict[str, Any] | None:
    """A customer's birthday and email."""
    customers = table_of(Customer)
    return _first_row(
        session,
        select(customers.c.birthday, customers.c.email).where(
            customers.c.store_id == store_id, customers.c.id == customer_id
        ),
    )


# ---- verification (set-based, one GROUP BY per invariant) --------------------------------------


@dataclass(frozen=True)
class _Pass:
    """One scan of the store's rows (members, lots or entries) joined to the others aggregated,
    and the invariants it checks: by name, the condition a row breaks it with and the id to
    report for such a row."""

    source: Any
    store: Any
    checks: dict[str, tuple[Any, Any]]
    count_name: str


def _used_by(column: Any, store_id: int) -> Any:
    """Points consumed per value of a consumptions column (entry, lot or member)."""
    return (
        select(column, func.sum(consumptions.c.amount).label("used"))
        .where(consumptions.c.store_id == store_id)
        .group_by(column)
        .subquery()
    )


def _member_pass(store_id: int) -> _Pass:
    debit = entries.c.kind.in_(DEBIT_KINDS)
    entry_sums = (
        select(
            entries.c.member_id,
            func.sum(entries.c.available_delta).label("available"),
            func.sum(entries.c.pending_delta).label("pending"),
            func.sum(
                case((debit, -(entries.c.available_delta + entries.c.pending_delta)), else_=0)
            ).label("debited"),
        )
        .where(entries.c.store_id == store_id)
        .group_by(entries.c.member_id)
        .subquery()
    )
    lot_sums = (
        select(
            lots.c.member_id,
            func.sum(case((lots.c.activated_at.is_(None), lots.c.remaining), else_=0)).label(
                "pending"
            ),
            func.sum(case((lots.c.activated_at.is_not(None), lots.c.remaining), else_=0)).label(
                "active"
            ),
        )
        .where(lots.c.store_id == store_id)
        .group_by(lots.c.member_id)
        .subquery()
    )
    used = _used_by(consumptions.c.member_id, store_id)
    m = members.c
    checks = {
        "balance": or_(
            m.available_points != func.coalesce(entry_sums.c.available, 0),
            m.pending_points != func.coalesce(entry_sums.c.pending, 0),
        ),
        "buckets": or_(
            m.pending_points != func.coalesce(lot_sums.c.pending, 0),
            m.available_points + m.debt_points != func.coalesce(lot_sums.c.active, 0),
            m.pending_points < 0,
            m.debt_points < 0,
            and_(m.debt_points > 0, m.available_points != -m.debt_points),
        ),
        "debt": m.debt_points
        != func.coalesce(entry_sums.c.debited, 0) - func.coalesce(used.c.used, 0),
        "negative": m.available_points < 0,
    }
    source = (
        members.outerjoin(entry_sums, entry_sums.c.member_id == m.id)
        .outerjoin(lot_sums, lot_sums.c.member_id == m.id)
        .outerjoin(used, used.c.member_id == m.id)
    )
    return _Pass(
        source,
        m.store_id == store_id,
        {name: (condition, m.id) for name, condition in checks.items()},
        "members",
    )


def _lot_pass(store_id: int) -> _Pass:
    used = _used_by(consumptions.c.lot_id, store_id)
    credited = entries.c.available_delta + entries.c.pending_delta
    checks = {
        "lots": (
            or_(
                lots.c.remaining != lots.c.amount - func.coalesce(used.c.used, 0),
                lots.c.remaining < 0,
                lots.c.remaining > lots.c.amount,
            ),
            lots.c.id,
        ),
        "lot_credit": (
            or_(entries.c.kind.in_((*DEBIT_KINDS, "activate")), lots.c.amount != credited),
            lots.c.entry_id,
        ),
    }
    source = lots.join(entries, entries.c.id == lots.c.entry_id).outerjoin(
        used, used.c.lot_id == lots.c.id
    )
    return _Pass(source, lots.c.store_id == store_id, checks, "lot_count")


def _entry_pass(store_id: int) -> _Pass:
    used = _used_by(consumptions.c.entry_id, store_id)
    debited = -(entries.c.available_delta + entries.c.pending_delta)
    credit = entries.c.kind.not_in((*DEBIT_KINDS, "activate"))
    checks = {
        "overconsumed": and_(
            used.c.used.is_not(None),
            or_(used.c.used > debited, entries.c.kind.not_in(DEBIT_KINDS)),
        ),
        "overdrawn": and_(
            entries.c.kind.in_(("redeem", "expire", "cancel", "adjust_debit")),
            func.coalesce(used.c.used, 0) != debited,
        ),
        "entry_credit": and_(credit, or_(lots.c.id.is_(None), lots.c.amount != -debited)),
    }
    source = entries.outerjoin(used, used.c.entry_id == entries.c.id).outerjoin(
        lots, lots.c.entry_id == entries.c.id
    )
    return _Pass(
        source,
        entries.c.store_id == store_id,
        {name: (condition, entries.c.id) for name, condition in checks.items()},
        "entries",
    )


def _passes(store_id: int) -> list[_Pass]:
    return [_member_pass(store_id), _lot_pass(store_id), _entry_pass(store_id)]


def invariant_counts(session: Session, store_id: int) -> dict[str, int]:
    """How many rows break each invariant of the store's ledger, in three passes (members, lots,
    entries, each joined to the others aggregated with GROUP BY), plus the rows scanned by each:
    `members`, `lot_count`, `entries`. Set-based, so memory does not grow with the store."""
    counts: dict[str, int] = {}
    for scan in _passes(store_id):
        flags = [
            func.coalesce(func.sum(case((condition, 1), else_=0)), 0)
            for condition, _ in scan.checks.values()
        ]
        row = session.execute(
            select(*flags, func.count()).select_from(scan.source).where(scan.store)
        ).one()
        names = (*scan.checks, scan.count_name)
        counts.update({name: int(value or 0) for name, value in zip(names, row, strict=True)})
    return counts


def invariant_examples(
    session: Session, store_id: int, names: Sequence[str], limit: int
) -> list[int]:
    """Up to `limit` ids of rows that break the named invariants (see `invariant_counts`)."""
    found: list[int] = []
    for scan in _passes(store_id):
        for name in names:
            if name in scan.checks and len(found) < limit:
                condition, reported = scan.checks[name]
                statement = (
                    select(reported)
                    .select_from(scan.source)
                    .where(scan.store, condition)
                    .order_by(reported)
                    .limit(limit - len(found))
                )
                found.extend(int(value) for value in session.scalars(statement))
    return found


def lots_of_member(session: Session, member_id: int) -> list[dict[str, Any]]:
    """Every lot of a member, spent or not ."""
    rows = session.execute(
        select(*_LOT_COLUMNS).where(lots.c.member_id == member_id).order_by(lots.c.id)
    ).mappings()
    return [dict(row) for row in rows]


def repoint_member(session: Session, member_id: int, customer_id: int) -> None:
    """Give a membership to another customer (the survivor of a merge)."""
    session.execute(
        update(members).where(members.c.id == member_id).values(customer_id=customer_id)
    )


def move_member_rows(session: Session, store_id: int, *, from_id: int, to_id: int) -> None:
    """Re-point a member's orders, coupons and referrals to another member."""
    for table, column in (
        (order_state, order_state.c.member_id),
        (coupons, coupons.c.member_id),
        (referrals, referrals.c.referrer_member_id),
    ):
        session.execute(
            update(table)
            .where(table.c.store_id == store_id, column == from_id)
            .values({column.name: to_id})
        )


def find_idempotency_many(
    session: Session, store_id: int, keys: Sequence[str]
) -> dict[str, tuple[str, dict[str, Any]]]:
    """Stored request hashes and responses of these keys."""
    found: dict[str, tuple[str, dict[str, Any]]] = {}
    for chunk in _chunks(sorted(set(keys))):
        rows = session.execute(
            select(idempotency.c.key, idempotency.c.request_hash, idempotency.c.response).where(
                idempotency.c.store_id == store_id, idempotency.c.key.in_(chunk)
            )
        )
        found.update({key: (request_hash, response) for key, request_hash, response in rows})
    return found


def insert_idempotency_many(session: Session, rows: list[dict[str, Any]]) -> None:
    """Record performed mutations in bulk (a racing duplicate key fails the statement)."""
    if rows:
        session.execute(insert(idempotency), rows)


def lock_members_by_customer(
    session: Session, store_id: int, customer_ids: Sequence[int]
) -> list[dict[str, Any]]:
    """Read and lock the member rows of these customers, in member id order."""
    return _lock_members(session, store_id, members.c.customer_id, customer_ids)


def existing_customers(session: Session, store_id: int, customer_ids: Iterable[int]) -> set[int]:
    """Which of these customers belong to the store."""
    customers = table_of(Customer)
    found: set[int] = set()
    for chunk in _chunks(sorted(set(customer_ids))):
        found.update(
            session.scalars(
                select(customers.c.id).where(
                    customers.c.store_id == store_id, customers.c.id.in_(chunk)
                )
            )
        )
    return found
