"""The official `simple-salesforce` client (1.12.10) against our Salesforce sandbox, over HTTP.

The client is used as published; the only change is its transport: it calls `https://` hosts
(`login.salesforce.com`, and the instance host from `instance_url`), so a requests adapter sends
those calls to the sandbox on 127.0.0.1 over plain http. Everything else — URLs, query strings,
bodies, headers, parsing, exceptions — is the client's own. When the client and the sandbox
disagree, the sandbox is wrong.

The sandbox is served as the hub serves it (under `/salesforce`, `/services` at the host root).
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from requests.adapters import HTTPAdapter

from connectors.salesforce.sandbox.app import (
    CLIENT_ID,
    CLIENT_SECRET,
    MOUNT_PREFIX,
    REFRESH_TOKEN,
    USERNAME,
    create_app,
    serving,
)
from connectors.sandbox.conformance import recording
from connectors.sandbox.server import serve
from connectors.sandbox.world import World

pytest.importorskip("simple_salesforce")  # the `contract` extra
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceExpiredSession,
    SalesforceMalformedRequest,
    SalesforceMoreThanOneRecord,
    SalesforceRefusedRequest,
    SalesforceResourceNotFound,
)

pytestmark = pytest.mark.e2e
WORLD = World.build(seed=21, people=700)
VERSION = "62.0"
CALLS: Counter[str] = Counter()  # client calls per test, reported at the end of the module


class ToSandbox(HTTPAdapter):
    """The transport change: the client's https:// calls go to the sandbox over http."""

    def __init__(self, base: str, test: str) -> None:
        super().__init__()
        self.netloc, self.test = urlsplit(base).netloc, test

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        parts = urlsplit(request.url or "")
        request.url = urlunsplit(("http", self.netloc, parts.path, parts.query, parts.fragment))
        CALLS[self.test] += 1
        return super().send(request, **kwargs)


