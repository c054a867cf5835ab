"""HubSpot payloads in the documented shapes (shared/api/hubspot.md), and a fake clock."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from connectors.hubspot.settings import HubSpotSettings

API = "https://api.hubapi.com"
CONTACTS = f"{API}/crm/v3/objects/contacts"
SEARCH = f"{CONTACTS}/search"
PROPERTIES = f"{API}/crm/v3/properties/contacts"
EVENTS = f"{API}/email/public/v1/events"
TOKEN_URL = f"{API}/oauth/v1/token"
TOKEN = "pat-na1-11111111-2222-3333-4444-555555555555"
T0 = int(datetime(2026, 10, 1, tzinfo=UTC).timestamp() * 1000)  # epoch ms


class FakeTime:
    """A clock that moves only when something sleeps on it; records the sleeps."""

    def __init__(self, start: float = T0 / 1000) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += max(seconds, 0.0)


def iso(ms: int) -> str:
    when = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def contact(cid: int | str, modified_ms: int = T0, **properties: Any) -> dict[str, Any]:
    """A SimplePublicObject: every property value a string."""
    props: dict[str, Any] = {
        "email": f"person{cid}@example.com",
        "hs_object_id": str(cid),
        "createdate": iso(modified_ms - 86_400_000),
        "lastmodifieddate": iso(modified_ms),
        **{k: (v if v is None else str(v)) for k, v in properties.items()},
    }
    return {
        "id": str(cid),
        "properties": props,
        "createdAt": props["createdate"],
        "updatedAt": iso(modified_ms),
        "archived": False,
    }


def page(results: list[dict[str, Any]], after: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"results": results}
    if after is not None:
        body["paging"] = {"next": {"after": after, "link": f"?after={after}"}}
    return body


def rate_limit_body(policy: str) -> dict[str, Any]:
    messages = {
        "TEN_SECONDLY_ROLLING": "You have reached your ten_secondly_rolling limit.",
        "SECONDLY": "You have reached your secondly limit.",
        "DAILY": "You have reached your daily limit.",
    }
    return {
        "status": "error",
        "message": messages[policy],
        "errorType": "RATE_LIMIT",
        "correlationId": "4a0e7d1e-0000-4000-8000-000000000001",
        "policyName": policy,
        "groupName": "api-calls:62515",
    }


def token_body(access: str, refresh: str, expires_in: int = 1800) -> dict[str, Any]:
    return {
        "token_type": "bearer",
        "refresh_token": refresh,
        "access_token": access,
        "hub_id": 1234567,
        "expires_in": expires_in,
        "scopes": ["oauth", "crm.objects.contacts.write", "crm.objects.contacts.read"],
    }


BAD_REFRESH = {
    "error": "invalid_grant",
    "error_description": "refresh token is invalid, expired or revoked",
    "status": "BAD_REFRESH_TOKEN",
    "message": "refresh token is invalid, expired or revoked",
}
EXPIRED = {
    "status": "error",
    "message": "The OAuth token used to make this call expired 0 second(s) ago.",
    "correlationId": "4a0e7d1e-0000-4000-8000-000000000002",
    "category": "EXPIRED_AUTHENTICATION",
    "context": {"expire time": ["2026-03-10T23:04:41.164Z"]},
}


def standard_error(category: str, message: str, **context: list[str]) -> dict[str, Any]:
    return {
        "status": "error",
        "category": category,
        "message": message,
        "context": context,
        "errors": [],
        "links": {},
    }


def email_event(eid: str, kind: str, created: int, **extra: Any) -> dict[str, Any]:
    """A v1 marketing email event (`/email/public/v1/events`)."""
    return {
        "id": eid,
        "type": kind,
        "created": created,
        "recipient": "ada@example.com",
        "portalId": 62515,
        "appId": 113,
        "appName": "Batch",
        "emailCampaignId": 1001,
        "sentBy": {"id": f"sent-{eid}", "created": created - 3_600_000},
        **extra,
    }


def settings(**block: Any) -> HubSpotSettings:
    if "oauth" not in block:
        block.setdefault("token", TOKEN)
    return HubSpotSettings.model_validate({"connector": "hubspot", **block})


def token_file(tmp: Path) -> Path:
    return tmp / ".leadhub" / "hubspot-oauth.json"
