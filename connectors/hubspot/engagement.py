"""The streams besides contacts: archived contacts, marketing email events, form submissions.

- archived: `GET …/contacts?archived=true` returns only archived (deleted) contacts, in no order
  by `archivedAt`, so every run reads the list and keeps those archived since the bookmark (less
  the overlap); each becomes a deleted lead record of this source, which is never pushed to.
- email_events: `GET /email/public/v1/events` over `[start, end]` (both inclusive), paged by
  `offset`/`hasMore`, with `excludeFilteredEvents=true`. Mid-window pages carry the window and the
  offset (a crash resumes the window); the last page moves the bookmark to the window's end.
- form_submissions: per configured form, newest first; read down to the bookmark less the overlap.

Pages whose order is unknown or newest-first carry the new bookmark only on their last page.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from connectors.base.contract import Cursor, Item, Page, checkpointed
from connectors.hubspot.client import HubSpotClient
from connectors.hubspot.contacts import _next_after, _results
from connectors.hubspot.mapping import (
    contact_items,
    email_event_items,
    epoch_ms,
    form_submission_items,
)
from connectors.hubspot.settings import HubSpotSettings
from core.http import PaginationGuard

DAY_MS = 86_400_000
ARCHIVED_PROPERTIES = ("email", "firstname", "lastname", "lastmodifieddate")


class ArchivedStream:
    """Archived contacts → deleted lead records of this source."""

    name = "archived"

    def __init__(self, source: str, settings: HubSpotSettings, client: HubSpotClient) -> None:
        self.source, self.settings, self.client = source, settings, client

    def read(self, cursor: Cursor | None) -> Iterator[Page]:
        mark = (cursor or {}).get("archived_since")
        newest: list[int | None] = [mark]

        def final() -> Cursor | None:
            return {"archived_since": newest[0]} if newest[0] != mark else None

        yield from checkpointed(self._batches(mark, newest), final)

    def _batches(self, mark: int | None, newest: list[int | None]) -> Iterator[list[Item]]:
        floor = mark - self.settings.overlap_seconds * 1000 if mark is not None else None
        guard = PaginationGuard(f"{self.source}.archived")
        after: str | None = None
        while True:
            answer = self.client.list_contacts(ARCHIVED_PROPERTIES, after, archived=True)
            items: list[Item] = []
            for contact in _results(answer):
                ms = epoch_ms(contact.get("archivedAt")) if isinstance(contact, dict) else None
                if floor is not None and ms is not None and ms < floor:
                    continue
                newest[0] = max(newest[0] or 0, ms or 0)
                items.extend(contact_items(self.source, contact, self.settings, deleted=True))
            yield items
            after = _next_after(answer)
            guard.check(after)
            if after is None:
                return


class EmailEventsStream:
    """Marketing email events → email_opened / clicked / bounced, unsubscribed, spam_reported."""

    name = "email_events"

    def __init__(
        self, source: str, settings: HubSpotSettings, client: HubSpotClient,
        clock: Callable[[], float] = time.time,
    ) -> None:  # fmt: skip
        self.source, self.settings, self.client, self._clock = source, settings, client, clock

    def _window(self, cursor: Cursor) -> tuple[int, int, str | None]:
        if cursor.get("offset"):
            return int(cursor["start"]), int(cursor["end"]), str(cursor["offset"])
        now = int(self._clock() * 1000)
        since = cursor.get("since")
        if since is None:
            return now - self.settings.email_events_lookback_days * DAY_MS, now, None
        # endTimestamp is inclusive: start just after it, less the overlap for late events.
        return int(since) + 1 - self.settings.overlap_seconds * 1000, now, None

    def read(self, cursor: Cursor | None) -> Iterator[Page]:
        start, end, offset = self._window(cursor or {})
        guard = PaginationGuard(f"{self.source}.email_events")
        while True:
            params: dict[str, Any] = {
                "startTimestamp": start,
                "endTimestamp": end,
                "limit": self.settings.email_events_page_size,
                "excludeFilteredEvents": "true",
            }
            if offset:
                params["offset"] = offset
            answer = self.client.email_events(params) or {}
            items = [i for event in answer.get("events") or [] if isinstance(event, dict)
                     for i in email_event_items(self.source, event, self.settings)]  # fmt: skip
            more = answer.get("offset") if answer.get("hasMore") else None
            if not more:
                yield Page(items, {"since": end})
                return
            guard.check(more)
            offset = str(more)
            yield Page(items, {"start": start, "end": end, "offset": offset})


class FormSubmissionsStream:
    """Submissions of the configured forms → form_submitted activities."""

    name = "form_submissions"

    def __init__(self, source: str, settings: HubSpotSettings, client: HubSpotClient) -> None:
        self.source, self.settings, self.client = source, settings, client

    def read(self, cursor: Cursor | None) -> Iterator[Page]:
        marks: dict[str, int] = {
            str(k): int(v) for k, v in ((cursor or {}).get("forms") or {}).items()
        }
        for form_id in self.settings.form_ids:
            before = marks.get(form_id)

            def final(form_id: str = form_id, before: int | None = before) -> Cursor | None:
                return {"forms": dict(marks)} if marks.get(form_id) != before else None

            yield from checkpointed(self._batches(form_id, marks), final)

    def _batches(self, form_id: str, marks: dict[str, int]) -> Iterator[list[Item]]:
        mark = marks.get(form_id)
        floor = mark - self.settings.overlap_seconds * 1000 if mark is not None else None
        guard = PaginationGuard(f"{self.source}.form_submissions.{form_id}")
        after: str | None = None
        while True:
            answer = self.client.form_submissions(form_id, after)
            items: list[Item] = []
            older = False
            for submission in _results(answer):
                ms = (
                    epoch_ms(submission.get("submittedAt"))
                    if isinstance(submission, dict)
                    else None
                )
                if floor is not None and ms is not None and ms < floor:
                    older = True  # newest first: the rest is older still
                    break
                if ms is not None:
                    marks[form_id] = max(marks.get(form_id, 0), ms)
                items.extend(form_submission_items(self.source, form_id, submission))
            yield items
            after = _next_after(answer)
            guard.check(after)
            if older or after is None:
                return
