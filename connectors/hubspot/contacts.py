"""The contacts stream: a first sync through the list endpoint, then increments through search.

First sync: `GET …/contacts` pages by `after` (no result cap); the cursor remembers the time the
sync began (less the overlap) as the watermark for the increments.

Increments: search on `lastmodifieddate` ascending from the watermark less `overlap_seconds`
(late-indexed changes are not missed), 200 per page. Search stops at 10,000 results per query
(a 400 beyond), so before the cap the search starts again at the last timestamp seen; contacts
read twice in one run (overlap, restarts) are dropped. When a whole capped window shares one
millisecond, it is drained by `hs_object_id` (`EQ` that timestamp, `hs_object_id GT` the last id),
then the search goes on `GT` that timestamp. The cursor is `{"phase": "search", "since": ms}`,
the newest modification read so far; it only moves forward.

Properties beyond what fits a URL (list) or the 3,000-character search body are read in more
chunks through `batch/read` (POST bodies, 100 ids per call) and merged into the page.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from connectors.base.contract import Cursor, Item, Page
from connectors.base.paging import (
    Bookmark,
    CappedSearchPaginator,
    Countdown,
    CursorPaginator,
    Request,
    Window,
    bookmarked,
    json_path,
    listed,
    paginate,
)
from connectors.hubspot.client import HubSpotClient
from connectors.hubspot.mapping import chunk_properties, contact_items, contact_properties, epoch_ms
from connectors.hubspot.settings import HubSpotSettings

SEARCH_BODY_RESERVE = 600  # characters of a search body besides the property list
results = listed("results")
"""A page's results; one that is not an object is kept, to be quarantined by the mapping."""
next_after = json_path("paging", "next", "after")


def modified(contact: Any) -> tuple[str, int | None]:
    """A contact's id and its last modification (epoch ms; None when it has none)."""
    props = contact.get("properties")
    ms = epoch_ms((props.get("lastmodifieddate") if isinstance(props, dict) else None)
                  or contact.get("updatedAt"))  # fmt: skip
    return str(contact.get("id") or ""), ms


def position(contact: Any) -> tuple[int, int] | None:
    """Where a search result stands in the sort: (modified ms, numeric id)."""
    if not isinstance(contact, dict):
        return None
    cid, ms = modified(contact)
    return (ms, int(cid)) if ms is not None and cid.isdigit() else None


class ContactsStream:
    """Contacts → leads (plus outcomes and merged ids); see the module docstring."""

    name = "contacts"
    replication_key = "lastmodifieddate"

    def __init__(
        self, source: str, settings: HubSpotSettings, client: HubSpotClient,
        clock: Callable[[], float] = time.time,
    ) -> None:  # fmt: skip
        self.source, self.settings, self.client, self._clock = source, settings, client, clock
        props = contact_properties(settings)
        self.list_chunks = chunk_properties(props, settings.max_url_chars - 300, overhead=3)
        budget = settings.search_body_chars - SEARCH_BODY_RESERVE
        self.search_chunks = chunk_properties(props, budget, overhead=4)
        self.overlap_ms = settings.overlap_seconds * 1000

    def read(self, cursor: Cursor | None) -> Iterator[Page]:
        cursor = cursor or {}
        if cursor.get("phase") == "search":
            yield from self._search(int(cursor["since"]))
        else:
            yield from self._list(cursor)

    # -- first sync ----------------------------------------------------------------------------

    def _list(self, cursor: Cursor) -> Iterator[Page]:
        since = int(cursor.get("since") or self._clock() * 1000 - self.overlap_ms)
        paginator = CursorPaginator(
            f"{self.source}.contacts", next_after, start=cursor.get("after")
        )

        def fetch(request: Request) -> Any:
            return self.client.list_contacts(self.list_chunks[0], request.params.get("after"))

        for contacts in paginate(fetch, Request(""), paginator, results):
            items = self._items(self._complete(contacts, self.list_chunks[1:]))
            if not paginator.has_next_page:
                yield Page(items, {"phase": "search", "since": since})
                return
            yield Page(items, {"phase": "list", "after": paginator.value, "since": since})

    # -- increments ----------------------------------------------------------------------------

    def _search(self, since: int) -> Iterator[Page]:
        mark = Bookmark(since)
        paginator = CappedSearchPaginator(
            f"{self.source}.contacts", since=max(0, since - self.overlap_ms),
            cap=self.settings.search_cap, token=next_after, position=position,
        )  # fmt: skip

        def fetch(request: Request) -> Any:
            return self.client.search_contacts(self._body(paginator.window, paginator.after))

        def complete(answer: Any) -> list[Any]:
            return self._complete(results(answer), self.search_chunks[1:])

        # A search states its `total`; the next page's offset is what the query has answered.
        countdown = Countdown(json_path("total"), read=next_after)

        def batches() -> Iterator[list[Item]]:
            for contacts in paginate(fetch, Request(""), paginator, complete, countdown):
                items: list[Item] = []
                for contact in contacts:
                    if isinstance(contact, dict):
                        cid, ms = modified(contact)
                        if not paginator.fresh(cid, ms):
                            continue  # read already in this run (overlap or restart)
                        mark.seen(ms)
                    items.extend(contact_items(self.source, contact, self.settings))
                yield items

        yield from bookmarked(
            batches(), lambda: {"phase": "search", "since": mark.value}, every_page=True,
            left=lambda: countdown.left,
        )  # fmt: skip

    def _body(self, query: Window, after: int) -> dict[str, Any]:
        filters = [
            {"propertyName": "lastmodifieddate", "operator": query.op, "value": str(query.ts)}
        ]
        if query.id_gt is not None:
            filters.append(
                {"propertyName": "hs_object_id", "operator": "GT", "value": str(query.id_gt)}
            )
        sort = "hs_object_id" if query.op == "EQ" else "lastmodifieddate"
        return {
            "filterGroups": [{"filters": filters}],
            "sorts": [{"propertyName": sort, "direction": "ASCENDING"}],
            "properties": self.search_chunks[0],
            "limit": self.settings.search_page_size,
            "after": str(after),
        }

    # -- shared --------------------------------------------------------------------------------

    def _complete(self, contacts: list[Any], chunks: Sequence[list[str]]) -> list[Any]:
        """Add the properties of the further chunks to `contacts` (batch/read by id)."""
        ids = [str(c["id"]) for c in contacts if isinstance(c, dict) and c.get("id")]
        for chunk in chunks:
            if not ids:
                break
            found = {str(r.get("id")): r.get("properties") or {}
                     for r in self.client.read_contacts(ids, chunk)}  # fmt: skip
            for contact in contacts:
                if not isinstance(contact, dict):
                    continue
                extra = found.get(str(contact.get("id")))
                props = contact.get("properties") or {}
                if extra and isinstance(extra, dict) and isinstance(props, dict):
                    contact["properties"] = {**props, **extra}
        return contacts

    def _items(self, contacts: list[Any]) -> list[Item]:
        return [i for c in contacts for i in contact_items(self.source, c, self.settings)]
