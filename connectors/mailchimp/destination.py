"""The Mailchimp destination: scores into merge fields, the tier as tags, in batches of 500.

A batch is one batch subscribe/update call, `POST /lists/{list_id}` with `update_existing` (up
to 500 members; per-member results in `new_members`, `updated_members` and `errors`). In `update`
mode members carry no status, so an address Mailchimp does not have is refused, not created; in
`upsert` mode new members get `status_if_new`. Status is never sent for existing members
(re-subscribing someone is a compliance error).

The output mapped to the field `tags` (normally the tier) is written as a tag: `POST
/lists/{id}/members/{hash}/tags` with the new tier's tag active and the other tiers' tags
inactive, `is_syncing: false` so that journeys triggered by the tag fire. The batch call's answer
holds each member's current tags, so members whose tier tag is already right get no tag call.
Tag calls run in parallel on at most `max_connections` connections (Mailchimp allows 10).

`prepare()` creates the merge fields that are missing: `number` for total, fit, engagement and
predictive, `text` for the others.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

import httpx

from connectors.base import WriteItem, WriteOutcome
from connectors.mailchimp.client import MailchimpClient, describe_problem
from connectors.mailchimp.settings import MailchimpDestinationSettings
from core.errors import AuthError, ConfigError, HTTPError, RequestRejected
from core.outbox_settings import DestinationSettings

TAGS = "tags"
NUMBER_OUTPUTS = frozenset({"total", "fit", "engagement", "predictive"})
MERGE_TAG = re.compile(r"[A-Z][A-Z0-9_]{0,9}")  # a convention, not a documented limit


def subscriber_hash(email: str) -> str:
    """Mailchimp's member id: the MD5 of the lower-cased address."""
    return hashlib.md5(email.strip().lower().encode()).hexdigest()


def _merge_value(output: str, value: Any) -> Any:
    """A value as its merge field takes it: numbers stay numbers, the rest is text ("" clears)."""
    if value is None:
        return ""
    if output in NUMBER_OUTPUTS and isinstance(value, (int, float)):
        return value
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


