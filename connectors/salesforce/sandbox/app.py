"""A Salesforce org sandbox: the REST, Bulk 2.0 and OAuth endpoints the connector calls, seeded
from the synthetic world (shared/api/salesforce.md).

    app = create_app(World.build(seed=42, people=500), lifetime_calls=50, daily_limit=5000)
    # the hub mounts it at MOUNT_PREFIX, and its `/services` paths at the host root too
    # (HOST_ROOT_PATHS): the connector's login_url is http://HOST:PORT/salesforce, and the token
    # endpoint answers with the bare host as `instance_url`, as a real org does

Paths (any `vNN.N`): `POST /services/oauth2/token` (refresh_token, JWT bearer, client
credentials), `GET /services/data/` (versions), and under `/services/data/{version}`:
`GET query|queryAll?q=SOQL` and `GET query/{locator}` (pages of `Sforce-Query-Options:
batchSize`, 200 to 2000), `GET sobjects`, `GET sobjects/{object}` and its `describe`,
`GET|PATCH|DELETE sobjects/{object}/{id}`, `GET|PATCH sobjects/{object}/{externalIdField}/{value}`
(upsert by external id), `POST sobjects/{object}` (e.g. a Task), `PATCH|POST composite/sobjects`
(≤ 200, per-record results), `PATCH composite/sobjects/{object}/{externalIdField}`, Bulk 2.0
`jobs/ingest…`, `POST tooling/sobjects/CustomField`, `GET limits`. A trailing `/` is accepted, as
Salesforce does (simple-salesforce sends `query/`, `limits/`, `sobjects/Lead/`).

Every request is checked against the operation table in `conformance.py` (the shapes of
`simple-salesforce` 1.12.10 and the REST guide) and refused with Salesforce's error when it does not
conform; unknown paths answer 404 `NOT_FOUND` in Salesforce's JSON.

Behaviour: every call under `/services/data/{version}` needs a live session (else 401
`INVALID_SESSION_ID`, or Bulk's 400 `InvalidSessionId` with `bulk_session_error`) and counts
against the daily allowance (`Sforce-Limit-Info: api-usage=N/M` on each answer; 403
`REQUEST_LIMIT_EXCEEDED` once it is used up); `faults` answer chosen calls with an error first.

Test-only: `GET /__sandbox/state` (calls per path, API usage, tokens, collection sizes, query page
sizes, bulk jobs, record counts), `GET /__sandbox/records/{object}?ids=…|email=…`, `POST
/__sandbox/touch` (change a record now: `{"object", "id"|"email", "values", "delete"?}`), `POST
/__sandbox/expire` (end every session), `POST /__sandbox/faults`.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from connectors.salesforce.sandbox.api import NOT_FOUND, Api, ApiError, Handler, _json, bulk_errors
from connectors.salesforce.sandbox.auth import Auth
from connectors.salesforce.sandbox.bulk import Bulk
from connectors.salesforce.sandbox.conformance import OPERATIONS
from connectors.salesforce.sandbox.data import coerce, derive, seed, stamp
from connectors.salesforce.sandbox.schema import DEFAULT_CUSTOM_FIELDS, Schema, custom_field
from connectors.sandbox.conformance import check_request, find_operation
from connectors.sandbox.world import World

MOUNT_PREFIX = "/salesforce"
HOST_ROOT_PATHS = ("/services",)  # served at the host root as well: `instance_url` is a bare host
CLIENT_ID = "3MVG9sandboxLEADHUBconsumerKey.0123456789"
CLIENT_SECRET = "sandbox-consumer-secret-0123456789"
REFRESH_TOKEN = "5Aep861sandboxRefreshToken0123456789"
USERNAME = "integration@leadhub-sandbox.example"
VERSION = re.compile(r"v\d{2}\.0")
VERSIONS = [f"{n}.0" for n in range(55, 67)]
SCORE_FIELDS = {"total": "Lead_Score__c", "tier": "Lead_Tier__c", "grade": "Lead_Grade__c",
                "qualified": "Lead_Qualified__c", "reason": "Lead_Score_Reason__c"}  # fmt: skip


@dataclass
class Fault:
    """Answer the next `times` calls matching `method` and `path` (a glob, below the version)
    with `status` and a Salesforce error body of `code`."""

    path: str
    status: int = 503
    code: str = "SERVER_UNAVAILABLE"
    method: str = "*"
    times: int = 1


class Sandbox:
    """The guards around every API call (session, daily limit, faults) and the counters."""

    def __init__(
        self, api: Api, auth: Auth, *, daily_limit: int, api_usage: int,
        faults: Iterable[Fault | Mapping[str, Any]], bulk_session_error: bool = False,
    ) -> None:  # fmt: skip
        self.api, self.auth, self.org = api, auth, api.org
        self.bulk_session_error = bulk_session_error
        self.daily_limit, self.used = daily_limit, api_usage
        self.faults = [f if isinstance(f, Fault) else Fault(**f) for f in faults]
        self.calls: Counter[str] = Counter()
        self.limit_refusals = self.session_refusals = 0

    def limit_info(self) -> dict[str, str]:
        return {"Sforce-Limit-Info": f"api-usage={self.used}/{self.daily_limit}"}

    def route(self, template: str, handler: Handler, methods: list[str]) -> list[Route]:
        async def endpoint(request: Request) -> Response:
            self.calls[f"{request.method} {template}"] += 1
            try:
                if not VERSION.fullmatch(request.path_params["version"]):
                    raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")
                if self.auth.session(request) is None:
                    self.session_refusals += 1
                    if self.bulk_session_error and template.startswith("/jobs/"):
                        body = {"exceptionCode": "InvalidSessionId",
                                "exceptionMessage": "Invalid session id"}  # fmt: skip
                        return JSONResponse(body, 400, self.limit_info())
                    raise ApiError(401, "INVALID_SESSION_ID", "Session expired or invalid")
                if self.used >= self.daily_limit:
                    self.limit_refusals += 1
                    raise ApiError(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
                self.used += 1
                await conform(request)
                fault = self.take_fault(request, template)
                response = fault.response() if fault else await handler(request)
            except ApiError as exc:
                response = exc.response()
            response.headers.update(self.limit_info())
            return response

        path = f"/services/data/{{version}}{template}"
        return [Route(p, endpoint, methods=methods) for p in (path, f"{path}/")]

    def take_fault(self, request: Request, template: str) -> ApiError | None:
        path = request.url.path.removeprefix(request.scope.get("root_path", ""))
        below = path.split("/", 4)[-1]  # below /services/data/vNN.N/
        for fault in self.faults:
            hit = fnmatch.fnmatchcase(f"/{below}", fault.path) or fault.path == template
            if fault.times > 0 and hit and fault.method in ("*", request.method):
                fault.times -= 1
                return ApiError(fault.status, fault.code, f"sandbox fault {fault.status}")
        return None

    async def limits(self, request: Request) -> Response:
        remaining = max(0, self.daily_limit - self.used)
        bulk = len(self.api.bulk.jobs)
        return JSONResponse({
            "DailyApiRequests": {"Max": self.daily_limit, "Remaining": remaining},
            "DailyBulkApiBatches": {"Max": 15000, "Remaining": 15000 - bulk},
            "DailyBulkV2QueryJobs": {"Max": 10000, "Remaining": 10000},
        })  # fmt: skip

    # -- outside the vendor's API --------------------------------------------------------------

    async def not_found(self, request: Request) -> Response:
        """Any other path, in Salesforce's shape (its own error body, not plain text)."""
        await conform(request)
        return NOT_FOUND.response()

    async def versions(self, request: Request) -> Response:
        return JSONResponse([{"label": f"Release {v}", "url": f"/services/data/v{v}",
                              "version": v} for v in VERSIONS])  # fmt: skip

    async def state(self, request: Request) -> Response:
        api = self.api
        records = self.org.records
        return JSONResponse({
            "calls": dict(self.calls), "api_usage": self.used, "daily_limit": self.daily_limit,
            "limit_refusals": self.limit_refusals, "session_refusals": self.session_refusals,
            "auth": self.auth.state(), "collection_sizes": api.collection_sizes,
            "page_sizes": api.page_sizes, "queries": list(api.queries),
            "fields_created": api.fields_created, "open_cursors": len(api.cursors),
            "jobs": [{"id": j.id, "object": j.object, "operation": j.operation, "state": j.state,
                      "rows": len(j.succeeded) + len(j.failed) + len(j.unprocessed),
                      "failed": len(j.failed), "columns": j.columns}
                     for j in api.bulk.jobs.values()],
            "counts": {obj: len(rows) for obj, rows in records.items()},
            "converted_leads": sum(1 for r in records["Lead"].values() if r["IsConverted"]),
            "custom_fields": [f.name for f in self.org.schema.fields["Lead"].values() if f.custom],
            "faults_left": [asdict(f) for f in self.faults if f.times > 0],
        })  # fmt: skip

    async def records(self, request: Request) -> Response:
        obj = self.org.schema.object(request.path_params["object"])
        if obj is None:
            return JSONResponse({"error": "no such object"}, 404)
        ids = {i for i in request.query_params.get("ids", "").split(",") if i}
        email = (request.query_params.get("email") or "").lower()
        found = [
            r
            for r in self.org.records[obj].values()
            if r["Id"] in ids or (email and (r.get("Email") or "").lower() == email)
        ]
        return JSONResponse([{k: stamp(v) for k, v in r.items()} for r in found])

    async def touch(self, request: Request) -> Response:
        """`{"object": "Lead", "id" | "email", "values": {...}, "delete": false}`: a user's edit."""
        body = await _json(request)
        obj = self.org.schema.object(str(body.get("object", "Lead")))
        if obj is None:
            return JSONResponse({"error": "no such object"}, 400)
        email = str(body.get("email", "")).lower()
        found = [
            r
            for r in self.org.records[obj].values()
            if r["Id"] == body.get("id") or (email and (r.get("Email") or "").lower() == email)
        ]
        for record in found:
            self.org.touch(record)  # a given SystemModstamp (e.g. to force a tie) wins
            for name, value in (body.get("values") or {}).items():
                f = self.org.schema.field(obj, name)
                if f is None:
                    return JSONResponse({"error": f"no field {name} on {obj}"}, 400)
                record[f.name] = coerce(f, value)
            record["IsDeleted"] = bool(body.get("delete", record["IsDeleted"]))
            derive(obj, record)
        return JSONResponse({"touched": [r["Id"] for r in found]})

    async def expire(self, request: Request) -> Response:
        return JSONResponse({"expired": self.auth.expire_all()})

    async def add_faults(self, request: Request) -> Response:
        body = await _json(request)
        self.faults.extend(Fault(**f) for f in body.get("faults") or [])
        return JSONResponse({"faults": len(self.faults)}, 201)


