"""Intake: leads handed over outside a pull (webhook deliveries), stored by a worker in batches.

With Redis, `leadhub serve` does not write a delivery's leads itself: it appends them to a list
in Redis (`leadhub:intake:<source>`) and asks for an `intake` job (coalesced: one waits in the
queue at most). The job stores what the list holds as pages of up to `BATCH` items, trimming
each page off the list only once it is committed, then asks for a score. So a burst of
deliveries costs the web process a Redis append each, and the store a few large pages instead of
one small transaction per delivery, while the API's reads run beside it.

A page is read, stored, then trimmed: a worker killed in between leaves the page on the list, and
the next job stores it again (pages upsert on their ids). One intake job per source runs at a time.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from connectors.base.contract import Invalid, Item
from core.records import ActivityRecord, LeadRecord, OutcomeRecord

if TYPE_CHECKING:
    import redis

BATCH = 500
_KINDS: dict[str, Any] = {"lead": LeadRecord, "activity": ActivityRecord, "outcome": OutcomeRecord}


def key(source: str) -> str:
    """The Redis list of `source`'s items waiting to be stored."""
    return f"leadhub:intake:{source}"


def encode(item: Item) -> str:
    """One item as JSON text: its kind and its fields."""
    if isinstance(item, Invalid):
        return json.dumps({"kind": "invalid", "fields": dataclasses.asdict(item)})
    kind = next(k for k, cls in _KINDS.items() if isinstance(item, cls))
    return json.dumps({"kind": kind, "fields": item.model_dump(mode="json")})


def decode(text: str | bytes) -> Item:
    """The item `encode` wrote."""
    data = json.loads(text)
    if data["kind"] == "invalid":
        return Invalid(**data["fields"])
    record: Item = _KINDS[data["kind"]].model_validate(data["fields"])
    return record


def hand_over(client: redis.Redis[bytes], source: str, items: Sequence[Item]) -> None:
    """Append `items` to `source`'s intake list."""
    if items:
        client.rpush(key(source), *(encode(i) for i in items))


def waiting(client: redis.Redis[bytes], source: str) -> int:
    """How many items wait in `source`'s intake list."""
    return int(client.llen(key(source)))


def next_page(client: redis.Redis[bytes], source: str, size: int = BATCH) -> list[Item]:
    """The oldest `size` items of the list, left on it (`done` trims them once stored)."""
    return [decode(text) for text in client.lrange(key(source), 0, size - 1)]


def done(client: redis.Redis[bytes], source: str, count: int) -> None:
    """Trim the `count` items of a stored page off the list."""
    client.ltrim(key(source), count, -1)
