"""A Graph API sandbox for the Lead Ads connector: the paths, shapes, paging, filtering, auth
errors and throttling answers of `shared/api/facebook_leads.md`, seeded from the synthetic world.

    app = create_app(World.build(seed=7, people=200), rate_limit=50, empty_pages=True)
    # mount under MOUNT_PREFIX; the connector's base_url is then http://HOST:PORT/facebook_leads

Graph paths (any `vNN.N` version):
    GET /{version}/{page_id}/leadgen_forms   forms, paged
    GET /{version}/{form_id}/leads           leads, newest first, paged; `filtering` on
                                             `time_created` with Unix seconds (a wrong field or
                                             an ISO value is silently ignored, as Meta does)
    GET /{version}/{id}                      one lead, form or the Page
Only `id` and the requested `fields` come back (defaults as Graph's). The token is the
`access_token` parameter or a Bearer header; a provided `appsecret_proof` must be right, and
with `require_proof` it must be there. Errors are Graph error bodies.

Test-only:
    GET  /__sandbox/state    forms, lead count, calls (without credentials), throttled, …
    POST /__sandbox/leads    submit a lead: {"person": key} or {"email": …, "full_name": …,
                             "form_id": …}; with "deliver_to": URL it is also delivered as a
                             signed webhook (the helper is `world.deliver`)
"""

from __future__ import annotations

import base64
import functools
import hmac
import itertools
import json
import math
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from connectors.facebook_leads.client import appsecret_proof
from connectors.facebook_leads.sandbox.conformance import (
    FORM_FIELDS,
    LEAD_FIELDS,
    OPERATIONS,
    unknown_fields,
)
from connectors.facebook_leads.sandbox.world import (
    NEW_LEAD_ID_BASE,
    PAGE_ID,
    SandboxLead,
    deliver,
    leadgen_delivery,
    person_lead,
    seed_forms,
    seed_leads,
    select,
)
from connectors.sandbox.conformance import check_request
from connectors.sandbox.world import World

MOUNT_PREFIX = "/facebook_leads"  # where `connectors.sandbox.hub` mounts it: /<connector>
ACCESS_TOKEN = "sandbox-page-token"
APP_SECRET = "sandbox-app-secret"
OPERATORS = {
    "LESS_THAN": lambda t, v: t < v,
    "GREATER_THAN": lambda t, v: t > v,
    "GREATER_THAN_OR_EQUAL": lambda t, v: t >= v,
}
DEFAULT_FIELDS = {"lead": "created_time,id", "form": "id,locale,name,status", "page": "id,name"}
MESSAGES = {
    2: ("An unexpected error has occurred. Please retry your request later.", "OAuthException"),
    4: ("(#4) Application request limit reached", "OAuthException"),
    17: ("(#17) User request limit reached", "OAuthException"),
    32: ("(#32) Page request limit reached", "OAuthException"),
    190: ("Error validating access token: Session has expired.", "OAuthException"),
    613: ("(#613) Calls to this api have exceeded the rate limit.", "OAuthException"),
    80005: (
        "(#80005) There have been too many leadgen api calls to this Page. Wait a bit and try "
        "again.",
        "OAuthException",
    ),
}


