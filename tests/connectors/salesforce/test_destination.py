"""The Salesforce destination on documented payloads: describe, collections, converted leads,
upsert defaults, the Bulk API 2.0 path and follow-up tasks."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from connectors.base import (
    DestinationContext,
    DestinationSettings,
    QualifiedItem,
    WriteItem,
    get_connector,
    validate_destination,
)
from connectors.salesforce import SalesforceDestination, SalesforceSettings
from core.errors import ConfigError, RateLimited
from tests.connectors.salesforce.payloads import (
    API,
    DAILY_LIMIT,
    TOKEN_URL,
    json_body,
    settings,
    token,
)

COLLECTIONS = f"{API}/composite/sobjects"
SCORE_FIELDS = ["Lead_Score__c", "Lead_Tier__c", "Lead_Grade__c", "Lead_Qualified__c",
                "Lead_Score_Reason__c"]  # fmt: skip


def destination(tmp_path: Path, mode: str = "update", fields: dict[str, str] | None = None,
                on_qualified: dict[str, Any] | None = None,
                **overrides: Any) -> SalesforceDestination:  # fmt: skip
    config: dict[str, Any] = {"name": "sf", "connector": "salesforce", "mode": mode}
    if fields is not None:
        config["fields"] = fields
    if on_qualified is not None:
        config["on_qualified"] = on_qualified
    block = SalesforceSettings.model_validate(settings(**overrides))
    return SalesforceDestination("sf", block, DestinationSettings.model_validate(config),
                                 base_dir=tmp_path, sleep=lambda _: None)  # fmt: skip


def item(i: int, total: float = 87.0, record: bool = True, **lead_fields: Any) -> WriteItem:
    values = {"total": total, "fit": 60.0, "tier": "hot", "grade": "A", "qualified": True,
              "reason": "Visited pricing twice"}  # fmt: skip
    return WriteItem(i, f"00Q{i:015d}" if record else None, values, lead_fields,
                     f"p{i}@example.com")  # fmt: skip


def ok(record_id: str) -> dict[str, Any]:
    return {"id": record_id, "success": True, "errors": []}


def failed(code: str, message: str, fields: list[str] | None = None) -> dict[str, Any]:
    return {"success": False, "errors": [{"statusCode": code, "message": message,
                                          "fields": fields or []}]}  # fmt: skip


def describe(*names: str, updateable: bool = True) -> dict[str, Any]:
    """`GET /sobjects/Lead/describe`, abbreviated to the fields' name, type and rights."""
    standard = ["Id", "LastName", "Company", "Email", "FirstName"]
    fields = [{"name": n, "type": "string", "length": 255, "updateable": True,
               "createable": True} for n in standard]  # fmt: skip
    fields += [{"name": n, "type": "double" if n == "Lead_Score__c" else "string",
                "length": 0 if n == "Lead_Score__c" else 40, "updateable": updateable,
                "createable": updateable, "custom": True} for n in names]  # fmt: skip
    return {"name": "Lead", "fields": fields}


@pytest.fixture
def org() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as router:
        router.post(TOKEN_URL).respond(200, json=token())
        yield router


def echo(request: httpx.Request) -> httpx.Response:
    """Collections answer: every record succeeds (new ones get ids)."""
    records = json_body(request)["records"]
    return httpx.Response(200, json=[ok(r.get("id") or f"00QNEW{n:012d}")
                                     for n, r in enumerate(records)])  # fmt: skip


# -- prepare -------------------------------------------------------------------------------------


def test_prepare_lists_the_custom_fields_an_admin_must_create(
    tmp_path: Path, org: respx.MockRouter
) -> None:
    org.get(f"{API}/sobjects/Lead/describe").respond(200, json=describe("Lead_Tier__c"))
    with pytest.raises(ConfigError) as caught:
        destination(tmp_path).prepare()
    message = str(caught.value)
    assert "Lead_Score__c (Number(3, 0), for total)" in message
    assert "Lead_Grade__c" in message and "Lead_Score_Reason__c" in message
    assert "Lead_Tier__c" not in message.split("no field")[1].split(". A")[0]
    assert "Setup → Object Manager → Lead" in message and "destinations.sf.fields" in message


def test_prepare_names_fields_the_user_may_not_edit(tmp_path: Path, org: respx.MockRouter) -> None:
    org.get(f"{API}/sobjects/Lead/describe").respond(
        200, json=describe(*SCORE_FIELDS, updateable=False)
    )
    with pytest.raises(ConfigError, match="may not edit Lead_Score__c"):
        destination(tmp_path).prepare()