def create_app(
    world: World,
    *,
    client_id: str = CLIENT_ID,
    client_secret: str = CLIENT_SECRET,
    refresh_token: str = REFRESH_TOKEN,
    username: str = USERNAME,
    jwt_public_key: str | None = None,
    rotate_refresh_tokens: bool = False,
    lifetime_calls: int | None = None,
    lifetime_seconds: float | None = None,
    daily_limit: int = 100_000,
    api_usage: int = 0,
    custom_fields: Iterable[str] | None = None,
    read_only_fields: Iterable[str] = (),
    allow_field_creation: bool = True,
    page_size: int = 2000,
    bulk_polls: int = 1,
    bulk_session_error: bool = False,
    faults: Iterable[Fault | Mapping[str, Any]] = (),
) -> Starlette:
    """The sandbox org over `world`'s Salesforce people; `app.state.sandbox` is its `Sandbox`.

    Parameters:
        custom_fields: the custom fields Lead has (default: the score fields); `()` is an org
            whose admin has not added them yet.
        read_only_fields: custom fields the integration user may not edit (no field security).
        lifetime_calls / lifetime_seconds: when a session ends (401 INVALID_SESSION_ID).
        daily_limit / api_usage: the org's daily API allowance and what is already used of it.
        page_size: the most rows a query page holds (Salesforce: 2000).
        bulk_polls: how many status reads see a Bulk job InProgress before it completes.
        bulk_session_error: an ended session on a Bulk path answers 400 `InvalidSessionId`
            (the Bulk API's own error object) instead of 401 `INVALID_SESSION_ID`.
    """
    locked = set(read_only_fields)
    names = DEFAULT_CUSTOM_FIELDS if custom_fields is None else tuple(custom_fields)
    schema = Schema({n: custom_field(n, read_only=n in locked) for n in names})
    org = seed(world, schema)
    api = Api(org, Bulk(org, bulk_polls), page_size=page_size,
              allow_field_creation=allow_field_creation)  # fmt: skip
    auth = Auth(client_id=client_id, client_secret=client_secret, refresh_token=refresh_token,
                username=username, jwt_public_key=jwt_public_key, rotate=rotate_refresh_tokens,
                lifetime_calls=lifetime_calls, lifetime_seconds=lifetime_seconds)  # fmt: skip
    sandbox = Sandbox(api, auth, daily_limit=daily_limit, api_usage=api_usage, faults=faults,
                      bulk_session_error=bulk_session_error)  # fmt: skip
    r = sandbox.route

    async def token(request: Request) -> Response:
        await conform(request, refuse=False)  # recorded; the token endpoint answers in its shape
        return await auth.token(request)

    routes: list[BaseRoute] = [
        Route("/services/oauth2/token", token, methods=["POST"]),
        Route("/services/data", sandbox.versions, methods=["GET"]),
        Route("/services/data/", sandbox.versions, methods=["GET"]),
        *r("/limits", sandbox.limits, ["GET"]),
        *r("/query", api.query, ["GET"]),
        *r("/queryAll", api.query, ["GET"]),
        *r("/query/{locator}", api.query_more, ["GET"]),
        *r("/queryAll/{locator}", api.query_more, ["GET"]),
        *r("/sobjects", api.describe_global, ["GET"]),
        *r("/sobjects/{object}/describe", api.describe, ["GET"]),
        *r("/sobjects/{object}", api.sobject, ["GET", "POST"]),
        *r("/sobjects/{object}/{id}", api.record, ["GET", "PATCH", "DELETE"]),
        *r("/sobjects/{object}/{field}/{value}", api.by_external_id, ["GET", "PATCH"]),
        *r("/composite/sobjects", api.collection, ["PATCH", "POST"]),
        *r("/composite/sobjects/{object}/{field}", api.collection, ["PATCH"]),
        *r("/tooling/sobjects/CustomField", api.create_field, ["POST"]),
        *r("/jobs/ingest", bulk_errors(api.jobs), ["POST"]),
        *r("/jobs/ingest/{job}", bulk_errors(api.job), ["GET", "PATCH", "DELETE"]),
        *r("/jobs/ingest/{job}/batches", bulk_errors(api.batches), ["PUT"]),
        *r("/jobs/ingest/{job}/{kind}", bulk_errors(api.results), ["GET"]),
        Route(
            "/services/{rest:path}",
            sandbox.not_found,
            methods=["GET", "POST", "PATCH", "PUT", "DELETE"],
        ),
        Route("/__sandbox/state", sandbox.state, methods=["GET"]),
        Route("/__sandbox/records/{object}", sandbox.records, methods=["GET"]),
        Route("/__sandbox/touch", sandbox.touch, methods=["POST"]),
        Route("/__sandbox/expire", sandbox.expire, methods=["POST"]),
        Route("/__sandbox/faults", sandbox.add_faults, methods=["POST"]),
    ]
    app = Starlette(routes=routes)
    app.state.sandbox = sandbox
    return app


