"""A Mailchimp Marketing API sandbox: the part of `/3.0` the connector calls, seeded from the world.

    app = create_app(World.build(seed=42, people=500))   # the hub mounts it at MOUNT_PREFIX
    # connector: base_url: http://127.0.0.1:PORT/mailchimp   (it adds /3.0 itself)

Vendor paths (`connectors.mailchimp.sandbox.api`): `GET /3.0/`, `GET /3.0/lists/{id}/members`
(count ≤ 1000, offset, since/before_last_changed, status, sort_field/sort_dir, fields), `POST
/3.0/lists/{id}` (batch subscribe/update, ≤ 500 members), `GET|POST /3.0/lists/{id}/merge-fields`,
`GET|POST /3.0/lists/{id}/members/{hash}/tags` (204), `GET|POST /3.0/lists/{id}/segments` (tags
are static segments: list with `type=static`, create with `static_segment`), `POST
/3.0/lists/{id}/segments/{segment_id}` (`members_to_add`/`members_to_remove`, ≤ 500 each; emails
not on the list are ignored, malformed ones come back in `errors`), `GET /3.0/campaigns`, `GET
/3.0/reports/{id}/email-activity` (`since`), `GET /3.0/reports/{id}/unsubscribed` (no date
filter), and `GET /oauth2/metadata` (200 with `{"error": "invalid_token"}` for a bad token).

Behaviour: HTTP Basic (any user, the key as password) or Bearer auth, else 401 problem+json;
more than `max_connections` requests at once → 429 problem+json (`latency` holds each request
open, so that concurrency shows); `faults` answer chosen requests with an error first.

Test-only: `GET /__sandbox/state[?members=1][&email=…]` (calls per path, connection-limit hits,
the most requests seen at once, batch sizes, tag changes with `via` member or segment, merge
fields, members);
`POST /__sandbox/activity` (new opens/clicks/bounces), `POST /__sandbox/members` (change or add
a member: its `last_changed` moves), `POST /__sandbox/faults`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import fnmatch
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from connectors.mailchimp.sandbox import data
from connectors.mailchimp.sandbox.api import API, Handler, Problem, _json, _when
from connectors.mailchimp.sandbox.conformance import OPERATIONS
from connectors.mailchimp.sandbox.data import Activity, Audience
from connectors.sandbox.conformance import check_request
from connectors.sandbox.world import World

MOUNT_PREFIX = "/mailchimp"
SANDBOX_API_KEY = "0123456789abcdef0123456789abcdef-us6"
SANDBOX_OAUTH_TOKEN = "sandbox-oauth-token-0123456789"
LIST_ID = "a1b2c3d4e5"


@dataclass
class Fault:
    """Answer the next `times` requests matching `method` and `path` (a glob) with `status`.

    `body`: `problem` (problem+json), `html` (a CDN's timeout page) or `empty` (what Mailchimp's
    connection limit gives with 403 at high volume).
    """

    path: str
    status: int = 429
    method: str = "*"
    times: int = 1
    body: Literal["problem", "html", "empty"] = "problem"
    retry_after: float | None = None

    def response(self) -> Response:
        headers = {"Retry-After": f"{self.retry_after:g}"} if self.retry_after is not None else {}
        if self.body == "html":
            return Response("<html><body>502 Bad Gateway</body></html>", self.status, headers,
                            media_type="text/html")  # fmt: skip
        if self.body == "empty":
            return Response(b"", self.status, headers)
        response = Problem(self.status, "Injected Fault", f"sandbox fault {self.status}").response()
        response.headers.update(headers)
        return response


def _vendor_path(request: Request) -> str:
    """The request's path below where the sandbox is mounted (`/3.0/...`)."""
    return request.url.path.removeprefix(request.scope.get("root_path", ""))


