"""The Salesforce destination passes the destination conformance suite against its sandbox org.

The decoders are the REST API's documented JSON forms (shared/api/salesforce.md; REST API
Developer Guide, "Valid Date and DateTime Formats"): Number fields are JSON numbers kept to the
field's scale, Checkbox fields JSON booleans, Date/Time fields `2026-03-02T09:30:15.000+0000`,
Text fields strings no longer than the field's length (Text(255) for the reason), and an empty
field is null.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors.base.settings import DestinationSettings
from connectors.salesforce import SalesforceDestination
from connectors.salesforce.sandbox.app import (
    CLIENT_ID,
    CLIENT_SECRET,
    MOUNT_PREFIX,
    REFRESH_TOKEN,
    create_app,
    serving,
)
from connectors.salesforce.settings import SalesforceSettings
from connectors.sandbox.faults import FaultInjector
from connectors.sandbox.server import serve
from connectors.sandbox.world import World
from core.store.store import Store
from tests.conformance import destination as suite

pytestmark = pytest.mark.e2e
WORLD = World.build(seed=29, people=160)
DATETIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0000")


def number(raw: Any) -> float | None:
    if raw is None:
        return None
    assert isinstance(raw, (int, float)) and not isinstance(raw, bool), f"{raw!r}: not a number"
    return float(raw)


def checkbox(raw: Any) -> bool:
    assert isinstance(raw, bool), f"{raw!r} is not a Checkbox value"
    return raw


def date_time(raw: Any) -> datetime | None:
    if raw is None:
        return None
    assert DATETIME.fullmatch(str(raw)), f"{raw!r} is not a Salesforce dateTime"
    return datetime.strptime(str(raw), "%Y-%m-%dT%H:%M:%S.%f%z")


def text(raw: Any) -> str | None:
    assert raw is None or isinstance(raw, str), f"{raw!r} is not text"
    return raw


class SalesforceHarness(suite.DestinationHarness):
    block: Mapping[str, Any] = {
        "connector": "salesforce", "system": "salesforce",
        "fields": {"total": "Lead_Score__c", "tier": "Lead_Tier__c", "grade": "Lead_Grade__c",
                   "qualified": "Lead_Qualified__c", "qualified_at": "Lead_Score_Updated__c",
                   "reason": "Lead_Score_Reason__c"},
    }  # fmt: skip
    upsert: Mapping[str, Any] = {
        "mode": "upsert", "lead_fields": {"company": "Company", "last_name": "LastName"},
    }  # fmt: skip
    decoders = {"total": number, "tier": text, "grade": text, "qualified": checkbox,
                "qualified_at": date_time, "reason": text}  # fmt: skip
    reason_limit = 255  # Lead_Score_Reason__c is a Text(255)
    gone = ("converted", "deleted")

    def __init__(self, url: str, app: Any, faults: FaultInjector, home: Path) -> None:
        self.url, self.faults, self.home = url, faults, home
        self.org = app.state.sandbox.org
        leads = self.org.records["Lead"].values()
        live = [r for r in leads if not r["IsConverted"] and not r["IsDeleted"] and r["Email"]]
        self._fresh = iter(sorted(live, key=lambda r: str(r["Id"])))
        self.http = httpx.Client(base_url=f"{url}/__sandbox")

    def destination(self, config: DestinationSettings) -> SalesforceDestination:
        block = SalesforceSettings.model_validate(
            {"connector": "salesforce", "login_url": self.url, "client_id": CLIENT_ID,
             "client_secret": CLIENT_SECRET, "refresh_token": REFRESH_TOKEN,
             "token_file": str(self.home / "salesforce-oauth.json")}
        )  # fmt: skip
        return SalesforceDestination(config.name, block, config, base_dir=self.home,
                                     sleep=lambda _: None)  # fmt: skip

    def records(self, n: int) -> list[tuple[str, str]]:
        taken = itertools.islice(self._fresh, n)
        return [(str(r["Email"]).lower(), str(r["Id"])) for r in taken]

    def stored(self, record_id: str) -> Mapping[str, Any] | None:
        found = self.http.get("/records/Lead", params={"ids": record_id}).json()
        return found[0] if found else None

    def holding(self, email: str) -> int:
        return len(self.http.get("/records/Lead", params={"email": email}).json())

    def calls(self) -> int:
        return sum(self.http.get("/state").json()["calls"].values())

    def fail(self, kind: suite.Failure | None) -> None:
        self.faults.off() if kind is None else self.faults.configure(**{kind: 1.0})

    def touch(self, record_id: str, **change: Any) -> None:
        answer = self.http.post("/touch", json={"object": "Lead", "id": record_id, **change})
        assert answer.json()["touched"] == [record_id]

    def refuse(self, record_id: str) -> str:
        self.touch(record_id, delete=True)  # deleted since the last pull
        return "ENTITY_IS_DELETED"

    def make_gone(self, store: Store, lead_id: int, record_id: str, kind: suite.Gone) -> None:
        if kind == "converted":
            self.touch(record_id, values={"IsConverted": True})
        else:
            self.touch(record_id, delete=True)
            suite.mark_deleted(store, "salesforce", record_id)  # what queryAll tells the pull


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[SalesforceHarness]:
    app = create_app(WORLD)
    faults = FaultInjector(app)
    with serve(serving(faults)) as root:  # type: ignore[arg-type]
        yield SalesforceHarness(root + MOUNT_PREFIX, app, faults, tmp_path)


def test_one_outcome_per_item_in_order(store: Store, harness: SalesforceHarness) -> None:
    suite.check_outcomes_match_the_batch(store, harness)


def test_429_and_5xx_are_retried(store: Store, harness: SalesforceHarness) -> None:
    suite.check_failures_are_retried(store, harness)


def test_every_output_type_is_stored_in_salesforces_format(
    store: Store, harness: SalesforceHarness
) -> None:
    suite.check_encodings(store, harness)


def test_converted_leads_are_never_written(store: Store, harness: SalesforceHarness) -> None:
    suite.check_gone_records_are_left_alone(store, harness, "converted")


def test_deleted_leads_are_never_written_or_recreated(
    store: Store, harness: SalesforceHarness
) -> None:
    suite.check_gone_records_are_left_alone(store, harness, "deleted")


def test_unchanged_values_make_no_calls(store: Store, harness: SalesforceHarness) -> None:
    suite.check_unchanged_values_make_no_calls(store, harness)