def test_prepare_passes_when_the_fields_exist_and_runs_once(
    tmp_path: Path, org: respx.MockRouter
) -> None:
    route = org.get(f"{API}/sobjects/Lead/describe").respond(200, json=describe(*SCORE_FIELDS))
    dest = destination(tmp_path)
    dest.prepare()
    dest.prepare()
    assert route.call_count == 1


# -- collections ---------------------------------------------------------------------------------


def test_writes_go_in_collections_of_200_with_all_or_none_false(
    tmp_path: Path, org: respx.MockRouter
) -> None:
    route = org.patch(COLLECTIONS).mock(side_effect=echo)
    outcomes = destination(tmp_path).write([item(i) for i in range(450)])
    assert [len(json_body(c.request)["records"]) for c in route.calls] == [200, 200, 50]
    assert {o.status for o in outcomes} == {"ok"}
    assert outcomes[7].record_id == "00Q000000000000007"
    body = json_body(route.calls[0].request)
    assert body["allOrNone"] is False
    assert body["records"][0] == {
        "attributes": {"type": "Lead"},
        "id": "00Q000000000000000",
        "Lead_Score__c": 87.0,
        "Lead_Tier__c": "hot",
        "Lead_Grade__c": "A",
        "Lead_Qualified__c": True,
        "Lead_Score_Reason__c": "Visited pricing twice",
    }  # fit is not written: the default fields hold score, tier, grade, qualified, reason


def test_configured_fields_are_written_as_given(tmp_path: Path, org: respx.MockRouter) -> None:
    route = org.patch(COLLECTIONS).mock(side_effect=echo)
    dest = destination(tmp_path, fields={"total": "Score__c"})
    dest.write([WriteItem(1, "00Q1", {"Score__c": 55.0})])
    [record] = json_body(route.calls.last.request)["records"]
    assert record == {"attributes": {"type": "Lead"}, "id": "00Q1", "Score__c": 55.0}


def test_a_partially_failed_collection_reads_each_record(
    tmp_path: Path, org: respx.MockRouter
) -> None:
    org.patch(COLLECTIONS).respond(200, json=[
        ok("00Q000000000000001"),
        failed("MALFORMED_ID", "Lead ID: id value of incorrect type: 001xx000003DGb2999", ["Id"]),
        failed("UNABLE_TO_LOCK_ROW", "unable to obtain exclusive access to this record"),
        failed("CANNOT_UPDATE_CONVERTED_LEAD", "cannot reference converted lead"),
    ])  # fmt: skip
    outcomes = destination(tmp_path).write([item(i) for i in range(1, 5)])
    assert [o.status for o in outcomes] == ["ok", "rejected", "retry", "rejected"]
    assert outcomes[1].reason == (
        "MALFORMED_ID: Lead ID: id value of incorrect type: 001xx000003DGb2999 (fields: Id)"
    )
    assert "UNABLE_TO_LOCK_ROW" in outcomes[2].reason
    converted = outcomes[3]
    assert "converted" in converted.reason and "CANNOT_UPDATE_CONVERTED_LEAD" in converted.reason
    assert converted.record_id == "00Q000000000000004"


def test_a_refused_request_is_retried_later_with_its_error_code(
    tmp_path: Path, org: respx.MockRouter
) -> None:
    org.patch(COLLECTIONS).respond(400, json=[
        {"message": "No such column 'Lead_Score__c' on sobject of type Lead",
         "errorCode": "INVALID_FIELD"}])  # fmt: skip
    outcomes = destination(tmp_path).write([item(1), item(2)])
    assert [o.status for o in outcomes] == ["retry", "retry"]
    assert "INVALID_FIELD: No such column" in outcomes[0].reason


def test_the_daily_limit_stops_the_push(tmp_path: Path, org: respx.MockRouter) -> None:
    route = org.patch(COLLECTIONS).respond(403, json=DAILY_LIMIT)
    with pytest.raises(RateLimited, match="REQUEST_LIMIT_EXCEEDED"):
        destination(tmp_path).write([item(1)])
    assert route.call_count == 1


def test_contact_ids_are_not_sent_to_the_lead_collection(
    tmp_path: Path, org: respx.MockRouter
) -> None:
    route = org.patch(COLLECTIONS).mock(side_effect=echo)
    contact = WriteItem(2, "0035g00000XYZabAAA", {"total": 50.0})
    lead_, contact_ = destination(tmp_path).write([item(1), contact])
    assert (lead_.status, contact_.status) == ("ok", "rejected")
    assert "0035g00000XYZabAAA is a Contact id" in contact_.reason
    assert [r["id"] for r in json_body(route.calls.last.request)["records"]] == [
        "00Q000000000000001"]  # fmt: skip


