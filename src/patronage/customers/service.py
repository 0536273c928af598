"""Recognising customers across sources: resolve identities, create, update and merge."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Table
from sqlalchemy.orm import Session

from patronage.customers import repository
from patronage.customers.models import Customer, CustomerMerge
from patronage.customers.schemas import PROFILE_FIELDS, CustomerIn, ResolvedCustomer
from patronage.db.base import Base, table_of
from patronage.errors import NotFoundError
from patronage.kit.clock import utcnow

# Tables with their own merge handling; every other table with store_id and customer_id is
# re-pointed to the surviving customer on merge.
_SPECIAL_TABLES = {
    "loyalty_members",
    "customers",
    "customer_identities",
    "consents",
    "consent_changes",
    "customer_merges",
}


class _Clusters:
    """Union-find over customer ids: existing (positive) and to-be-created (negative)."""

    def __init__(self) -> None:
        self.parent: dict[int, int] = {}

    def find(self, node: int) -> int:
        root = self.parent.setdefault(node, node)
        while root != self.parent[root]:
            root = self.parent[root]
        while node != root:
            self.parent[node], node = root, self.parent[node]
        return root

    def union(self, left: int, right: int) -> None:
        left_root, right_root = self.find(left), self.find(right)
        if left_root == right_root:
            return
        # An existing customer beats a new one; the oldest existing one (smallest id) survives.
        if _rank(left_root) <= _rank(right_root):
            self.parent[right_root] = left_root
        else:
            self.parent[left_root] = right_root


def _rank(node: int) -> tuple[int, int]:
    return (0, node) if node > 0 else (1, -node)


def resolve_customers(
    session: Session, store_id: int, inputs: Sequence[CustomerIn]
) -> list[ResolvedCustomer]:
    """Match each input to one customer by its identities; create, update or merge as needed.

    Works on a whole batch at once: one look-up of all identities, one bulk insert of the new
    customers, bulk updates of the changed ones. Two inputs sharing any identity end up as one
    customer; two existing customers sharing an identity are merged into the older one.
    """
    if not inputs:
        return []
    now = utcnow()
    keys_per_input = [_unique(customer.identity_keys()) for customer in inputs]
    known = repository.find_identities(
        session, store_id, (key for keys in keys_per_input for key in keys)
    )
    clusters = _Clusters()
    node_of_key: dict[tuple[str, str], int] = dict(known)
    input_nodes: list[int] = []
    next_new = 0
    source_of_key: dict[tuple[str, str], str] = {}
    for keys, customer_source in zip(
        keys_per_input, (customer.source for customer in inputs), strict=True
    ):
        nodes = {node_of_key[key] for key in keys if key in node_of_key}
        if not nodes:
            next_new -= 1
            nodes = {next_new}
        anchor = min(nodes, key=_rank)
        for node in nodes:
            clusters.union(anchor, node)
        for key in keys:
            if key not in node_of_key:
                node_of_key[key] = anchor
                source_of_key[key] = customer_source
        input_nodes.append(anchor)

    existing_ids = {node for node in clusters.parent if node > 0}
    profiles = repository.load_profiles(session, store_id, existing_ids)
    merged_away = _merge_existing(session, store_id, clusters, existing_ids, profiles, now)

    # Fold every input into its cluster's profile, in input order (later wins).
    roots = [clusters.find(node) for node in input_nodes]
    new_profiles: dict[int, dict[str, Any]] = {}
    changes: dict[int, dict[str, Any]] = {}
    input_changed: list[bool] = []
    for customer, root in zip(inputs, roots, strict=True):
        if root < 0:
            profile = new_profiles.setdefault(root, _blank_profile(store_id, now))
            input_changed.append(_apply(profile, customer, {}))
        else:
            current = profiles[root]
            change = changes.setdefault(root, {})
            input_changed.append(_apply(current, customer, change))

    new_roots = list(new_profiles)
    created_ids = repository.insert_customers(session, [new_profiles[root] for root in new_roots])
    real_id = dict(zip(new_roots, created_ids, strict=True))
    updates = [
        {"id": cid, **change, "updated_at": now} for cid, change in changes.items() if change
    ]
    repository.update_customers(session, updates)

    def final(root: int) -> int:
        return real_id[root] if root < 0 else root

    # Known identities stay where they are (those of merged-away customers moved with them).
    identity_rows = [
        _identity_row(store_id, key, final(clusters.find(node)), source_of_key[key], now)
        for key, node in node_of_key.items()
        if key not in known
    ]
    repository.insert_identities(session, identity_rows)
    new_identity_owners = {row["customer_id"] for row in identity_rows}

    consent_changed = _write_consents(session, store_id, inputs, [final(root) for root in roots])

    results: list[ResolvedCustomer] = []
    seen_new: set[int] = set()
    for index, root in enumerate(roots):
        customer_id = final(root)
        created = root < 0 and root not in seen_new
        if root < 0:
            seen_new.add(root)
        updated = not created and (
            input_changed[index]
            or customer_id in merged_away
            or customer_id in consent_changed
            or (root > 0 and customer_id in new_identity_owners)
        )
        results.append(ResolvedCustomer(customer_id, created, updated))
    return results


def resolve_customer(session: Session, store_id: int, customer: CustomerIn) -> ResolvedCustomer:
    """Resolve a single customer (see resolve_customers)."""
    return resolve_customers(session, store_id, [customer])[0]


def _unique(keys: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return list(dict.fromkeys(keys))


def _blank_profile(store_id: int, now: datetime) -> dict[str, Any]:
    profile: dict[str, Any] = dict.fromkeys(PROFILE_FIELDS)
    profile.update(
        store_id=store_id,
        tags=[],
        attributes={},
        merged_into_id=None,
        first_seen_at=None,
        created_at=now,
        updated_at=now,
    )
    return profile


def _apply(profile: dict[str, Any], customer: CustomerIn, change: dict[str, Any]) -> bool:
    """Fold one input into a stored profile, recording changed columns in `change`."""
    changed = False
    for field in PROFILE_FIELDS:
        value = getattr(customer, field)
        if value is not None and value != "" and profile.get(field) != value:
            profile[field] = change[field] = value
            changed = True
    if customer.tags:
        merged_tags = list(dict.fromkeys([*(profile.get("tags") or []), *customer.tags]))
        if merged_tags != (profile.get("tags") or []):
            profile["tags"] = change["tags"] = merged_tags
            changed = True
    if customer.attributes:
        merged_attributes = {**(profile.get("attributes") or {}), **customer.attributes}
        if merged_attributes != (profile.get("attributes") or {}):
            profile["attributes"] = change["attributes"] = merged_attributes
            changed = True
    seen_at = customer.seen_at
    first_seen = profile.get("first_seen_at")
    if seen_at is not None and (first_seen is None or seen_at < first_seen):
        profile["first_seen_at"] = change["first_seen_at"] = seen_at
        changed = True
    return changed


def _identity_row(
    store_id: int, key: tuple[str, str], customer_id: int, source: str, now: datetime
) -> dict[str, Any]:
    return {
        "store_id": store_id,
        "customer_id": customer_id,
        "kind": key[0],
        "value": key[1],
        "source": source,
        "created_at": now,
    }


def _merge_existing(
    session: Session,
    store_id: int,
    clusters: _Clusters,
    existing_ids: set[int],
    profiles: dict[int, dict[str, Any]],
    now: datetime,
) -> set[int]:
    """Merge existing customers that now share a cluster; return the surviving ids."""
    survivors: set[int] = set()
    for customer_id in sorted(existing_ids):
        survivor = clusters.find(customer_id)
        if survivor == customer_id or survivor < 0:
            continue
        merge_customers(
            session,
            store_id,
            surviving_id=survivor,
            merged_id=customer_id,
            reason="shared identity",
            profiles=profiles,
            now=now,
        )
        survivors.add(survivor)
    return survivors


def _customer_tables() -> list[Table]:
    tables = []
    for table in Base.metadata.sorted_tables:
        if table.name in _SPECIAL_TABLES:
            continue
        if "customer_id" in table.c and "store_id" in table.c:
            tables.append(table)
    return tables


def merge_customers(
    session: Session,
    store_id: int,
    *,
    surviving_id: int,
    merged_id: int,
    reason: str,
    profiles: dict[int, dict[str, Any]] | None = None,
    now: datetime | None = None,
) -> None:
    """Fold `merged_id` into `surviving_id`: move identities, orders, events; keep history."""
    now = now or utcnow()
    profiles = profiles if profiles is not None else {}
    if not profiles.get(surviving_id) or not profiles.get(merged_id):
        profiles.update(repository.load_profiles(session, store_id, [surviving_id, merged_id]))
    survivor, merged = profiles.get(surviving_id), profiles.get(merged_id)
    if survivor is None or merged is None:
        raise NotFoundError("cannot merge customers of another store")
    from patronage.customers.models import CustomerIdentity
    from patronage.loyalty.service import merge_members

    merge_members(
        session, store_id=store_id, surviving_customer_id=surviving_id, merged_customer_id=merged_id
    )
    repository.move_customer_rows(
        session,
        store_id,
        from_id=merged_id,
        to_id=surviving_id,
        tables=[table_of(CustomerIdentity), *_customer_tables()],
    )
    _merge_consents(session, store_id, surviving_id=surviving_id, merged_id=merged_id)
    fill = {
        field: merged[field]
        for field in PROFILE_FIELDS
        if survivor.get(field) in (None, "") and merged.get(field) not in (None, "")
    }
    fill["tags"] = list(dict.fromkeys([*(survivor["tags"] or []), *(merged["tags"] or [])]))
    fill["attributes"] = {**(merged["attributes"] or {}), **(survivor["attributes"] or {})}
    first_seen = [t for t in (survivor["first_seen_at"], merged["first_seen_at"]) if t]
    fill["first_seen_at"] = min(first_seen) if first_seen else None
    survivor.update(fill)
    repository.update_customers(
        session,
        [
            {"id": surviving_id, **fill, "updated_at": now},
            {"id": merged_id, "merged_into_id": surviving_id, "updated_at": now},
        ],
    )
    repository.record_merge(
        session,
        CustomerMerge(
            store_id=store_id,
            surviving_id=surviving_id,
            merged_id=merged_id,
            reason=reason,
            merged_at=now,
        ),
    )


def _merge_consents(session: Session, store_id: int, *, surviving_id: int, merged_id: int) -> None:
    current = repository.load_consents(session, store_id, [surviving_id, merged_id])
    new_rows, changed_rows = [], []
    for (owner, channel), row in current.items():
        if owner != merged_id:
            continue
        kept = current.get((surviving_id, channel))
        moved = {**row, "customer_id": surviving_id}
        moved.pop("id", None)
        if kept is None:
            new_rows.append(moved)
        elif row["recorded_at"] > kept["recorded_at"] and row["status"] != kept["status"]:
            changed_rows.append(moved)
    repository.delete_consents(session, merged_id)
    repository.write_consents(session, new_rows, changed_rows)


def _write_consents(
    session: Session, store_id: int, inputs: Sequence[CustomerIn], customer_ids: list[int]
) -> set[int]:
    """Record consent statements newer than what we hold; return customers whose consent changed."""
    latest: dict[tuple[int, str], dict[str, Any]] = {}
    for customer, customer_id in zip(inputs, customer_ids, strict=True):
        for channel, consent in customer.consents.items():
            key = (customer_id, channel)
            held = latest.get(key)
            if held is None or consent.recorded_at >= held["recorded_at"]:
                latest[key] = {
                    "store_id": store_id,
                    "customer_id": customer_id,
                    "channel": channel,
                    "status": consent.status,
                    "source": consent.source,
                    "recorded_at": consent.recorded_at,
                }
    if not latest:
        return set()
    current = repository.load_consents(session, store_id, {cid for cid, _ in latest})
    new_rows, changed_rows = [], []
    for key, row in latest.items():
        held = current.get(key)
        if held is None:
            new_rows.append(row)
        elif held["status"] != row["status"] and row["recorded_at"] >= held["recorded_at"]:
            changed_rows.append(row)
    repository.write_consents(session, new_rows, changed_rows)
    return {row["customer_id"] for row in new_rows + changed_rows}


def get_customer(session: Session, store_id: int, customer_id: int) -> Customer:
    """Return a customer of this store (following merges) or raise NotFoundError."""
    customer = repository.get_customer(session, store_id, customer_id)
    seen = set()
    while customer is not None and customer.merged_into_id is not None:
        if customer.id in seen:
            break
        seen.add(customer.id)
        customer = repository.get_customer(session, store_id, customer.merged_into_id)
    if customer is None:
        raise NotFoundError(f"customer {customer_id} not found")
    return customer
