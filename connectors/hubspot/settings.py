"""The block of a HubSpot source or destination in the hub file.

```yaml
sources:
  crm:
    connector: hubspot
    token: ${HUBSPOT_TOKEN}              # private-app token or service key
    properties: [lead_source_detail]     # custom properties, read into `custom`
destinations:
  crm:
    connector: hubspot
    oauth: {client_id: "…", client_secret: ${HS_SECRET}, refresh_token: ${HS_REFRESH}}
    fields: {total: leadhub_score, tier: leadhub_tier}
    system: crm                          # the source that pulls the same portal
```

Every key is described in `connectors/hubspot/README.md`.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from connectors.base.contract import ConnectorSettings, http_url, lead_field_targets, not_blank
from core.records import OUTCOME_STATUSES

# Burst limit per 10 s by account tier ([doc] usage guidelines, shared/api/hubspot.md §5).
TIER_BURST = {
    "free": 100,
    "starter": 100,
    "professional": 190,
    "enterprise": 190,
    "api_limit_increase": 250,
    "public_app": 110,
}
Tier = Literal["free", "starter", "professional", "enterprise", "api_limit_increase", "public_app"]

# HubSpot contact property → lead field; `fields:` in the block overrides or extends it.
DEFAULT_FIELDS = {
    "email": "email",
    "firstname": "first_name",
    "lastname": "last_name",
    "phone": "phone",
    "company": "company",
    "jobtitle": "job_title",
    "industry": "industry",
    "numemployees": "company_size",
    "annualrevenue": "annual_revenue",
    "country": "country",
    "city": "city",
    "hs_analytics_source": "channel",
}
DEFAULT_CHANNELS = {
    "ORGANIC_SEARCH": "organic",
    "PAID_SEARCH": "paid_search",
    "PAID_SOCIAL": "paid_social",
    "SOCIAL_MEDIA": "social",
    "EMAIL_MARKETING": "email",
    "REFERRALS": "referral",
    "DIRECT_TRAFFIC": "direct",
    "OFFLINE": "offline",
    "OTHER_CAMPAIGNS": "campaign",
    "AI_REFERRALS": "referral",
}
DEFAULT_EMAIL_EVENTS = {
    "OPEN": "email_opened",
    "CLICK": "email_clicked",
    "BOUNCE": "email_bounced",
    "SPAMREPORT": "spam_reported",
    "STATUSCHANGE": "unsubscribed",
}


class OAuthSettings(BaseModel):
    """OAuth 2 (authorization code) credentials: access tokens are refreshed ahead of expiry.

    Parameters:
        client_id, client_secret: the app's credentials.
        refresh_token: the refresh token from the install; a rotated one is saved to
            `token_file` and used from then on (until this setting changes).
        token_path: the token endpoint on `base_url` (`/oauth/v3/token` in the newer docs).
        token_file: where a rotated refresh token is kept (mode 0600); default
            `.leadhub/hubspot-oauth-<fingerprint>.json` next to the hub file, one per credential.
        refresh_margin_seconds: refresh this long before the access token expires.
    """

    model_config = ConfigDict(extra="forbid")

    client_id: str = Field(min_length=1)
    client_secret: SecretStr
    refresh_token: SecretStr
    token_path: str = "/oauth/v1/token"
    token_file: Path | None = None
    refresh_margin_seconds: float = Field(default=300, ge=0)

    _not_empty = field_validator("refresh_token", "client_secret")(not_blank)


class HubSpotSettings(ConnectorSettings):
    """One HubSpot portal, read as a source and/or written as a destination.

    See `connectors/hubspot/README.md` for the table of every key with its default.
    """

    connector: Literal["hubspot"] = "hubspot"
    # -- connection and auth
    base_url: str = "https://api.hubapi.com"
    api_version: str = "v3"
    token: SecretStr | None = None
    auth_scheme: str = "Bearer"
    oauth: OAuthSettings | None = None
    portal_id: str | None = None
    timeout: float = Field(default=30, gt=0)
    # -- rate limits
    rate_limit_tier: Tier = "free"
    burst_limit: int | None = Field(default=None, ge=1)
    search_rate: int = Field(default=5, ge=1)
    daily_reserve: int = Field(default=0, ge=0)
    account_timezone: str = "UTC"
    max_wait_seconds: float = Field(default=120, gt=0)
    # -- contacts
    page_size: int = Field(default=100, ge=1, le=100)
    search_page_size: int = Field(default=200, ge=1, le=200)
    search_cap: int = Field(default=10_000, ge=2)
    overlap_seconds: int = Field(default=300, ge=0)
    properties: list[str] = Field(default_factory=list)
    fields: dict[str, str] = Field(default_factory=dict)
    channels: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_CHANNELS))
    max_url_chars: int = Field(default=4000, ge=200)
    search_body_chars: int = Field(default=3000, ge=500)
    archived: bool = True
    outcome_stages: dict[str, str] = Field(
        default_factory=lambda: {"opportunity": "converted", "customer": "won", "evangelist": "won"}
    )
    outcome_lead_statuses: dict[str, str] = Field(default_factory=lambda: {"UNQUALIFIED": "lost"})
    # -- engagement
    email_events: bool = True
    email_event_types: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_EMAIL_EVENTS))
    email_events_page_size: int = Field(default=1000, ge=1, le=1000)
    email_events_lookback_days: int = Field(default=180, ge=1)
    unsubscribe_statuses: list[str] = Field(default_factory=lambda: ["UNSUBSCRIBED"])
    form_ids: list[str] = Field(default_factory=list)
    # -- write-back
    batch_size: int = Field(default=100, ge=1, le=100)
    property_group: str = "leadhub"
    property_group_label: str = "leadhub"
    property_check_hours: float = Field(default=24, ge=0)
    tier_options: list[str] = Field(default_factory=lambda: ["hot", "warm", "cold"])
    protect_archived: bool = True
    task_association_type_id: int = 204

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return http_url(value) or value

    @field_validator("api_version")
    @classmethod
    def _version(cls, value: str) -> str:
        if not re.fullmatch(r"v\d+|\d{4}-\d{2}(-beta)?", value):
            raise ValueError(
                f"must be a semantic version like v3 or a date like 2026-03, not {value!r}"
            )
        return value

    @field_validator("account_timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (e.g. America/New_York)") from None
        return value

    _lead_fields = field_validator("fields")(lead_field_targets)

    @field_validator("outcome_stages", "outcome_lead_statuses")
    @classmethod
    def _statuses(cls, value: dict[str, str]) -> dict[str, str]:
        for key, status in value.items():
            if status not in OUTCOME_STATUSES:
                raise ValueError(
                    f"{key}: {status!r} is not an outcome ({', '.join(OUTCOME_STATUSES)})"
                )
        return value

    @model_validator(mode="after")
    def _one_auth(self) -> HubSpotSettings:
        has_token = self.token is not None and bool(self.token.get_secret_value().strip())
        if has_token == (self.oauth is not None):
            raise ValueError("set exactly one of `token` (private app or service key) or `oauth`")
        return self

    @property
    def burst_rate(self) -> int:
        """Requests per 10 s this app may send: `burst_limit`, else the tier's limit."""
        return self.burst_limit or TIER_BURST[self.rate_limit_tier]

    @property
    def lead_fields(self) -> dict[str, str]:
        """HubSpot property → lead field, the defaults overridden by `fields`."""
        return {**DEFAULT_FIELDS, **self.fields}

    def account_key(self) -> str:
        """The rate-budget key: the portal id if given, else a fingerprint of the credential."""
        if self.portal_id:
            return f"hubspot:{self.portal_id}"
        secret = (
            self.token.get_secret_value()
            if self.token
            else (self.oauth.client_id if self.oauth else "")
        )
        return "hubspot:" + hashlib.sha256(secret.encode()).hexdigest()[:12]