def test_update_mode_rejects_leads_without_a_salesforce_id(
    tmp_path: Path, org: respx.MockRouter
) -> None:
    [outcome] = destination(tmp_path).write([item(1, record=False)])
    assert outcome.status == "rejected" and "no Salesforce Lead id" in outcome.reason


def test_upsert_creates_leads_with_last_name_and_company_defaults(
    tmp_path: Path, org: respx.MockRouter
) -> None:
    created = org.post(COLLECTIONS).mock(side_effect=echo)
    updated = org.patch(COLLECTIONS).mock(side_effect=echo)
    batch = [item(1, record=False, LastName="Lovelace", Company=None), item(2, record=False),
             item(3)]  # fmt: skip
    outcomes = destination(tmp_path, "upsert", default_company="Unknown Co").write(batch)
    assert [(o.status, o.record_id) for o in outcomes] == [
        ("ok", "00QNEW000000000000"),
        ("ok", "00QNEW000000000001"),
        ("ok", "00Q000000000000003"),
    ]
    first, second = json_body(created.calls.last.request)["records"]
    assert (first["LastName"], first["Company"], first["Email"]) == (
        "Lovelace", "Unknown Co", "p1@example.com")  # fmt: skip
    assert (second["LastName"], second["Company"]) == ("[not provided]", "Unknown Co")
    assert "id" not in first and first["attributes"] == {"type": "Lead"}
    assert updated.call_count == 1


# -- bulk ----------------------------------------------------------------------------------------

JOB = "7505g00000BULKJOB1"


def bulk_routes(org: respx.MockRouter, failed_rows: str, states: list[str]) -> dict[str, Any]:
    routes = {
        "create": org.post(f"{API}/jobs/ingest").respond(200, json={
            "id": JOB, "operation": "update", "object": "Lead", "state": "Open",
            "contentType": "CSV", "lineEnding": "LF",
            "contentUrl": f"services/data/v62.0/jobs/ingest/{JOB}/batches"}),
        "upload": org.put(f"{API}/jobs/ingest/{JOB}/batches").respond(201),
        "close": org.patch(f"{API}/jobs/ingest/{JOB}").respond(200, json={
            "id": JOB, "state": "UploadComplete"}),
        "poll": org.get(f"{API}/jobs/ingest/{JOB}").mock(side_effect=[
            httpx.Response(200, json={"id": JOB, "state": s, "numberRecordsProcessed": 2500,
                                      "numberRecordsFailed": 2}) for s in states]),
        "failed": org.get(f"{API}/jobs/ingest/{JOB}/failedResults").respond(
            200, text=failed_rows, headers={"Content-Type": "text/csv"}),
        "collections": org.patch(COLLECTIONS).mock(side_effect=echo),
    }  # fmt: skip
    return routes


def test_above_the_threshold_a_bulk_job_is_used(tmp_path: Path, org: respx.MockRouter) -> None:
    batch = [item(i) for i in range(2500)]
    failed_rows = (
        '"sf__Id","sf__Error",Id,Lead_Score__c\n'
        '"00Q000000000000003","CANNOT_UPDATE_CONVERTED_LEAD:cannot reference converted lead:--",'
        "00Q000000000000003,87\n"
        '"00Q000000000000009","MALFORMED_ID:bad id:Id",00Q000000000000009,87\n'
    )
    done = "\n".join(
        ["sf__Id,sf__Created,Id"]
        + [f"00Q{i:015d},false,00Q{i:015d}" for i in range(2500) if i not in (3, 9, 11)]
    )
    routes = bulk_routes(org, failed_rows, ["UploadComplete", "InProgress", "JobComplete"])
    org.get(f"{API}/jobs/ingest/{JOB}/successfulResults").respond(200, text=done + "\n")
    outcomes = destination(tmp_path).write(batch)
    assert not routes["collections"].called
    assert json_body(routes["create"].calls.last.request) == {
        "object": "Lead",
        "operation": "update",
        "contentType": "CSV",
        "lineEnding": "LF",
    }
    upload = routes["upload"].calls.last.request
    assert upload.headers["Content-Type"] == "text/csv"
    rows = list(csv.reader(io.StringIO(upload.content.decode())))
    assert rows[0] == ["Id", *SCORE_FIELDS] and len(rows) == 2501
    assert rows[1] == ["00Q000000000000000", "87", "hot", "A", "true", "Visited pricing twice"]
    assert json_body(routes["close"].calls.last.request) == {"state": "UploadComplete"}
    assert routes["poll"].call_count == 3
    assert outcomes[0].status == "ok"
    assert outcomes[3].status == "rejected" and "converted" in outcomes[3].reason
    assert outcomes[9].reason.startswith("MALFORMED_ID: bad id")
    assert outcomes[11].status == "retry"  # in neither result: sent again next push
    assert sum(o.status == "ok" for o in outcomes) == 2497


