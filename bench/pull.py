"""Pull throughput: records per second and requests per 1,000 records, per vendor sandbox.

Each installed sandbox is seeded with a world sized to give about `records` source records
(measured with a 1,000-person pull first), served over real HTTP on 127.0.0.1, and pulled
end to end into a fresh SQLite store: HTTP, parsing, identity resolution and upserts. Requests
are counted by the sandbox, so paging and retries show whatever the connector believes it did.
"""

from __future__ import annotations

import math
import time
from typing import Any

from bench.sandboxes import hub_config, missing, per_thousand, sandbox_hub
from connectors.sandbox.hub import VENDORS
from connectors.sandbox.world import World
from core.errors import LeadhubError
from core.pipeline.pull import pull_source
from core.store.store import Store

SEED = 42
CALIBRATION_PEOPLE = 400
MIN_PEOPLE = 200
ROW_KEYS = ("vendor", "people", "records", "seconds", "records_per_s", "requests",
            "requests_per_1000", "sandbox_share", "status")  # fmt: skip
_records_per_person: dict[str, float] = {}


def pull_vendor(vendor: str, people: int) -> dict[str, Any]:
    """Pull every source of `vendor`'s demo blocks from a sandbox of `people` people."""
    from connectors.base import SourceContext, open_source

    world = World.build(seed=SEED, people=people)
    with sandbox_hub(world, [vendor]) as hub, hub_config(hub.base, [vendor]) as (config, tmp):
        if not config.sources:
            return _row(vendor, status="no source in its demo blocks")
        store = Store(f"sqlite:///{tmp / 'pull.db'}")
        records, requests, seconds, in_sandbox, errors = 0, 0, 0.0, 0.0, []
        try:
            for name, block in config.sources.items():
                context = SourceContext(name, config.base_dir)
                source = open_source(block.connector, block.settings, context)
                hub.counter.reset()
                started = time.perf_counter()
                result = pull_source(store, name, source)
                seconds += time.perf_counter() - started
                in_sandbox += hub.counter.seconds
                requests += hub.counter.total
                records += result.counts.read
                if result.error:
                    errors.append(f"{name}: {result.error}")
        finally:
            store.close()
    return _row(
        vendor,
        people=people,
        records=records,
        seconds=round(seconds, 2),
        records_per_s=round(records / seconds) if seconds else None,
        requests=requests,
        requests_per_1000=per_thousand(requests, records),
        sandbox_share=round(in_sandbox / seconds, 2) if seconds else None,
        status="; ".join(errors) or "ok",
    )


def people_for(vendor: str, records: int) -> int:
    """People a world needs for `vendor`'s sandbox to hold about `records` records."""
    if vendor not in _records_per_person:
        calibration = pull_vendor(vendor, CALIBRATION_PEOPLE)
        if calibration["status"] != "ok" or not calibration["records"]:
            raise LeadhubError(f"{vendor}: calibration pull failed: {calibration['status']}")
        _records_per_person[vendor] = calibration["records"] / CALIBRATION_PEOPLE
    return max(MIN_PEOPLE, math.ceil(records / _records_per_person[vendor]))


def run(records: int) -> list[dict[str, Any]]:
    """One row per vendor: figures, or why it was not measured."""
    rows = []
    for vendor in VENDORS:
        reason = missing(vendor)
        if reason:
            rows.append(_row(vendor, status=reason))
            continue
        try:
            rows.append(pull_vendor(vendor, people_for(vendor, records)))
        except Exception as exc:  # one vendor's failure is its row, not the section's end
            rows.append(_row(vendor, status=f"failed: {type(exc).__name__}: {exc}"))
    return rows


def fastest(rows: list[dict[str, Any]]) -> str | None:
    """The vendor with the highest records/s among the rows that measured one."""
    measured = [r for r in rows if r.get("status") == "ok" and r.get("records_per_s")]
    return max(measured, key=lambda r: r["records_per_s"])["vendor"] if measured else None


def _row(vendor: str, **values: Any) -> dict[str, Any]:
    return {key: values.get(key) for key in ROW_KEYS} | {"vendor": vendor}