class MailchimpDestination:
    """Writes one audience's members.

    Parameters:
        name: the destination's name in the hub file.
        settings: the connector's own keys; config: the write-back keys.
        transport, sleep: for tests.
    """

    def __init__(
        self,
        name: str,
        settings: MailchimpDestinationSettings,
        config: DestinationSettings,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.name, self.settings, self.config = name, settings, config
        self.batch_size = settings.batch_size
        self.where = f"destinations.{name}"
        self.client = MailchimpClient(
            f"mailchimp destination {name!r}",
            self.where,
            settings,
            transport=transport,
            sleep=sleep,
        )
        self.merge: dict[str, str] = {}  # merge tag → output
        self.tag_field: str | None = None  # the CRM field (`tags`) written as a tag
        for output, crm in config.fields.items():
            if crm.lower() == TAGS:
                self.tag_field = crm
            elif MERGE_TAG.fullmatch(crm):
                self.merge[crm] = output
            else:
                raise ConfigError(
                    f"{self.where}.fields.{output}: {crm!r} is not a merge tag; use up to 10 "
                    f"upper-case letters, digits or _ (e.g. LSCORE), or `{TAGS}` to write a tag"
                )
        self._prepared = False

    @property
    def list_path(self) -> str:
        return f"/lists/{self.settings.list_id}"

    def prepare(self) -> None:
        """Create the merge fields this destination writes when the audience lacks them."""
        if self._prepared:
            return
        try:
            pages = self.client.pages(f"{self.list_path}/merge-fields", "merge_fields", {}, 1000)
            have = {str(f.get("tag", "")).upper() for page in pages for f in page}
            for tag, output in self.merge.items():
                if tag.upper() not in have:
                    kind = "number" if output in NUMBER_OUTPUTS else "text"
                    body = {"name": f"Lead {output}", "type": kind, "tag": tag,
                            "required": False, "public": False,
                            "help_text": "set by leadhub lead scoring"}  # fmt: skip
                    self.client.call("POST", f"{self.list_path}/merge-fields", json=body)
        except RequestRejected as exc:
            if exc.status == 404:
                raise ConfigError(
                    f"{self.where}.list_id: Mailchimp has no audience {self.settings.list_id!r} "
                    "(404); copy the audience id from Audience → Settings"
                ) from exc
            raise ConfigError(f"{self.where}: could not create merge fields: {exc}") from exc
        self._prepared = True

    def write(self, batch: Sequence[WriteItem]) -> list[WriteOutcome]:
        """One batch call for the merge fields, then a tag call per member whose tier moved."""
        outcomes: dict[int, WriteOutcome] = {}
        sendable = []
        for item in batch:
            if item.email:
                sendable.append(item)
            else:
                reason = "the lead has no email address, and Mailchimp keys members by email"
                outcomes[item.lead_id] = WriteOutcome(item.lead_id, "rejected", reason=reason)
        members = self._batch_update(sendable, outcomes) if sendable else {}
        if self.tag_field is not None:
            self._switch_tags(sendable, members, outcomes)
        return [outcomes[i.lead_id] for i in batch]

    # -- merge fields --------------------------------------------------------------------------

    def _member(self, item: WriteItem) -> dict[str, Any]:
        merge = {tag: _merge_value(out, item.values.get(tag)) for tag, out in self.merge.items()}
        if item.record_id is None:  # may be created: add the block's `lead_fields`
            merge = {**{k: v for k, v in item.lead_fields.items() if v is not None}, **merge}
        member: dict[str, Any] = {"email_address": item.email, "merge_fields": merge}
        if self.config.mode == "upsert":
            member["status_if_new"] = self.settings.status_if_new
        return member

    def _batch_update(
        self, items: Sequence[WriteItem], outcomes: dict[int, WriteOutcome]
    ) -> dict[str, Mapping[str, Any]]:
        """Send the batch; fill `outcomes`; return the accepted members by lower-cased email."""
        body = {"members": [self._member(i) for i in items], "update_existing": True,
                "sync_tags": False}  # fmt: skip
        try:
            answer = self.client.call("POST", self.list_path, json=body) or {}
        except RequestRejected as exc:  # the request itself was refused: park the whole batch
            reason = f"HTTP {exc.status}: {describe_problem(exc.body)}"
            outcomes.update(
                {i.lead_id: WriteOutcome(i.lead_id, "rejected", reason=reason) for i in items}
            )
            return {}
        accepted = {
            str(m.get("email_address", "")).lower(): m
            for key in ("new_members", "updated_members")
            for m in answer.get(key) or []
        }
        errors = {str(e.get("email_address", "")).lower(): e for e in answer.get("errors") or []}
        for item in items:
            email = str(item.email).lower()
            if email in accepted:
                new_id = (
                    None if item.record_id else accepted[email].get("id") or subscriber_hash(email)
                )
                outcomes[item.lead_id] = WriteOutcome(item.lead_id, "ok", record_id=new_id)
            elif email in errors:
                outcomes[item.lead_id] = WriteOutcome(
                    item.lead_id, "rejected", reason=_error(errors[email])
                )
            else:
                reason = "Mailchimp's batch answer did not mention this member"
                outcomes[item.lead_id] = WriteOutcome(item.lead_id, "retry", reason=reason)
        return accepted

    # -- tags ----------------------------------------------------------------------------------

    def tag_changes(self, tier: Any, member: Mapping[str, Any] | None) -> list[dict[str, str]]:
        """The tag switches for `tier`, or [] when the member's tags already say so."""
        prefix = self.settings.tag_prefix
        want = f"{prefix}{tier}" if tier not in (None, "") else None
        others = [f"{prefix}{t}" for t in self.settings.tiers if f"{prefix}{t}" != want]
        tags = (member or {}).get("tags")
        complete = isinstance(tags, list) and (member or {}).get("tags_count", 0) <= len(tags)
        if complete:
            names = {str(t.get("name")) for t in tags or [] if isinstance(t, dict)}
            others = [o for o in others if o in names]
            if (want is None or want in names) and not others:
                return []
        active = [{"name": want, "status": "active"}] if want else []
        return active + [{"name": o, "status": "inactive"} for o in others]

    def _switch_tags(
        self,
        items: Sequence[WriteItem],
        members: Mapping[str, Mapping[str, Any]],
        outcomes: dict[int, WriteOutcome],
    ) -> None:
        assert self.tag_field is not None
        calls = []
        for item in items:
            if outcomes[item.lead_id].status != "ok":
                continue
            email = str(item.email).lower()
            member = members.get(email) or {}
            changes = self.tag_changes(item.values.get(self.tag_field), member)
            if changes:
                calls.append((item, str(member.get("id") or subscriber_hash(email)), changes))
        with ThreadPoolExecutor(max_workers=self.settings.max_connections) as pool:
            results = pool.map(lambda call: self._tag(*call), calls)
            for (item, _, _), (status, reason) in zip(calls, results, strict=True):
                if status != "ok":
                    outcomes[item.lead_id] = WriteOutcome(item.lead_id, status, reason=reason)

    def _tag(
        self, item: WriteItem, member_id: str, changes: list[dict[str, str]]
    ) -> tuple[Literal["ok", "retry", "rejected"], str]:
        path = f"{self.list_path}/members/{member_id}/tags"
        try:
            # is_syncing false: journeys and automations triggered by the tag must fire.
            self.client.call("POST", path, json={"tags": changes, "is_syncing": False})
        except AuthError:
            raise
        except RequestRejected as exc:
            return "rejected", f"tags: HTTP {exc.status}: {describe_problem(exc.body)}"
        except HTTPError as exc:  # still failing after the client's retries: later
            return "retry", f"tags: {exc}"
        return "ok", ""

    def close(self) -> None:
        self.client.close()


def _error(entry: Mapping[str, Any]) -> str:
    """A batch answer's error entry as a reason: the message, its code and the field."""
    text = str(entry.get("error") or "refused")
    code = entry.get("error_code")
    field = entry.get("field")
    detail = f" ({field}: {entry.get('field_message') or ''})" if field else ""
    return f"{text}{detail}{f' [{code}]' if code else ''}"
