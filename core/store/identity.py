"""Which value of a lead field wins when several systems know the person.

Pure functions: the store hands in each identity's data and timestamps and writes back the result.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from core.records import LEAD_FIELDS, LeadRecord


@dataclass(frozen=True)
class IdentityData:
    system: str
    data: Mapping[str, Any]
    updated_at: datetime | None


def record_data(record: LeadRecord) -> dict[str, Any]:
    """What an identity keeps of a lead record: its non-empty fields, plus `custom` if any."""
    data: dict[str, Any] = {k: v for k, v in record.fields().items() if v is not None}
    if record.custom:
        data["custom"] = {k: v for k, v in record.custom.items() if v not in (None, "")}
    return data


def _rank(item: IdentityData, field: str, priority: Mapping[str, Sequence[str]]) -> tuple[Any, ...]:
    order = priority.get(field)
    pinned = order.index(item.system) if order and item.system in order else len(order or ())
    stamp = item.updated_at.timestamp() if item.updated_at else float("-inf")
    # Lower pinned position first, then the most recent; system name breaks ties deterministically.
    return (pinned, -stamp, item.system)


def merge_fields(
    identities: Sequence[IdentityData], priority: Mapping[str, Sequence[str]] | None = None
) -> dict[str, Any]:
    """Per field: the pinned source order if any, else the newest non-empty value.

    >>> a = IdentityData("crm", {"city": "Oslo"}, None)
    >>> merge_fields([a])["city"]
    'Oslo'
    """
    priority = priority or {}
    merged: dict[str, Any] = dict.fromkeys(LEAD_FIELDS)
    for field in LEAD_FIELDS:
        holders = [i for i in identities if i.data.get(field) not in (None, "")]
        if holders:
            merged[field] = min(holders, key=lambda i: _rank(i, field, priority)).data[field]
    custom: dict[str, Any] = {}
    key_holders: dict[str, list[IdentityData]] = {}
    for ident in identities:
        for key in ident.data.get("custom", {}):
            key_holders.setdefault(key, []).append(ident)
    for key, holders in sorted(key_holders.items()):
        best = min(holders, key=lambda i: _rank(i, f"custom.{key}", priority))
        custom[key] = best.data["custom"][key]
    merged["custom"] = custom
    return merged
