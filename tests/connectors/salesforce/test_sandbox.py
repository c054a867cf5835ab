"""The Salesforce sandbox itself, over httpx against its ASGI app: tokens, SOQL and paging, writes,
Bulk 2.0, limits and sessions, in the shapes of shared/api/salesforce.md."""

from __future__ import annotations

import asyncio
import base64
import csv
import hashlib
import hmac
import io
import time
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from connectors.salesforce.sandbox.app import (
    CLIENT_ID,
    CLIENT_SECRET,
    REFRESH_TOKEN,
    USERNAME,
    create_app,
)
from connectors.sandbox.conformance import recording
from connectors.sandbox.world import World

WORLD = World.build(seed=11, people=600)
API = "/services/data/v62.0"
BASE = "http://testserver"


class SyncASGI(httpx.BaseTransport):
    """httpx's ASGI transport, driven from synchronous code."""

    def __init__(self, app: Any) -> None:
        self.inner = httpx.ASGITransport(app=app)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        async def send() -> httpx.Response:
            answer = await self.inner.handle_async_request(request)
            body = await answer.aread()
            return httpx.Response(answer.status_code, headers=answer.headers, content=body)

        return asyncio.run(send())


class Org:
    """A client of one sandbox app, logged in with the refresh-token flow."""

    def __init__(self, **options: Any) -> None:
        self.app = create_app(WORLD, **options)
        self.http = httpx.Client(transport=SyncASGI(self.app), base_url=BASE)
        self.token = self.login()

    def login(self, **form: str) -> str:
        answer = self.http.post("/services/oauth2/token", data=form or {
            "grant_type": "refresh_token", "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET, "refresh_token": REFRESH_TOKEN})  # fmt: skip
        assert answer.status_code == 200, answer.text
        token: str = answer.json()["access_token"]
        return token

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        return self.http.request(method, f"{API}/{path}", headers=headers, **kwargs)

    def query(self, soql: str, *, all_rows: bool = False, batch: int | None = None) -> Any:
        headers = {"Sforce-Query-Options": f"batchSize={batch}"} if batch else {}
        return self.call("GET", "queryAll" if all_rows else "query", params={"q": soql},
                         headers=headers)  # fmt: skip

    def rows(self, soql: str, **options: Any) -> list[dict[str, Any]]:
        answer = self.query(soql, **options)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        out = list(body["records"])
        while not body["done"]:
            body = self.http.get(
                body["nextRecordsUrl"], headers={"Authorization": f"Bearer {self.token}"}
            ).json()
            out.extend(body["records"])
        return out

    def state(self) -> dict[str, Any]:
        answer: dict[str, Any] = self.http.get("/__sandbox/state").json()
        return answer

    def lead(self, lead_id: str) -> dict[str, Any]:
        found: list[dict[str, Any]] = self.http.get(
            "/__sandbox/records/Lead", params={"ids": lead_id}).json()  # fmt: skip
        return found[0]


@pytest.fixture
def org() -> Iterator[Org]:
    yield Org()


def open_lead_ids(org: Org, n: int) -> list[str]:
    rows = org.rows(f"SELECT Id FROM Lead WHERE IsConverted = false ORDER BY Id LIMIT {n}")
    return [r["Id"] for r in rows]


def converted_lead_id(org: Org) -> str:
    return str(org.rows("SELECT Id FROM Lead WHERE IsConverted = true LIMIT 1")[0]["Id"])


# -- OAuth ---------------------------------------------------------------------------------------


def test_refresh_token_flow_answers_the_documented_token_shape(org: Org) -> None:
    answer = org.http.post("/services/oauth2/token", data={
        "grant_type": "refresh_token", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
        "refresh_token": REFRESH_TOKEN})  # fmt: skip
    body = answer.json()
    assert set(body) == {"access_token", "instance_url", "id", "token_type", "issued_at",
                         "signature", "scope"}  # fmt: skip
    assert body["instance_url"] == BASE and body["token_type"] == "Bearer"
    assert "expires_in" not in body and "refresh_token" not in body  # no rotation by default
    assert abs(int(body["issued_at"]) / 1000 - time.time()) < 60  # epoch milliseconds
    expected = hmac.new(CLIENT_SECRET.encode(), (body["id"] + body["issued_at"]).encode(),
                        hashlib.sha256).digest()  # fmt: skip
    assert base64.b64decode(body["signature"]) == expected


@pytest.mark.parametrize(
    ("form", "error"),
    [
        ({"client_secret": "wrong"}, "invalid_client"),
        ({"client_id": "someone-else"}, "invalid_client_id"),
        ({"refresh_token": "5Aep861revoked"}, "invalid_grant"),
        ({"grant_type": "password"}, "unsupported_grant_type"),
    ],
)
def test_a_bad_token_request_is_refused_with_an_oauth_error(
    org: Org, form: dict[str, str], error: str
) -> None:
    good = {"grant_type": "refresh_token", "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET, "refresh_token": REFRESH_TOKEN}  # fmt: skip
    answer = org.http.post("/services/oauth2/token", data={**good, **form})
    assert answer.status_code == 400
    assert answer.json()["error"] == error and answer.json()["error_description"]


def test_a_rotated_refresh_token_replaces_the_old_one() -> None:
    org = Org(rotate_refresh_tokens=True)  # the login itself rotated the configured token
    form = {"grant_type": "refresh_token", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
    stale = org.http.post("/services/oauth2/token", data={**form, "refresh_token": REFRESH_TOKEN})
    assert stale.status_code == 400
    assert stale.json()["error_description"] == "expired access/refresh token"
    latest = org.app.state.sandbox.auth.latest_refresh_token
    fresh = org.http.post("/services/oauth2/token", data={**form, "refresh_token": latest})
    assert fresh.status_code == 200 and fresh.json()["refresh_token"] not in (latest, REFRESH_TOKEN)


def _rsa() -> tuple[rsa.RSAPrivateKey, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return key, public.decode()


KEY, PUBLIC_PEM = _rsa()


def _assertion(key: rsa.RSAPrivateKey = KEY, **claims: Any) -> str:
    body = {"iss": CLIENT_ID, "sub": USERNAME, "aud": BASE, "exp": int(time.time()) + 170,
            **claims}  # fmt: skip
    return jwt.encode(body, key, algorithm="RS256")


@pytest.mark.parametrize(
    ("claims", "error"),
    [
        ({}, None),
        ({"aud": "https://login.salesforce.com"}, None),
        ({"sub": "someone@else.example"}, "user hasn't approved this consumer"),
        ({"iss": "another-app"}, "client identifier invalid"),
        ({"aud": "https://evil.example"}, "audience is invalid"),
        ({"exp": int(time.time()) - 5}, "invalid assertion expiration"),
        ({"exp": int(time.time()) + 3600}, "invalid assertion expiration"),
        ({"key": "other"}, "invalid assertion"),
    ],
)
def test_jwt_bearer_checks_claims_and_signature(claims: dict[str, Any], error: str | None) -> None:
    org = Org(jwt_public_key=PUBLIC_PEM)
    key = _rsa()[0] if claims.pop("key", None) else KEY
    answer = org.http.post("/services/oauth2/token", data={
        "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
        "assertion": _assertion(key, **claims)})  # fmt: skip
    if error is None:
        assert answer.status_code == 200, answer.text
        assert answer.json()["instance_url"] == BASE and "refresh_token" not in answer.json()
    else:
        assert answer.status_code == 400 and answer.json()["error_description"] == error


def test_client_credentials_accept_http_basic(org: Org) -> None:
    basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    answer = org.http.post("/services/oauth2/token", data={"grant_type": "client_credentials"},
                           headers={"Authorization": f"Basic {basic}"})  # fmt: skip
    assert answer.status_code == 200 and answer.json()["scope"] == "api"
    assert org.state()["auth"]["issued"] == {"refresh_token": 1, "client_credentials": 1}


def test_a_session_ends_after_its_lifetime_with_invalid_session_id() -> None:
    org = Org(lifetime_calls=2)
    assert org.call("GET", "limits").status_code == 200
    assert org.call("GET", "limits").status_code == 200
    expired = org.call("GET", "limits")
    assert expired.status_code == 401
    assert expired.json() == [{"message": "Session expired or invalid",
                               "errorCode": "INVALID_SESSION_ID"}]  # fmt: skip
    org.token = org.login()
    assert org.call("GET", "limits").status_code == 200
    assert org.http.get(f"{API}/limits").status_code == 401  # no token at all


def test_a_session_also_ends_after_its_lifetime_in_seconds() -> None:
    org = Org(lifetime_seconds=0.2)
    assert org.call("GET", "limits").status_code == 200
    time.sleep(0.25)
    assert org.call("GET", "limits").json()[0]["errorCode"] == "INVALID_SESSION_ID"


def test_one_record_reads_and_updates_by_id(org: Org) -> None:
    [one] = open_lead_ids(org, 1)
    updated = org.call("PATCH", f"sobjects/Lead/{one}", json={"Lead_Grade__c": "A1"})
    assert updated.status_code == 204 and updated.content == b""
    read = org.call("GET", f"sobjects/Lead/{one}", params={"fields": "Id,Lead_Grade__c"}).json()
    assert read == {"attributes": {"type": "Lead", "url": f"{API}/sobjects/Lead/{one}"},
                    "Id": one, "Lead_Grade__c": "A1"}  # fmt: skip
    converted = org.call("PATCH", f"sobjects/Lead/{converted_lead_id(org)}",
                         json={"Lead_Grade__c": "A1"})  # fmt: skip
    assert converted.status_code == 400
    assert converted.json()[0]["errorCode"] == "CANNOT_UPDATE_CONVERTED_LEAD"
    assert org.call("GET", "sobjects/Lead/00Q5g0000000ZZZZZZ").status_code == 404


# -- limits --------------------------------------------------------------------------------------


def test_every_call_reports_api_usage_and_the_daily_cap_refuses_with_403() -> None:
    org = Org(daily_limit=10, api_usage=7)
    first = org.call("GET", "limits")
    assert first.headers["Sforce-Limit-Info"] == "api-usage=8/10"
    assert first.json()["DailyApiRequests"] == {"Max": 10, "Remaining": 2}
    org.call("GET", "sobjects/Lead/describe")
    assert (
        org.query("SELECT Id FROM Lead LIMIT 1").headers["Sforce-Limit-Info"] == "api-usage=10/10"
    )
    refused = org.query("SELECT Id FROM Lead LIMIT 1")
    assert refused.status_code == 403
    assert refused.json() == [{"message": "TotalRequests Limit exceeded.",
                               "errorCode": "REQUEST_LIMIT_EXCEEDED"}]  # fmt: skip
    assert refused.headers["Sforce-Limit-Info"] == "api-usage=10/10"
    versions = org.http.get("/services/data/")  # the versions URI is free and needs no session
    assert versions.status_code == 200 and "Sforce-Limit-Info" not in versions.headers


# -- SOQL and paging -----------------------------------------------------------------------------


def test_pages_follow_batch_size_and_next_records_url_until_done(org: Org) -> None:
    total = org.query("SELECT COUNT() FROM Lead").json()["totalSize"]
    assert total > 250
    first = org.query("SELECT Id, Email, SystemModstamp FROM Lead ORDER BY SystemModstamp, Id",
                      batch=200).json()  # fmt: skip
    assert (first["totalSize"], first["done"], len(first["records"])) == (total, False, 200)
    assert first["nextRecordsUrl"].startswith(f"{API}/query/01g")
    record = first["records"][0]
    assert record["attributes"] == {"type": "Lead", "url": f"{API}/sobjects/Lead/{record['Id']}"}
    assert record["SystemModstamp"].endswith(".000+0000") and len(record["Id"]) == 18
    rows = org.rows("SELECT Id, SystemModstamp FROM Lead ORDER BY SystemModstamp, Id", batch=200)
    assert len(rows) == total and len({r["Id"] for r in rows}) == total
    assert rows == sorted(rows, key=lambda r: (r["SystemModstamp"], r["Id"]))
    pages = org.state()["page_sizes"][1:]  # the first query was the 200-row probe
    assert pages == [200] * (total // 200) + ([total % 200] if total % 200 else [])
    small = org.query("SELECT Id FROM Lead", batch=50).json()  # below the minimum of 200
    assert len(small["records"]) == 200


def test_the_tie_breaker_cursor_resumes_exactly_after_the_last_row(org: Org) -> None:
    soql = "SELECT Id, SystemModstamp FROM Lead{} ORDER BY SystemModstamp ASC, Id ASC"
    every = org.rows(soql.format(""))
    tied = sorted(r["Id"] for r in every[200:203])
    for lead_id in tied:  # three leads edited in the same millisecond
        org.http.post("/__sandbox/touch", json={"object": "Lead", "id": lead_id, "values": {
            "SystemModstamp": "2026-12-01T10:00:00.000Z", "Title": "CTO"}})  # fmt: skip
    every = org.rows(soql.format(""))
    assert [r["Id"] for r in every[-3:]] == tied
    assert {r["SystemModstamp"] for r in every[-3:]} == {"2026-12-01T10:00:00.000+0000"}
    ts = "2026-12-01T10:00:00Z"
    where = f" WHERE SystemModstamp > {ts} OR (SystemModstamp = {ts} AND Id > '{tied[0]}')"
    assert [r["Id"] for r in org.rows(soql.format(where))] == tied[1:]
    mid = every[100]
    ts = mid["SystemModstamp"].replace(".000+0000", "Z")
    where = f" WHERE SystemModstamp > {ts} OR (SystemModstamp = {ts} AND Id > '{mid['Id']}')"
    assert org.rows(soql.format(where)) == every[101:]


def test_query_all_adds_deleted_rows_that_query_leaves_out(org: Org) -> None:
    live = org.query("SELECT COUNT() FROM Lead").json()["totalSize"]
    every = org.query("SELECT COUNT() FROM Lead", all_rows=True).json()["totalSize"]
    deleted = org.rows("SELECT Id, IsDeleted FROM Lead WHERE IsDeleted = true", all_rows=True)
    assert deleted and every - live == len(deleted)
    assert org.rows("SELECT Id FROM Lead WHERE IsDeleted = true") == []


def test_relationship_fields_and_filters_read_the_related_records(org: Org) -> None:
    rows = org.rows(
        "SELECT Id, ConvertedOpportunityId, ConvertedOpportunity.IsWon, "
        "ConvertedOpportunity.StageName FROM Lead WHERE IsConverted = true"
    )
    won = {p.person for p in WORLD.outcomes if p.status == "won"}
    world_won = sum(1 for p in WORLD.people if p.in_salesforce and p.key in won)
    assert sum(1 for r in rows if r["ConvertedOpportunity"]["IsWon"]) == world_won
    assert all(r["ConvertedOpportunity"]["attributes"]["type"] == "Opportunity" for r in rows)
    tasks = org.rows("SELECT Id, Who.Type, WhoId FROM Task WHERE WhoId != null AND "
                     "TaskSubtype IN ('Call', 'Email') LIMIT 5")  # fmt: skip
    assert tasks and all(t["Who"]["Type"] == "Lead" for t in tasks)
    like = org.rows("SELECT Id, Email FROM Lead WHERE Email LIKE '%@GMAIL.com'")
    assert like and all(r["Email"].endswith("@gmail.com") for r in like)


@pytest.mark.parametrize(
    ("soql", "code", "words"),
    [
        ("SELECT Id, Score__c FROM Lead", "INVALID_FIELD", "No such column 'Score__c'"),
        ("SELECT Id FROM Leads", "INVALID_TYPE", "sObject type 'Leads' is not supported"),
        (
            "SELECT Id FROM Lead WHERE SystemModstamp > '2026-01-01T00:00:00Z'",
            "INVALID_FIELD",
            "must be of type dateTime and should not be enclosed in quotes",
        ),
        (
            "SELECT Id FROM Lead WHERE ConvertedDate > 2026-01-01T00:00:00Z",
            "INVALID_FIELD",
            "must be of type date",
        ),
        ("SELECT Id FROM Lead WHERE", "MALFORMED_QUERY", "unexpected end of query"),
        ("SELECT Id FROM Lead ORDER Id", "MALFORMED_QUERY", "expecting 'BY'"),
    ],
)
def test_queries_salesforce_refuses_get_its_error_codes(
    org: Org, soql: str, code: str, words: str
) -> None:
    answer = org.query(soql)
    assert answer.status_code == 400
    [error] = answer.json()
    assert error["errorCode"] == code and words in error["message"]


# -- sObject Collections -------------------------------------------------------------------------


def test_a_collection_update_answers_per_record_in_input_order(org: Org) -> None:
    [one, two] = open_lead_ids(org, 2)
    converted = converted_lead_id(org)
    before = org.lead(one)["SystemModstamp"]
    records = [
        {
            "attributes": {"type": "Lead"},
            "id": one,
            "Lead_Score__c": 87,
            "Lead_Tier__c": "hot",
            "Lead_Qualified__c": True,
        },
        {"attributes": {"type": "Lead"}, "id": converted, "Lead_Score__c": 12},
        {"attributes": {"type": "Lead"}, "id": "001xx000003DGb2999", "Lead_Score__c": 1},
        {"attributes": {"type": "Lead"}, "id": two, "Lead_Score_Reason__c": "x" * 300},
    ]
    answer = org.call("PATCH", "composite/sobjects", json={"allOrNone": False,
                                                           "records": records})  # fmt: skip
    assert answer.status_code == 200
    first, second, third, fourth = answer.json()
    assert first == {"id": one, "success": True, "errors": []}
    assert second == {"success": False, "errors": [{"statusCode": "CANNOT_UPDATE_CONVERTED_LEAD",
                      "message": "cannot reference converted lead", "fields": []}]}  # fmt: skip
    assert third["errors"][0]["statusCode"] == "MALFORMED_ID"
    assert third["errors"][0]["fields"] == ["Id"]
    assert fourth["errors"][0]["statusCode"] == "STRING_TOO_LONG"
    lead = org.lead(one)
    assert (lead["Lead_Score__c"], lead["Lead_Tier__c"], lead["Lead_Qualified__c"]) == (
        87,
        "hot",
        True,
    )
    assert lead["SystemModstamp"] > before
    assert org.lead(two)["Lead_Score_Reason__c"] is None
    assert org.state()["collection_sizes"] == [4]


@pytest.mark.parametrize(
    ("values", "stored", "code"),
    [
        ({"Lead_Score__c": 72.5}, {"Lead_Score__c": 73.0}, None),  # Number(3, 0): half up
        ({"Lead_Score__c": "64"}, {"Lead_Score__c": 64.0}, None),
        ({"Lead_Score__c": 1000}, {"Lead_Score__c": None}, "NUMBER_OUTSIDE_VALID_RANGE"),
        ({"Lead_Qualified__c": None}, {"Lead_Qualified__c": False}, None),
        ({"Email": "not an address"}, {}, "INVALID_EMAIL_ADDRESS"),
        ({"IsConverted": True}, {"IsConverted": False}, "INVALID_FIELD_FOR_INSERT_UPDATE"),
    ],
)
def test_written_values_are_checked_and_kept_as_the_field_types_say(
    org: Org, values: dict[str, Any], stored: dict[str, Any], code: str | None
) -> None:
    [one] = open_lead_ids(org, 1)
    record = {"attributes": {"type": "Lead"}, "id": one, **values}
    [result] = org.call("PATCH", "composite/sobjects", json={"records": [record]}).json()
    assert result["success"] is (code is None)
    if code:
        assert result["errors"][0]["statusCode"] == code
    lead = org.lead(one)
    assert {name: lead[name] for name in stored} == stored


def test_a_value_of_the_wrong_type_is_a_bad_request(org: Org) -> None:
    [one] = open_lead_ids(org, 1)
    record = {"attributes": {"type": "Lead"}, "id": one, "Lead_Score__c": "high"}
    answer = org.call("PATCH", "composite/sobjects", json={"records": [record]})
    assert answer.status_code == 400 and answer.json()[0]["errorCode"] == "JSON_PARSER_ERROR"


def test_all_or_none_rolls_back_the_good_records(org: Org) -> None:
    [one] = open_lead_ids(org, 1)
    records = [
        {"attributes": {"type": "Lead"}, "id": one, "Lead_Score__c": 50},
        {"attributes": {"type": "Lead"}, "id": converted_lead_id(org), "Lead_Score__c": 5},
    ]
    answer = org.call("PATCH", "composite/sobjects", json={"allOrNone": True, "records": records})
    assert answer.json()[0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert org.lead(one)["Lead_Score__c"] is None


def test_more_than_200_records_is_a_bad_request(org: Org) -> None:
    records = [{"attributes": {"type": "Lead"}, "id": i, "Lead_Score__c": 1}
               for i in open_lead_ids(org, 201)]  # fmt: skip
    answer = org.call("PATCH", "composite/sobjects", json={"records": records})
    assert answer.status_code == 400 and answer.json()[0]["errorCode"] == "EXCEEDED_ID_LIMIT"


def test_without_the_custom_fields_describe_lacks_them_and_writes_get_invalid_field() -> None:
    org = Org(custom_fields=())
    names = {f["name"] for f in org.call("GET", "sobjects/Lead/describe").json()["fields"]}
    assert {"Id", "Email", "Company", "IsConverted"} <= names and "Lead_Score__c" not in names
    [one] = open_lead_ids(org, 1)
    answer = org.call("PATCH", "composite/sobjects", json={"records": [
        {"attributes": {"type": "Lead"}, "id": one, "Lead_Score__c": 80}]})  # fmt: skip
    [result] = answer.json()
    assert result["success"] is False
    assert result["errors"][0]["statusCode"] == "INVALID_FIELD"
    assert "Lead_Score__c" in result["errors"][0]["message"]


def test_describe_reports_field_security_and_a_locked_field_refuses_writes() -> None:
    org = Org(read_only_fields=["Lead_Tier__c"])
    fields = {f["name"]: f for f in org.call("GET", "sobjects/Lead/describe").json()["fields"]}
    assert fields["Lead_Score__c"]["type"] == "double" and fields["Lead_Score__c"]["updateable"]
    assert fields["Lead_Tier__c"]["updateable"] is False and fields["Lead_Tier__c"]["custom"]
    assert fields["Lead_Score_Reason__c"]["length"] == 255
    [one] = open_lead_ids(org, 1)
    [result] = org.call("PATCH", "composite/sobjects", json={"records": [
        {"attributes": {"type": "Lead"}, "id": one, "Lead_Tier__c": "hot"}]}).json()  # fmt: skip
    assert result["errors"][0]["statusCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"
    assert result["errors"][0]["fields"] == ["Lead_Tier__c"]


def test_creates_need_the_required_fields_and_tasks_attach_to_a_lead(org: Org) -> None:
    answer = org.call("POST", "composite/sobjects", json={"allOrNone": False, "records": [
        {"attributes": {"type": "Lead"}, "LastName": "Ng", "Company": "Acme",
         "Email": "ng@acme.example", "Lead_Score__c": 70},
        {"attributes": {"type": "Lead"}, "Email": "nobody@acme.example"}]})  # fmt: skip
    made, refused = answer.json()
    assert made["success"] and made["id"].startswith("00Q")
    assert refused["errors"][0]["statusCode"] == "REQUIRED_FIELD_MISSING"
    assert set(refused["errors"][0]["fields"]) == {"LastName", "Company"}
    assert org.lead(made["id"])["Status"] == "Open - Not Contacted"
    task = org.call("POST", "sobjects/Task", json={"WhoId": made["id"], "Subject": "Call: hot lead",
                                                   "Status": "Not Started"})  # fmt: skip
    assert task.status_code == 201 and task.json()["id"].startswith("00T")
    rows = org.rows(f"SELECT Id, Subject, IsClosed FROM Task WHERE WhoId = '{made['id']}'")
    assert rows == [{"attributes": rows[0]["attributes"], "Id": task.json()["id"],
                     "Subject": "Call: hot lead", "IsClosed": False}]  # fmt: skip
    bad = org.call("POST", "sobjects/Task", json={"WhoId": "00Q5g0000000ZZZZZZ"})
    assert bad.status_code == 400 and bad.json()[0]["errorCode"] == "INVALID_CROSS_REFERENCE_KEY"


def test_an_admin_adds_an_external_id_field_and_records_upsert_on_it(org: Org) -> None:
    metadata = {"label": "Leadhub Key", "type": "Text", "length": 40, "externalId": True}
    field = {"FullName": "Lead.Leadhub_Key__c", "Metadata": metadata}
    made = org.call("POST", "tooling/sobjects/CustomField", json=field)
    assert made.status_code == 201 and made.json()["success"] is True
    again = org.call("POST", "tooling/sobjects/CustomField", json=field)
    assert again.status_code == 400 and again.json()[0]["errorCode"] == "DUPLICATE_DEVELOPER_NAME"
    fields = {f["name"]: f for f in org.call("GET", "sobjects/Lead/describe").json()["fields"]}
    assert (
        fields["Leadhub_Key__c"]["externalId"] is True and fields["Leadhub_Key__c"]["length"] == 40
    )
    [one] = open_lead_ids(org, 1)
    org.call("PATCH", f"sobjects/Lead/{one}", json={"Leadhub_Key__c": "lead-1"})
    records = [{"attributes": {"type": "Lead"}, "Leadhub_Key__c": "lead-1", "Lead_Score__c": 40},
               {"attributes": {"type": "Lead"}, "Leadhub_Key__c": "lead-2", "LastName": "Kim",
                "Company": "Initech"}]  # fmt: skip
    answer = org.call("PATCH", "composite/sobjects/Lead/Leadhub_Key__c", json={"records": records})
    updated, created = answer.json()
    assert updated == {"id": one, "success": True, "errors": [], "created": False}
    assert created["created"] is True and created["id"].startswith("00Q")
    assert org.lead(one)["Lead_Score__c"] == 40
    refused = org.call("PATCH", "composite/sobjects/Lead/Email", json={"records": records})
    assert refused.status_code == 400 and refused.json()[0]["errorCode"] == "INVALID_FIELD"


def test_field_creation_needs_admin_rights() -> None:
    org = Org(allow_field_creation=False)
    metadata = {"type": "Number", "label": "Lead Score"}  # a field needs its label and type
    answer = org.call("POST", "tooling/sobjects/CustomField", json={
        "FullName": "Lead.Lead_Score__c", "Metadata": metadata})  # fmt: skip
    assert answer.status_code == 403 and answer.json()[0]["errorCode"] == "INSUFFICIENT_ACCESS"


# -- Bulk API 2.0 ----------------------------------------------------------------------------------


def _csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_a_bulk_update_job_runs_from_open_to_job_complete_with_results() -> None:
    org = Org(bulk_polls=2)
    ids = open_lead_ids(org, 3)
    job = org.call(
        "POST",
        "jobs/ingest",
        json={"object": "Lead", "operation": "update", "contentType": "CSV", "lineEnding": "LF"},
    ).json()
    assert job["state"] == "Open" and job["id"].startswith("750")
    assert job["contentUrl"] == f"services/data/v62.0/jobs/ingest/{job['id']}/batches"
    body = "Id,Lead_Score__c,Lead_Tier__c\n" + "".join(f"{i},{60 + n},warm\n"
                                                       for n, i in enumerate(ids))  # fmt: skip
    body += f"{converted_lead_id(org)},10,cold\n"
    upload = org.call("PUT", f"jobs/ingest/{job['id']}/batches", content=body,
                      headers={"Content-Type": "text/csv"})  # fmt: skip
    assert upload.status_code == 201
    closed = org.call("PATCH", f"jobs/ingest/{job['id']}", json={"state": "UploadComplete"})
    assert closed.json()["state"] == "UploadComplete"
    states = [org.call("GET", f"jobs/ingest/{job['id']}").json() for _ in range(3)]
    assert [s["state"] for s in states] == ["InProgress", "InProgress", "JobComplete"]
    assert (states[-1]["numberRecordsProcessed"], states[-1]["numberRecordsFailed"]) == (4, 1)
    good = _csv(org.call("GET", f"jobs/ingest/{job['id']}/successfulResults").text)
    assert {r["sf__Id"] for r in good} == set(ids) and all(
        r["sf__Created"] == "false" for r in good
    )
    [bad] = _csv(org.call("GET", f"jobs/ingest/{job['id']}/failedResults").text)
    assert bad["sf__Error"].startswith("CANNOT_UPDATE_CONVERTED_LEAD:") and bad["sf__Id"] == ""
    assert org.lead(ids[2])["Lead_Score__c"] == 62


def test_a_bulk_job_with_an_unknown_column_fails_as_a_whole() -> None:
    org = Org(custom_fields=(), bulk_polls=0)
    job = org.call("POST", "jobs/ingest", json={"object": "Lead", "operation": "update"}).json()
    [one] = open_lead_ids(org, 1)
    org.call("PUT", f"jobs/ingest/{job['id']}/batches", content=f"Id,Lead_Score__c\n{one},5\n",
             headers={"Content-Type": "text/csv"})  # fmt: skip
    org.call("PATCH", f"jobs/ingest/{job['id']}", json={"state": "UploadComplete"})
    status = org.call("GET", f"jobs/ingest/{job['id']}").json()
    assert status["state"] == "Failed"
    assert status["errorMessage"] == "InvalidBatch : Field name not found : Lead_Score__c"
    again = org.call("PUT", f"jobs/ingest/{job['id']}/batches", content="Id\n",
                     headers={"Content-Type": "text/csv"})  # fmt: skip
    assert again.status_code == 400 and again.json()[0]["errorCode"] == "INVALIDJOBSTATE"


# -- seeding -------------------------------------------------------------------------------------


def test_the_org_is_seeded_from_the_world_and_is_deterministic(org: Org) -> None:
    leads = org.rows("SELECT Id, Email, IsConverted FROM Lead", all_rows=True)
    assert len(leads) == sum(1 for p in WORLD.people if p.in_salesforce)
    emails = {p.email for p in WORLD.people if p.in_salesforce and p.key not in WORLD.malformed}
    assert {r["Email"] for r in leads if r["Email"]} == emails
    again = Org()
    assert again.rows("SELECT Id, Email FROM Lead ORDER BY Id") == org.rows(
        "SELECT Id, Email FROM Lead ORDER BY Id")  # fmt: skip
    members = org.rows("SELECT Id, HasResponded, Status FROM CampaignMember")
    assert members and any(m["HasResponded"] for m in members)
    assert all(m["HasResponded"] == (m["Status"] in ("Responded", "Attended")) for m in members)
    events = org.rows("SELECT Id, WhoId, ActivityDateTime FROM Event")
    assert len(events) == org.query(
        "SELECT COUNT() FROM Lead WHERE IsConverted = true").json()["totalSize"]  # fmt: skip


def test_requests_that_break_salesforces_shapes_are_refused_and_recorded(org: Org) -> None:
    with recording() as seen:
        job = org.call("POST", "jobs/ingest", json={"object": "Lead", "operation": "merge"})
        huge = org.call("PATCH", "composite/sobjects", json={"records": [
            {"attributes": {"type": "Lead"}, "id": "00Q5g0000000001EAA"}] * 201})  # fmt: skip
        fine = org.call("GET", "limits/")
    assert job.status_code == 400 and job.json()[0]["errorCode"] == "JSON_PARSER_ERROR"
    assert "operation" in job.json()[0]["message"]
    assert huge.status_code == 400 and huge.json()[0]["errorCode"] == "EXCEEDED_ID_LIMIT"
    assert fine.status_code == 200
    assert [(c.operation, bool(c.problems)) for c in seen] == [
        ("bulk_create_job", True), ("collections_update", True), ("limits", False)]  # fmt: skip
    assert org.app.state.sandbox.api.bulk.jobs == {}  # nothing was made of the refused one


def test_unknown_paths_answer_not_found_in_salesforces_shape(org: Org) -> None:
    answer = org.call("GET", "sobjects/Lead/describe/layouts/extra/segments")
    assert answer.status_code == 404
    assert answer.json() == [{"message": "The requested resource does not exist",
                              "errorCode": "NOT_FOUND"}]  # fmt: skip
