"""The block of a Salesforce source or destination in the hub file.

```yaml
sources:
  salesforce:
    connector: salesforce
    login_url: https://acme.my.salesforce.com
    client_id: 3MVG9…
    client_secret: ${SF_CLIENT_SECRET}
    refresh_token: ${SF_REFRESH_TOKEN}
    objects: [Lead, Contact]
    custom_fields: [Lead_Source_Detail__c]
destinations:
  salesforce:
    connector: salesforce
    auth_flow: jwt
    client_id: 3MVG9…
    username: integration@acme.com
    private_key_path: secrets/salesforce.key
    fields: {total: Lead_Score__c, tier: Lead_Tier__c}   # default: `score_fields`
    mode: update
```

One model serves both kinds of block. `fields`, `mode` and `on_qualified` of a destination are
write-back keys (`DestinationSettings`); when a block gives no `fields`, the
outputs go to `score_fields`. Every key is described in `connectors/salesforce/README.md`.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator

from connectors.base.contract import ConnectorSettings, http_url
from connectors.base.settings import Output

SObject = Literal["Lead", "Contact"]
DEFAULT_SCORE_FIELDS: dict[Output, str] = {
    "total": "Lead_Score__c",
    "tier": "Lead_Tier__c",
    "grade": "Lead_Grade__c",
    "qualified": "Lead_Qualified__c",
    "reason": "Lead_Score_Reason__c",
}
_FIELD_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_SALESFORCE_LOGIN_HOSTS = ("login.salesforce.com", "test.salesforce.com")


class SalesforceSettings(ConnectorSettings):
    """One Salesforce org, read as a source and/or written as a destination.

    Parameters (see the README for the full table):
        auth_flow: `refresh_token` (web-server flow token), `jwt` (JWT bearer, signed with
            `private_key` / `private_key_path`) or `client_credentials` (needs a My Domain
            `login_url`).
        login_url: where tokens are asked for (`{login_url}/services/oauth2/token`); calls go to
            the `instance_url` the token endpoint answers with.
        jwt_audience: the JWT `aud` claim; default login.salesforce.com, or test.salesforce.com
            for sandboxes, or `login_url` itself for other hosts.
        token_file: where a rotated refresh token is kept (mode 0600); default
            `.leadhub/salesforce-<fingerprint>-oauth.json` next to the hub file, shared by the
            blocks that use the same app and refresh token.
        objects: the people objects read (Lead, Contact).
        custom_fields: extra fields selected on those objects, kept in `custom`.
        outcomes: read converted Leads' Opportunities (won / lost) as outcomes.
        channel: the channel of every lead (default: its LeadSource).
        webinar_campaign_types, form_campaign_types: Campaign `Type` values whose members are
            webinar registrations/attendances, or form submissions when they responded.
        batch_size: rows per query page (`Sforce-Query-Options: batchSize=`, 200 to 2000).
        limit_share: pulls stop once the org has used this share of its daily API requests.
        skip_own_writes: do not read again Lead rows whose last change was made by the user this
            block logs in as (leadhub's score writes); turn off when that user also makes
            changes leadhub should read (e.g. another tool sharing the integration user).
        score_fields: output → Lead field written when the block gives no `fields`.
        bulk_threshold: pushes of more records than this go through one Bulk API 2.0 job.
        push_batch_size: records handed to one `write` (collections of 200 are sent inside it).
    """

    connector: Literal["salesforce"] = "salesforce"
    # -- auth
    auth_flow: Literal["refresh_token", "jwt", "client_credentials"] = "refresh_token"
    login_url: str = "https://login.salesforce.com"
    client_id: str = Field(min_length=1)
    client_secret: SecretStr | None = None
    refresh_token: SecretStr | None = None
    username: str | None = None
    private_key: SecretStr | None = None
    private_key_path: str | None = None
    jwt_audience: str | None = None
    token_file: Path | None = None
    api_version: str = "v62.0"
    timeout: float = Field(default=120, gt=0)
    # -- source
    objects: list[SObject] = Field(default_factory=lambda: list[SObject](["Lead"]), min_length=1)
    custom_fields: list[str] = Field(default_factory=list)
    campaign_members: bool = True
    tasks_and_events: bool = True
    outcomes: bool = True
    batch_size: int = Field(default=2000, ge=200, le=2000)
    limit_share: float = Field(default=0.8, gt=0, le=1)
    skip_own_writes: bool = True
    start_date: datetime | None = None
    max_uri_chars: int = Field(default=16_000, ge=1000, le=16_384)
    channel: str | None = None
    webinar_campaign_types: list[str] = Field(default_factory=lambda: ["Webinar"])
    form_campaign_types: list[str] = Field(
        default_factory=lambda: ["Web", "Website", "Content", "Advertisement", "Banner Ads"]
    )
    # -- destination
    score_fields: dict[Output, str] = Field(default_factory=lambda: dict(DEFAULT_SCORE_FIELDS))
    bulk_threshold: int = Field(default=2000, ge=0)
    push_batch_size: int = Field(default=10_000, ge=1, le=150_000)
    default_last_name: str = Field(default="[not provided]", min_length=1)
    default_company: str = Field(default="[not provided]", min_length=1)
    bulk_poll_seconds: float = Field(default=2.0, gt=0)
    bulk_timeout_seconds: float = Field(default=1800, gt=0)
    task_status: str = "Not Started"
    task_priority: str = "Normal"

    @field_validator("login_url", "jwt_audience")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        return http_url(value)

    @field_validator("api_version")
    @classmethod
    def _version(cls, value: str) -> str:
        value = value.strip()
        if re.fullmatch(r"\d+\.\d", value):
            value = f"v{value}"
        if not re.fullmatch(r"v\d+\.\d", value):
            raise ValueError(f"must look like v62.0, not {value!r}")
        return value

    @field_validator("custom_fields")
    @classmethod
    def _field_names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not _FIELD_NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not a field API name (e.g. Lead_Source_Detail__c)")
        return list(dict.fromkeys(value))

    @field_validator("score_fields")
    @classmethod
    def _score_fields(cls, value: dict[Output, str]) -> dict[Output, str]:
        for output, name in value.items():
            if not _FIELD_NAME.fullmatch(name):
                raise ValueError(f"{output}: {name!r} is not a field API name (e.g. Lead_Score__c)")
        return value

    @model_validator(mode="after")
    def _flow_credentials(self) -> SalesforceSettings:
        def given(secret: SecretStr | None) -> bool:
            return secret is not None and bool(secret.get_secret_value().strip())

        flow = self.auth_flow
        if flow == "refresh_token" and not given(self.refresh_token):
            raise ValueError("auth_flow refresh_token needs `refresh_token`")
        if flow == "client_credentials":
            if not given(self.client_secret):
                raise ValueError("auth_flow client_credentials needs `client_secret`")
            if self.login_host in _SALESFORCE_LOGIN_HOSTS:
                raise ValueError(
                    "auth_flow client_credentials needs your My Domain as `login_url` (e.g. "
                    "https://acme.my.salesforce.com); login/test.salesforce.com refuse it"
                )
        if flow == "jwt":
            if not self.username:
                raise ValueError("auth_flow jwt needs `username` (the user the app acts as)")
            if given(self.private_key) == (self.private_key_path is not None):
                raise ValueError("auth_flow jwt needs exactly one of `private_key` and "
                                 "`private_key_path`")  # fmt: skip
        return self

    @property
    def login_host(self) -> str:
        return (urlsplit(self.login_url).hostname or "").lower()

    @property
    def token_url(self) -> str:
        return f"{self.login_url}/services/oauth2/token"

    @property
    def audience(self) -> str:
        """The JWT `aud` claim (Salesforce wants the login server, not the My Domain host)."""
        if self.jwt_audience:
            return self.jwt_audience
        host = self.login_host
        if host in _SALESFORCE_LOGIN_HOSTS:
            return f"https://{host}"
        if host.endswith(".sandbox.my.salesforce.com"):
            return "https://test.salesforce.com"
        if host.endswith(".salesforce.com"):
            return "https://login.salesforce.com"
        return self.login_url

    def account_key(self) -> str:
        """The rate-budget key of the org: a fingerprint of the login host and client id."""
        digest = hashlib.sha256(f"{self.login_url} {self.client_id}".encode()).hexdigest()
        return f"salesforce:{digest[:12]}"
