"""`leadhub serve`: the read API, the dashboard, `/metrics`, `/healthz` and the Facebook webhook.

    GET  /healthz              open; 503 when the store does not answer
    GET  /metrics              open: Prometheus counters (no lead data), so a scraper needs no
                               secret
    GET  /api/leads, /api/leads/{id}, /api/report    the read API (`core.web.api`)
    GET  /, /leads/{id}        the dashboard (`core.web.dashboard`)
    GET|POST /webhooks/facebook  checked by Meta's signature and verify token, never the API's
                               credentials; mounted when the hub file has a facebook_leads source

Auth of the API and the dashboard: `Authorization: Bearer $LEADHUB_API_TOKEN`, or HTTP basic
with `LEADHUB_API_USER` / `LEADHUB_API_PASSWORD`. A browser's basic-auth prompt also takes the
token as the password (with any user name), so a token alone opens the dashboard. Credentials are
compared in constant time. With none configured, `create_app` refuses unless told `no_auth`.

    app = create_app(store, hub, Settings())
    uvicorn.run(app)
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Literal

import sqlalchemy as sa
from dramatiq.brokers.redis import RedisBroker
from fastapi import Depends, FastAPI, HTTPException, Request, Security
from fastapi.responses import Response
from fastapi.security import (
    HTTPAuthorizationCredentials,
    HTTPBasic,
    HTTPBasicCredentials,
    HTTPBearer,
)
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, SecretStr

from connectors.base import SourceContext, get_connector
from core.config import HubConfig, SourceConfig
from core.errors import ConfigError
from core.jobs import (
    actors,  # noqa: F401  (declares the actors this process sends to)
    intake,
)
from core.jobs.broker import request, runtime
from core.metrics import registry
from core.pipeline.run import Leads, take_leads
from core.settings import Settings
from core.store.store import Store
from core.web.api import UNAUTHORIZED, WebContext, api
from core.web.dashboard import pages

REALM = "leadhub"
FACEBOOK_PATH = "/webhooks/facebook"
HandleLeads = Callable[[str, Sequence[Any]], None]
log = logging.getLogger("leadhub.web")

bearer_scheme = HTTPBearer(auto_error=False, description="The token in LEADHUB_API_TOKEN.")
basic_scheme = HTTPBasic(
    auto_error=False,
    realm=REALM,
    description="LEADHUB_API_USER and LEADHUB_API_PASSWORD, or any user name with the API token.",
)


# -- credentials -------------------------------------------------------------------------------


def _same(given: str, expected: str) -> bool:
    return secrets.compare_digest(given.encode(), expected.encode())


def _reveal(value: SecretStr | None) -> str | None:
    return (value.get_secret_value() or None) if value is not None else None


@dataclass(frozen=True)
class ApiCredentials:
    """What the API and dashboard accept: a bearer token and/or a basic user and password."""

    token: str | None = None
    user: str | None = None
    password: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> ApiCredentials:
        password = _reveal(settings.api_password)
        if bool(settings.api_user) != bool(password):
            raise ConfigError(
                "LEADHUB_API_USER and LEADHUB_API_PASSWORD go together: set both, or neither "
                "and use LEADHUB_API_TOKEN"
            )
        return cls(_reveal(settings.api_token), settings.api_user or None, password)

    @property
    def configured(self) -> bool:
        return bool(self.token or (self.user and self.password))

    def accepts_token(self, token: str) -> bool:
        return self.token is not None and _same(token, self.token)

    def accepts_basic(self, user: str, password: str) -> bool:
        # `&`, not `and`: both comparisons always run, so timing says nothing about the user.
        if self.user is not None and self.password is not None:
            matches = _same(user, self.user) & _same(password, self.password)
            if matches:
                return True
        return self.accepts_token(password)


def require_credentials(
    request: Request,
    token: HTTPAuthorizationCredentials | None = Security(bearer_scheme),
    login: HTTPBasicCredentials | None = Security(basic_scheme),
) -> None:
    """401 unless the request carries the API token or the basic credentials."""
    credentials: ApiCredentials = request.app.state.credentials
    if token is not None and credentials.accepts_token(token.credentials):
        return
    if login is not None and credentials.accepts_basic(login.username, login.password):
        return
    raise HTTPException(
        401,
        "missing or wrong credentials: send `Authorization: Bearer <LEADHUB_API_TOKEN>` "
        "or HTTP basic auth (LEADHUB_API_USER / LEADHUB_API_PASSWORD)",
        # Basic, so that a browser opening the dashboard asks for a user name and password.
        headers={"WWW-Authenticate": f'Basic realm="{REALM}", charset="UTF-8"'},
    )


# -- the app -----------------------------------------------------------------------------------


class Health(BaseModel):
    """The answer of `/healthz`."""

    status: Literal["ok", "unavailable"]


def create_app(
    store: Store,
    hub: HubConfig,
    settings: Settings,
    *,
    no_auth: bool = False,
    handle_leads: HandleLeads | None = None,
) -> FastAPI:
    """The `leadhub serve` app on `store` and `hub`; see the module docstring for its routes.

    Parameters:
        settings: where the API credentials come from (`LEADHUB_API_TOKEN`, …).
        no_auth: serve the API and dashboard to anyone; without it, and without credentials,
            this raises ConfigError.
        handle_leads: what the Facebook webhook does with new leads (default: store them, then
            enqueue scoring, which pushes to every destination).
    """
    credentials = ApiCredentials.from_settings(settings)
    if not credentials.configured and not no_auth:
        raise ConfigError(
            "the API and dashboard need credentials: set LEADHUB_API_TOKEN (or "
            "LEADHUB_API_USER and LEADHUB_API_PASSWORD), or pass --no-auth to serve them "
            "to anyone who can reach the port"
        )
    app = FastAPI(
        title="leadhub",
        version=_version(),
        description=(
            "Lead scores, ledgers, history and reports of a leadhub store. `/api` needs "
            "`Authorization: Bearer $LEADHUB_API_TOKEN` or HTTP basic auth. The Facebook "
            "webhook (`/webhooks/facebook`) is checked by Meta's signature and is not listed."
        ),
    )
    app.state.leadhub = WebContext(store, hub)
    app.state.credentials = credentials
    app.state.webhooks = {}
    guard = [] if no_auth else [Depends(require_credentials)]
    _add_open_routes(app, store)
    app.include_router(api, dependencies=guard, responses={} if no_auth else UNAUTHORIZED)
    app.include_router(pages, dependencies=guard)
    mount_webhooks(app, store, hub, handle_leads)
    return app


def _version() -> str:
    try:
        return version("leadhub")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0"


def _add_open_routes(app: FastAPI, store: Store) -> None:
    @app.get(
        "/healthz",
        response_model=Health,
        tags=["ops"],
        responses={503: {"model": Health, "description": "The store does not answer."}},
    )
    def healthz(response: Response) -> Health:
        """Liveness and store reachability (503 when the store does not answer); open."""
        try:
            with store.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except sa.exc.SQLAlchemyError as exc:
            log.error("healthz: the store does not answer: %s", exc)
            response.status_code = 503
            return Health(status="unavailable")
        return Health(status="ok")

    @app.get(
        "/metrics",
        tags=["ops"],
        response_class=Response,
        responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text."}},
    )
    def metrics() -> Response:
        """Prometheus metrics of this process (text exposition format)."""
        return Response(generate_latest(registry()), media_type=CONTENT_TYPE_LATEST)


# -- webhooks ----------------------------------------------------------------------------------


def mount_webhooks(
    app: FastAPI, store: Store, hub: HubConfig, handle_leads: HandleLeads | None = None
) -> None:
    """Mount the Facebook receiver of each enabled facebook_leads source: the first at
    `/webhooks/facebook`, every one at `/webhooks/facebook/{source}`. A source without the
    webhook secrets is skipped with a warning (it is still pulled on schedule)."""
    sources = [s for s in hub.sources.values() if s.connector == "facebook_leads" and s.enabled]
    if not sources:
        return
    handler = handle_leads or enqueue_scoring(store, hub)
    for config in sources:
        receiver = _receiver(config, hub, handler)
        if receiver is None:
            continue
        paths = [f"{FACEBOOK_PATH}/{config.name}"]
        if FACEBOOK_PATH not in app.state.webhooks:
            paths.insert(0, FACEBOOK_PATH)
        for path in paths:
            app.add_route(path, receiver.endpoint, methods=["GET", "POST"])
            app.state.webhooks[path] = receiver


def _receiver(config: SourceConfig, hub: HubConfig, handler: HandleLeads) -> Any:

    try:
        connector = get_connector(config.connector)()
        if not hasattr(connector, "webhook"):
            return None
        return connector.webhook(config.settings, SourceContext(config.name, hub.base_dir), handler)
    except (ConfigError, ImportError) as exc:
        log.warning("webhook of source %s not mounted: %s", config.name, exc)
        return None


def enqueue_scoring(store: Store, hub: HubConfig) -> HandleLeads:
    """A webhook handler: store the leads, then ask for a score job, which pushes to every
    destination (the pipeline's one path, in steps). Requests are coalesced: a burst of
    deliveries queues one score job, which scores every lead they stored.

    With Redis the leads go to the intake list instead (`core.jobs.intake`), and an intake job
    stores them in pages: the web process only appends. Embedded, they are stored here, and
    `leadhub serve` runs worker threads to take the score job."""

    def handle(source_name: str, items: Sequence[Any]) -> None:
        broker = runtime().broker
        if isinstance(broker, RedisBroker):
            intake.hand_over(broker.client, source_name, items)
            request("intake", source_name)
            return
        take_leads(store, Leads(source_name, items), hub.field_priority)
        request("score")

    return handle
