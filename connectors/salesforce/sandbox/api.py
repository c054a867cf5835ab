"""The REST resources of the sandbox org under `/services/data/vXX.X`, in Salesforce's shapes.

`connectors.salesforce.sandbox.app` wraps each handler with auth, the daily request limit and the
`Sforce-Limit-Info` header. Request-level errors are `[{"message", "errorCode"}]`.
"""

from __future__ import annotations

import json
import re
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from connectors.salesforce.sandbox import soql
from connectors.salesforce.sandbox.bulk import Bulk, BulkError
from connectors.salesforce.sandbox.data import BadValue, Org, Record, stamp
from connectors.salesforce.sandbox.schema import custom_field
from connectors.salesforce.sandbox.writes import Operation, Outcome, check, run_all

MAX_COLLECTION = 200
BATCH_SIZE = re.compile(r"batchSize\s*=\s*(\d+)", re.IGNORECASE)
OPEN_CURSORS = 50


class ApiError(Exception):
    """A request-level error: `[{"message", "errorCode", "fields"?}]` with `status`."""

    def __init__(self, status: int, code: str, message: str, fields: list[str] | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.fields = status, code, message, fields

    def response(self) -> Response:
        item: dict[str, Any] = {"message": self.message, "errorCode": self.code}
        if self.fields is not None:
            item["fields"] = self.fields
        return JSONResponse([item], self.status)


NOT_FOUND = ApiError(404, "NOT_FOUND", "The requested resource does not exist")


@dataclass
class Cursor:
    query: soql.Query
    rows: list[Record]
    batch: int
    version: str
    path: str  # query | queryAll


@dataclass
class Api:
    """Handlers over one org, and what they did (for the test-only state endpoint)."""

    org: Org
    bulk: Bulk
    page_size: int = 2000
    cursors: OrderedDict[str, Cursor] = field(default_factory=OrderedDict)
    collection_sizes: list[int] = field(default_factory=list)
    page_sizes: list[int] = field(default_factory=list)
    queries: deque[str] = field(default_factory=lambda: deque(maxlen=1000))  # the latest SOQL
    fields_created: list[str] = field(default_factory=list)
    allow_field_creation: bool = True

    # -- query
    async def query(self, request: Request) -> Response:
        version = request.path_params["version"]
        path = "queryAll" if request.url.path.rstrip("/").endswith("/queryAll") else "query"
        text = request.query_params.get("q")
        if not text:
            raise ApiError(400, "MALFORMED_QUERY", "The query parameter q is required")
        self.queries.append(text)
        try:
            parsed = soql.parse(self.org, text)
        except soql.SoqlError as exc:
            raise ApiError(400, exc.code, exc.message) from None
        rows = soql.run(self.org, parsed, include_deleted=path == "queryAll")
        if parsed.count:
            return JSONResponse({"totalSize": len(rows), "done": True, "records": []})
        batch = self._batch(request)
        return self._page(Cursor(parsed, rows, batch, version, path), 0, None)

    async def query_more(self, request: Request) -> Response:
        locator, _, offset = request.path_params["locator"].partition("-")
        found = self.cursors.get(locator)
        if found is None or not offset.isdigit() or int(offset) >= len(found.rows):
            raise ApiError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        return self._page(found, int(offset), locator)

    def _batch(self, request: Request) -> int:
        match = BATCH_SIZE.search(request.headers.get("sforce-query-options", ""))
        wanted = int(match.group(1)) if match else 2000
        return min(max(wanted, 200), 2000, self.page_size)

    def _page(self, cursor: Cursor, offset: int, locator: str | None) -> Response:
        rows = cursor.rows[offset : offset + cursor.batch]
        self.page_sizes.append(len(rows))
        records = [soql.render(self.org, cursor.query, r, cursor.version) for r in rows]
        body: dict[str, Any] = {"totalSize": len(cursor.rows), "done": True, "records": records}
        end = offset + len(rows)
        if end < len(cursor.rows):
            if locator is None:
                locator = self.org.new_id("Query")
                self.cursors[locator] = cursor
                while len(self.cursors) > OPEN_CURSORS:  # the oldest cursor is closed
                    self.cursors.popitem(last=False)
            body["done"] = False
            body["nextRecordsUrl"] = f"/services/data/{cursor.version}/query/{locator}-{end}"
        elif locator is not None:
            self.cursors.pop(locator, None)
        return JSONResponse(body)

    # -- describe and single records
    def _object(self, request: Request) -> str:
        obj = self.org.schema.object(request.path_params["object"])
        if obj is None:
            raise NOT_FOUND
        return obj

    async def describe(self, request: Request) -> Response:
        obj = self._object(request)
        return JSONResponse(self.org.schema.describe(obj, request.path_params["version"]))

    async def describe_global(self, request: Request) -> Response:
        """`GET /sobjects`: every object's summary (the Describe Global resource)."""
        version = request.path_params["version"]
        summaries = [self.org.schema.summary(obj, version) for obj in self.org.schema.fields]
        return JSONResponse({"encoding": "UTF-8", "maxBatchSize": MAX_COLLECTION,
                             "sobjects": summaries})  # fmt: skip

    async def sobject(self, request: Request) -> Response:
        """`GET /sobjects/{object}` (basic information) or `POST` (create a record)."""
        if request.method == "POST":
            return await self.create(request)
        obj = self._object(request)
        summary = self.org.schema.summary(obj, request.path_params["version"])
        return JSONResponse({"objectDescribe": summary, "recentItems": []})

    async def record(self, request: Request) -> Response:
        obj = self._object(request)
        found = self.org.find(request.path_params["id"])
        if found is None or found[0] != obj or found[1]["IsDeleted"]:
            raise NOT_FOUND
        seen = self.org.seen(obj, found[1])  # as it stood at the world's clock, when set
        if seen is None:
            raise NOT_FOUND
        if request.method == "GET":
            return self._render(request, obj, seen)
        if request.method == "DELETE":
            outcome = check(self.org, obj, "delete", {"Id": found[1]["Id"]})
            if not outcome.ok:
                raise _single_error(outcome)
            run_all([outcome], False)
            return Response(status_code=204)
        values = await _json(request)
        outcome = self._check(obj, "update", {**values, "Id": found[1]["Id"]})
        if not outcome.ok:
            raise _single_error(outcome)
        run_all([outcome], False)
        return Response(status_code=204)

    def _render(self, request: Request, obj: str, record: Record) -> Response:
        wanted = request.query_params.get("fields")
        names = [n.strip() for n in wanted.split(",")] if wanted else list(record)
        version = request.path_params["version"]
        out: Record = {"attributes": soql._attributes(obj, record["Id"], version)}
        for name in names:
            f = self.org.schema.field(obj, name)
            if f is None:
                raise ApiError(400, "INVALID_FIELD", f"No such column '{name}' on sobject "
                               f"of type {obj}")  # fmt: skip
            out[f.name] = stamp(record.get(f.name))
        return JSONResponse(out)

    async def by_external_id(self, request: Request) -> Response:
        """`GET|PATCH /sobjects/{object}/{field}/{value}`: read or upsert by an external id.

        An upsert answers 201 with `created: true` for a new record, 200 with `created: false`
        for an update (v46+), and 300 with the matching records' URLs when the value is not
        unique; a GET of several matches is 300 too."""
        obj = self._object(request)
        name, value = request.path_params["field"], request.path_params["value"]
        f = self.org.schema.field(obj, name)
        if f is None or not (f.external_id or f.name == "Id"):
            raise NOT_FOUND if request.method == "GET" else ApiError(
                404, "NOT_FOUND", f"Provided external ID field does not exist or is not "
                f"accessible: {name}")  # fmt: skip
        version = request.path_params["version"]
        matches = [r for r in self.org.records[obj].values()
                   if not r["IsDeleted"] and str(r.get(f.name) or "").casefold()
                   == value.casefold()]  # fmt: skip
        if len(matches) > 1:
            urls = [soql._attributes(obj, r["Id"], version)["url"] for r in matches]
            return JSONResponse(urls, 300)
        if request.method == "GET":
            if not matches:
                raise NOT_FOUND
            return self._render(request, obj, matches[0])
        values = await _json(request)
        if not isinstance(values, dict):
            raise ApiError(400, "JSON_PARSER_ERROR", "Expected a JSON object for the record")
        if any(k.lower() == f.name.lower() for k in values):
            raise ApiError(400, "INVALID_FIELD", f"The external ID field {f.name} should not be "
                           "in the body; it is given in the URL")  # fmt: skip
        outcome = self._check(obj, "upsert", {**values, f.name: value}, f.name)
        if not outcome.ok:
            raise _single_error(outcome)
        run_all([outcome], False)
        body: dict[str, Any] = {"id": outcome.record_id, "success": True, "errors": [],
                                "created": outcome.created}  # fmt: skip
        return JSONResponse(body, 201 if outcome.created else 200)

    async def create(self, request: Request) -> Response:
        obj = self._object(request)
        outcome = self._check(obj, "insert", await _json(request))
        if not outcome.ok:
            raise _single_error(outcome)
        run_all([outcome], False)
        return JSONResponse({"id": outcome.record_id, "success": True, "errors": []}, 201)

    def _check(self, obj: str, op: Operation, values: Any, external: str | None = None) -> Outcome:
        if not isinstance(values, dict):
            raise ApiError(400, "JSON_PARSER_ERROR", "Expected a JSON object for the record")
        try:
            return check(self.org, obj, op, values, external_id=external)
        except BadValue as exc:
            raise ApiError(400, "JSON_PARSER_ERROR", f"Cannot deserialize value {exc.args[0]!r}: "
                           "not of the field's type") from None  # fmt: skip

    # -- sObject Collections
    async def collection(self, request: Request) -> Response:
        body = await _json(request)
        records = body.get("records") if isinstance(body, dict) else None
        if not isinstance(records, list) or not records:
            raise ApiError(400, "INVALID_FIELD", "No records to process: `records` is required")
        if len(records) > MAX_COLLECTION:
            raise ApiError(400, "EXCEEDED_ID_LIMIT", "record limit reached. cannot submit more "
                           f"than {MAX_COLLECTION} records into this call")  # fmt: skip
        external = request.path_params.get("field")
        op: Operation = (
            "upsert" if external else "update" if request.method == "PATCH" else "insert"
        )
        fixed = self._object(request) if external else None
        if external and fixed:
            f = self.org.schema.field(fixed, external)
            if f is None or not (f.external_id or f.name == "Id"):
                raise ApiError(400, "INVALID_FIELD", f"Field name provided, {external} is not an "
                               f"External ID or indexed field for {fixed}")  # fmt: skip
        self.collection_sizes.append(len(records))
        outcomes = []
        for record in records:
            attributes = record.get("attributes") if isinstance(record, dict) else None
            kind = attributes.get("type") if isinstance(attributes, dict) else None
            obj = self.org.schema.object(str(kind or ""))
            if obj is None or (fixed and obj != fixed):
                error = {"statusCode": "INVALID_TYPE", "fields": [],
                         "message": "Must send a concrete entity type." if not kind
                         else f"sObject type '{kind}' is not supported."}  # fmt: skip
                outcomes.append(Outcome(errors=[error]))
                continue
            outcomes.append(self._check(obj, op, record, external))
        all_or_none = bool(body.get("allOrNone", False))
        results = run_all(outcomes, all_or_none)
        return JSONResponse([o.json(upsert=op == "upsert") for o in results])

    # -- Tooling API: an admin creating a custom field
    async def create_field(self, request: Request) -> Response:
        body = await _json(request)
        full = str(body.get("FullName", "")) if isinstance(body, dict) else ""
        obj_name, _, name = full.partition(".")
        obj = self.org.schema.object(obj_name)
        if obj != "Lead" or not name.endswith("__c"):
            raise ApiError(400, "FIELD_INTEGRITY_EXCEPTION", f"Invalid FullName: {full!r} (this "
                           "sandbox adds custom fields to Lead only)")  # fmt: skip
        if not self.allow_field_creation:
            raise ApiError(
                403,
                "INSUFFICIENT_ACCESS",
                "insufficient access rights on "
                "cross-reference id: the user cannot customize the application",
            )
        if self.org.schema.field(obj, name) is not None:
            raise ApiError(400, "DUPLICATE_DEVELOPER_NAME", f"There is already a field named "
                           f"{name} on Lead.")  # fmt: skip
        metadata = body.get("Metadata") or {}
        self.org.schema.add(obj, custom_field(name, **metadata))
        self.fields_created.append(name)
        return JSONResponse({"id": self.org.new_id("CustomField")[:15], "success": True,
                             "errors": [], "warnings": [], "infos": []}, 201)  # fmt: skip

    # -- Bulk API 2.0 ingest
    async def jobs(self, request: Request) -> Response:
        job = self.bulk.create(await _json(request), request.path_params["version"])
        return JSONResponse(job.info(), 200)

    async def job(self, request: Request) -> Response:
        job = self.bulk.get(request.path_params["job"])
        if request.method == "PATCH":
            body = await _json(request)
            wanted = body.get("state") if isinstance(body, dict) else None
            self.bulk.set_state(job, wanted)
            # the job is processed at once; the answer still shows the state asked for
            return JSONResponse({**job.info(), "state": wanted})
        if request.method == "DELETE":
            del self.bulk.jobs[job.id]
            return Response(status_code=204)
        return JSONResponse(self.bulk.status(job))

    async def batches(self, request: Request) -> Response:
        job = self.bulk.get(request.path_params["job"])
        self.bulk.upload(job, await request.body(), request.headers.get("content-type", ""))
        return Response(status_code=201)

    async def results(self, request: Request) -> Response:
        kind = request.path_params["kind"]
        if kind not in ("successfulResults", "failedResults", "unprocessedrecords"):
            raise NOT_FOUND
        job = self.bulk.get(request.path_params["job"])
        text = self.bulk.results(job, kind)
        return Response(text, 200, {"Sforce-Locator": "null"}, media_type="text/csv")


async def _json(request: Request) -> Any:
    try:
        return json.loads(await request.body() or b"null")
    except ValueError:
        raise ApiError(400, "JSON_PARSER_ERROR", "The request body is not valid JSON") from None


def _single_error(outcome: Outcome) -> ApiError:
    first = outcome.errors[0]
    return ApiError(400, first["statusCode"], first["message"], first["fields"])


Handler = Callable[[Request], Awaitable[Response]]


def bulk_errors(handler: Handler) -> Handler:
    """Bulk errors in the REST error shape."""

    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except BulkError as exc:
            raise ApiError(exc.status, exc.code, exc.message) from None

    return wrapped
