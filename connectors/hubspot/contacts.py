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
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from connectors.base.contract import Cursor, Item, Page
from connectors.hubspot.client import HubSpotClient
from connectors.hubspot.mapping import chunk_properties, contact_items, contact_properties, epoch_ms
from connectors.hubspot.settings import HubSpotSettings
from core.errors import RequestRejected, SourceError
from core.http import PaginationGuard

SEARCH_BODY_RESERVE = 600  # characters of a search body besides the property list


@dataclass(frozen=True)
class Query:
    """One search window: `lastmodifieddate <op> ts`, optionally `hs_object_id GT id_gt`."""

    op: str  # GTE | GT | EQ
    ts: int
    id_gt: int | None = None


@dataclass
class _Run:
    watermark: int
    emitted: dict[str, int | None] = field(default_factory=dict)  # id → modified ms read this run
    last_cursor: Cursor | None = None


def _results(answer: Any) -> list[Any]:
    """The page's results; one that is not an object is kept, to be quarantined by the mapping."""
    results = (answer or {}).get("results") if isinstance(answer, dict) else None
    return results if isinstance(results, list) else []


def _next_after(answer: Any) -> str | None:
    after = (((answer or {}).get("paging") or {}).get("next") or {}).get("after")
    return str(after) if after not in (None, "") else None


class ContactsStream:
    """Contacts → leads (plus outcomes and merged ids); see the module docstring."""

    name = "contacts"

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
        after: str | None = cursor.get("after")
        guard = PaginationGuard(f"{self.source}.contacts")
        while True:
            answer = self.client.list_contacts(self.list_chunks[0], after)
            contacts = self._complete(_results(answer), self.list_chunks[1:])
            after = _next_after(answer)
            guard.check(after)
            items = self._items(contacts)
            if after is None:
                yield Page(items, {"phase": "search", "since": since})
                return
            yield Page(items, {"phase": "list", "after": after, "since": since})

    # -- increments ----------------------------------------------------------------------------

    def _search(self, since: int) -> Iterator[Page]:
        run = _Run(watermark=since)
        query: Query | None = Query("GTE", max(0, since - self.overlap_ms))
        while query is not None:
            following = yield from self._window(query, run)
            if following == query:
                raise SourceError(f"{self.source}.contacts: the search made no progress at {query}")
            query = following

    def _window(self, query: Query, run: _Run) -> Generator[Page, None, Query | None]:
        """Page through one query; return the query to go on with (None: done)."""
        after = 0
        last: tuple[int, int] | None = None  # (modified ms, id) of the last result
        while True:
            try:
                answer = self.client.search_contacts(self._body(query, after))
            except RequestRejected:
                if after == 0 or last is None:
                    raise
                return self._restart(query, last)  # the cap came before the configured one
            contacts = self._complete(_results(answer), self.search_chunks[1:])
            items: list[Item] = []
            for contact in contacts:
                if not isinstance(contact, dict):
                    items.extend(contact_items(self.source, contact, self.settings))
                    continue  # quarantined by contact_items, with the reason
                cid = str(contact.get("id") or "")
                props = contact.get("properties")
                ms = epoch_ms((props.get("lastmodifieddate") if isinstance(props, dict) else None)
                              or contact.get("updatedAt"))  # fmt: skip
                if ms is not None and cid.isdigit():
                    last = (ms, int(cid))
                if cid in run.emitted and run.emitted[cid] == ms:
                    continue  # read already in this run (overlap or restart)
                run.emitted[cid] = ms
                run.watermark = max(run.watermark, ms or 0)
                items.extend(contact_items(self.source, contact, self.settings))
            cursor = {"phase": "search", "since": run.watermark}
            yield Page(items, cursor if cursor != run.last_cursor else None)
            run.last_cursor = cursor
            following = _next_after(answer)
            if following is None:
                return Query("GT", query.ts) if query.op == "EQ" else None
            if int(following) >= self.settings.search_cap:
                if last is None:
                    raise SourceError(f"{self.source}.contacts: search results carry no dates")
                return self._restart(query, last)
            after = int(following)

    def _restart(self, query: Query, last: tuple[int, int]) -> Query:
        """The query that goes on past the cap from the last (timestamp, id) read."""
        ms, cid = last
        if query.op == "EQ":
            return Query("EQ", query.ts, cid)
        if ms > query.ts or query.op == "GT":
            return Query("GTE", ms)
        return Query("EQ", query.ts)  # a whole window in one millisecond: drain it by id

    def _body(self, query: Query, after: int) -> dict[str, Any]:
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
