"""A HubSpot API sandbox: the paths the connector calls, in HubSpot's shapes, seeded from the world.

    app = create_app(World.build(seed=42, people=500))   # the hub mounts it at MOUNT_PREFIX
    # connector: base_url: http://127.0.0.1:PORT/hubspot

Vendor paths (`routes.py`), under both `/crm/v3/…` and the dated `/crm/objects/2026-03/…`
forms: contacts list (`limit` ≤ 100, `after`, `properties`, `archived`), get by id or email,
search (≤ 200 a page, 10,000 results per query, a 400 beyond), `batch/read|update|upsert` (≤ 100;
207 multi-status with per-record errors for invalid values), merge, DELETE (archive), contact
properties and groups (GET, POST with 409 CONFLICT, PATCH, DELETE; `properties/contacts/batch/
read`, a 207 naming the missing ones), `tasks/batch/create` (201) and GET of a task;
`GET /email/public/v1/events` (offset paging, `excludeFilteredEvents`),
`GET /form-integrations/v1/submissions/forms/{guid}`, and the OAuth token endpoint
(`POST /oauth/v1/token` and `/oauth/v3/token`, form body; access tokens last `token_ttl`
seconds; refresh tokens rotate when `rotate_refresh_tokens`). The answers are the shapes
HubSpot's official client (`hubspot-api-client`) reads with its validation on.

Behaviour: `Authorization: Bearer <token>` with the private-app token, the service key or an
issued OAuth access token, else 401 (`EXPIRED_AUTHENTICATION` for an expired access token).
Budgets as HubSpot counts them: `burst_limit` requests per rolling 10 s (429
`TEN_SECONDLY_ROLLING`), `daily_limit` in all (429 `DAILY`; the sandbox's day never ends),
`search_rate` searches a second (429 `SECONDLY`); non-search answers carry the
`X-HubSpot-RateLimit-*` headers. Each request is checked against `conformance.OPERATIONS` (and
recorded); one that breaks HubSpot's schema is refused with a 400 `VALIDATION_ERROR`.

Test-only: `GET /__sandbox/state[?contact=<id>][&email=<e>]` (calls per path, 429s per policy,
other 4xx answers per path, batch sizes, tasks, created properties and groups, refresh tokens
issued, one contact);
`POST /__sandbox/generate` `{"count", "per_ms"?}` (new contacts modified just now) and
`POST /__sandbox/touch` `{"ids"? | "count"?, "per_ms"?}` (contacts edited just now).
"""

from __future__ import annotations

import itertools
import json
import time
from collections import Counter, deque
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from connectors.hubspot.sandbox import writes
from connectors.hubspot.sandbox.conformance import OPERATIONS
from connectors.hubspot.sandbox.data import FORM_GUID, PORTAL_ID, standard_properties
from connectors.hubspot.sandbox.portal import Handler, Portal, error
from connectors.hubspot.sandbox.routes import routes
from connectors.sandbox.conformance import check_request
from connectors.sandbox.world import World

MOUNT_PREFIX = "/hubspot"
SANDBOX_TOKEN = "pat-na1-5a9d0b1c-0000-4000-8000-00000000beef"
SANDBOX_SERVICE_KEY = "sk-na1-5a9d0b1c-0000-4000-8000-00000000cafe"
OAUTH_CLIENT_ID = "5a9d0b1c-client-0000-4000-8000-000000000001"
OAUTH_CLIENT_SECRET = "sandbox-client-secret-0000"
OAUTH_REFRESH_TOKEN = "na1-5a9d-0000-refresh-0000-000000000001"
INVALID_AUTH = (
    "Authentication credentials not found. This API supports OAuth 2.0 authentication and you "
    "can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview"
)


