"""The Mailchimp source: audience members, then email engagement per recent campaign.

Streams and cursors:

- `members`: per audience, members with `since_last_changed` = the bookmark (the newest
  `last_changed` read) minus `overlap_seconds`, newest first, `count`/`offset` paging. Newest
  first because a member that changes during the read moves to the front: offsets then shift
  forward (one member read twice) instead of back (one member skipped). The cursor is
  `{"lists": {list_id: iso}}`, saved with the last page of each audience, so a crash re-reads
  that audience from its old bookmark (upserts make that harmless).
- `email_activity`: campaigns sent within `lookback_days`, then per campaign its email activity
  with `since` = that campaign's own bookmark minus the overlap, and its unsubscribe report (which
  has no `since`, so it is filtered here). The cursor is `{"campaigns": {id: {"activity": iso,
  "unsubscribed": iso}}}`, saved with the campaign's last page: the order of email-activity
  pages is not known to be stable, so progress is only recorded between campaigns. Campaigns
  that left the window are dropped from the cursor.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from connectors.base.contract import Cursor, Item, Page, Stream
from connectors.base.paging import Bookmark, Countdown, Marks, bookmarked, itemized, json_path
from connectors.mailchimp.client import MailchimpClient
from connectors.mailchimp.mapping import (
    MEMBER_FIELDS,
    activity_items,
    member_items,
    unsubscribe_item,
)
from connectors.mailchimp.settings import MailchimpSourceSettings

CAMPAIGN_FIELDS = (
    "total_items,campaigns.id,campaigns.send_time,campaigns.recipients.list_id,"
    "campaigns.settings.title,campaigns.settings.subject_line"
)
ACTIVITY_FIELDS = "total_items,emails.email_id,emails.email_address,emails.activity"
Clock = Callable[[], datetime]


def utc(value: Any) -> datetime | None:
    """A Mailchimp timestamp as an aware UTC datetime; None when absent or unreadable."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def iso(when: datetime) -> str:
    """UTC, `+00:00`: Mailchimp reads date filters as UTC whatever offset they carry."""
    return when.astimezone(UTC).replace(microsecond=0).isoformat()


def _after(value: Any, since: datetime | None) -> bool:
    """Newer than `since`; an unreadable time passes, so that it is quarantined, not lost."""
    when = utc(value)
    return since is None or when is None or when > since


class _Stream:
    """What both streams share: the client, the settings, and the read window's lower bound."""

    name = ""

    def __init__(
        self, source: str, settings: MailchimpSourceSettings, client: MailchimpClient, now: Clock
    ) -> None:
        self.source, self.settings, self.client, self.now = source, settings, client, now

    def since(self, mark: Bookmark[datetime]) -> datetime | None:
        """The bookmark minus the overlap, never before `start_date`; None reads everything."""
        start = self.settings.start_date
        floor = start.replace(tzinfo=start.tzinfo or UTC).astimezone(UTC) if start else None
        return mark.start(timedelta(seconds=self.settings.overlap_seconds), floor)

    def pages(
        self, path: str, key: str, params: Mapping[str, Any], countdown: Countdown | None = None
    ) -> Iterator[list[Any]]:
        return self.client.pages(path, key, params, self.settings.page_size, countdown)


class MembersStream(_Stream):
    """Members of every configured audience (and their unsubscribed/bounced status)."""

    name = "members"
    replication_key = "last_changed"

    def read(self, cursor: Cursor | None) -> Iterator[Page]:
        marks = Marks("lists", cursor, load=utc, dump=iso)
        for list_id in self.settings.list_ids:
            yield from self._read_list(list_id, marks)

    def _read_list(self, list_id: str, marks: Marks[datetime]) -> Iterator[Page]:
        params: dict[str, Any] = {
            "fields": MEMBER_FIELDS,
            "sort_field": "last_changed",
            "sort_dir": "DESC",
        }
        mark = marks.bookmark(list_id)
        since = self.since(mark)
        if since is not None:
            params["since_last_changed"] = iso(since)

        def items(member: Any) -> list[Item]:
            return member_items(self.source, list_id, member, self.settings)

        countdown = Countdown(json_path("total_items"))  # the audience's members to read
        pages = self.pages(f"/lists/{list_id}/members", "members", params, countdown)
        batches = itemized(pages, items, mark, lambda member: utc(member.get(self.replication_key)))
        yield from bookmarked(batches, marks.cursor(list_id, mark), left=lambda: countdown.left)