def test_a_failed_bulk_job_retries_its_rows(tmp_path: Path, org: respx.MockRouter) -> None:
    routes = bulk_routes(org, "sf__Id,sf__Error,Id\n", ["Failed"])
    org.get(f"{API}/jobs/ingest/{JOB}/successfulResults").respond(200, text="sf__Id,Id\n")
    outcomes = destination(tmp_path, bulk_threshold=1).write([item(1), item(2)])
    assert [o.status for o in outcomes] == ["retry", "retry"]
    assert f"Bulk job {JOB} ended Failed" in outcomes[0].reason
    assert routes["upload"].called


# -- on_qualified ------------------------------------------------------------------------------


def test_on_qualified_creates_a_task_on_the_lead(tmp_path: Path, org: respx.MockRouter) -> None:
    route = org.post(COLLECTIONS).mock(side_effect=lambda r: httpx.Response(
        200, json=[ok("00T5g00000TASKAAA")]))  # fmt: skip
    dest = destination(tmp_path, on_qualified={"subject": "Call {name}", "priority": "High"})
    due = datetime(2026, 5, 11, 9, tzinfo=UTC)
    hot = QualifiedItem(1, "00Q1", 10, "a@b.com", {}, "Call Ada", "Score 91", due)
    orphan = QualifiedItem(2, None, 11, None, {}, "Call Bo", "", due)
    outcomes = dest.on_qualified([hot, orphan])
    assert [(o.status, o.record_id) for o in outcomes] == [("ok", "00Q1"), ("rejected", None)]
    [task] = json_body(route.calls.last.request)["records"]
    assert task == {"attributes": {"type": "Task"}, "WhoId": "00Q1", "Subject": "Call Ada",
                    "Description": "Score 91", "ActivityDate": "2026-05-11",
                    "Status": "Not Started", "Priority": "High"}  # fmt: skip


# -- the registry ------------------------------------------------------------------------------


def test_a_hub_file_block_builds_the_destination(tmp_path: Path, org: respx.MockRouter) -> None:
    block = {**settings(), "mode": "upsert", "fields": {"total": "Lead_Score__c"},
             "bulk_threshold": 5000}  # fmt: skip
    connectors = {"salesforce": get_connector("salesforce")}
    config, problems = validate_destination("sf", block, connectors)
    assert problems == [] and config is not None
    dest = connectors["salesforce"]().destination(
        config.options, DestinationContext("sf", config, tmp_path)
    )
    assert isinstance(dest, SalesforceDestination)
    assert dest.field_map == {"Lead_Score__c": "Lead_Score__c"}
    assert dest.settings.bulk_threshold == 5000 and dest.batch_size >= 5000


def test_a_bulk_session_expiry_refreshes_and_goes_on(tmp_path: Path) -> None:
    with respx.mock(assert_all_called=False) as org:
        auth = org.post(TOKEN_URL).respond(200, json=token())
        routes = bulk_routes(org, "sf__Id,sf__Error,Id\n", ["JobComplete"])
        routes["create"].side_effect = [
            httpx.Response(400, json={"exceptionCode": "InvalidSessionId",
                                      "exceptionMessage": "Invalid session id"}),
            httpx.Response(200, json={"id": JOB, "state": "Open"}),
        ]  # fmt: skip
        org.get(f"{API}/jobs/ingest/{JOB}/successfulResults").respond(
            200, text="sf__Id,sf__Created,Id\n00Q000000000000001,false,00Q000000000000001\n"
        )
        [outcome] = destination(tmp_path, bulk_threshold=0).write([item(1)])
    assert outcome.status == "ok"
    assert auth.call_count == 2 and routes["create"].call_count == 2
    assert routes["upload"].called  # the default contentUrl when the answer has none


def test_text_longer_than_the_field_is_shortened(tmp_path: Path, org: respx.MockRouter) -> None:
    org.get(f"{API}/sobjects/Lead/describe").respond(200, json=describe(*SCORE_FIELDS))
    route = org.patch(COLLECTIONS).mock(side_effect=echo)
    dest = destination(tmp_path)
    dest.prepare()
    long = WriteItem(1, "00Q1", {"reason": "because " * 20, "total": 90.0})
    dest.write([long])
    [record] = json_body(route.calls.last.request)["records"]
    assert len(record["Lead_Score_Reason__c"]) == 40  # the described length
    assert record["Lead_Score_Reason__c"].endswith("…")