class Sandbox:
    """The guards around every API call: auth, the connection limit, faults; and the counters."""

    def __init__(
        self,
        audience: Audience,
        *,
        api_key: str,
        oauth_token: str,
        max_connections: int,
        latency: float,
        faults: Iterable[Fault | Mapping[str, Any]],
    ) -> None:
        self.audience, self.api_key, self.oauth_token = audience, api_key, oauth_token
        self.max_connections, self.latency = max_connections, latency
        self.faults = [f if isinstance(f, Fault) else Fault(**f) for f in faults]
        self.calls: Counter[str] = Counter()
        self.in_flight = self.max_in_flight = self.rate_limited = 0

    def authenticate(self, request: Request) -> None:
        scheme, _, credential = request.headers.get("authorization", "").partition(" ")
        if not credential:
            raise Problem(401, "API Key Missing", "Your request did not include an API key.")
        if scheme.lower() == "basic":
            try:
                credential = base64.b64decode(credential).decode().partition(":")[2]
            except (binascii.Error, UnicodeDecodeError):
                credential = ""
        if credential not in (self.api_key, self.oauth_token) or scheme.lower() not in (
            "basic",
            "bearer",
        ):
            detail = (
                "Your API key may be invalid, or you've attempted to access the wrong datacenter."
            )
            raise Problem(401, "API Key Invalid", detail)

    def take_fault(self, request: Request) -> Fault | None:
        path = _vendor_path(request)
        for fault in self.faults:
            matches = fnmatch.fnmatchcase(path, fault.path) and fault.method in (
                "*",
                request.method,
            )
            if fault.times > 0 and matches:
                fault.times -= 1
                return fault
        return None

    async def conform(self, request: Request) -> None:
        """Refuse, as Mailchimp would, a request the published schema does not allow."""
        body: Any = None
        if request.method in ("POST", "PUT", "PATCH"):
            try:
                body = await request.json()
            except ValueError:
                raise Problem(400, "JSON Parse Exception",
                              "the request body is not valid JSON") from None  # fmt: skip
        problems = check_request(OPERATIONS, request.method, _vendor_path(request),
                                 request.query_params.multi_items(), body,
                                 vendor="mailchimp")  # fmt: skip
        if problems:
            errors = [{"field": p.split(":")[0], "message": p} for p in problems]
            detail = "The resource submitted could not be validated. For field-specific " \
                     "details, see the 'errors' array."  # fmt: skip
            raise Problem(400, "Invalid Resource", detail, errors)

    async def not_found(self, request: Request, exc: Exception) -> Response:
        """An unknown route or method: Mailchimp's problem+json, never plain text."""
        path = _vendor_path(request)
        if path.startswith("/3.0"):  # a vendor call our table does not know: recorded
            check_request(OPERATIONS, request.method, path, request.query_params.multi_items(),
                          vendor="mailchimp")  # fmt: skip
        status = getattr(exc, "status_code", 404)
        if status == 405:
            detail = "The requested method and resource are not compatible."
            return Problem(405, "Method Not Allowed", detail).response()
        return Problem(404, "Resource Not Found",
                       "The requested resource could not be found.").response()  # fmt: skip

    def route(self, template: str, handler: Handler, methods: list[str]) -> Route:
        async def endpoint(request: Request) -> Response:
            self.calls[f"{request.method} {template}"] += 1
            try:
                self.authenticate(request)
                await self.conform(request)
                if self.in_flight >= self.max_connections:
                    self.rate_limited += 1
                    limit = self.max_connections
                    detail = f"You have exceeded the limit of {limit} simultaneous connections."
                    raise Problem(429, "Too Many Requests", detail)
                self.in_flight += 1
                self.max_in_flight = max(self.max_in_flight, self.in_flight)
                try:
                    if self.latency:  # hold the connection, so that concurrent calls overlap
                        await asyncio.sleep(self.latency)
                    fault = self.take_fault(request)
                    return fault.response() if fault else await handler(request, self.audience)
                finally:
                    self.in_flight -= 1
            except Problem as exc:
                return exc.response()

        return Route(template, endpoint, methods=methods)

    # -- outside the vendor's API --------------------------------------------------------------

    async def metadata(self, request: Request) -> Response:
        """OAuth metadata: 200 either way; a bad token gets `{"error": "invalid_token"}`."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() not in ("oauth", "bearer") or token != self.oauth_token:
            return JSONResponse({"error": "invalid_token", "error_description": "Invalid token"})
        # Where this app is mounted (e.g. /mailchimp), so the client's `+ "/3.0"` lands here.
        url = request.url
        endpoint = f"{url.scheme}://{url.netloc}{request.scope.get('root_path', '')}"
        return JSONResponse({"dc": "us6", "role": "owner", "accountname": "Sandbox",
                             "user_id": "99999999",
                             "login": {"email": "owner@example.com", "login_id": "88888888",
                                       "login_name": "owner", "login_email": "owner@example.com"},
                             "login_url": "https://login.mailchimp.com",
                             "api_endpoint": endpoint})  # fmt: skip

    async def state(self, request: Request) -> Response:
        a = self.audience
        body: dict[str, Any] = {
            "calls": dict(self.calls), "rate_limited": self.rate_limited,
            "max_in_flight": self.max_in_flight, "counters": dict(a.counters),
            "batch_sizes": list(a.batch_sizes), "tag_events": list(a.tag_events),
            "merge_fields": list(a.merge_fields), "list_id": a.list_id,
            "campaigns": [{"id": c.id, "title": c.title} for c in a.campaigns],
            "faults_left": [asdict(f) for f in self.faults if f.times > 0],
        }  # fmt: skip
        if request.query_params.get("members"):
            members = a.members.values()
            body["members"] = [data.render_member(m, a.list_id, a.tag_ids) for m in members]
        if email := request.query_params.get("email"):
            member = a.members.get(data.subscriber_hash(email))
            body["member"] = data.render_member(member, a.list_id, a.tag_ids) if member else None
        return JSONResponse(body)

    async def add_activity(self, request: Request) -> Response:
        """`{"email", "action": open|click|bounce, "campaign"?, "timestamp"?, "url"?, "type"?}`
        or a list of them; the campaign (id or title) defaults to the latest one."""
        body = await _json(request)
        added = 0
        try:
            for entry in body if isinstance(body, list) else [body]:
                self.audience.activity.append(self._activity(entry))
                added += 1
        except Problem as exc:
            return exc.response()
        return JSONResponse({"added": added}, 201)

    def _activity(self, entry: Mapping[str, Any]) -> Activity:
        a = self.audience
        member = a.members.get(data.subscriber_hash(str(entry.get("email", ""))))
        wanted = entry.get("campaign")
        found = [c for c in a.campaigns if wanted in (None, c.id, c.title)]
        if member is None or not found or entry.get("action") not in ("open", "click", "bounce"):
            raise Problem(400, "Invalid Resource", "need a member's email, an action, a campaign")
        when = _when(entry.get("timestamp"), "timestamp") or a.clock()
        return Activity(found[-1].id, member.id, str(entry["action"]), when,
                        entry.get("url"), entry.get("type"))  # fmt: skip

    async def touch_member(self, request: Request) -> Response:
        """`{"email", "merge_fields"?, "status"?}`: change (or add) a member now."""
        body = await _json(request)
        a = self.audience
        email = str(body.get("email", ""))
        member = a.members.get(data.subscriber_hash(email)) or a.add_member(email, "subscribed", {})
        member.merge_fields.update(body.get("merge_fields") or {})
        member.status = body.get("status") or member.status
        member.last_changed = a.clock()
        return JSONResponse(data.render_member(member, a.list_id))

    async def add_faults(self, request: Request) -> Response:
        body = await _json(request)
        self.faults.extend(Fault(**f) for f in body.get("faults") or [])
        return JSONResponse({"faults": len(self.faults)}, 201)


def create_app(
    world: World,
    *,
    list_id: str = LIST_ID,
    api_key: str = SANDBOX_API_KEY,
    oauth_token: str = SANDBOX_OAUTH_TOKEN,
    max_connections: int = 10,
    latency: float = 0.0,
    faults: Iterable[Fault | Mapping[str, Any]] = (),
) -> Starlette:
    """The sandbox app over `world`'s Mailchimp people; `app.state.sandbox` is its `Sandbox`."""
    sandbox = Sandbox(
        data.seed(world, list_id), api_key=api_key, oauth_token=oauth_token,
        max_connections=max_connections, latency=latency, faults=faults,
    )  # fmt: skip
    routes = [sandbox.route(t, h, m) for t, h, m in API]
    routes += [
        Route("/oauth2/metadata", sandbox.metadata, methods=["GET"]),
        Route("/__sandbox/state", sandbox.state, methods=["GET"]),
        Route("/__sandbox/activity", sandbox.add_activity, methods=["POST"]),
        Route("/__sandbox/members", sandbox.touch_member, methods=["POST"]),
        Route("/__sandbox/faults", sandbox.add_faults, methods=["POST"]),
    ]
    app = Starlette(routes=routes, exception_handlers={404: sandbox.not_found,
                                                       405: sandbox.not_found})  # fmt: skip
    app.state.sandbox = sandbox
    return app
