"""The conformance suite every destination passes, over HTTP against its vendor's sandbox.

A destination's tests describe how to reach its sandbox with a `DestinationHarness` (make the
destination, seed leads that have a record there, read a record back as the vendor stores it,
make the vendor fail or refuse, archive or delete a record) and call the checks:

- `check_outcomes_match_the_batch`: one WriteOutcome per item, in the batch's order; a record the
  vendor refuses is `rejected` with the vendor's own reason, the others are written;
- `check_failures_are_retried`: 429 and 5xx answers leave the records waiting to be retried (never
  parked), and a later push delivers them;
- `check_encodings`: every output type read back from the vendor's stored record — booleans,
  numbers, enumerations (a tier value no option lists yet too), dates, the reason within the
  vendor's length limit. The oracle is the vendor's documented format: each harness gives a
  decoder per output written from the vendor's docs, never the connector's own encoder;
- `check_gone_records_are_left_alone`: archived, converted and deleted records are never written,
  nor created again;
- `check_unchanged_values_make_no_calls`: through the outbox, a second push sends nothing.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import sqlalchemy as sa

from connectors.base.contract import Destination, WriteItem
from connectors.base.settings import DestinationSettings
from core.pipeline.outbox import OUTBOX, mapped_values, push
from core.store.ingest import IDENTITY, LEAD
from core.store.store import Store
from tests.writeback.conftest import set_scores

Failure = Literal["rate_limit", "server_error"]
Gone = Literal["archived", "converted", "deleted"]
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)  # the pushes' clock; retries are waited out by it
QUALIFIED_AT = datetime(2026, 3, 2, 9, 30, 15, tzinfo=UTC)
REASON = "Director at a 500-person company; visited pricing 3 times; " + "webinar; " * 7300
# Two leads' outputs covering every type: numbers with and without a fraction, a tier no
# enumeration lists yet ("lukewarm"), both booleans, a date and its absence, a reason longer than
# any vendor's text field and a short one.
OUTPUTS: tuple[dict[str, Any], ...] = (
    {"total": 72.0, "fit": 41.5, "engagement": 30.5, "tier": "hot", "grade": "A2",
     "qualified": True, "qualified_at": QUALIFIED_AT, "reason": REASON},
    {"total": 12.0, "fit": 6.0, "engagement": 6.0, "tier": "lukewarm", "grade": "D4",
     "qualified": False, "qualified_at": None, "reason": "Free email address"},
)  # fmt: skip


class DestinationHarness(ABC):
    """One destination and its running sandbox, as the checks need them.

    Attributes:
        block: the destination block's write-back keys (`connector`, `fields`, `system`, …);
            `fields` maps every output the vendor can hold, so that each type is checked.
        upsert: the keys that make the block an `upsert` one (`mode`, `lead_fields`, …).
        decoders: output → the vendor's documented stored form read back to a Python value;
            a decoder raises on a form the vendor does not document.
        reason_limit: characters the vendor's field for the reason holds (None: no limit).
        gone: the ways a record can be gone at this vendor.
    """

    name: str = "conformance"
    block: Mapping[str, Any]
    upsert: Mapping[str, Any] = {"mode": "upsert"}
    decoders: Mapping[str, Callable[[Any], Any]]
    reason_limit: int | None = None
    gone: tuple[Gone, ...] = ()

    def config(self, **overrides: Any) -> DestinationSettings:
        return DestinationSettings.model_validate({**self.block, **overrides, "name": self.name})

    @abstractmethod
    def destination(self, config: DestinationSettings) -> Destination:
        """A fresh destination writing to the sandbox (no real sleeps)."""

    @abstractmethod
    def records(self, n: int) -> list[tuple[str, str]]:
        """`n` live records of the sandbox not used before, as (email, record id)."""

    @abstractmethod
    def stored(self, record_id: str) -> Mapping[str, Any] | None:
        """The record as the vendor stores it (field → value), archived or deleted ones too."""

    @abstractmethod
    def holding(self, email: str) -> int:
        """How many records the vendor holds for `email`, whatever their state."""

    @abstractmethod
    def calls(self) -> int:
        """Vendor API calls the sandbox has answered so far."""

    @abstractmethod
    def fail(self, kind: Failure | None) -> None:
        """From now on answer every vendor call with a 429 or a 500 (None: stop)."""

    @abstractmethod
    def refuse(self, record_id: str) -> str:
        """Make the vendor refuse the next write to the record; a part of the reason it gives."""

    def make_gone(self, store: Store, lead_id: int, record_id: str, kind: Gone) -> None:
        """Archive, convert or delete the record (and let the store know, as a pull would)."""
        raise NotImplementedError(kind)

    def allowed(self, output: str) -> set[str] | None:
        """The values an enumeration field takes now (None: not an enumeration)."""
        return None


# -- seeding ---------------------------------------------------------------------------------


def seed(store: Store, harness: DestinationHarness, n: int) -> list[tuple[int, str]]:
    """`n` store leads, each matched to a live vendor record: (lead id, record id)."""
    records = harness.records(n)
    assert len(records) == n, f"the sandbox has fewer than {n} records left"
    system = harness.config().identity_system
    rows = [
        {"email": email, "first_name": "Ada", "last_name": f"Lee{i}", "company": f"Co {i}",
         "custom": {}, "created_at": T0, "updated_at": T0, "dirty": False}
        for i, (email, _) in enumerate(records)
    ]  # fmt: skip
    with store.begin() as conn:
        ids = [
            int(conn.execute(LEAD.insert().values(**row)).inserted_primary_key[0]) for row in rows
        ]
        conn.execute(
            IDENTITY.insert(),
            [
                {"system": system, "external_id": record_id, "lead_id": lead_id, "data": {},
                 "record_updated_at": T0, "seen_at": T0, "deleted": False}
                for lead_id, (_, record_id) in zip(ids, records, strict=True)
            ],
        )  # fmt: skip
    return [(lead_id, record_id) for lead_id, (_, record_id) in zip(ids, records, strict=True)]


def mark_deleted(store: Store, system: str, record_id: str) -> None:
    """What a pull records when the vendor reports the record deleted."""
    with store.begin() as conn:
        conn.execute(
            IDENTITY.update()
            .where(IDENTITY.c.system == system, IDENTITY.c.external_id == record_id)
            .values(deleted=True)
        )


def score(store: Store, lead_ids: Sequence[int], outputs: Mapping[str, Any]) -> None:
    values = dict(outputs)
    set_scores(store, lead_ids, float(values.pop("total")), **values)


def states(store: Store, destination: str, lead_ids: Sequence[int]) -> dict[int, str]:
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(OUTBOX.c.lead_id, OUTBOX.c.state).where(
                OUTBOX.c.destination == destination, OUTBOX.c.lead_id.in_(list(lead_ids))
            )
        ).all()
    return {int(lead_id): str(state) for lead_id, state in rows}


def email_of(store: Store, lead_id: int) -> str:
    with store.engine.connect() as conn:
        return str(conn.execute(sa.select(LEAD.c.email).where(LEAD.c.id == lead_id)).scalar())


# -- the checks --------------------------------------------------------------------------------


def check_outcomes_match_the_batch(store: Store, harness: DestinationHarness) -> None:
    """One outcome per item, in order; the refused record rejected with the vendor's reason."""
    seeded = seed(store, harness, 5)
    config = harness.config()
    destination = harness.destination(config)
    destination.prepare()
    refused_lead, refused_record = seeded[2]
    says = harness.refuse(refused_record)
    values = mapped_values(OUTPUTS[1], config.fields)
    emails = {lead: email_of(store, lead) for lead, _ in seeded}
    # not in lead-id order: the outcomes must follow the batch, not the ids
    batch = [WriteItem(lead, record, values, email=emails[lead]) for lead, record in seeded[::-1]]

    outcomes = destination.write(batch)

    assert [o.lead_id for o in outcomes] == [i.lead_id for i in batch]
    by_lead = {o.lead_id: o for o in outcomes}
    refused = by_lead[refused_lead]
    assert refused.status == "rejected", f"a refused record came back {refused.status}"
    assert says.lower() in refused.reason.lower(), f"{says!r} not in {refused.reason!r}"
    assert {o.status for o in outcomes if o.lead_id != refused_lead} == {"ok"}, outcomes