class Refused(Exception):
    """An answer that ends a request before its handler: 401, 429, or 400 for a request that
    breaks HubSpot's schema."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(body.get("message"))
        self.status, self.body = status, body


class Sandbox:
    """The guards around every API call (auth, the three budgets) and the counters."""

    def __init__(
        self,
        portal: Portal,
        *,
        tokens: tuple[str, ...],
        burst_limit: int,
        daily_limit: int,
        search_rate: int,
        token_ttl: float,
        rotate_refresh_tokens: bool,
        clock: Callable[[], float],
    ) -> None:
        self.portal, self.tokens, self.clock = portal, tokens, clock
        self.burst_limit, self.daily_limit, self.search_rate = burst_limit, daily_limit, search_rate
        self.token_ttl, self.rotate = token_ttl, rotate_refresh_tokens
        self.access: dict[str, float] = {}  # issued OAuth access token → expiry
        self.refresh_tokens = {OAUTH_REFRESH_TOKEN}
        self.issued = itertools.count(1)
        self.refreshes = 0
        self.calls: Counter[str] = Counter()
        self.rate_limited: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()  # 4xx answers from the handlers, per path
        self.batch_sizes: dict[str, list[int]] = {}
        self.burst: deque[float] = deque()
        self.searches: deque[float] = deque()
        self.daily = 0

    # -- guards --------------------------------------------------------------------------------

    def authenticate(self, request: Request) -> bool:
        """True for an OAuth access token (no daily headers then); else a static token, or 401."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and token in self.tokens:
            return False
        expires = self.access.get(token) if scheme.lower() == "bearer" else None
        if expires is None:
            raise Refused(401, error("INVALID_AUTHENTICATION", INVALID_AUTH))
        if self.clock() >= expires:
            ago = int(self.clock() - expires)
            message = f"The OAuth token used to make this call expired {ago} second(s) ago."
            raise Refused(401, error("EXPIRED_AUTHENTICATION", message))
        return True

    def admit(self, search: bool) -> None:
        """Count one request against its budgets, or refuse it with HubSpot's 429 body."""
        now = self.clock()
        window, per, limit, policy = (
            (self.searches, 1.0, self.search_rate, "SECONDLY")
            if search
            else (self.burst, 10.0, self.burst_limit, "TEN_SECONDLY_ROLLING")
        )
        while window and window[0] <= now - per:
            window.popleft()
        if self.daily >= self.daily_limit:
            self._limited("DAILY", "You have reached your daily limit.")
        if len(window) >= limit:
            name = "secondly" if search else "ten_secondly_rolling"
            self._limited(policy, f"You have reached your {name} limit.")
        window.append(now)
        self.daily += 1

    def _limited(self, policy: str, message: str) -> None:
        self.rate_limited[policy] += 1
        body = {"status": "error", "message": message, "errorType": "RATE_LIMIT",
                "correlationId": f"sandbox-{self.daily}", "policyName": policy,
                "groupName": f"api-calls:{PORTAL_ID}"}  # fmt: skip
        raise Refused(429, body)

    def usage_headers(self, oauth: bool) -> dict[str, str]:
        headers = {
            "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
            "X-HubSpot-RateLimit-Max": str(self.burst_limit),
            "X-HubSpot-RateLimit-Remaining": str(max(0, self.burst_limit - len(self.burst))),
        }
        if not oauth:  # HubSpot sends no daily headers to OAuth calls
            headers["X-HubSpot-RateLimit-Daily"] = str(self.daily_limit)
            headers["X-HubSpot-RateLimit-Daily-Remaining"] = str(self.daily_limit - self.daily)
        return headers

    def api(self, label: str, handler: Handler, *, search: bool = False) -> Callable[..., Any]:
        async def endpoint(request: Request) -> Response:
            self.calls[f"{request.method} {label}"] += 1
            try:
                oauth = self.authenticate(request)
                self.admit(search)
                await conforms(request)
            except Refused as refused:
                if refused.status == 400:
                    self.errors[f"400 {request.method} {label}"] += 1
                return JSONResponse(refused.body, refused.status)
            status, body = await handler(request)
            if status >= 400:
                self.errors[f"{status} {request.method} {label}"] += 1
            if status == 204:
                return Response(status_code=204)
            headers = {} if search else self.usage_headers(oauth)
            return JSONResponse(body, status, headers=headers)

        return endpoint

    # -- OAuth ---------------------------------------------------------------------------------

    async def token(self, request: Request) -> Response:
        """The refresh-token grant: a new access token, and a rotated refresh token if set so."""
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        if form.get("grant_type") != "refresh_token":
            return JSONResponse({"status": "BAD_GRANT_TYPE", "message": "unsupported grant_type",
                                 "error": "unsupported_grant_type"}, 400)  # fmt: skip
        if (form.get("client_id"), form.get("client_secret")) != (
            OAUTH_CLIENT_ID,
            OAUTH_CLIENT_SECRET,
        ):
            return JSONResponse({"status": "BAD_CLIENT_ID", "error": "invalid_client",
                                 "message": "missing or unknown client id"}, 400)  # fmt: skip
        refresh = form.get("refresh_token", "")
        if refresh not in self.refresh_tokens:
            text = "refresh token is invalid, expired or revoked"
            return JSONResponse({"error": "invalid_grant", "error_description": text,
                                 "status": "BAD_REFRESH_TOKEN", "message": text}, 400)  # fmt: skip
        n = next(self.issued)
        self.refreshes += 1
        access = f"CJSP5qf1MBIC-sandbox-access-{n:04d}"
        self.access[access] = self.clock() + self.token_ttl
        if self.rotate:
            self.refresh_tokens.discard(refresh)
            refresh = f"na1-5a9d-0000-refresh-rotated-{n:04d}"
            self.refresh_tokens.add(refresh)
        return JSONResponse({"token_type": "bearer", "refresh_token": refresh,
                             "access_token": access, "hub_id": PORTAL_ID,
                             "scopes": ["oauth", "crm.objects.contacts.read",
                                        "crm.objects.contacts.write"],
                             "expires_in": int(self.token_ttl)})  # fmt: skip

    # -- test-only -----------------------------------------------------------------------------

    async def state(self, request: Request) -> Response:
        p = self.portal
        standard = set(standard_properties())
        body: dict[str, Any] = {
            "calls": dict(self.calls), "rate_limited": dict(self.rate_limited),
            "errors": dict(self.errors),
            "batch_sizes": self.batch_sizes, "tasks": list(p.tasks.values()),
            "properties": {n: d for n, d in p.properties.items() if n not in standard},
            "groups": sorted(p.groups), "refreshes": self.refreshes,
            "contacts": len(p.contacts), "daily_used": self.daily,
        }  # fmt: skip
        if cid := request.query_params.get("contact"):
            contact = p.contacts.get(cid)
            body["contact"] = contact.view([*contact.properties]) if contact else None
        if email := request.query_params.get("email"):
            found = p.by_email(email)
            body["contact"] = found.view([*found.properties]) if found else None
        return JSONResponse(body)

    async def generate(self, request: Request) -> Response:
        body = await request.json()
        ids = writes.generate(self.portal, int(body["count"]), int(body.get("per_ms") or 1))
        return JSONResponse({"count": len(ids), "first": ids[0] if ids else None,
                             "last": ids[-1] if ids else None}, 201)  # fmt: skip

    async def touch(self, request: Request) -> Response:
        body = await request.json()
        ids = [str(i) for i in body.get("ids") or []]
        if not ids:
            live = sorted((c for c in self.portal.contacts.values() if c.live), key=lambda c: c.id)
            ids = [c.id for c in live[: int(body.get("count") or 0)]]
        writes.touch(self.portal, ids, int(body.get("per_ms") or 1))
        return JSONResponse({"count": len(ids)})