class EngagementStream(_Stream):
    """Opens, clicks, bounces and unsubscribes of the campaigns sent within the lookback window."""

    name = "email_activity"
    replication_key = "timestamp"  # of each activity, and of each unsubscribe

    def read(self, cursor: Cursor | None) -> Iterator[Page]:
        saved: dict[str, dict[str, str]] = dict((cursor or {}).get("campaigns") or {})
        campaigns = self.campaigns()
        window = {str(c.get("id")) for c in campaigns}
        marks = {cid: dict(mark) for cid, mark in saved.items() if cid in window}
        changed = False
        for campaign in campaigns:
            for page in self._read_campaign(campaign, marks):
                changed = changed or page.cursor is not None
                yield page
        if not changed and marks != saved:  # only campaigns that left the window: drop them
            yield Page([], {"campaigns": marks})

    def campaigns(self) -> list[dict[str, Any]]:
        """Sent campaigns of the configured audiences, oldest first, within the window."""
        since = self.now() - timedelta(days=self.settings.lookback_days)
        params: dict[str, Any] = {
            "status": "sent",
            "since_send_time": iso(since),
            "sort_field": "send_time",
            "sort_dir": "ASC",
            "fields": CAMPAIGN_FIELDS,
        }
        lists = set(self.settings.list_ids)
        if len(lists) == 1:
            params["list_id"] = self.settings.list_ids[0]
        found = [c for page in self.pages("/campaigns", "campaigns", params) for c in page]
        return [c for c in found if (c.get("recipients") or {}).get("list_id") in lists]

    def _read_campaign(
        self, campaign: Mapping[str, Any], marks: dict[str, dict[str, str]]
    ) -> Iterator[Page]:
        cid = str(campaign.get("id"))
        old = marks.get(cid, {})
        newest = {k: Bookmark(utc(old.get(k))) for k in ("activity", "unsubscribed")}
        reading = [Countdown(json_path("total_items"))]  # of the report being read

        def activity() -> Iterator[list[Item]]:
            since = self.since(newest["activity"])
            params = {"fields": ACTIVITY_FIELDS, **({"since": iso(since)} if since else {})}
            reading[0] = Countdown(json_path("total_items"))
            for page in self.pages(f"/reports/{cid}/email-activity", "emails", params, reading[0]):
                items: list[Item] = []
                for row in page:
                    items.extend(activity_items(self.source, campaign, row))
                    for event in row.get("activity") or []:
                        newest["activity"].seen(utc(event.get(self.replication_key)))
                yield items

        def unsubscribes() -> Iterator[list[Item]]:
            since = self.since(newest["unsubscribed"])
            reading[0] = Countdown(json_path("total_items"))
            for page in self.pages(f"/reports/{cid}/unsubscribed", "unsubscribes", {}, reading[0]):
                # The report ignores date filters: keep only what is newer than the bookmark.
                rows = [r for r in page if _after(r.get(self.replication_key), since)]
                for row in rows:
                    newest["unsubscribed"].seen(utc(row.get(self.replication_key)))
                yield [unsubscribe_item(self.source, campaign, r) for r in rows]

        def cursor() -> Cursor | None:
            mark = {k: iso(b.value) for k, b in newest.items() if b.value is not None}
            if mark == old:
                return None
            marks[cid] = mark
            return {"campaigns": {k: dict(v) for k, v in marks.items()}}

        batches = (
            [activity(), unsubscribes()] if self.settings.campaign_unsubscribes else [activity()]
        )
        chained = (b for it in batches for b in it)
        yield from bookmarked(chained, cursor, left=lambda: reading[0].left)


class MailchimpSource:
    """Members and engagement of the configured audiences.

    Parameters:
        name: the source's name in the hub file.
        settings: the validated block.
        transport, sleep: for tests (a mock transport; a sleep that records waits).
        now: the clock the lookback window is measured from.
    """

    def __init__(
        self,
        name: str,
        settings: MailchimpSourceSettings,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        now: Clock = lambda: datetime.now(UTC),
    ) -> None:
        self.name, self.settings = name, settings
        self.client = MailchimpClient(
            f"mailchimp source {name!r}", f"sources.{name}", settings,
            transport=transport, sleep=sleep,
        )  # fmt: skip
        self._now = now

    def streams(self) -> Sequence[Stream]:
        args = (self.name, self.settings, self.client, self._now)
        return [MembersStream(*args), EngagementStream(*args)]