def check_failures_are_retried(store: Store, harness: DestinationHarness) -> None:
    """429 and 5xx: records wait with backoff (never parked); a later push delivers them."""
    seeded = seed(store, harness, 3)
    leads = [lead for lead, _ in seeded]
    config = harness.config()
    destination = harness.destination(config)
    score(store, leads, OUTPUTS[0])
    destination.prepare()  # the checks, not the writes, would otherwise meet the failures
    now = T0
    for kind in ("rate_limit", "server_error"):
        harness.fail(kind)
        try:
            result = push(store, config, destination, now=now)
        finally:
            harness.fail(None)
        assert result.accepted == 0 and result.parked == 0, (kind, result)
        assert set(states(store, config.name, leads).values()) == {"retry"}, kind
        now += timedelta(hours=7)  # past any backoff

    result = push(store, config, destination, now=now)

    assert result.ok and result.accepted == 3, result.error
    decode = harness.decoders["total"]
    for _, record_id in seeded:
        stored = harness.stored(record_id) or {}
        assert decode(stored.get(config.fields["total"])) == OUTPUTS[0]["total"]


def check_encodings(store: Store, harness: DestinationHarness) -> None:
    """Each output as the vendor stores it, read back through the vendor's documented format."""
    seeded = seed(store, harness, len(OUTPUTS))
    config = harness.config()
    for (lead, _), outputs in zip(seeded, OUTPUTS, strict=True):
        score(store, [lead], outputs)

    result = push(store, config, harness.destination(config), now=T0)

    assert result.ok and result.accepted == len(OUTPUTS), (result.error, result.rejections)
    for (_, record_id), outputs in zip(seeded, OUTPUTS, strict=True):
        stored = harness.stored(record_id)
        assert stored is not None, f"record {record_id} is gone"
        for output, field in config.fields.items():
            raw = stored.get(field)
            value = harness.decoders[output](raw)
            expected = outputs[output]
            if output == "reason":
                check_reason(harness, str(expected), value)
                continue
            assert value == expected, f"{output} → {field}: stored {raw!r}, expected {expected!r}"
            allowed = harness.allowed(output)
            if allowed is not None:
                assert value in allowed, f"{field}: {value!r} is not one of its options {allowed}"


