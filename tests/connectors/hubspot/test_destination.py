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

from connectors.base.contract import QualifiedItem, WriteItem
from connectors.base.settings import DestinationSettings
from connectors.hubspot.destination import HubSpotDestination
from core.errors import ConfigError
from core.http import LocalRateBudget
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
READ_PROPERTIES = f"{PROPERTIES}/batch/read"
FIELDS = {
    "total": "leadhub_score",
    "tier": "leadhub_tier",
    "qualified": "leadhub_qualified",
    "grade": "leadhub_grade",
}


def make_destination(
    tmp_path: Path,
    *,
    clock_start: float | None = None,
    hub: dict[str, Any] | None = None,
    **config: Any,
) -> HubSpotDestination:
    cfg = DestinationSettings.model_validate(
        {"name": "crm_out", "connector": "hubspot", "system": "crm", "fields": FIELDS, **config}
    )
    t = FakeTime() if clock_start is None else FakeTime(start=clock_start)
    return HubSpotDestination(
        "crm_out",
        settings(**(hub or {})),
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


def properties_answer(*found: dict[str, Any]) -> Any:
    """`properties/contacts/batch/read`: the definitions found, a 207 naming the rest."""

    def answer(request: httpx.Request) -> httpx.Response:
        asked = [i["name"] for i in json.loads(request.content)["inputs"]]
        results = [d for d in found if d["name"] in asked]
        missing = [n for n in asked if n not in {d["name"] for d in found}]
        body: dict[str, Any] = {"status": "COMPLETE", "results": results}
        if missing:
            error = standard_error("OBJECT_NOT_FOUND", "Could not get some PROPERTY objects")
            body.update(numErrors=1, errors=[{**error, "context": {"name": missing}}])
        return httpx.Response(207 if missing else 200, json=body)

    return answer


ALL_FOUND = (
    definition("leadhub_score", "number", "number"),
    definition("leadhub_tier", "enumeration", "select",
               options=[{"label": "hot", "value": "hot", "hidden": False, "displayOrder": 1}]),
    definition("leadhub_qualified", "bool", "booleancheckbox"),
    definition("leadhub_grade", "string", "text"),
)  # fmt: skip


@respx.mock
def test_prepare_reads_every_property_in_one_call_and_creates_the_missing_ones(
    tmp_path: Path,
) -> None:
    read = respx.post(READ_PROPERTIES).mock(
        side_effect=properties_answer(definition("leadhub_grade", "string", "text"))
    )
    group = respx.get(f"{PROPERTIES}/groups/leadhub").respond(404, json={})
    made_group = respx.post(f"{PROPERTIES}/groups").respond(201, json={"name": "leadhub"})
    created = respx.post(PROPERTIES).mock(
        side_effect=lambda r: httpx.Response(201, json=json.loads(r.content))
    )
    make_destination(tmp_path).prepare()

    assert read.call_count == 1
    assert json.loads(read.calls[0].request.content) == {
        "archived": False,
        "inputs": [{"name": n} for n in FIELDS.values()],
    }
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
    respx.post(READ_PROPERTIES).mock(side_effect=properties_answer())
    score = respx.get(f"{PROPERTIES}/leadhub_score").respond(
        200, json=definition("leadhub_score", "number", "number")
    )
    respx.get(f"{PROPERTIES}/groups/leadhub").respond(200, json={"name": "leadhub"})
    respx.post(PROPERTIES).respond(409, json=standard_error("CONFLICT", "already exists"))
    make_destination(tmp_path, fields={"total": "leadhub_score"}).prepare()
    assert score.call_count == 1


@respx.mock
def test_prepare_refuses_a_property_that_cannot_hold_the_output(tmp_path: Path) -> None:
    respx.post(READ_PROPERTIES).mock(
        side_effect=properties_answer(definition("lead_rating", "bool", "booleancheckbox"))
    )
    with pytest.raises(ConfigError, match=r"destinations\.crm_out\.fields\.total: .*lead_rating"):
        make_destination(tmp_path, fields={"total": "lead_rating"}).prepare()
    assert not list((tmp_path / ".leadhub").glob("hubspot-properties-*"))  # nothing remembered


@respx.mock
def test_a_second_push_within_the_interval_makes_no_property_calls(tmp_path: Path) -> None:
    read = respx.post(READ_PROPERTIES).mock(side_effect=properties_answer(*ALL_FOUND))
    first = make_destination(tmp_path)
    first.prepare()
    assert read.call_count == 1
    [memory] = (tmp_path / ".leadhub").glob("hubspot-properties-*.json")
    assert memory.stat().st_mode & 0o777 == 0o600

    # Another process (a new destination on the same hub folder), 23 hours later: no calls.
    later = make_destination(tmp_path, clock_start=FakeTime().now + 23 * 3600)
    later.prepare()
    assert read.call_count == 1
    assert later.options["leadhub_tier"][0]["value"] == "hot"  # the tier options came along
    # After the 24-hour default, the properties are checked again.
    make_destination(tmp_path, clock_start=FakeTime().now + 25 * 3600).prepare()
    assert read.call_count == 2


@respx.mock
def test_a_check_is_per_portal_and_mapping_and_can_be_turned_off(tmp_path: Path) -> None:
    read = respx.post(READ_PROPERTIES).mock(side_effect=properties_answer(*ALL_FOUND))
    make_destination(tmp_path).prepare()
    make_destination(tmp_path, fields={"total": "leadhub_score"}).prepare()  # other properties
    make_destination(tmp_path, hub={"portal_id": "62515"}).prepare()  # another portal
    assert read.call_count == 3
    make_destination(tmp_path, fields={"total": "leadhub_score"}).prepare()
    assert read.call_count == 3
    every_push = {"property_check_hours": 0}
    make_destination(tmp_path, hub=every_push).prepare()
    make_destination(tmp_path, hub=every_push).prepare()
    assert read.call_count == 5


@respx.mock
def test_a_write_naming_a_missing_property_forgets_the_check_and_retries_the_record(
    tmp_path: Path,
) -> None:
    present = list(ALL_FOUND)
    read = respx.post(READ_PROPERTIES).mock(side_effect=lambda r: properties_answer(*present)(r))
    created = respx.post(PROPERTIES).mock(
        side_effect=lambda r: httpx.Response(201, json=json.loads(r.content))
    )
    respx.get(f"{PROPERTIES}/groups/leadhub").respond(200, json={"name": "leadhub"})

    def update(request: httpx.Request) -> httpx.Response:
        good = batch_ok(request).json()
        good["results"] = [r for r in good["results"] if r["id"] != "801"]
        gone = standard_error(
            "VALIDATION_ERROR", "Property values were not valid", objectWriteTraceId=["1"]
        )
        gone["errors"] = [
            {
                "message": 'Property "leadhub_score" does not exist',
                "code": "PROPERTY_DOESNT_EXIST",
                "context": {"propertyName": ["leadhub_score"]},
            }
        ]
        return httpx.Response(207, json={**good, "numErrors": 1, "errors": [gone]})

    respx.post(UPDATE).mock(side_effect=update)
    dest = make_destination(tmp_path)
    dest.prepare()
    del present[0]  # someone deletes leadhub_score in HubSpot
    outcomes = dest.write([item(0, "800"), item(1, "801")])

    assert [o.status for o in outcomes] == ["ok", "retry"]
    assert "does not exist" in outcomes[1].reason and "checked again" in outcomes[1].reason
    assert not list((tmp_path / ".leadhub").glob("hubspot-properties-*"))
    make_destination(tmp_path).prepare()  # the next push checks, and makes it again
    assert read.call_count == 2
    assert [json.loads(c.request.content)["name"] for c in created.calls] == ["leadhub_score"]


@respx.mock
def test_a_whole_upsert_refused_for_a_missing_property_is_not_split(tmp_path: Path) -> None:
    respx.post(READ_PROPERTIES).mock(side_effect=properties_answer(*ALL_FOUND))
    respx.post(f"{CONTACTS}/batch/read").respond(200, json={"status": "COMPLETE", "results": []})
    refused = standard_error("VALIDATION_ERROR", "Partial upserts are not supported")
    refused["errors"] = [
        {
            "message": 'Property "leadhub_tier" does not exist',
            "code": "PROPERTY_DOESNT_EXIST",
            "context": {"propertyName": ["leadhub_tier"], "objectWriteTraceId": ["2"]},
        }
    ]
    route = respx.post(UPSERT).respond(400, json=refused)
    dest = make_destination(tmp_path, mode="upsert")
    dest.prepare()
    outcomes = dest.write([item(n, None) for n in range(3)])

    assert route.call_count == 1  # not sent again record by record: each would fail alike
    assert {o.status for o in outcomes} == {"retry"}
    assert not list((tmp_path / ".leadhub").glob("hubspot-properties-*"))


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
def test_a_207_error_that_names_no_input_is_not_taken_for_success(tmp_path: Path) -> None:
    # HubSpot's error names a record none of the inputs carries (no trace id, an id we did not
    # send); the record missing from `results` is the one it is about, not a success.
    def partial(request: httpx.Request) -> httpx.Response:
        good = batch_ok(request).json()
        good["results"] = [r for r in good["results"] if r["id"] != "902"]
        for r in good["results"]:
            r["objectWriteTraceId"] = str(int(r["id"]) - 900)
        odd = standard_error("OBJECT_NOT_FOUND", "Could not get some CONTACT objects", ids=["77"])
        return httpx.Response(207, json={**good, "numErrors": 1, "errors": [odd]})

    respx.post(UPDATE).mock(side_effect=partial)
    outcomes = make_destination(tmp_path).write([item(n, str(900 + n)) for n in range(4)])
    assert [o.status for o in outcomes] == ["ok", "ok", "rejected", "ok"]
    assert "OBJECT_NOT_FOUND" in outcomes[2].reason
    assert [o.record_id for o in outcomes] == ["900", "901", None, "903"]


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
