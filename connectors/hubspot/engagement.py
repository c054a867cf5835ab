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

from connectors.base.contract import Cursor, Item, Page
from connectors.base.paging import (
    Bookmark,
    CursorPaginator,
    Marks,
    Request,
    bookmarked,
    itemized,
    json_path,
    listed,
    paginate,
)
from connectors.hubspot.client import EMAIL_EVENTS_PATH, HubSpotClient
from connectors.hubspot.contacts import next_after, results
from connectors.hubspot.mapping import (
    contact_items,
    email_event_items,
    epoch_ms,
    form_submission_items,
)
from connectors.hubspot.settings import HubSpotSettings

DAY_MS = 86_400_000
ARCHIVED_PROPERTIES = ("email", "firstname", "lastname", "lastmodifieddate")
_events = listed("events")


def _time(field: str) -> Callable[[Any], int | None]:
    """A record's `field` as epoch ms (None when it is not an object, or has no readable time)."""
    return lambda record: epoch_ms(record.get(field)) if isinstance(record, dict) else None


def _more(answer: Any) -> Any:
    """The email-events offset of the next page, when `hasMore` says there is one."""
    return (json_path("offset")(answer) or None) if json_path("hasMore")(answer) else None


class ArchivedStream:
    """Archived contacts → deleted lead records of this source."""

    name = "archived"
    replication_key = "archivedAt"

    def __init__(self, source: str, settings: HubSpotSettings, client: HubSpotClient) -> None:
        self.source, self.settings, self.client = source, settings, client

    def read(self, cursor: Cursor | None) -> Iterator[Page]:
        mark: Bookmark[int] = Bookmark((cursor or {}).get("archived_since"))
        floor = mark.start(self.settings.overlap_seconds * 1000)
        paginator = CursorPaginator(f"{self.source}.archived", next_after)

        def fetch(request: Request) -> Any:
            after = request.params.get("after")
            return self.client.list_contacts(ARCHIVED_PROPERTIES, after, archived=True)

        def items(contact: Any) -> list[Item]:
            return contact_items(self.source, contact, self.settings, deleted=True)

        pages = paginate(fetch, Request(""), paginator, results)
        batches = itemized(pages, items, mark, _time(self.replication_key), floor=floor)
        yield from bookmarked(
            batches, lambda: {"archived_since": mark.value} if mark.moved else None
        )


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
        paginator = CursorPaginator(
            f"{self.source}.email_events", _more, param="offset", start=offset
        )
        params: dict[str, Any] = {
            "startTimestamp": start,
            "endTimestamp": end,
            "limit": self.settings.email_events_page_size,
            "excludeFilteredEvents": "true",
        }
        request = Request(EMAIL_EVENTS_PATH, params)
        pages = paginate(lambda r: self.client.email_events(r.params), request, paginator, _events)
        for events in pages:
            items = [i for event in events if isinstance(event, dict)
                     for i in email_event_items(self.source, event, self.settings)]  # fmt: skip
            if not paginator.has_next_page:
                yield Page(items, {"since": end})
                return
            yield Page(items, {"start": start, "end": end, "offset": paginator.value})


class FormSubmissionsStream:
    """Submissions of the configured forms → form_submitted activities."""

    name = "form_submissions"
    replication_key = "submittedAt"

    def __init__(self, source: str, settings: HubSpotSettings, client: HubSpotClient) -> None:
        self.source, self.settings, self.client = source, settings, client

    def read(self, cursor: Cursor | None) -> Iterator[Page]:
        marks = Marks("forms", cursor, load=int)
        for form_id in self.settings.form_ids:
            yield from self._read_form(form_id, marks)

    def _read_form(self, form_id: str, marks: Marks[int]) -> Iterator[Page]:
        """The form's pages, newest first, down to its bookmark less the overlap."""
        mark = marks.bookmark(form_id)
        floor = mark.start(self.settings.overlap_seconds * 1000)
        paginator = CursorPaginator(f"{self.source}.form_submissions.{form_id}", next_after)

        def fetch(request: Request) -> Any:
            return self.client.form_submissions(form_id, request.params.get("after"))

        def items(submission: Any) -> list[Item]:
            return form_submission_items(self.source, form_id, submission)

        pages = paginate(fetch, Request(""), paginator, results)
        # newest first: the first submission older than the floor ends the read
        batches = itemized(
            pages, items, mark, _time(self.replication_key), floor=floor, newest_first=True
        )
        yield from bookmarked(batches, marks.cursor(form_id, mark))