def check_reason(harness: DestinationHarness, reason: str, stored: Any) -> None:
    """The reason fits the vendor's field: whole when it fits, else cut to the limit."""
    assert isinstance(stored, str), f"reason stored as {stored!r}"
    limit = harness.reason_limit
    if limit is None or len(reason) <= limit:
        assert stored == reason
        return
    assert len(stored) <= limit, f"a reason of {len(stored)} characters; the field holds {limit}"
    assert reason.startswith(stored.removesuffix("…")) and len(stored) >= limit // 2


def check_gone_records_are_left_alone(
    store: Store, harness: DestinationHarness, kind: Gone
) -> None:
    """An archived, converted or deleted record is never written, nor created again."""
    [(lead, record_id)] = seed(store, harness, 1)
    email = email_of(store, lead)
    assert harness.stored(record_id) is not None
    harness.make_gone(store, lead, record_id, kind)
    gone = dict(harness.stored(record_id) or {})
    holding = harness.holding(email)
    score(store, [lead], OUTPUTS[0])

    for overrides in ({}, dict(harness.upsert)):
        config = harness.config(**overrides)
        result = push(store, config, harness.destination(config), now=T0)
        assert result.accepted == 0, f"{kind} record written ({overrides or 'update'} mode)"
        assert harness.holding(email) == holding, f"a {kind} record was created again"
        now = dict(harness.stored(record_id) or {})
        for field in config.fields.values():
            assert now.get(field) == gone.get(field), f"{kind} record's {field} was written"
    assert states(store, harness.name, [lead]).get(lead) in (None, "parked")


def check_unchanged_values_make_no_calls(store: Store, harness: DestinationHarness) -> None:
    """Through the outbox: what the vendor already holds is not sent again."""
    seeded = seed(store, harness, 4)
    leads = [lead for lead, _ in seeded]
    config = harness.config()
    score(store, leads, OUTPUTS[0])
    first = push(store, config, harness.destination(config), now=T0)
    assert first.ok and first.accepted == 4, first.error
    calls = harness.calls()

    again = push(store, config, harness.destination(config), now=T0 + timedelta(hours=1))

    assert again.ok and (again.attempted, again.calls) == (0, 0)
    assert harness.calls() == calls, "an unchanged push called the vendor"


# -- decoders shared by harnesses ---------------------------------------------------------------


def iso_datetime(value: Any) -> datetime | None:
    """An ISO 8601 date-time with its offset (`Z`, `+00:00` or `+0000`), as an aware datetime."""
    if value in (None, ""):
        return None
    text = str(value).replace("Z", "+00:00")
    if text[-5] in "+-" and text[-3] != ":":
        text = f"{text[:-2]}:{text[-2:]}"
    when = datetime.fromisoformat(text)
    assert when.tzinfo is not None, f"{value!r} has no offset"
    return when