class Org:
    """One served sandbox org and a requests session routed to it."""

    def __init__(self, base: str, app: Any, test: str) -> None:
        self.base, self.app = base, app
        self.session = requests.Session()
        self.session.mount("https://", ToSandbox(base, test))
        self.session.mount("http://", ToSandbox(base, test))

    @property
    def records(self) -> dict[str, dict[str, dict[str, Any]]]:
        found: dict[str, dict[str, dict[str, Any]]] = self.app.state.sandbox.org.records
        return found

    def token(self) -> dict[str, Any]:
        """The refresh-token flow, as a connected app's server side asks for a session."""
        answer = self.session.post(f"{self.base}{MOUNT_PREFIX}/services/oauth2/token", data={
            "grant_type": "refresh_token", "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET, "refresh_token": REFRESH_TOKEN})  # fmt: skip
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    def client(self) -> Salesforce:
        """simple-salesforce on the session of the token answer (its `instance_url`)."""
        token = self.token()
        return Salesforce(instance_url=token["instance_url"], session_id=token["access_token"],
                          version=VERSION, session=self.session)  # fmt: skip

    def open_leads(self) -> list[dict[str, Any]]:
        return [r for r in self.records["Lead"].values()
                if not r["IsDeleted"] and not r["IsConverted"]]  # fmt: skip


def orgs(request: pytest.FixtureRequest, conforming: bool = True, **options: Any) -> Iterator[Org]:
    app = create_app(WORLD, **options)
    with serve(serving(app)) as base, recording() as seen:
        yield Org(base, app, request.node.name)
    if conforming:  # the client's requests are Salesforce's own shapes: the table agrees
        assert [c for c in seen if c.problems and c.operation] == []


@pytest.fixture
def org(request: pytest.FixtureRequest) -> Iterator[Org]:
    yield from orgs(request)


@pytest.fixture
def sf(org: Org) -> Salesforce:
    return org.client()


@pytest.fixture(scope="module", autouse=True)
def report_calls() -> Iterator[None]:
    yield
    print(f"\nsimple-salesforce calls against the sandbox: {sum(CALLS.values())}")


def add_key_field(sf: Salesforce) -> None:
    """An admin's external id field on Lead, created through the Tooling API."""
    metadata = {"label": "Leadhub Key", "type": "Text", "length": 40, "externalId": True}
    field = {"FullName": "Lead.Leadhub_Key__c", "Metadata": metadata}
    made = sf.toolingexecute("sobjects/CustomField", method="POST", data=field)
    assert made["success"] is True


# -- session ---------------------------------------------------------------------------------------


def test_the_token_answer_gives_a_bare_host_the_client_can_use(org: Org) -> None:
    token = org.token()
    assert urlsplit(token["instance_url"]).path == ""  # a real org's instance_url is a host
    sf = org.client()
    assert sf.sf_instance == urlsplit(org.base).netloc
    assert sf.query("SELECT COUNT() FROM Lead")["totalSize"] == len(org.open_leads()) + sum(
        1 for r in org.records["Lead"].values() if r["IsConverted"] and not r["IsDeleted"]
    )


@pytest.fixture
def jwt_org(request: pytest.FixtureRequest) -> Iterator[tuple[Org, str]]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()  # fmt: skip
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    for org in orgs(request, jwt_public_key=public.decode()):
        yield org, pem


def test_the_clients_own_jwt_login_works_and_renews_an_ended_session(
    jwt_org: tuple[Org, str],
) -> None:
    org, pem = jwt_org
    # simple-salesforce signs `exp` as a numeric string; Salesforce accepts it
    sf = Salesforce(username=USERNAME, consumer_key=CLIENT_ID, privatekey=pem,
                    version=VERSION, session=org.session)  # fmt: skip
    assert sf.Lead.describe()["name"] == "Lead"
    org.app.state.sandbox.auth.expire_all()
    assert sf.query("SELECT Id FROM Lead LIMIT 1")["totalSize"] == 1  # re-logged in on the 401
    assert org.app.state.sandbox.auth.issued["jwt"] == 2


# -- queries ---------------------------------------------------------------------------------------


def test_query_all_pages_to_the_end_through_next_records_url(org: Org, sf: Salesforce) -> None:
    first = sf.query("SELECT Id, Email FROM Lead ORDER BY Id",
                     headers={"Sforce-Query-Options": "batchSize=200"})  # fmt: skip
    live = sorted(r["Id"] for r in org.records["Lead"].values() if not r["IsDeleted"])
    assert first["done"] is False and len(first["records"]) == 200
    assert first["totalSize"] == len(live) and first["nextRecordsUrl"].startswith("/services/")
    locator = first["nextRecordsUrl"].rsplit("/", 1)[-1]
    second = sf.query_more(locator)  # the identifier form: `query/{locator}`
    assert [r["Id"] for r in second["records"]] == live[200:400]
    everything = sf.query_all("SELECT Id, Email FROM Lead ORDER BY Id",
                              headers={"Sforce-Query-Options": "batchSize=200"})  # fmt: skip
    assert [r["Id"] for r in everything["records"]] == live
    assert all(r["attributes"]["type"] == "Lead" for r in everything["records"])


def test_query_all_with_deleted_rows_uses_query_all_and_its_paging(
    org: Org, sf: Salesforce
) -> None:
    rows = list(sf.query_all_iter("SELECT Id, IsDeleted FROM Lead", include_deleted=True,
                                  headers={"Sforce-Query-Options": "batchSize=200"}))  # fmt: skip
    assert len(rows) == len(org.records["Lead"])
    deleted = {r["Id"] for r in org.records["Lead"].values() if r["IsDeleted"]}
    assert deleted and {r["Id"] for r in rows if r["IsDeleted"]} == deleted


def test_soql_date_literals_are_taken_and_what_salesforce_refuses_is_refused(
    org: Org, sf: Salesforce
) -> None:
    clock = org.app.state.sandbox.org.clock()
    # hand calculation: LAST_N_DAYS:30 is today and the 30 days before it, from midnight UTC
    start = clock.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start -= timedelta(days=30)
    expected = {r["Id"] for r in org.records["Lead"].values()
                if not r["IsDeleted"] and r["CreatedDate"] >= start}  # fmt: skip
    found = sf.query_all("SELECT Id FROM Lead WHERE CreatedDate = LAST_N_DAYS:30")
    assert expected and {r["Id"] for r in found["records"]} == expected
    refused = {
        "SELECT Id FROM Lead LIMIT 10 OFFSET 2001": "NUMBER_OUTSIDE_VALID_RANGE",
        "SELECT Id FROM Lead WHERE SystemModstamp > 2026-01-01T00:00:00+0000": "MALFORMED_QUERY",
        "SELECT Id FROM Lead WHERE SystemModstamp > 2026-01-01T00:00:00.123456Z": "MALFORMED_QUERY",
        "SELECT Id FROM Lead WHERE SystemModstamp > '2026-01-01T00:00:00Z'": "INVALID_FIELD",
        "SELECT Nope__c FROM Lead": "INVALID_FIELD",
    }
    for soql, code in refused.items():
        with pytest.raises(SalesforceMalformedRequest) as caught:
            sf.query(soql)
        assert caught.value.content[0]["errorCode"] == code, soql
    taken = sf.query("SELECT Id FROM Lead WHERE SystemModstamp > 2026-01-01T00:00:00.123+00:00")
    assert taken["done"] is True


# -- sObjects --------------------------------------------------------------------------------------


def test_describe_global_describe_and_basic_information(sf: Salesforce) -> None:
    names = {o["name"] for o in sf.describe()["sobjects"]}
    assert {"Lead", "Contact", "Task", "Campaign", "CampaignMember", "Opportunity"} <= names
    fields = {f["name"]: f for f in sf.Lead.describe()["fields"]}
    assert fields["Lead_Score__c"]["type"] == "double" and fields["Lead_Score__c"]["updateable"]
    assert fields["IsConverted"]["updateable"] is False
    assert sf.Lead.metadata()["objectDescribe"]["keyPrefix"] == "00Q"


def test_get_create_update_and_delete_a_lead(org: Org, sf: Salesforce) -> None:
    made = sf.Lead.create({"LastName": "Lovelace", "Company": "Analytical Engines",
                           "Email": "ada@engines.example"})  # fmt: skip
    assert made["success"] is True and made["id"].startswith("00Q") and made["errors"] == []
    assert sf.Lead.update(made["id"], {"Lead_Score__c": 87, "Title": "Countess"}) == 204
    got = sf.Lead.get(made["id"])
    assert (got["Lead_Score__c"], got["Title"], got["Status"]) == (
        87,
        "Countess",
        "Open - Not Contacted",
    )
    assert sf.Lead.delete(made["id"]) == 204
    with pytest.raises(SalesforceResourceNotFound) as caught:
        sf.Lead.get(made["id"])
    assert caught.value.content[0]["errorCode"] == "NOT_FOUND"
    assert org.records["Lead"][made["id"]]["IsDeleted"] is True  # in the recycle bin


def test_upsert_and_get_by_external_id(org: Org, sf: Salesforce) -> None:
    add_key_field(sf)
    data = {"LastName": "Hopper", "Company": "Navy", "Email": "grace@navy.example"}
    assert sf.Lead.upsert("Leadhub_Key__c/K-1", data) == 201  # created
    assert sf.Lead.upsert("Leadhub_Key__c/K-1", {"Title": "Rear Admiral"}) == 200  # updated
    got = sf.Lead.get_by_custom_id("Leadhub_Key__c", "K-1")
    assert (got["LastName"], got["Title"], got["Leadhub_Key__c"]) == ("Hopper", "Rear Admiral",
                                                                      "K-1")  # fmt: skip
    sf.Lead.create({"LastName": "Twin", "Company": "X", "Leadhub_Key__c": "K-2"})
    sf.Lead.create({"LastName": "Twin", "Company": "Y", "Leadhub_Key__c": "K-2"})
    with pytest.raises(SalesforceMoreThanOneRecord):
        sf.Lead.get_by_custom_id("Leadhub_Key__c", "K-2")
    with pytest.raises(SalesforceResourceNotFound):
        sf.Lead.get_by_custom_id("Leadhub_Key__c", "K-404")


def test_collections_update_create_and_upsert_with_per_record_results(
    org: Org, sf: Salesforce
) -> None:
    add_key_field(sf)
    [first, second] = org.open_leads()[:2]
    converted = next(r for r in org.records["Lead"].values()
                     if r["IsConverted"] and not r["IsDeleted"])  # fmt: skip
    records = [{"attributes": {"type": "Lead"}, "id": r["Id"], "Lead_Score__c": 64}
               for r in (first, converted, second)]  # fmt: skip
    results = sf.restful("composite/sobjects", method="PATCH",
                         json={"allOrNone": False, "records": records})  # fmt: skip
    assert [r["success"] for r in results] == [True, False, True]
    assert results[1]["errors"][0]["statusCode"] == "CANNOT_UPDATE_CONVERTED_LEAD"
    assert org.records["Lead"][first["Id"]]["Lead_Score__c"] == 64
    made = sf.restful("composite/sobjects", method="POST", json={"records": [
        {"attributes": {"type": "Lead"}, "LastName": "Noether", "Company": "Erlangen"},
        {"attributes": {"type": "Lead"}, "Company": "No Name"}]})  # fmt: skip
    assert made[0]["success"] is True and made[1]["errors"][0]["statusCode"] == (
        "REQUIRED_FIELD_MISSING"
    )
    upserted = sf.restful("composite/sobjects/Lead/Leadhub_Key__c", method="PATCH", json={
        "records": [{"attributes": {"type": "Lead"}, "Leadhub_Key__c": "K-9", "LastName": "Kay",
                     "Company": "Parc"}]})  # fmt: skip
    assert upserted[0]["success"] is True and upserted[0]["created"] is True


@pytest.fixture
def lax(request: pytest.FixtureRequest) -> Iterator[Org]:
    """An org for requests that break Salesforce's shapes on purpose."""
    yield from orgs(request, conforming=False)


def test_a_collection_over_200_records_is_refused(lax: Org) -> None:
    sf = lax.client()
    records = [{"attributes": {"type": "Lead"}, "id": r["Id"], "Lead_Score__c": 1}
               for r in lax.open_leads()[:201]]  # fmt: skip
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.restful("composite/sobjects", method="PATCH", json={"records": records})
    assert caught.value.content[0]["errorCode"] == "EXCEEDED_ID_LIMIT"
    assert all(r["Lead_Score__c"] is None for r in lax.open_leads())  # nothing was written


def test_bulk2_ingest_as_the_client_drives_it(org: Org, sf: Salesforce) -> None:
    leads = org.open_leads()
    rows = [{"Id": r["Id"], "Lead_Score__c": "41"} for r in leads]
    [result] = sf.bulk2.Lead.update(records=rows, wait=0)
    assert len(leads) > 200
    assert (result["numberRecordsProcessed"], result["numberRecordsFailed"]) == (len(leads), 0)
    assert {org.records["Lead"][r["Id"]]["Lead_Score__c"] for r in leads} == {41}
    done = list(csv.DictReader(io.StringIO(sf.bulk2.Lead.get_successful_records(
        result["job_id"]))))  # fmt: skip
    assert {r["sf__Id"] for r in done} == {r["Id"] for r in leads}
    [made] = sf.bulk2.Lead.insert(records=[{"LastName": "Bulk", "Company": "Co"},
                                           {"Company": "No Name"}], wait=0)  # fmt: skip
    assert (made["numberRecordsProcessed"], made["numberRecordsFailed"]) == (2, 1)
    failed = list(csv.DictReader(io.StringIO(sf.bulk2.Lead.get_failed_records(
        made["job_id"]))))  # fmt: skip
    assert failed[0]["sf__Error"].startswith("REQUIRED_FIELD_MISSING")


def test_limits_and_the_api_usage_header(sf: Salesforce) -> None:
    limits = sf.limits()
    assert limits["DailyApiRequests"]["Max"] == 100_000
    sf.query("SELECT Id FROM Lead LIMIT 1")
    usage = sf.api_usage["api-usage"]
    assert usage.total == 100_000 and usage.used >= 2


# -- errors ----------------------------------------------------------------------------------------


def test_an_ended_session_is_invalid_session_id(org: Org, sf: Salesforce) -> None:
    org.app.state.sandbox.auth.expire_all()
    with pytest.raises(SalesforceExpiredSession) as caught:
        sf.query("SELECT Id FROM Lead LIMIT 1")
    assert caught.value.content[0]["errorCode"] == "INVALID_SESSION_ID"


def test_unknown_records_and_paths_are_not_found_in_salesforces_shape(sf: Salesforce) -> None:
    with pytest.raises(SalesforceResourceNotFound) as caught:
        sf.Lead.get("00Q5g0000ZZZZZZZZZ")
    assert caught.value.content[0]["errorCode"] == "NOT_FOUND"
    with pytest.raises(SalesforceResourceNotFound) as caught:
        sf.restful("sobjects/NoSuchThing__c/describe")
    assert caught.value.content[0]["errorCode"] == "NOT_FOUND"


@pytest.fixture
def used_up(request: pytest.FixtureRequest) -> Iterator[Org]:
    yield from orgs(request, daily_limit=1000, api_usage=999)


def test_the_daily_allowance_is_request_limit_exceeded(used_up: Org) -> None:
    sf = used_up.client()
    sf.query("SELECT Id FROM Lead LIMIT 1")  # the last request of the day
    with pytest.raises(SalesforceRefusedRequest) as caught:
        sf.query("SELECT Id FROM Lead LIMIT 1")
    assert caught.value.content[0]["errorCode"] == "REQUEST_LIMIT_EXCEEDED"


def test_validation_errors_are_malformed_requests_with_the_field(sf: Salesforce) -> None:
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.Lead.create({"Company": "No Name"})
    assert caught.value.content[0]["errorCode"] == "REQUIRED_FIELD_MISSING"
    assert caught.value.content[0]["fields"] == ["LastName"]
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.Lead.create({"LastName": "X", "Company": "Y", "Email": "not an address"})
    assert caught.value.content[0]["errorCode"] == "INVALID_EMAIL_ADDRESS"


# -- the world's clock (the demo's replay) ---------------------------------------------------------


def test_with_the_worlds_clock_set_the_client_reads_the_org_as_it_stood(
    org: Org, sf: Salesforce
) -> None:
    """A lead converted after the clock reads as open, with its modification stamp at its last
    change by then; a lead made after the clock is in no query. Oracle: the org's records and
    their recorded changes, read by the official client."""
    sandbox = org.app.state.sandbox.org
    converted = next(
        r for r in org.records["Lead"].values()
        if r["IsConverted"] and not r["IsDeleted"] and sandbox.timeline.get(r["Id"])
    )  # fmt: skip
    when = next(w for w, values in sandbox.timeline[converted["Id"]] if values.get("IsConverted"))
    clock = when - timedelta(seconds=1)
    later = [r["Id"] for r in org.records["Lead"].values()
             if r["CreatedDate"] > clock and not r["IsDeleted"]]  # fmt: skip
    WORLD.clock = clock
    try:
        row = sf.query(f"SELECT Id, IsConverted, LastModifiedDate FROM Lead "
                       f"WHERE Id = '{converted['Id']}'")["records"]  # fmt: skip
        assert [r["IsConverted"] for r in row] == [False]
        assert sf.Lead.get(converted["Id"])["IsConverted"] is False
        stamp = row[0]["LastModifiedDate"]
        assert stamp < when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
        ids = {r["Id"] for r in sf.query_all("SELECT Id FROM Lead")["records"]}
        assert later and ids and not ids & set(later)
    finally:
        WORLD.clock = None
    assert sf.Lead.get(converted["Id"])["IsConverted"] is True  # the whole world again
