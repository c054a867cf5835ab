"""The blocks of a Mailchimp source and a Mailchimp destination in the hub file.

```yaml
sources:
  mailchimp:
    connector: mailchimp
    api_key: ${MAILCHIMP_API_KEY}       # ends with the data center, e.g. …-us6
    list_ids: [abc123]
destinations:
  mailchimp:
    connector: mailchimp
    api_key: ${MAILCHIMP_API_KEY}
    list_id: abc123
    system: mailchimp                   # the source whose member ids are the record ids
    fields: {total: LSCORE, tier: tags}
```

Every key is described in `connectors/mailchimp/README.md`.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from connectors.base.contract import ConnectorSettings, http_url, lead_field_targets

METADATA_URL = "https://login.mailchimp.com/oauth2/metadata"
_DC = re.compile(r"[a-z]{2,}\d+")
# Merge fields the source maps without configuration (Mailchimp's defaults plus COMPANY).
DEFAULT_MERGE_FIELDS = {
    "FNAME": "first_name",
    "LNAME": "last_name",
    "PHONE": "phone",
    "COMPANY": "company",
}


def datacenter(api_key: str) -> str | None:
    """The data center of a key (`…-us6` → `us6`): the text after the last `-`, if it is one."""
    _, sep, suffix = api_key.strip().rpartition("-")
    return suffix if sep and _DC.fullmatch(suffix) else None


class MailchimpAuth(ConnectorSettings):
    """What every Mailchimp block has: credentials, where the API is, and connection limits.

    Parameters:
        api_key: an API key `<key>-<dc>`; sent as HTTP Basic (any user name, the key as password).
        access_token: an OAuth token instead of a key; its data center comes from `metadata_url`.
        base_url: the API root without `/3.0` (e.g. a sandbox); overrides the data center.
        metadata_url: the OAuth metadata endpoint.
        metadata_auth_scheme: the scheme of the metadata call's Authorization header.
        max_connections: simultaneous connections; Mailchimp allows 10 per user.
        timeout: seconds to wait for one answer (Mailchimp closes calls after 120 s).
    """

    connector: Literal["mailchimp"] = "mailchimp"
    api_key: SecretStr | None = None
    access_token: SecretStr | None = None
    base_url: str | None = None
    metadata_url: str = METADATA_URL
    metadata_auth_scheme: Literal["OAuth", "Bearer"] = "OAuth"
    max_connections: int = Field(default=10, ge=1, le=10)
    timeout: float = Field(default=120, gt=0)

    _url = field_validator("base_url", "metadata_url")(http_url)

    @model_validator(mode="after")
    def _one_credential(self) -> MailchimpAuth:
        key, token = self.api_key, self.access_token
        if (key is None) == (token is None):
            raise ValueError("set exactly one of `api_key` and `access_token`")
        if token is not None and not token.get_secret_value().strip():
            raise ValueError("access_token: must not be empty")
        if key is not None and self.base_url is None and datacenter(key.get_secret_value()) is None:
            raise ValueError(
                "api_key: has no data-center suffix (like `-us6`); copy a current key from "
                "Account → Extras → API keys, or set `base_url`"
            )
        return self

    @property
    def credential_key(self) -> str:
        """The name of the credential setting in use (for error messages)."""
        return "api_key" if self.api_key is not None else "access_token"


class MailchimpSourceSettings(MailchimpAuth):
    """A Mailchimp source: audience members and their email engagement.

    Parameters:
        list_ids: the audiences (lists) to read.
        merge_fields: merge tag → lead field, added to (or overriding) FNAME, LNAME, PHONE,
            COMPANY; ADDRESS fills city and country. Other merge fields go to `custom`.
        ignore_merge_fields: merge tags kept out of `custom` (e.g. the score written back).
        page_size: `count` per request (at most 1000; 500 if heavy pages time out).
        lookback_days: engagement is read for campaigns sent within this many days.
        overlap_seconds: reads start this long before the saved bookmark, for late-arriving
            activity; re-read records upsert harmlessly.
        start_date: lower bound of the first read (members changed, activity after it).
        campaign_unsubscribes: also read each campaign's unsubscribe report.
        channel: the channel of every lead.
    """

    list_ids: list[str] = Field(min_length=1)
    merge_fields: dict[str, str] = Field(default_factory=dict)
    ignore_merge_fields: list[str] = Field(default_factory=list)
    page_size: int = Field(default=1000, ge=1, le=1000)
    lookback_days: float = Field(default=30, gt=0)
    overlap_seconds: int = Field(default=300, ge=0)
    start_date: datetime | None = None
    campaign_unsubscribes: bool = True
    channel: str = "email"

    @field_validator("merge_fields")
    @classmethod
    def _lead_fields(cls, value: dict[str, str]) -> dict[str, str]:
        return {tag.upper(): target for tag, target in lead_field_targets(value).items()}

    @property
    def merge_map(self) -> dict[str, str]:
        """Merge tag → lead field, defaults included."""
        return {**DEFAULT_MERGE_FIELDS, **self.merge_fields}


class MailchimpDestinationSettings(MailchimpAuth):
    """A Mailchimp destination: the score into merge fields, the tier as tags.

    Parameters:
        list_id: the audience written to.
        tiers: every tier name the model can give; a lead joins its tier's tag and leaves the
            other tiers' tags, so a journey can switch its track.
        tag_prefix: put before the tier in the tag name (`score-` → `score-hot`).
        status_if_new: the status of members created in `upsert` mode (`pending` on
            double-opt-in audiences).
        batch_size: members per batch call (Mailchimp takes up to 500).
        merge_field_check_hours: how long a successful merge-field check holds in the process;
            pushes within it read no merge fields. 0 checks on every push.
    """

    list_id: str = Field(min_length=1)
    tiers: list[str] = Field(default_factory=lambda: ["hot", "warm", "cold"])
    tag_prefix: str = ""
    status_if_new: Literal["subscribed", "pending", "transactional"] = "subscribed"
    batch_size: int = Field(default=500, ge=1, le=500)
    merge_field_check_hours: float = Field(default=24, ge=0)
