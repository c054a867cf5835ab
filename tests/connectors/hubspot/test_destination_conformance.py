"""The HubSpot destination passes the destination conformance suite against its sandbox.

The decoders are HubSpot's documented property formats (shared/api/hubspot.md; CRM properties
guide): every value is a string; `number` a decimal numeral; `bool` the option values "true" and
"false"; `datetime` ISO 8601 or Unix milliseconds; `enumeration` one of the property's option
values; "" clears a value. A string property holds 65,536 characters.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from connectors.base.settings import DestinationSettings
from connectors.hubspot import HubSpotDestination
from connectors.hubspot.sandbox.app import MOUNT_PREFIX, SANDBOX_TOKEN, create_app
from connectors.hubspot.settings import HubSpotSettings
from connectors.sandbox.faults import FaultInjector
from connectors.sandbox.server import serve
from connectors.sandbox.world import World
from core.http import LocalRateBudget
from core.store.store import Store
from tests.conformance import destination as suite
from tests.connectors.hubspot.payloads import FakeTime

pytestmark = pytest.mark.e2e
WORLD = World.build(seed=23, people=120)


def number(raw: Any) -> float | None:
    if raw in (None, ""):
        return None
    assert re.fullmatch(r"-?\d+(\.\d+)?", str(raw)), f"{raw!r} is not a HubSpot number"
    return float(raw)


def boolean(raw: Any) -> bool:
    assert raw in ("true", "false"), f"{raw!r} is not a HubSpot bool value"
    return bool(raw == "true")


def date_time(raw: Any) -> datetime | None:
    if isinstance(raw, str) and raw.isdigit():
        return datetime.fromtimestamp(int(raw) / 1000, UTC)
    return suite.iso_datetime(raw)


def string(raw: Any) -> str | None:
    assert raw is None or isinstance(raw, str), f"{raw!r} is not a string"
    return raw or None


class HubSpotHarness(suite.DestinationHarness):
    block: Mapping[str, Any] = {
        "connector": "hubspot", "system": "hubspot",
        "fields": {"total": "leadhub_score", "fit": "leadhub_fit",
                   "engagement": "leadhub_engagement", "tier": "leadhub_tier",
                   "grade": "leadhub_grade", "qualified": "leadhub_qualified",
                   "qualified_at": "leadhub_qualified_at", "reason": "leadhub_reason"},
    }  # fmt: skip
    upsert: Mapping[str, Any] = {"mode": "upsert", "lead_fields": {"first_name": "firstname"}}
    decoders = {"total": number, "fit": number, "engagement": number, "tier": string,
                "grade": string, "qualified": boolean, "qualified_at": date_time,
                "reason": string}  # fmt: skip
    reason_limit = 65_536
    gone = ("archived",)

    def __init__(self, url: str, app: Any, faults: FaultInjector, t: FakeTime, home: Path):
        self.url, self.faults, self.t, self.home = url, faults, t, home
        self.portal = app.state.sandbox.portal
        live = [c for c in self.portal.contacts.values() if c.live and c.properties.get("email")]
        self._fresh = iter(sorted(live, key=lambda c: int(c.id)))

    def destination(self, config: DestinationSettings) -> HubSpotDestination:
        block = HubSpotSettings.model_validate(
            {"connector": "hubspot", "base_url": self.url, "token": SANDBOX_TOKEN}
        )
        budget = LocalRateBudget(block.burst_rate, 10.0, clock=self.t, sleep=self.t.sleep)
        return HubSpotDestination(config.name, block, config, base_dir=self.home,
                                  sleep=self.t.sleep, clock=self.t, budget=budget)  # fmt: skip

    def records(self, n: int) -> list[tuple[str, str]]:
        return [
            (str(c.properties["email"]).lower(), c.id) for c in itertools.islice(self._fresh, n)
        ]

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {SANDBOX_TOKEN}"}
        return httpx.request(method, f"{self.url}{path}", headers=headers, **kwargs)

    def state(self, **params: Any) -> dict[str, Any]:
        answer: dict[str, Any] = httpx.get(f"{self.url}/__sandbox/state", params=params).json()
        return answer

    def stored(self, record_id: str) -> Mapping[str, Any] | None:
        contact = self.state(contact=record_id)["contact"]
        return None if contact is None else contact["properties"]

    def holding(self, email: str) -> int:
        return sum(
            1 for c in self.portal.contacts.values()
            if str(c.properties.get("email") or "").lower() == email.lower()
        )  # fmt: skip

    def calls(self) -> int:
        return sum(self.state()["calls"].values())

    def fail(self, kind: suite.Failure | None) -> None:
        self.faults.off() if kind is None else self.faults.configure(**{kind: 1.0})

    def refuse(self, record_id: str) -> str:
        # archived in HubSpot since the last pull: the batch update names it in a 207
        assert self.api("DELETE", f"/crm/v3/objects/contacts/{record_id}").status_code == 204
        return "OBJECT_NOT_FOUND"

    def make_gone(self, store: Store, lead_id: int, record_id: str, kind: suite.Gone) -> None:
        assert kind == "archived"
        assert self.api("DELETE", f"/crm/v3/objects/contacts/{record_id}").status_code == 204
        suite.mark_deleted(store, "hubspot", record_id)

    def allowed(self, output: str) -> set[str] | None:
        if output != "tier":
            return None
        prop = self.state()["properties"]["leadhub_tier"]
        return {str(o["value"]) for o in prop["options"]}


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[HubSpotHarness]:
    t = FakeTime(start=1_796_000_000.0)
    app = create_app(WORLD, clock=t)
    faults = FaultInjector(app)
    with serve(Starlette(routes=[Mount(MOUNT_PREFIX, app=faults)])) as root:
        yield HubSpotHarness(root + MOUNT_PREFIX, app, faults, t, tmp_path)


def test_one_outcome_per_item_in_order(store: Store, harness: HubSpotHarness) -> None:
    suite.check_outcomes_match_the_batch(store, harness)


def test_429_and_5xx_are_retried(store: Store, harness: HubSpotHarness) -> None:
    suite.check_failures_are_retried(store, harness)


def test_every_output_type_is_stored_in_hubspots_format(
    store: Store, harness: HubSpotHarness
) -> None:
    suite.check_encodings(store, harness)


def test_archived_contacts_are_never_written_or_recreated(
    store: Store, harness: HubSpotHarness
) -> None:
    suite.check_gone_records_are_left_alone(store, harness, "archived")


def test_unchanged_values_make_no_calls(store: Store, harness: HubSpotHarness) -> None:
    suite.check_unchanged_values_make_no_calls(store, harness)