def serving(app: Starlette) -> Starlette:
    """`app` as the hub serves it: under MOUNT_PREFIX, and its `/services` paths at the host root
    (where clients that keep only the host of `instance_url` call it)."""
    roots = [Route(f"{p}/{{rest:path}}", app) for p in HOST_ROOT_PATHS]
    return Starlette(routes=[Mount(MOUNT_PREFIX, app=app), *roots])


async def conform(request: Request, *, refuse: bool = True) -> list[str]:
    """Check the request against the operation table (and record it); with `refuse`, a request
    that does not conform raises the 400 Salesforce would answer."""
    path = request.url.path.removeprefix(request.scope.get("root_path", ""))
    raw = await request.body()
    kind = request.headers.get("content-type", "")
    body: Any = None
    if raw and "form-urlencoded" in kind:
        body = dict(parse_qsl(raw.decode("utf-8", "replace")))
    elif raw and "csv" not in kind:
        try:
            body = json.loads(raw)
        except ValueError:
            body = None  # the handler answers JSON_PARSER_ERROR
    query = request.query_params.multi_items()
    problems = check_request(OPERATIONS, request.method, path, query, body, vendor="salesforce")
    if problems and refuse and find_operation(OPERATIONS, request.method, path) is not None:
        too_many = any("records" in p and "is too long" in p for p in problems)
        if too_many:
            raise ApiError(400, "EXCEEDED_ID_LIMIT", "record limit reached. cannot submit more "
                           "than 200 records into this call")  # fmt: skip
        on_query = all(p.startswith("query ") for p in problems)
        code = "MALFORMED_QUERY" if on_query else "JSON_PARSER_ERROR"
        raise ApiError(400, code, "; ".join(problems))
    return problems


def demo_blocks(base_url: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The hub-file source and destination blocks for the sandbox served at `base_url`."""
    auth = {"connector": "salesforce", "auth_flow": "refresh_token", "login_url": base_url,
            "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
            "refresh_token": REFRESH_TOKEN}  # fmt: skip
    source = {**auth, "objects": ["Lead"]}
    destination = {**auth, "system": "salesforce", "mode": "update", "model": "default",
                   "fields": dict(SCORE_FIELDS)}  # fmt: skip
    return {"salesforce": source}, {"salesforce_scores": destination}
