"""A destination that records every call and behaves like a small CRM, for write-back tests.

It keeps records by id, creates one (idempotently, by email) for an item without a record id,
and can be told to reject given leads, to answer "retry" for them a number of times, or to fail.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from connectors.base.contract import QualifiedItem, WriteItem, WriteOutcome


class RecordingDestination:
    def __init__(self, name: str = "crm", batch_size: int = 100) -> None:
        self.name = name
        self.batch_size = batch_size
        self.calls: list[list[WriteItem]] = []
        self.actions: list[list[QualifiedItem]] = []
        self.prepared = 0
        self.reject: dict[int, str] = {}  # lead id → the vendor's reason, every time
        self.retry: dict[int, int] = {}  # lead id → how many more times to answer "retry"
        self.fail_with: Exception | None = None  # raised by the next write
        self.records: dict[str, dict[str, Any]] = {}  # record id → field values
        self._by_email: dict[str, str] = {}

    @property
    def sent(self) -> list[int]:
        """Lead ids in the order they were sent, one entry per send."""
        return [item.lead_id for call in self.calls for item in call]

    def prepare(self) -> None:
        self.prepared += 1

    def write(self, batch: Sequence[WriteItem]) -> list[WriteOutcome]:
        assert len(batch) <= self.batch_size
        self.calls.append(list(batch))
        if self.fail_with is not None:
            error, self.fail_with = self.fail_with, None
            raise error
        return [self._write_one(item) for item in batch]

    def _write_one(self, item: WriteItem) -> WriteOutcome:
        if item.lead_id in self.reject:
            return WriteOutcome(item.lead_id, "rejected", reason=self.reject[item.lead_id])
        if self.retry.get(item.lead_id, 0) > 0:
            self.retry[item.lead_id] -= 1
            return WriteOutcome(item.lead_id, "retry", reason="503 busy, try later")
        record_id = item.record_id or self._by_email.get(item.email or "")
        if record_id is None:
            record_id = f"rec-{len(self.records) + 1}"
            if item.email:
                self._by_email[item.email] = record_id
        self.records.setdefault(record_id, {}).update({**item.lead_fields, **item.values})
        return WriteOutcome(item.lead_id, "ok", record_id=record_id)

    def on_qualified(self, batch: Sequence[QualifiedItem]) -> list[WriteOutcome]:
        self.actions.append(list(batch))
        return [WriteOutcome(item.lead_id, "ok") for item in batch]
