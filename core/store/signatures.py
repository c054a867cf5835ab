"""Activity signatures: each distinct (type, properties) pair stored once, referenced by id.

Scoring matches engagement rules (type, URL glob, `where`) once per signature, then counts
activities by signature id in SQL, so no activity's JSON is parsed when a model is rescored.
Writers give new activities their signature as they store them (`signature_ids`); rows written
any other way, or before signatures existed, are signed by `sign_activities`, which finds them
through a partial index and costs nothing when there are none.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from core.store.bulk import key_batches, one_of
from core.store.tables import Activity, ActivitySignature, table

SIGNATURE = table(ActivitySignature)
_ACTIVITY = table(Activity)
BATCH = 20_000


def digest(kind: str, properties: Mapping[str, Any] | None) -> str:
    """The key of a (type, properties) pair: the same content in any key order, one digest."""
    text = json.dumps(properties or {}, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(f"{kind}\0{text}".encode()).hexdigest()


def signature_ids(
    conn: Connection, pairs: Sequence[tuple[str, Mapping[str, Any] | None]]
) -> list[int]:
    """The signature id of each (type, properties) pair, creating the missing signatures."""
    keys = [digest(kind, props) for kind, props in pairs]
    known: dict[str, int] = {}
    for chunk in key_batches(conn, sorted(set(keys))):
        rows = conn.execute(
            sa.select(SIGNATURE.c.digest, SIGNATURE.c.id).where(
                one_of(conn, SIGNATURE.c.digest, chunk)
            )
        )
        known.update({r.digest: r.id for r in rows})
    fresh: dict[str, dict[str, Any]] = {}
    for key, (kind, props) in zip(keys, pairs, strict=True):
        if key not in known and key not in fresh:
            fresh[key] = {"digest": key, "type": kind, "properties": dict(props or {})}
    if fresh:
        insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
        # Another writer may store the same signature meanwhile: either row serves.
        conn.execute(
            insert(SIGNATURE).on_conflict_do_nothing(index_elements=["digest"]),
            list(fresh.values()),
        )
        for chunk in key_batches(conn, sorted(fresh)):
            rows = conn.execute(
                sa.select(SIGNATURE.c.digest, SIGNATURE.c.id).where(
                    one_of(conn, SIGNATURE.c.digest, chunk)
                )
            )
            known.update({r.digest: r.id for r in rows})
    return [known[k] for k in keys]


def sign_activities(conn: Connection) -> int:
    """Give every unsigned activity its signature; the number of activities signed."""
    signed = 0
    while True:
        rows = conn.execute(
            sa.select(_ACTIVITY.c.id, _ACTIVITY.c.type, sa.cast(_ACTIVITY.c.properties, sa.Text))
            .where(_ACTIVITY.c.signature_id.is_(None))
            .order_by(_ACTIVITY.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            return signed
        parsed: dict[str | None, dict[str, Any]] = {}
        pairs = []
        for _id, kind, raw in rows:
            props = parsed.get(raw)
            if props is None:
                props = parsed[raw] = json.loads(raw) if raw else {}
            pairs.append((kind, props))
        ids = signature_ids(conn, pairs)
        by_signature: dict[int, list[int]] = {}
        for row, sig in zip(rows, ids, strict=True):
            by_signature.setdefault(sig, []).append(row[0])
        for sig, activity_ids in by_signature.items():
            for start in range(0, len(activity_ids), 500):
                conn.execute(
                    _ACTIVITY.update()
                    .where(_ACTIVITY.c.id.in_(activity_ids[start : start + 500]))
                    .values(signature_id=sig)
                )
        signed += len(rows)


def load_signatures(
    conn: Connection, ids: Sequence[int] | None = None
) -> Iterable[tuple[int, str, dict[str, Any]]]:
    """(id, type, properties) of the signatures with these ids (None: every signature)."""
    query = sa.select(SIGNATURE.c.id, SIGNATURE.c.type, sa.cast(SIGNATURE.c.properties, sa.Text))
    batches: Iterable[Sequence[int] | None] = [None] if ids is None else key_batches(conn, ids)
    for batch in batches:
        where = query if batch is None else query.where(one_of(conn, SIGNATURE.c.id, batch))
        for sig, kind, raw in conn.execute(where):
            yield sig, kind, (json.loads(raw) if raw else {}) or {}
