"""The HubSpot destination on documented payloads: property creation, batch update and upsert,
207 multi-status answers read per record, follow-up tasks."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from connectors.base import QualifiedItem, WriteItem
from connectors.hubspot.destination import HubSpotDestination
from core.errors import ConfigError
from core.http import LocalRateBudget
from core.outbox_settings import DestinationSettings
from tests.connectors.hubspot.payloads import (
    API,
    CONTACTS,
    PROPERTIES,
    FakeTime,
    settings,
    standard_error,
)

UPDATE = f"{CONTACTS}/batch/update"
UPSERT = f"{CONTACTS}/batch/upsert"
FIELDS = {
    "total": "leadhub_score",
    "tier": "leadhub_tier",
    "qualified": "leadhub_qualified",
    "grade": "leadhub_grade",
}


def make_destination(tmp_path: Path, **config: Any) -> HubSpotDestination:
    cfg = DestinationSettings.model_validate(
        {"name": "crm_out", "connector": "hubspot", "system": "crm", "fields": FIELDS, **config}
    )
    t = FakeTime()
    return HubSpotDestination(
        "crm_out",
        settings(),
        cfg,
        base_dir=tmp_path,
        sleep=t.sleep,
        clock=t,
        budget=LocalRateBudget(10_000, 10.0, clock=t, sleep=t.sleep),
    )


def definition(name: str, kind: str, field_type: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "label": name,
        "type": kind,
        "fieldType": field_type,
        "groupName": "leadhub",
        "options": [],
        "hidden": False,
        "modificationMetadata": {"readOnlyValue": False, "archivable": True},
        **extra,
    }


def item(lead_id: int, record_id: str | None, total: float = 87.0, **extra: Any) -> WriteItem:
    values = {"leadhub_score": total, "leadhub_tier": "hot", **extra}
    return WriteItem(lead_id, record_id, values, email=f"lead{lead_id}@example.com")


def batch_ok(request: httpx.Request) -> httpx.Response:
    inputs = json.loads(request.content)["inputs"]
    results = [
        {
            "id": str(i["id"]),
            "properties": i["properties"],
            "archived": False,
            "createdAt": "2026-01-01T00:00:00Z",
            "updatedAt": "2026-10-01T00:00:00Z",
        }
        for i in inputs
    ]
    return httpx.Response(
        200,
        json={
            "status": "COMPLETE",
            "results": results,
            "startedAt": "2026-10-01T00:00:00Z",
            "completedAt": "2026-10-01T00:00:01Z",
        },
    )


# -- prepare ---------------------------------------------------------------------------------------


@respx.mock
def test_prepare_creates_the_missing_properties_in_the_leadhub_group(tmp_path: Path) -> None:
    respx.get(f"{PROPERTIES}/leadhub_grade").respond(
        200, json=definition("leadhub_grade", "string", "text")
    )
    for name in ("leadhub_score", "leadhub_tier", "leadhub_qualified"):
        respx.get(f"{PROPERTIES}/{name}").respond(
            404, json=standard_error("OBJECT_NOT_FOUND", "no")
        )
    group = respx.get(f"{PROPERTIES}/groups/leadhub").respond(404, json={})
    made_group = respx.post(f"{PROPERTIES}/groups").respond(201, json={"name": "leadhub"})
    created = respx.post(PROPERTIES).mock(
        side_effect=lambda r: httpx.Response(201, json=json.loads(r.content))
    )
    make_destination(tmp_path).prepare()

    assert group.called and json.loads(made_group.calls[0].request.content)["name"] == "leadhub"
    bodies = {b["name"]: b for b in (json.loads(c.request.content) for c in created.calls)}
    assert set(bodies) == {"leadhub_score", "leadhub_tier", "leadhub_qualified"}  # grade existed
    assert {b["groupName"] for b in bodies.values()} == {"leadhub"}
    assert (bodies["leadhub_score"]["type"], bodies["leadhub_score"]["fieldType"]) == (
        "number",
        "number",
    )
    tier = bodies["leadhub_tier"]
    assert (tier["type"], tier["fieldType"]) == ("enumeration", "select")
    assert [o["value"] for o in tier["options"]] == ["hot", "warm", "cold"]
    assert (bodies["leadhub_qualified"]["type"], bodies["leadhub_qualified"]["fieldType"]) == (
        "bool",
        "booleancheckbox",
    )


@respx.mock
def test_prepare_takes_409_as_made_meanwhile_and_checks_the_type(tmp_path: Path) -> None:
    score = respx.get(f"{PROPERTIES}/leadhub_score").mock(
        side_effect=[
            httpx.Response(404, json={}),
            httpx.Response(200, json=definition("leadhub_score", "number", "number")),
        ]
    )
    respx.get(f"{PROPERTIES}/groups/leadhub").respond(200, json={"name": "leadhub"})
    respx.post(PROPERTIES).respond(409, json=standard_error("CONFLICT", "already exists"))
    make_destination(tmp_path, fields={"total": "leadhub_score"}).prepare()
    assert score.call_count == 2


@respx.mock
def test_prepare_refuses_a_property_that_cannot_hold_the_output(tmp_path: Path) -> None:
    respx.get(f"{PROPERTIES}/lead_rating").respond(
        200, json=definition("lead_rating", "bool", "booleancheckbox")
    )
    with pytest.raises(ConfigError, match=r"destinations\.crm_out\.fields\.total: .*lead_rating"):
        make_destination(tmp_path, fields={"total": "lead_rating"}).prepare()


def test_hubspot_managed_score_properties_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="hubspotscore"):
        make_destination(tmp_path, fields={"total": "hubspotscore"})


# -- write -----------------------------------------------------------------------------------------


@respx.mock
def test_updates_go_by_record_id_100_per_call_as_strings(tmp_path: Path) -> None:
    route = respx.post(UPDATE).mock(side_effect=batch_ok)
    dest = make_destination(tmp_path)
    batch = [item(n, str(5000 + n), total=40.5 + n) for n in range(100)]
    outcomes = dest.write(batch)

    assert dest.batch_size == 100 and route.call_count == 1
    inputs = json.loads(route.calls[0].request.content)["inputs"]
    assert inputs[0] == {
        "id": "5000",
        "properties": {"leadhub_score": "40.5", "leadhub_tier": "hot"},
        "objectWriteTraceId": "0",
    }
    assert all(o.status == "ok" for o in outcomes)
    assert outcomes[3].record_id == "5003"


@respx.mock
def test_a_207_is_read_per_record(tmp_path: Path) -> None:
    def partial(request: httpx.Request) -> httpx.Response:
        good = batch_ok(request).json()
        good["results"] = [r for r in good["results"] if r["id"] not in ("702", "703")]
        invalid = standard_error(
            "VALIDATION_ERROR", "Property values were not valid", objectWriteTraceId=["2"]
        )
        invalid["errors"] = [
            {
                "message": "'high' was not a valid number.",
                "code": "INVALID_INTEGER",
                "context": {"propertyName": ["leadhub_score"]},
            }
        ]
        limited = standard_error("RATE_LIMITS", "try again", ids=["703"])
        return httpx.Response(207, json={**good, "numErrors": 2, "errors": [invalid, limited]})

    respx.post(UPDATE).mock(side_effect=partial)
    outcomes = make_destination(tmp_path).write([item(n, str(700 + n)) for n in range(5)])
    assert [o.status for o in outcomes] == ["ok", "ok", "rejected", "retry", "ok"]
    assert "VALIDATION_ERROR" in outcomes[2].reason and "not a valid number" in outcomes[2].reason
    assert outcomes[4].record_id == "704"


@respx.mock
def test_upsert_goes_by_email_and_a_refused_batch_is_retried_record_by_record(
    tmp_path: Path,
) -> None:
    respx.post(f"{CONTACTS}/batch/read").respond(200, json={"status": "COMPLETE", "results": []})

    def upsert(request: httpx.Request) -> httpx.Response:
        inputs = json.loads(request.content)["inputs"]
        if any(i["id"] == "lead2@example.com" for i in inputs):  # email upserts are all or nothing
            body = standard_error("VALIDATION_ERROR", "Property values were not valid")
            return httpx.Response(400, json=body)
        return batch_ok(request)

    route = respx.post(UPSERT).mock(side_effect=upsert)
    dest = make_destination(tmp_path, mode="upsert", lead_fields={"first_name": "firstname"})
    batch = [
        WriteItem(n, None, {"leadhub_score": 50}, {"firstname": f"Name{n}"}, f"Lead{n}@Example.com")
        for n in range(4)
    ]
    outcomes = dest.write(batch)

    first = json.loads(route.calls[0].request.content)["inputs"]
    assert first[0] == {
        "id": "lead0@example.com",
        "idProperty": "email",
        "properties": {"firstname": "Name0", "leadhub_score": "50"},
        "objectWriteTraceId": "0",
    }
    assert route.call_count == 1 + 4
    assert [o.status for o in outcomes] == ["ok", "ok", "rejected", "ok"]


@respx.mock
def test_update_mode_never_creates_contacts(tmp_path: Path) -> None:
    route = respx.post(UPDATE).mock(side_effect=batch_ok)
    outcomes = make_destination(tmp_path).write([item(1, None), item(2, "88")])
    assert [o.status for o in outcomes] == ["rejected", "ok"]
    assert "mode: update" in outcomes[0].reason
    assert len(json.loads(route.calls[0].request.content)["inputs"]) == 1


# -- on_qualified ----------------------------------------------------------------------------------


@respx.mock
def test_on_qualified_creates_a_task_associated_with_the_contact(tmp_path: Path) -> None:
    route = respx.post(f"{API}/crm/v3/objects/tasks/batch/create").mock(
        side_effect=lambda r: httpx.Response(
            201,
            json={
                "status": "COMPLETE",
                "results": [{"id": "9001", "properties": {}, "objectWriteTraceId": "7"}],
            },
        )
    )
    dest = make_destination(tmp_path, on_qualified={"priority": "MEDIUM"})
    due = datetime(2026, 10, 2, 9, tzinfo=UTC)
    qualified = QualifiedItem(
        7,
        "5007",
        31,
        "ada@example.com",
        {"total": 91},
        "Follow up: Ada qualified (score 91)",
        "fit 60 + engagement 31",
        due,
    )
    [outcome] = dest.on_qualified([qualified])

    assert outcome.status == "ok" and outcome.record_id == "9001"
    [task] = json.loads(route.calls[0].request.content)["inputs"]
    assert task["properties"]["hs_task_subject"] == "Follow up: Ada qualified (score 91)"
    assert task["properties"]["hs_task_priority"] == "MEDIUM"
    assert task["properties"]["hs_timestamp"].startswith("2026-10-02T09:00:00")
    assert task["associations"] == [
        {
            "to": {"id": "5007"},
            "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 204}],
        }
    ]