class GraphFault(Exception):
    """A Graph error answer: `{"error": {...}}` with an HTTP status and extra headers."""

    def __init__(
        self, status: int, code: int, message: str, kind: str = "OAuthException", **extra: Any
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.kind = status, code, message, kind
        self.headers: dict[str, str] = extra.pop("headers", {})
        self.extra = extra

    def response(self) -> JSONResponse:
        trace = base64.b64encode(self.message.encode()[:9]).decode()
        body = {"message": self.message, "type": self.kind, "code": self.code,
                "fbtrace_id": trace, **self.extra}  # fmt: skip
        return JSONResponse({"error": body}, self.status, headers=self.headers)


@dataclass
class Fault:
    """An injected failure: the next `times` calls whose path contains `match` get this error.

    `code` picks Meta's message (2: a 500 with `is_transient`, 80005: LeadGen throttling, 190:
    an expired token); `regain_minutes` adds `estimated_time_to_regain_access` to the usage header.
    """

    code: int
    match: str = ""
    times: int = 1
    status: int = 400
    subcode: int | None = None
    regain_minutes: int = 0


def _encode(key: str) -> str:
    return base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")


def _decode(cursor: str) -> str:
    try:
        return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        raise GraphFault(400, 100, "(#100) The After Cursor specified is invalid") from None


class GraphSandbox:
    """The sandbox's state and behaviour; `create_app` serves it."""

    def __init__(
        self,
        world: World,
        *,
        page_id: str = PAGE_ID,
        access_token: str = ACCESS_TOKEN,
        app_secret: str = APP_SECRET,
        require_proof: bool = False,
        default_limit: int = 25,
        max_limit: int = 500,  # Meta's is not documented
        empty_pages: bool = False,
        rate_limit: int | None = None,
        rate_window: float = 60.0,
        error_status: int = 400,
        faults: Sequence[Fault] = (),
    ) -> None:
        self.page_id, self.access_token, self.app_secret = page_id, access_token, app_secret
        self.require_proof, self.empty_pages = require_proof, empty_pages
        self.default_limit, self.max_limit = default_limit, max_limit
        self.rate_limit, self.rate_window = rate_limit, rate_window
        self.error_status = error_status
        self.faults = list(faults)
        self.world = world
        self.forms = seed_forms(world)
        self.leads = seed_leads(world, self.forms)
        self.calls: list[dict[str, Any]] = []
        self.throttled = 0
        self.filters_ignored = 0
        self._recent: deque[float] = deque()
        self._ids = itertools.count(NEW_LEAD_ID_BASE)
        # The sandbox's clock runs on from the world's `now`, so a submitted lead is the newest.
        self._epoch = world.now.timestamp() - time.monotonic()
        self._lock = threading.Lock()

    # -- checks every Graph call goes through ------------------------------------------------

    def check(self, request: Request) -> dict[str, str]:
        """Record the call; raise the GraphFault Graph would answer; else the usage headers."""
        query = request.query_params
        shown = {k: v for k, v in query.items() if k not in ("access_token", "appsecret_proof")}
        self.calls.append({"method": request.method, "path": request.url.path, "query": shown})
        token = query.get("access_token") or request.headers.get("authorization", "")
        token = token.removeprefix("Bearer ").strip()
        if not token:
            msg = "An active access token must be used to query information about the current user."
            raise GraphFault(self.error_status, 104, msg)
        if not hmac.compare_digest(token.encode(), self.access_token.encode()):
            raise GraphFault(self.error_status, 190, "Invalid OAuth access token data.")
        proof = query.get("appsecret_proof")
        if proof is None and self.require_proof:
            msg = "API calls from the server require an appsecret_proof argument"
            raise GraphFault(400, 100, msg, "GraphMethodException")
        expected = appsecret_proof(self.app_secret, token)
        if proof is not None and not hmac.compare_digest(proof.encode(), expected.encode()):
            msg = "Invalid appsecret_proof provided in the API argument"
            raise GraphFault(400, 100, msg, "GraphMethodException")
        self._injected(request.url.path)
        return self._count_call()

    def _injected(self, path: str) -> None:
        with self._lock:
            fault = next((f for f in self.faults if f.times > 0 and f.match in path), None)
            if fault is None:
                return
            fault.times -= 1
            message, kind = MESSAGES.get(fault.code, (f"(#{fault.code}) Error", "Exception"))
            extra: dict[str, Any] = {"headers": self._usage(100, fault.regain_minutes)}
            if fault.subcode is not None:
                extra["error_subcode"] = fault.subcode
            if fault.code == 2:
                extra["is_transient"] = True
            if fault.code in (4, 17, 32, 613, 80005):
                self.throttled += 1
            raise GraphFault(fault.status, fault.code, message, kind, **extra)

    def _count_call(self) -> dict[str, str]:
        if self.rate_limit is None:
            return self._usage(0, 0)
        with self._lock:
            now = time.monotonic()
            while self._recent and self._recent[0] <= now - self.rate_window:
                self._recent.popleft()
            if len(self._recent) >= self.rate_limit:
                self.throttled += 1
                regain = math.ceil((self._recent[0] + self.rate_window - now) / 60)
                message, kind = MESSAGES[80005]
                headers = self._usage(100, max(1, regain))
                raise GraphFault(self.error_status, 80005, message, kind, headers=headers)
            self._recent.append(now)
            used = int(100 * len(self._recent) / self.rate_limit)
        return self._usage(used, 0)

    def _usage(self, percent: int, regain_minutes: int) -> dict[str, str]:
        buc = {"type": "leadgen", "call_count": percent, "total_cputime": 1, "total_time": 1,
               "estimated_time_to_regain_access": regain_minutes}  # fmt: skip
        return {
            "X-App-Usage": json.dumps({"call_count": 0, "total_time": 0, "total_cputime": 0}),
            "X-Business-Use-Case-Usage": json.dumps({self.page_id: [buc]}),
        }

    # -- reads --------------------------------------------------------------------------------

    def node(self, node_id: str, fields: str | None) -> dict[str, Any]:
        lead = next((x for x in self.leads if x.id == node_id and self.shows(x)), None)
        if lead is not None:
            return select(lead.graph(), _known(fields, LEAD_FIELDS, "Lead", "lead"))
        form = next((f for f in self.forms if f.id == node_id), None)
        if form is not None:
            return select(form.graph(), _known(fields, FORM_FIELDS, "LeadgenForm", "form"))
        if node_id == self.page_id:
            return select({"id": node_id, "name": "Sandbox Page"}, fields or DEFAULT_FIELDS["page"])
        raise self.unknown(node_id)

    def edge(self, request: Request, node: str, edge: str) -> dict[str, Any]:
        """A page of the Page's forms, or of a form's leads (newest first, filtered)."""
        fields = request.query_params.get("fields")
        if edge == "leadgen_forms" and node == self.page_id:
            forms = sorted(self.forms, key=lambda f: f.created_time, reverse=True)
            wanted = _known(fields, FORM_FIELDS, "LeadgenForm", "form")
            rows = [(f.id, select(f.graph(), wanted)) for f in forms]
            return self.page(request, rows)
        if edge == "leads" and any(f.id == node for f in self.forms):
            conditions = self.lead_filter(request.query_params.get("filtering"))
            leads = [x for x in self.leads if x.form_id == node and self.shows(x)]
            leads = [
                x for x in leads if all(OPERATORS[o](x.created_time, v) for o, v in conditions)
            ]
            leads.sort(key=lambda x: (x.created_time, x.id), reverse=True)
            wanted = _known(fields, LEAD_FIELDS, "Lead", "lead")
            # objects are built for the page served only, not for every lead of the form
            return self.page(
                request, [(x.id, functools.partial(_lead_object, x, wanted)) for x in leads]
            )
        raise self.unknown(node)

    def shows(self, lead: SandboxLead) -> bool:
        """Whether `lead` was submitted by the world's clock (always, when it is not set)."""
        at = self.world.clock
        return at is None or lead.created_time <= at.timestamp()

    def unknown(self, node_id: str) -> GraphFault:
        if not node_id.isdigit():  # a name Graph would resolve as an alias, and cannot
            message = f"(#803) Some of the aliases you requested do not exist: {node_id}"
            return GraphFault(404, 803, message)
        message = (
            f"Unsupported get request. Object with ID '{node_id}' does not exist, cannot be loaded "
            "due to missing permissions, or does not support this operation."
        )
        return GraphFault(400, 100, message, "GraphMethodException", error_subcode=33)

    def lead_filter(self, raw: str | None) -> list[tuple[str, int]]:
        """The usable `(operator, value)` conditions of a `filtering` parameter."""
        if not raw:
            return []
        try:
            conditions = json.loads(raw)
        except ValueError:
            raise GraphFault(400, 100, "(#100) param filtering must be an array.") from None
        usable = []
        for i, cond in enumerate(conditions if isinstance(conditions, list) else []):
            operator = cond.get("operator") if isinstance(cond, dict) else None
            if operator not in OPERATORS:
                allowed = ", ".join(OPERATORS)
                msg = f"(#100) filtering[{i}][operator] must be one of the values: {allowed}"
                raise GraphFault(400, 100, msg)
            value = cond.get("value")
            # Meta ignores a wrong field name or a non-Unix value silently: every lead comes back.
            if cond.get("field") != "time_created" or not str(value).isdigit():
                self.filters_ignored += 1
                continue
            usable.append((operator, int(value)))
        return usable

    def page(self, request: Request, rows: Sequence[tuple[str, Any]]) -> dict[str, Any]:
        """One page of `(sort key, object or object factory)` rows after the `after` cursor, with
        Graph's paging."""
        query = request.query_params
        try:
            limit = min(max(int(query.get("limit", self.default_limit)), 1), self.max_limit)
        except ValueError:
            raise GraphFault(400, 100, "(#100) param limit must be a number.") from None
        after = query.get("after")
        if after is None and self.empty_pages and rows:
            # Graph may answer an empty page that still has a `next` link; its cursors are there
            # too (the SDK's Cursor pages on `cursors.after`, and stops without one).
            first = _encode("start")
            cursors = {"before": first, "after": first}
            return {"data": [], "paging": {"cursors": cursors, "next": self._url(request, first)}}
        position = _decode(after) if after else "start"
        keys = [key for key, _ in rows]
        if position == "start":
            start = 0
        else:  # an unknown cursor (its lead is gone) ends the listing rather than restarting it
            start = keys.index(position) + 1 if position in keys else len(keys)
        chunk = rows[start : start + limit]
        paging: dict[str, Any] = {"cursors": {}}
        if chunk:
            paging["cursors"] = {"before": _encode(chunk[0][0]), "after": _encode(chunk[-1][0])}
        if start + limit < len(rows):
            paging["next"] = self._url(request, _encode(chunk[-1][0]))
        return {"data": [obj() if callable(obj) else obj for _, obj in chunk], "paging": paging}

    @staticmethod
    def _url(request: Request, after: str) -> str:
        """The request's own URL with another `after` cursor, as Graph builds `next`."""
        return str(request.url.include_query_params(after=after))

    # -- test-only ----------------------------------------------------------------------------

    def submit(self, person: int | None = None, **answers: str) -> SandboxLead:
        """A new lead, created now: a world person's, or one with the given answers."""
        form_id = answers.pop("form_id", self.forms[0].id)
        form = next((f for f in self.forms if f.id == form_id), None)
        if form is None:
            raise ValueError(f"no form {form_id!r} in the sandbox")
        lead_id, now = str(next(self._ids)), int(self._epoch + time.monotonic())
        if person is not None:
            lead = person_lead(self.world.people[person], form, lead_id, now)
        else:
            data = [{"name": k, "values": [v]} for k, v in answers.items()]
            lead = SandboxLead(lead_id, form.id, now, data)
        with self._lock:
            self.leads.append(lead)
        return lead

    def state(self) -> dict[str, Any]:
        return {
            "page_id": self.page_id,
            "forms": [{"id": f.id, "name": f.name, "status": f.status} for f in self.forms],
            "leads": len(self.leads),
            "calls": self.calls,
            "throttled": self.throttled,
            "filters_ignored": self.filters_ignored,
            "faults_left": sum(f.times for f in self.faults),
        }


def _known(fields: str | None, known: frozenset[str], node_type: str, default: str) -> str:
    """`fields`, or the node type's default ones; a field the type lacks is Graph's (#100)."""
    if not fields:
        return DEFAULT_FIELDS[default]
    unknown = unknown_fields(fields, known)
    if unknown:
        msg = f"(#100) Tried accessing nonexisting field ({unknown[0]}) on node type ({node_type})"
        raise GraphFault(400, 100, msg)
    return fields


def _lead_object(lead: SandboxLead, wanted: str) -> dict[str, Any]:
    return select(lead.graph(), wanted)


def conform(request: Request) -> None:
    """Refuse a request the SDK's operation table does not allow, as Graph does: (#100)."""
    path = request.url.path.removeprefix(request.scope.get("root_path", ""))
    query = request.query_params.multi_items()
    problems = check_request(OPERATIONS, request.method, path, query, vendor="facebook_leads")
    if problems:
        raise GraphFault(400, 100, f"(#100) {'; '.join(problems)}")


def _routes(sandbox: GraphSandbox) -> list[Route]:
    def graph(handler: Any) -> Any:
        def endpoint(request: Request) -> Response:
            try:
                if not request.path_params["version"][1:].replace(".", "").isdigit():
                    raise GraphFault(400, 2500, f"Unknown path components: {request.url.path}")
                conform(request)
                headers = sandbox.check(request)
                return JSONResponse(handler(request), headers=headers)
            except GraphFault as fault:
                return fault.response()

        return endpoint

    def read_node(request: Request) -> dict[str, Any]:
        return sandbox.node(request.path_params["node"], request.query_params.get("fields"))

    def read_edge(request: Request) -> dict[str, Any]:
        return sandbox.edge(request, request.path_params["node"], request.path_params["edge"])

    async def submit(request: Request) -> Response:
        body = await request.json()
        deliver_to = body.pop("deliver_to", None)
        try:
            lead = sandbox.submit(**body)
        except (TypeError, ValueError, IndexError) as exc:
            return JSONResponse({"error": str(exc)}, 400)
        delivery = leadgen_delivery(sandbox.page_id, [lead])
        result: dict[str, Any] = {"lead": lead.graph(), "delivery": delivery}
        if deliver_to:
            sent = await run_in_threadpool(deliver, deliver_to, delivery, sandbox.app_secret)
            result["delivered"] = sent.status_code
        return JSONResponse(result, 201)

    return [
        Route("/__sandbox/state", lambda r: JSONResponse(sandbox.state())),
        Route("/__sandbox/leads", submit, methods=["POST"]),
        Route("/{version}/{node}/{edge}", graph(read_edge)),
        Route("/{version}/{node}", graph(read_node)),
    ]


def create_app(world: World, **options: Any) -> Starlette:
    """The sandbox ASGI app (mount it under MOUNT_PREFIX); `app.state.sandbox` is its state.

    Options: page_id, access_token, app_secret, require_proof (refuse calls without
    appsecret_proof), default_limit (25), max_limit (500), empty_pages (each listing starts
    with an empty page that has `next`), rate_limit (calls per rate_window seconds, then
    80005 with `estimated_time_to_regain_access`), rate_window (60), error_status (HTTP status
    of token and throttling errors: 400; Meta does not document it), faults (a list of Fault).
    """
    sandbox = GraphSandbox(world, **options)
    app = Starlette(routes=_routes(sandbox))
    app.state.sandbox = sandbox
    return app
