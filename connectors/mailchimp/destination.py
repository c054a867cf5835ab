"""The Mailchimp destination: scores into merge fields, the tier as tags, in batches of 500.

A batch is one batch subscribe/update call, `POST /lists/{list_id}` with `update_existing` (up
to 500 members; per-member results in `new_members`, `updated_members` and `errors`). The
published schema requires `status` or `status_if_new` on every member; `status` (which would
change an existing member's subscription) is never sent, so nobody who unsubscribed is
re-subscribed. In `upsert` mode `status_if_new` is the block's (new leads become members). In
`update` mode only members the audience is known to hold are sent — the lead's record id is the
subscriber hash of the very address sent — with `status_if_new: unsubscribed`, the one status
that cannot subscribe anyone. Should a member have left the audience since the last pull, the
batch answer lists it under `new_members`: it is archived again at once (`DELETE` on the member)
and the lead is parked with the reason, so `update` never leaves a new contact behind.

The output mapped to the field `tags` (normally the tier) is written as a tag. Tags are static
segments, so a batch's tags move in bulk: `POST /lists/{id}/segments/{tag_id}` with
`members_to_add` (the members entering that tier) and `members_to_remove` (those leaving it), up
to 500 of each per call, one call per tier tag that changes: O(tiers) calls per batch, not
O(members). The batch call's answer holds each member's current tags, so only the tags that
differ move; when it shows only part of them (50 of more), the member is added to its tier's tag
and removed from every other tier's. Per-member `errors` of a segment call park those members
with the reason. Tag ids come from `GET /lists/{id}/segments?type=static` (read once, again when
a tag is missing); a missing tier tag is created with `POST /lists/{id}/segments`. Segment calls
run in parallel on at most `max_connections` connections (Mailchimp allows 10).

`prepare()` creates the merge fields that are missing: `number` for total, fit, engagement and
predictive, `text` for the others. A successful check is remembered in the process for
`merge_field_check_hours`, so pushes within it make no merge-field calls; a batch answer whose
members lack a written merge field (someone deleted it: Mailchimp drops unknown merge tags
silently) forgets the check and retries those members, so the next push creates it again.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import httpx

from connectors.base.contract import WriteItem, WriteOutcome, same_outcome
from connectors.base.settings import DestinationSettings
from connectors.mailchimp.client import MailchimpClient, describe_problem
from connectors.mailchimp.settings import MailchimpDestinationSettings
from core.errors import AuthError, ConfigError, HTTPError, RequestRejected

TAGS = "tags"
NUMBER_OUTPUTS = frozenset({"total", "fit", "engagement", "predictive"})
MERGE_TAG = re.compile(r"[A-Z][A-Z0-9_]{0,9}")  # a convention, not a documented limit
SEGMENT_LIMIT = 500  # emails per members_to_add / members_to_remove ("a maximum of 500")
Status = Literal["ok", "retry", "rejected"]
_RANK: dict[str, int] = {"ok": 0, "retry": 1, "rejected": 2}
# `update` mode's status for a member Mailchimp would otherwise add: it cannot subscribe anyone
# (and such an addition is archived again at once, see `_undo_additions`).
UPDATE_STATUS_IF_NEW = "unsubscribed"

# Merge-field checks that hold, per audience and mapping (see `_check_key`): key → monotonic time.
_merge_checks: dict[str, float] = {}
_merge_checks_lock = threading.Lock()


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
        transport, sleep, clock: for tests.
        base_dir: the hub file's folder (one hub's merge-field checks are not another's).
    """

    def __init__(
        self,
        name: str,
        settings: MailchimpDestinationSettings,
        config: DestinationSettings,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        base_dir: Path = Path("."),
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
        self._clock, self._base_dir = clock, base_dir
        self._segments: dict[str, int] | None = None  # tag name (case-folded) → segment id

    @property
    def list_path(self) -> str:
        return f"/lists/{self.settings.list_id}"

    def _check_key(self) -> str:
        """What a merge-field check covers: the hub, the API root, the audience, each tag and its
        type (and a digest of the credential, never the credential itself)."""
        auth = self.settings.api_key or self.settings.access_token
        secret = auth.get_secret_value() if auth is not None else ""
        parts = [str(self._base_dir.resolve()), self.settings.base_url or "", self.settings.list_id,
                 hashlib.sha256(secret.encode()).hexdigest()[:16],
                 *sorted(f"{t}:{_kind(o)}" for t, o in self.merge.items())]  # fmt: skip
        return "|".join(parts)

    def _checked_recently(self) -> bool:
        hours = self.settings.merge_field_check_hours
        with _merge_checks_lock:
            checked = _merge_checks.get(self._check_key())
        return checked is not None and 0 <= self._clock() - checked < hours * 3600

    def _forget_check(self) -> None:
        with _merge_checks_lock:
            _merge_checks.pop(self._check_key(), None)

    def prepare(self) -> None:
        """Create the merge fields this destination writes when the audience lacks them
        (unless a check of them holds)."""
        if self._checked_recently():
            return
        try:
            pages = self.client.pages(f"{self.list_path}/merge-fields", "merge_fields", {}, 1000)
            have = {str(f.get("tag", "")).upper() for page in pages for f in page}
            for tag, output in self.merge.items():
                if tag.upper() not in have:
                    body = {"name": f"Lead {output}", "type": _kind(output), "tag": tag,
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
        with _merge_checks_lock:
            _merge_checks[self._check_key()] = self._clock()

    def write(self, batch: Sequence[WriteItem]) -> list[WriteOutcome]:
        """One batch call for the merge fields, then one segment call per tier tag that moves."""
        outcomes: dict[int, WriteOutcome] = {}
        sendable = []
        for item in batch:
            reason = self._unsendable(item)
            if reason is None:
                sendable.append(item)
            else:
                outcomes[item.lead_id] = WriteOutcome(item.lead_id, "rejected", reason=reason)
        members = self._batch_update(sendable, outcomes) if sendable else {}
        if self.tag_field is not None:
            self._move_tags(sendable, members, outcomes)
        return [outcomes[i.lead_id] for i in batch]

    def _unsendable(self, item: WriteItem) -> str | None:
        """Why `item` is not sent (None: it is). `update` mode sends only the audience's known
        members: a record id that is the subscriber hash of the address being sent."""
        if not item.email:
            return "the lead has no email address, and Mailchimp keys members by email"
        if item.record_id is None and subscriber_hash(item.email) in item.deleted_ids:
            return (
                f"{item.email} was archived or deleted in audience {self.settings.list_id}; "
                "leadhub never adds a member back (add them again in Mailchimp to resume)"
            )
        if self.config.mode == "update" and item.record_id != subscriber_hash(item.email):
            return (
                f"{item.email} is not a member of audience {self.settings.list_id} known to "
                f"leadhub (its member id is {item.record_id or 'unknown'}); `update` mode never "
                "adds members — use `mode: upsert` to add new leads"
            )
        return None

    # -- merge fields --------------------------------------------------------------------------

    def _member(self, item: WriteItem) -> dict[str, Any]:
        merge = {tag: _merge_value(out, item.values.get(tag)) for tag, out in self.merge.items()}
        if item.record_id is None:  # may be created: add the block's `lead_fields`
            merge = {**{k: v for k, v in item.lead_fields.items() if v is not None}, **merge}
        # Never `status`: it would change an existing member's subscription.
        status_if_new = (
            self.settings.status_if_new if self.config.mode == "upsert" else UPDATE_STATUS_IF_NEW
        )
        return {"email_address": item.email, "status_if_new": status_if_new, "merge_fields": merge}

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
            outcomes.update(same_outcome(items, "rejected", reason))
            return {}
        accepted = {
            str(m.get("email_address", "")).lower(): m
            for key in ("new_members", "updated_members")
            for m in answer.get(key) or []
        }
        undone: dict[str, str] = {}
        if self.config.mode == "update":
            added = [str(m.get("email_address", "")) for m in answer.get("new_members") or []]
            for email in added:
                accepted.pop(email.lower(), None)
            undone = self._undo_additions(added)
        errors = {str(e.get("email_address", "")).lower(): e for e in answer.get("errors") or []}
        dropped = self._dropped_merge_fields(accepted)
        for item in items:
            email = str(item.email).lower()
            if email in undone:
                reason = undone[email]
                outcomes[item.lead_id] = WriteOutcome(item.lead_id, "rejected", reason=reason)
            elif email in accepted and dropped:
                reason = (
                    f"Mailchimp dropped the merge field(s) {', '.join(dropped)}: they no "
                    "longer exist in the audience and are created again on the next push"
                )
                outcomes[item.lead_id] = WriteOutcome(item.lead_id, "retry", reason=reason)
            elif email in accepted:
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

    def _undo_additions(self, emails: Sequence[str]) -> dict[str, str]:
        """Archive again the members Mailchimp added in `update` mode; lower email → reason.

        They had left the audience (archived or deleted) after the last pull, so the batch's
        `status_if_new` added them back as unsubscribed; archiving restores what was there.
        """
        reasons = {}
        for email in emails:
            left = (
                f"{email} is no longer a member of audience {self.settings.list_id} (archived "
                "or deleted after the last pull); `update` mode never adds members"
            )
            try:
                self.client.call("DELETE", f"{self.list_path}/members/{subscriber_hash(email)}")
            except AuthError:
                raise
            except HTTPError as exc:
                left += f"; archiving the contact Mailchimp re-added failed: {exc}"
            reasons[email.lower()] = left
        return reasons

    def _dropped_merge_fields(self, accepted: Mapping[str, Mapping[str, Any]]) -> list[str]:
        """The merge tags written but missing from the accepted members (deleted meanwhile)."""
        shown: list[Mapping[str, Any]] = [
            m["merge_fields"] for m in accepted.values() if isinstance(m.get("merge_fields"), dict)
        ]
        if not shown or not self.merge:
            return []
        dropped = [t for t in self.merge if not any(t in fields for fields in shown)]
        if dropped:
            self._forget_check()
        return dropped

    # -- tags ----------------------------------------------------------------------------------

    def tag_moves(
        self, tier: Any, member: Mapping[str, Any] | None
    ) -> tuple[str | None, list[str]]:
        """The tag `tier` gives (None when the member already has it) and the tier tags to drop.

        The batch answer shows a member's tags (up to 50 of `tags_count`). When it shows them
        all, only the tags that differ move; otherwise the tier's tag is added (adding is
        idempotent) and the member leaves every other tier's tag.
        """
        prefix = self.settings.tag_prefix
        want = f"{prefix}{tier}" if tier not in (None, "") else None
        others = [
            f"{prefix}{t}" for t in self.settings.tiers if _same(f"{prefix}{t}") != _same(want)
        ]
        tags = (member or {}).get("tags")
        if isinstance(tags, list) and (member or {}).get("tags_count", 0) <= len(tags):
            names = {_same(t.get("name")) for t in tags if isinstance(t, dict)}
            others = [o for o in others if _same(o) in names]
            if want is not None and _same(want) in names:
                want = None
        return want, others

    def _move_tags(
        self,
        items: Sequence[WriteItem],
        members: Mapping[str, Mapping[str, Any]],
        outcomes: dict[int, WriteOutcome],
    ) -> None:
        """One segment call per tier tag: the members entering it and those leaving it."""
        assert self.tag_field is not None
        adds: dict[str, list[WriteItem]] = {}
        removes: dict[str, list[WriteItem]] = {}
        for item in items:
            if outcomes[item.lead_id].status != "ok":
                continue
            member = members.get(str(item.email).lower())
            want, leave = self.tag_moves(item.values.get(self.tag_field), member)
            if want is not None:
                adds.setdefault(want, []).append(item)
            for tag in leave:
                removes.setdefault(tag, []).append(item)
        if not adds and not removes:
            return
        try:
            ids = self._tag_ids(list(adds))
        except AuthError:
            raise
        except HTTPError as exc:  # no tag ids, no tag change: the whole batch's tags wait
            status: Status = "rejected" if isinstance(exc, RequestRejected) else "retry"
            moving = {i.lead_id: i for group in (*adds.values(), *removes.values()) for i in group}
            for lead_id in moving:
                outcomes[lead_id] = WriteOutcome(lead_id, status, reason=f"tags: {exc}")
            return
        calls = []
        for tag in dict.fromkeys([*adds, *removes]):
            tag_id = ids.get(_same(tag))
            entering, leaving = adds.get(tag, []), removes.get(tag, [])
            if tag_id is None:  # a tier tag the audience does not have: nobody to remove
                continue
            for start in range(0, max(len(entering), len(leaving)), SEGMENT_LIMIT):
                calls.append((tag, tag_id, entering[start : start + SEGMENT_LIMIT],
                              leaving[start : start + SEGMENT_LIMIT]))  # fmt: skip
        workers = max(1, min(self.settings.max_connections, len(calls)))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for verdicts in pool.map(lambda call: self._segment(*call), calls):
                for lead_id, (status, reason) in verdicts.items():
                    if _RANK[status] > _RANK[outcomes[lead_id].status]:
                        outcomes[lead_id] = WriteOutcome(lead_id, status, reason=reason)

    def _tag_ids(self, wanted: Sequence[str]) -> dict[str, int]:
        """Tag name (case-folded) → its static segment id; the `wanted` tags exist afterwards.

        Read once (`GET /segments?type=static`), read again when a wanted tag is missing (someone
        may have made it since), then created with `POST /segments` and an empty member list.
        """
        if self._segments is None or any(_same(t) not in self._segments for t in wanted):
            params = {"type": "static", "fields": "segments.id,segments.name,total_items"}
            pages = self.client.pages(f"{self.list_path}/segments", "segments", params, 1000)
            self._segments = {_same(s.get("name")): int(s["id"]) for page in pages for s in page
                              if s.get("id") is not None}  # fmt: skip
        for tag in wanted:
            if _same(tag) not in self._segments:
                body = {"name": tag, "static_segment": []}
                made = self.client.call("POST", f"{self.list_path}/segments", json=body)
                if not isinstance(made, dict) or not isinstance(made.get("id"), int):
                    raise HTTPError(f"{self.where}: creating the tag {tag!r} gave no segment id")
                self._segments[_same(tag)] = made["id"]
        return self._segments

    def _segment(
        self, tag: str, tag_id: int, entering: list[WriteItem], leaving: list[WriteItem]
    ) -> dict[int, tuple[Status, str]]:
        """Add `entering` to the tag and take `leaving` off it; lead id → verdict of the failed."""
        body: dict[str, list[str]] = {}
        if entering:
            body["members_to_add"] = [str(i.email) for i in entering]
        if leaving:
            body["members_to_remove"] = [str(i.email) for i in leaving]
        involved = [i.lead_id for i in (*entering, *leaving)]
        try:
            answer = self.client.call("POST", f"{self.list_path}/segments/{tag_id}", json=body)
        except AuthError:
            raise
        except RequestRejected as exc:
            reason = f"tag {tag}: HTTP {exc.status}: {describe_problem(exc.body)}"
            if exc.status == 404:  # the tag was deleted meanwhile: look the ids up again later
                self._segments = None
                return dict.fromkeys(involved, ("retry", reason))
            return dict.fromkeys(involved, ("rejected", reason))
        except HTTPError as exc:  # still failing after the client's retries: later
            return dict.fromkeys(involved, ("retry", f"tag {tag}: {exc}"))
        by_email = {str(i.email).lower(): i.lead_id for i in (*entering, *leaving)}
        failed: dict[int, tuple[Status, str]] = {}
        for error in (answer or {}).get("errors") or []:
            if not isinstance(error, dict):
                continue
            reason = f"tag {tag}: {error.get('error') or 'refused'}"
            for email in error.get("email_addresses") or []:
                if (lead_id := by_email.get(str(email).lower())) is not None:
                    failed[lead_id] = ("rejected", reason)
        return failed

    def close(self) -> None:
        self.client.close()


def _kind(output: str) -> str:
    """The merge field type an output is written to."""
    return "number" if output in NUMBER_OUTPUTS else "text"


def _same(name: Any) -> str:
    """A tag name for comparing: case-folded, so that a tag spelt with other capitals is found
    rather than made a second time."""
    return str(name or "").casefold()


def _error(entry: Mapping[str, Any]) -> str:
    """A batch answer's error entry as a reason: the message, its code and the field."""
    text = str(entry.get("error") or "refused")
    code = entry.get("error_code")
    field = entry.get("field")
    detail = f" ({field}: {entry.get('field_message') or ''})" if field else ""
    return f"{text}{detail}{f' [{code}]' if code else ''}"
