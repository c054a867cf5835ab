"""Storing one page of records: batch upserts, identity resolution and lead merges.

Everything here runs inside the caller's transaction, so a page and its cursor commit together.
Writes are executemany batches keyed by `(source, external_id)`: replaying a page changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from core.channels import canonical_channel
from core.records import ActivityRecord, LeadRecord, OutcomeRecord, normalize_email, storable
from core.store import summary
from core.store.bulk import insert_rows, key_batches, one_of, update_rows
from core.store.identity import IdentityData, merge_fields, record_data
from core.store.signatures import signature_ids
from core.store.tables import (
    Activity,
    Identity,
    Lead,
    Outcome,
    Quarantine,
    ScoreHistory,
    table,
    utcnow,
)

LEAD = table(Lead)
IDENTITY = table(Identity)
ACTIVITY = table(Activity)
OUTCOME = table(Outcome)
QUARANTINE = table(Quarantine)
HISTORY = table(ScoreHistory)
CHUNK = 500  # bound on IN-list sizes
RAW_LIMIT = 65_536  # a quarantined payload is kept up to this many characters


@dataclass
class PageCounts:
    read: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    quarantined: int = 0
    touched_leads: set[int] = field(default_factory=set)

    def add(self, other: PageCounts) -> None:
        self.read += other.read
        self.created += other.created
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.quarantined += other.quarantined
        self.touched_leads |= other.touched_leads


def _chunks(items: Sequence[Any], size: int = CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _last_by_key(records: Iterable[Any]) -> list[Any]:
    """Within one page the last record for an external id wins."""
    return list({r.external_id: r for r in records}.values())


class Ingest:
    """Writes one page inside `conn`'s transaction. `priority` pins source order per field."""

    def __init__(self, conn: Connection, priority: Mapping[str, Sequence[str]] | None = None):
        self.conn = conn
        self.priority = priority or {}
        self.now = utcnow()
        # Leads this transaction set dirty: it holds their rows until it commits, so no scorer
        # can clear the flag meanwhile, and setting it again would only write another version.
        self.marked: set[int] = set()

    # -- leads ---------------------------------------------------------------------------------

    def leads(self, source: str, records: Sequence[LeadRecord]) -> PageCounts:
        counts = PageCounts(read=len(records))
        records = _last_by_key(records)
        counts.unchanged += counts.read - len(records)
        existing = self._identities(source, [r.external_id for r in records])
        by_email = self._leads_by_email([r.email for r in records if r.email])
        # New leads are created in email order so that concurrent pulls lock rows in one order.
        fresh = {r.email for r in records if r.email and r.external_id not in existing}
        by_email.update(self._new_leads(sorted(fresh - by_email.keys())))
        new_idents: list[dict[str, Any]] = []
        changed: list[dict[str, Any]] = []
        touched: set[int] = set()
        for rec in records:
            data = record_data(rec)
            row = existing.get(rec.external_id)
            # A record whose fields did not change but whose vendor timestamp moved (a write of
            # ours touched it) is stamped anew: the newest value wins by that stamp, and a store
            # synced often must merge as one synced once from the vendor's current state.
            restamped = (
                row is not None
                and rec.updated_at is not None
                and not _same_instant(row.record_updated_at, rec.updated_at)
            )
            same = row is not None and row.data == data and row.deleted == rec.deleted
            if same and not restamped:
                counts.unchanged += 1
                continue
            if row is None:
                lead_id = by_email.get(rec.email) if rec.email else None
                if lead_id is None:
                    lead_id = self._new_lead(rec.email)
                    if rec.email:
                        by_email[rec.email] = lead_id
                new_idents.append(self._ident_row(source, rec, data, lead_id))
                counts.created += 1
            else:
                lead_id = row.lead_id
                changed.append({**self._ident_row(source, rec, data, lead_id), "_id": row.id})
                counts.updated += 1
            touched.add(lead_id)
        if new_idents:
            insert_rows(self.conn, IDENTITY, new_idents)
        update_rows(
            self.conn,
            IDENTITY,
            [
                {k: v for k, v in c.items() if k not in ("system", "external_id", "lead_id")}
                for c in changed
            ],
        )
        counts.touched_leads = self.refresh_leads(touched)
        return counts

    def _ident_row(
        self, source: str, rec: LeadRecord, data: dict[str, Any], lead_id: int
    ) -> dict[str, Any]:
        return {
            "system": source,
            "external_id": rec.external_id,
            "lead_id": lead_id,
            "data": data,
            "record_updated_at": rec.updated_at or self.now,
            "seen_at": self.now,
            "deleted": rec.deleted,
        }

    def _new_leads(self, emails: Sequence[str]) -> dict[str, int]:
        """Create leads for `emails` (sorted) in batches; an email another pull created meanwhile
        keeps that pull's lead."""
        ids: dict[str, int] = {}
        for chunk in key_batches(self.conn, emails):
            insert = _dialect_insert(self.conn)(LEAD)
            if self.conn.dialect.name == "postgresql":
                # One statement over an array of emails, inserted in their (sorted) order.
                listed = (
                    sa.func.unnest(
                        sa.bindparam(None, list(chunk), type_=postgresql.ARRAY(LEAD.c.email.type))
                    )
                    .table_valued("email", with_ordinality="n")
                    .render_derived()
                )
                stamp = sa.bindparam(None, self.now, type_=LEAD.c.created_at.type)
                insert = insert.from_select(
                    ["email", "custom", "created_at", "updated_at", "dirty"],
                    sa.select(
                        listed.c.email,
                        sa.bindparam(None, {}, type_=LEAD.c.custom.type),
                        stamp,
                        stamp,
                        sa.true(),
                    ).order_by(listed.c.n),
                )
                rows: list[dict[str, Any]] | None = None
            else:
                rows = [
                    {
                        "email": email,
                        "custom": {},
                        "created_at": self.now,
                        "updated_at": self.now,
                        "dirty": True,
                    }
                    for email in chunk
                ]
            result = self.conn.execute(
                insert.on_conflict_do_nothing(index_elements=["email"]).returning(
                    LEAD.c.id, LEAD.c.email
                ),
                rows,
            )
            ids.update({row.email: int(row.id) for row in result})
            missing = [email for email in chunk if email not in ids]
            if missing:
                ids.update(self._leads_by_email(missing))
        return ids

    def _new_lead(self, email: str | None) -> int:
        """Create a lead; when another pull created one with this email meanwhile, use that one."""
        values: dict[str, Any] = {
            "email": email,
            "custom": {},
            "created_at": self.now,
            "updated_at": self.now,
            "dirty": True,
        }
        if email is None:
            result = self.conn.execute(LEAD.insert().values(values))
            return int(result.inserted_primary_key[0])  # type: ignore[index]
        insert = _dialect_insert(self.conn)(LEAD).values(values)
        created = self.conn.execute(
            insert.on_conflict_do_nothing(index_elements=["email"]).returning(LEAD.c.id)
        ).scalar_one_or_none()
        if created is not None:
            return int(created)
        return int(
            self.conn.execute(sa.select(LEAD.c.id).where(LEAD.c.email == email)).scalar_one()
        )

    def _identities(self, system: str, external_ids: Sequence[str]) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for chunk in key_batches(self.conn, list(external_ids)):
            rows = self.conn.execute(
                sa.select(IDENTITY).where(
                    IDENTITY.c.system == system, one_of(self.conn, IDENTITY.c.external_id, chunk)
                )
            )
            found.update({row.external_id: row for row in rows})
        return found

    def _leads_by_email(self, emails: Sequence[str]) -> dict[str, int]:
        found: dict[str, int] = {}
        for chunk in key_batches(self.conn, sorted(set(emails))):
            rows = self.conn.execute(
                sa.select(LEAD.c.id, LEAD.c.email).where(one_of(self.conn, LEAD.c.email, chunk))
            )
            found.update({row.email: row.id for row in rows})
        return found

    def refresh_leads(self, lead_ids: set[int]) -> set[int]:
        """Recompute the fields of `lead_ids` from their identities; merge leads sharing an email.

        Returns the ids that still exist (merged-away leads are gone) and marks them dirty.
        """
        pending = set(lead_ids)
        alive: set[int] = set()
        while pending:
            merged = self._merged_fields(sorted(pending))
            alive |= pending
            pending = set()
            owners = self._leads_by_email([m["email"] for m in merged.values() if m["email"]])
            updates = []
            for lead_id, fields in merged.items():
                owner = owners.get(fields["email"]) if fields["email"] else None
                if owner is not None and owner != lead_id:
                    self.merge_leads(source_id=lead_id, target_id=owner)
                    alive.discard(lead_id)
                    pending.add(owner)
                    continue
                updates.append({**fields, "_id": lead_id, "updated_at": self.now, "dirty": True})
            update_rows(self.conn, LEAD, updates)
            self.marked.update(u["_id"] for u in updates)
        return alive

    def _merged_fields(self, lead_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
        groups: dict[int, list[IdentityData]] = {i: [] for i in lead_ids}
        for chunk in key_batches(self.conn, list(lead_ids)):
            rows = self.conn.execute(
                sa.select(
                    IDENTITY.c.lead_id,
                    IDENTITY.c.system,
                    IDENTITY.c.data,
                    IDENTITY.c.record_updated_at,
                ).where(one_of(self.conn, IDENTITY.c.lead_id, chunk), IDENTITY.c.deleted.is_(False))
            )
            for row in rows:
                groups[row.lead_id].append(
                    IdentityData(row.system, row.data, row.record_updated_at)
                )
        result = {}
        for lead_id, idents in groups.items():
            fields = merge_fields(idents, self.priority)
            fields["email"] = normalize_email(fields["email"])
            fields["channel"] = canonical_channel(fields["channel"])
            result[lead_id] = fields
        return result

    def merge_leads(self, source_id: int, target_id: int) -> None:
        """Fold lead `source_id` into `target_id`: identities, activities, outcomes and history
        move; its scores and outbox rows go (the target is rescored and re-pushed)."""
        summary.forget(self.conn, source_id, target_id)
        moved = (IDENTITY, ACTIVITY, OUTCOME, HISTORY)
        for moving in moved:
            self.conn.execute(
                moving.update().where(moving.c.lead_id == source_id).values(lead_id=target_id)
            )
        for other in LEAD.metadata.sorted_tables:
            if "lead_id" in other.c and other not in moved:
                self.conn.execute(other.delete().where(other.c.lead_id == source_id))
        self.conn.execute(LEAD.delete().where(LEAD.c.id == source_id))

    # -- activities and outcomes ---------------------------------------------------------------

    def resolve_lead_keys(self, source: str, keys: Iterable[str]) -> dict[str, int]:
        """Map each lead key (this source's external id, or an email) to a lead id.

        An unknown key gets a lead of its own so that no activity is lost; when the lead record
        arrives later it joins the same identity.
        """
        keys = sorted(set(keys))
        by_ident = {k: row.lead_id for k, row in self._identities(source, keys).items()}
        emails = [normalize_email(k) or k for k in keys if "@" in k and k not in by_ident]
        by_email = self._leads_by_email(emails)
        resolved: dict[str, int] = {}
        for key in keys:
            if key in by_ident:
                resolved[key] = by_ident[key]
            elif "@" in key and (normalize_email(key) or key) in by_email:
                resolved[key] = by_email[normalize_email(key) or key]
            else:
                email = normalize_email(key) if "@" in key else None
                lead_id = self._new_lead(email)
                if email:
                    by_email[email] = lead_id
                else:
                    self.conn.execute(
                        IDENTITY.insert(),
                        [
                            {
                                "system": source,
                                "external_id": key,
                                "lead_id": lead_id,
                                "data": {},
                                "record_updated_at": None,
                                "seen_at": self.now,
                                "deleted": False,
                            }
                        ],
                    )
                resolved[key] = lead_id
        return resolved

    def activities(self, source: str, records: Sequence[ActivityRecord]) -> PageCounts:
        return self._keyed_upsert(
            ACTIVITY, source, records, ("type", "occurred_at", "properties"), signed=True
        )

    def outcomes(self, source: str, records: Sequence[OutcomeRecord]) -> PageCounts:
        return self._keyed_upsert(OUTCOME, source, records, ("status", "closed_at", "amount"))

    def _keyed_upsert(
        self,
        table: sa.Table,
        source: str,
        records: Sequence[ActivityRecord] | Sequence[OutcomeRecord],
        fields: tuple[str, ...],
        signed: bool = False,
    ) -> PageCounts:
        """Upsert records keyed by (source, external_id): the lead they belong to and `fields`,
        each a column named as the record's attribute; `signed`: activities, stored with the
        signature of their (type, properties)."""
        compare = ("lead_id", *fields)
        counts = PageCounts(read=len(records))
        records = _last_by_key(records)
        counts.unchanged += counts.read - len(records)
        leads = self.resolve_lead_keys(source, (r.lead for r in records))
        existing: dict[str, Any] = {}
        for chunk in key_batches(self.conn, [r.external_id for r in records]):
            rows = self.conn.execute(
                sa.select(table).where(
                    table.c.source == source, one_of(self.conn, table.c.external_id, chunk)
                )
            )
            existing.update({r.external_id: r for r in rows})
        inserts, updates = [], []
        for rec in records:
            new = {"lead_id": leads[rec.lead], **{f: getattr(rec, f) for f in fields}}
            old = existing.get(rec.external_id)
            if old is not None and all(_same(getattr(old, k), new[k]) for k in compare):
                counts.unchanged += 1
                continue
            if old is None:
                inserts.append({"source": source, "external_id": rec.external_id, **new})
                counts.created += 1
            else:
                updates.append({"_id": old.id, **new})
                counts.updated += 1
                counts.touched_leads.add(old.lead_id)
            counts.touched_leads.add(new["lead_id"])
        if signed:
            written = [*inserts, *updates]
            pairs = [(row["type"], row["properties"]) for row in written]
            for row, sig in zip(written, signature_ids(self.conn, pairs), strict=True):
                row["signature_id"] = sig
        if inserts:
            insert_rows(self.conn, table, inserts)
        update_rows(self.conn, table, updates)
        self.mark_dirty(counts.touched_leads)
        return counts

    def mark_dirty(self, lead_ids: Iterable[int]) -> None:
        ids = sorted(set(lead_ids) - self.marked)
        for chunk in key_batches(self.conn, ids):
            self.conn.execute(
                LEAD.update().where(one_of(self.conn, LEAD.c.id, chunk)).values(dirty=True)
            )
        self.marked.update(ids)

    def quarantine(self, source: str, stream: str, items: Sequence[Any]) -> int:
        """Park invalid payloads; the same payload quarantined again is not stored twice."""
        if not items:
            return 0
        items = [
            type(i)(storable(i.raw), storable(i.reason), storable(i.record_ref)) for i in items
        ]
        refs = sorted({i.record_ref[:255] for i in items})
        known: set[tuple[str, str]] = set()
        for chunk in key_batches(self.conn, refs):
            rows = self.conn.execute(
                sa.select(QUARANTINE.c.record_ref, QUARANTINE.c.raw).where(
                    QUARANTINE.c.source == source,
                    QUARANTINE.c.stream == stream,
                    one_of(self.conn, QUARANTINE.c.record_ref, chunk),
                )
            )
            known.update((r.record_ref, r.raw) for r in rows)
        fresh = [i for i in items if (i.record_ref[:255], i.raw[:RAW_LIMIT]) not in known]
        if fresh:
            self.conn.execute(
                QUARANTINE.insert(),
                [
                    {
                        "source": source,
                        "stream": stream,
                        "record_ref": i.record_ref[:255],
                        "raw": i.raw[:RAW_LIMIT],
                        "reason": i.reason,
                        "created_at": self.now,
                    }
                    for i in fresh
                ],
            )
        return len(items)


def _dialect_insert(conn: Connection) -> Any:
    """The dialect's INSERT, which knows ON CONFLICT (SQLite and PostgreSQL both do)."""
    return postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert


def _same_instant(old: datetime | None, new: datetime) -> bool:
    """Whether two timestamps are one instant (naive ones, as SQLite returns them, are UTC)."""
    if old is None:
        return False
    if old.tzinfo is None:
        old = old.replace(tzinfo=UTC)
    if new.tzinfo is None:
        new = new.replace(tzinfo=UTC)
    return old == new


def _same(old: Any, new: Any) -> bool:
    if isinstance(old, datetime) and isinstance(new, datetime):
        return old == new
    if isinstance(old, float) or isinstance(new, float):
        return old is not None and new is not None and abs(float(old) - float(new)) < 1e-9
    return bool(old == new)
