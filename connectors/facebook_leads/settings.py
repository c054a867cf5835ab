"""The block of a Facebook Lead Ads source in the hub file.

```yaml
sources:
  fb:
    connector: facebook_leads
    page_id: "1234567890"
    access_token: ${FB_PAGE_TOKEN}      # a Page or system-user token
    app_secret: ${FB_APP_SECRET}        # adds appsecret_proof; verifies webhook signatures
    verify_token: ${FB_VERIFY_TOKEN}    # the webhook subscription's verify token
    fields: {number_of_employees: company_size}
```

Every key is described in `connectors/facebook_leads/README.md`.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal

from pydantic import Field, SecretStr, field_validator

from connectors.base.contract import ConnectorSettings, http_url, lead_field_targets, not_blank

FormStatus = Literal["ACTIVE", "ARCHIVED", "DELETED", "DRAFT"]
ACTIVE_OR_ARCHIVED: tuple[FormStatus, ...] = ("ACTIVE", "ARCHIVED")
FilterOperator = Literal["GREATER_THAN", "GREATER_THAN_OR_EQUAL"]


class FacebookLeadsSettings(ConnectorSettings):
    """A Facebook Page's lead forms, read with a Page or system-user token.

    Parameters:
        page_id: the Page whose lead forms are read (and whose webhook deliveries are accepted).
        access_token: Page or system-user access token with `leads_retrieval`.
        app_secret: the app's secret: sends `appsecret_proof` with every call and verifies
            `X-Hub-Signature-256` on webhook deliveries (the receiver needs it).
        verify_token: the token Meta echoes in the webhook subscription handshake.
        api_version: the Graph API version, pinned (e.g. `v25.0`).
        base_url: the Graph host; a sandbox URL for `leadhub demo` and tests.
        token_in: send the token as the documented `access_token` query parameter, or as an
            `Authorization: Bearer` header (works in practice, not documented by Meta).
        form_ids: read only these forms; empty reads every form of the Page.
        form_statuses: when reading every form, only forms in these statuses.
        page_size: leads per request (`limit`); Meta's maximum is not documented.
        overlap_seconds: each read starts this long before the newest lead already read, so
            leads that become visible late are not missed (duplicates upsert harmlessly).
        filter_operator: the `filtering` operator on `time_created`.
        start_time: the first read's lower bound; unset reads every lead Meta still holds.
        fields: question key → lead field (e.g. `number_of_employees: company_size`); it
            overrides the standard keys; unmapped custom questions go to `custom`.
        channel: the channel of every lead.
        slow_down_at: usage percentage (X-App-Usage, X-Business-Use-Case-Usage) above which
            requests are spaced out.
        max_wait_seconds: a throttle wait longer than this ends the run with RateLimited (the
            jobs layer reschedules it) instead of holding a worker.
        timeout: seconds to wait for one answer.
    """

    connector: Literal["facebook_leads"] = "facebook_leads"
    page_id: str = Field(min_length=1)
    access_token: SecretStr
    app_secret: SecretStr | None = None
    verify_token: SecretStr | None = None
    api_version: str = "v25.0"
    base_url: str = "https://graph.facebook.com"
    token_in: Literal["query", "header"] = "query"
    form_ids: list[str] = Field(default_factory=list)
    form_statuses: list[FormStatus] = Field(default_factory=lambda: list(ACTIVE_OR_ARCHIVED))
    page_size: int = Field(default=100, ge=1, le=1000)
    overlap_seconds: int = Field(default=900, ge=0)
    filter_operator: FilterOperator = "GREATER_THAN_OR_EQUAL"
    start_time: datetime | None = None
    fields: dict[str, str] = Field(default_factory=dict)
    channel: str = "facebook_ads"
    slow_down_at: float = Field(default=75, gt=0, le=100)
    max_wait_seconds: float = Field(default=120, gt=0)
    timeout: float = Field(default=30, gt=0)

    @field_validator("api_version")
    @classmethod
    def _version(cls, value: str) -> str:
        if not re.fullmatch(r"v\d+\.\d+", value):
            raise ValueError(f"must look like v25.0, not {value!r}")
        return value

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return http_url(value) or value

    _token = field_validator("access_token")(not_blank)
    _lead_fields = field_validator("fields")(lead_field_targets)

    @property
    def graph_url(self) -> str:
        """The versioned Graph root, e.g. `https://graph.facebook.com/v25.0`."""
        return f"{self.base_url}/{self.api_version}"