async def conforms(request: Request) -> None:
    """Check the request against HubSpot's schema facts (`conformance.OPERATIONS`, which also
    records it); refuse it with HubSpot's 400 VALIDATION_ERROR when it breaks them."""
    path, root = request.scope["path"], request.scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]  # the path as HubSpot sees it, without the hub's mount prefix
    raw = await request.body()
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        raise Refused(400, error("VALIDATION_ERROR", "Invalid input JSON")) from None
    query = request.query_params.multi_items()
    problems = check_request(OPERATIONS, request.method, path, query, body, vendor="hubspot")
    if problems:
        details = [{"message": p} for p in problems]
        message = f"Invalid request: {'; '.join(problems)}"
        raise Refused(400, error("VALIDATION_ERROR", message, errors=details))


def create_app(
    world: World,
    *,
    tokens: tuple[str, ...] = (SANDBOX_TOKEN, SANDBOX_SERVICE_KEY),
    burst_limit: int = 190,
    daily_limit: int = 1_000_000,
    search_rate: int = 5,
    search_cap: int = 10_000,
    token_ttl: float = 1800,
    rotate_refresh_tokens: bool = True,
    clock: Callable[[], float] = time.time,
) -> Starlette:
    """The sandbox app over `world`'s HubSpot contacts; `app.state.sandbox` is its `Sandbox`.

    Parameters:
        tokens: the private-app tokens and service keys it accepts.
        burst_limit, daily_limit, search_rate: its budgets (per 10 s, per day, searches per s).
        search_cap: results per search query (10,000 at HubSpot).
        token_ttl: seconds an OAuth access token lasts.
        rotate_refresh_tokens: answer each refresh with a new refresh token (the old one dies).
        clock: seconds; budgets, token expiry and modification dates read it.
    """
    portal = Portal(world, search_cap=search_cap, clock=clock)
    sandbox = Sandbox(
        portal, tokens=tuple(tokens), burst_limit=burst_limit, daily_limit=daily_limit,
        search_rate=search_rate, token_ttl=token_ttl,
        rotate_refresh_tokens=rotate_refresh_tokens, clock=clock,
    )  # fmt: skip
    own = [
        Route("/oauth/v1/token", sandbox.token, methods=["POST"]),
        Route("/oauth/v3/token", sandbox.token, methods=["POST"]),
        Route("/__sandbox/state", sandbox.state, methods=["GET"]),
        Route("/__sandbox/generate", sandbox.generate, methods=["POST"]),
        Route("/__sandbox/touch", sandbox.touch, methods=["POST"]),
    ]
    app = Starlette(routes=[*routes(portal, sandbox.api, sandbox.batch_sizes), *own])
    app.state.sandbox = sandbox
    return app


def demo_blocks(base_url: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The hub file's HubSpot source and destination blocks, pointed at a sandbox at `base_url`."""
    common = {"connector": "hubspot", "base_url": base_url, "token": SANDBOX_TOKEN,
              "rate_limit_tier": "professional"}  # fmt: skip
    source = {**common, "form_ids": [FORM_GUID], "email_events_lookback_days": 3650}
    destination = {
        **common,
        "system": "hubspot",
        "mode": "update",
        "model": "default",
        "fields": {"total": "leadhub_score", "tier": "leadhub_tier"},
    }
    return {"hubspot": source}, {"hubspot_scores": destination}
