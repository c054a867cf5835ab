"""Salesforce payloads in the documented shapes of shared/api/salesforce.md (§1, §2, §4, §6)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

LOGIN = "https://login.salesforce.com"
TOKEN_URL = f"{LOGIN}/services/oauth2/token"
INSTANCE = "https://acme.my.salesforce.com"
API = f"{INSTANCE}/services/data/v62.0"
CLIENT_ID = "3MVG9consumer-key"
CLIENT_SECRET = "consumer-secret-9f8e7d"
REFRESH = "5Aep861refresh-token"
ACCESS = "00Dxx0000000123!AR8AQJfirst"
ACCESS_2 = "00Dxx0000000123!AR8AQJsecond"
LEAD_ID = "00Q5g00000ABCdeEAF"
LIMIT_HEADERS = {"Sforce-Limit-Info": "api-usage=10018/100000"}

SESSION_EXPIRED = [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
DAILY_LIMIT = [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]


def settings(**overrides: Any) -> dict[str, Any]:
    """A refresh-token block at login.salesforce.com."""
    return {"connector": "salesforce", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
            "refresh_token": REFRESH, **overrides}  # fmt: skip


def token(access: str = ACCESS, instance: str = INSTANCE, **extra: Any) -> dict[str, Any]:
    """The token endpoint's answer (§1: no `expires_in`; `issued_at` in ms as a string)."""
    return {"access_token": access, "instance_url": instance,
            "id": "https://login.salesforce.com/id/00Dxx0000000123/005xx000000456",
            "token_type": "Bearer", "issued_at": "1699999999999", "signature": "abc123XYZ=",
            "scope": "api refresh_token", **extra}  # fmt: skip


def attributes(kind: str, record_id: str) -> dict[str, str]:
    return {"type": kind, "url": f"/services/data/v62.0/sobjects/{kind}/{record_id}"}


def lead(record_id: str = LEAD_ID, modstamp: str = "2024-05-02T10:11:12.000+0000",
         **overrides: Any) -> dict[str, Any]:  # fmt: skip
    """One Lead row of a query answer."""
    row: dict[str, Any] = {
        "attributes": attributes("Lead", record_id), "Id": record_id, "Email": "a@b.com",
        "FirstName": "Ada", "LastName": "Lovelace", "Phone": None, "MobilePhone": "+44 7700 900",
        "Company": "Acme", "Title": "CTO", "Industry": "Technology", "LeadSource": "Web",
        "NumberOfEmployees": 250, "AnnualRevenue": 5000000.0, "City": "London",
        "Country": "United Kingdom", "Status": "Working - Contacted", "Rating": "Hot",
        "IsConverted": False, "ConvertedDate": None, "ConvertedOpportunityId": None,
        "HasOptedOutOfEmail": False, "LastActivityDate": "2024-05-01",
        "CreatedDate": "2024-04-01T08:00:00.000+0000", "IsDeleted": False,
        "MasterRecordId": None, "SystemModstamp": modstamp,
    }  # fmt: skip
    return {**row, **overrides}


def row(kind: str, record_id: str, **fields: Any) -> dict[str, Any]:
    return {"attributes": attributes(kind, record_id), "Id": record_id, **fields}


def page(records: Sequence[dict[str, Any]], next_url: str | None = None,
         total: int | None = None) -> dict[str, Any]:  # fmt: skip
    """A query answer (§2): `done` false with `nextRecordsUrl` while more pages follow."""
    body: dict[str, Any] = {"totalSize": len(records) if total is None else total,
                            "done": next_url is None, "records": list(records)}  # fmt: skip
    if next_url:
        body["nextRecordsUrl"] = next_url
    return body


def soql(request: httpx.Request) -> str:
    """The SOQL of a query request."""
    return parse_qs(urlsplit(str(request.url)).query).get("q", [""])[0]


def sobject_of(request: httpx.Request) -> str:
    found = re.search(r"\bFROM (\w+)", soql(request))
    return found.group(1) if found else ""


class FakeOrg:
    """A respx side effect answering SOQL over in-memory rows, as far as the connector asks:
    the `SystemModstamp`/`Id` cursor condition, `IN (…)` lookups, ORDER BY, and paging with
    `nextRecordsUrl` (`page_size` rows a page). Enough to test resumption, not a sandbox."""

    def __init__(self, rows: dict[str, list[dict[str, Any]]], page_size: int = 2) -> None:
        self.rows, self.page_size = rows, page_size
        self.locators: dict[str, list[dict[str, Any]]] = {}
        self.queries: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if "/query/" in path:
            rows = self.locators.pop(path.rsplit("/", 1)[1])
            return self._page(rows)
        text = soql(request)
        self.queries.append(text)
        kind = sobject_of(request)
        rows = list(self.rows.get(kind, []))
        if "/queryAll" not in path:
            rows = [r for r in rows if not r.get("IsDeleted")]
        cursor = re.search(r"SystemModstamp > (\S+) OR \(SystemModstamp = \S+ AND Id > '(\w+)'\)",
                           text)  # fmt: skip
        if cursor:
            ts, last = _norm(cursor.group(1)), cursor.group(2)
            rows = [r for r in rows if (_norm(r["SystemModstamp"]), r["Id"]) > (ts, last)]
        found = re.search(r"WHERE (\w+) IN \(([^)]*)\)", text)
        if found:
            wanted = set(re.findall(r"'(\w+)'", found.group(2)))
            rows = [r for r in rows if str(r.get(found.group(1))) in wanted]
        if "ORDER BY SystemModstamp" in text:
            rows.sort(key=lambda r: (_norm(r["SystemModstamp"]), r["Id"]))
        return self._page(rows)

    def _page(self, rows: list[dict[str, Any]]) -> httpx.Response:
        head, rest = rows[: self.page_size], rows[self.page_size :]
        next_url = None
        if rest:
            locator = f"01gRO0000016PIAYA2-{len(self.locators) + len(rows)}"
            self.locators[locator] = rest
            next_url = f"/services/data/v62.0/query/{locator}"
        return httpx.Response(200, json=page(head, next_url), headers=LIMIT_HEADERS)


def _norm(value: str) -> str:
    """A timestamp as `YYYY-MM-DDTHH:MM:SS` (SystemModstamp has whole seconds)."""
    return value[:19]


def json_body(request: httpx.Request) -> Any:
    return json.loads(request.content)


Responder = Callable[[httpx.Request], httpx.Response]
