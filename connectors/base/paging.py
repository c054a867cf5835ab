"""Paging, declared: paginators that follow a vendor's next-page token, and the bookmark.

A stream names its paginator and its replication key; the loop, the repeated-token guard and the
bookmark live here, once. The paginators have the shape of singer-sdk's `BaseAPIPaginator` and
dlt's `BasePaginator`: after each page `update_state(body, records)` reads the vendor's token and
`update_request(request)` puts it into the next call.

    Paginator                    the next page is asked for by …
    ├── CursorPaginator          a token from the body in a query parameter (HubSpot `after`,
    │                            HubSpot email events `offset` + `hasMore`)
    ├── OffsetPaginator          offset/count, until `total_items` or a short page (Mailchimp)
    ├── NextLinkPaginator        a URL from the body (Graph `paging.next`, Salesforce
    │                            `nextRecordsUrl` until `done`)
    └── CappedSearchPaginator    a search that stops at a result cap (HubSpot's 10,000): past it,
                                 the search starts again at the last timestamp read

    paginate(fetch, request, paginator, records)   each page's records
    Countdown                                      records a read still holds, from a stated total
    Bookmark                                       a replication key's high-water mark
    itemized(pages, items, mark, key)              each page's items; the bookmark sees each key
    Marks                                          a bookmark per partition (form, audience)
    bookmarked(batches, cursor)                    pages, each carrying the cursor to resume at
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, Protocol, TypeVar, cast
from urllib.parse import urlsplit

from connectors.base.contract import Cursor, Item, Page
from core.errors import PaginationError, RequestRejected, SourceError
from core.http import redact


class _Ordered(Protocol):
    def __lt__(self, other: Any, /) -> bool: ...


V = TypeVar("V", bound=_Ordered)
Body = Any
"""A page's parsed JSON body, as the vendor sent it (checked by the functions that read it)."""


class PaginationGuard:
    """Turns a vendor that hands back a cursor it already gave into an error, not an endless loop.

    Example: `guard = PaginationGuard("hubspot.contacts")`, then `guard.check(cursor)` per page.
    """

    def __init__(self, stream: str) -> None:
        self.stream = stream
        self._seen: set[str] = set()

    def check(self, cursor: object) -> None:
        """Raise PaginationError if `cursor` was seen before; None (no next page) passes."""
        if cursor is None:
            return
        try:  # dict cursors compare by value, whatever their key order
            key = json.dumps(cursor, sort_keys=True, default=str)
        except (TypeError, ValueError):
            key = repr(cursor)
        if key in self._seen:
            shown = redact(key)[:120]
            raise PaginationError(
                f"stream {self.stream}: the vendor returned cursor {shown} a second time (after "
                f"{len(self._seen)} pages); stopped instead of looping forever. This is a vendor "
                "bug: run a full sync later, or report it to the vendor with this cursor."
            )
        self._seen.add(key)


def json_path(*keys: str) -> Callable[[Body], Any]:
    """A reader of `body[k1][k2]…`; None where any step is missing or not an object.

    Example: `json_path("paging", "next", "after")({"paging": {"next": {"after": "7"}}}) == "7"`.
    """

    def read(body: Body) -> Any:
        for key in keys:
            if not isinstance(body, Mapping):
                return None
            body = body.get(key)
        return body

    return read


def listed(*keys: str) -> Callable[[Body], list[Any]]:
    """The records of a page at `body[k1]…`; an empty list when absent or not a list."""
    read = json_path(*keys)

    def records(body: Body) -> list[Any]:
        found = read(body)
        return found if isinstance(found, list) else []

    return records


@dataclass
class Request:
    """One call of a paged read: a path (or a vendor's next-page URL) and its query parameters.

    A request with a body (a search) is built by the stream's `fetch` from the paginator's state.
    """

    path: str
    params: dict[str, Any] = field(default_factory=dict)


class Paginator(ABC):
    """How a stream asks for its next page; subclasses read the token and write the request.

    Parameters:
        stream: named in the error when the vendor repeats a token.
    """

    def __init__(self, stream: str) -> None:
        self.stream = stream
        self.has_next_page = True
        self._guard = PaginationGuard(stream)

    def init_request(self, request: Request) -> None:
        """Set up the first request (page size, first offset); nothing by default."""
        return None

    @abstractmethod
    def update_state(self, body: Body, records: Sequence[Any]) -> None:
        """Read the next page's token from the page just read; set `has_next_page`."""

    @abstractmethod
    def update_request(self, request: Request) -> None:
        """Put the token into the request for the next page."""

    def recover(self, error: RequestRejected) -> bool:
        """Whether a refused request can be replaced by another (the request updated); no."""
        return False

    def _advance(self, token: Any) -> Any:
        """`token`, or None when there is no next page; a repeated token raises PaginationError."""
        if token in (None, ""):
            self.has_next_page = False
            return None
        self._guard.check(token)
        return token


class CursorPaginator(Paginator):
    """The next page's token is in the body, and goes back as the query parameter `param`.

    Parameters:
        token: reads the token from a body (None: the last page), e.g. `json_path("offset")`.
        param: the query parameter that carries it (`after`, `offset`).
        start: a token to resume at (a page saved mid-read).
    """

    def __init__(
        self,
        stream: str,
        token: Callable[[Body], Any],
        *,
        param: str = "after",
        start: str | None = None,
    ) -> None:
        super().__init__(stream)
        self.token, self.param, self.value = token, param, start

    def init_request(self, request: Request) -> None:
        if self.value:
            request.params[self.param] = self.value

    def update_state(self, body: Body, records: Sequence[Any]) -> None:
        token = self._advance(self.token(body))
        self.value = str(token) if token is not None else None

    def update_request(self, request: Request) -> None:
        request.params[self.param] = self.value


class OffsetPaginator(Paginator):
    """`count`/`offset` paging: until `total_items` is reached, an empty page, or a short one.

    Parameters:
        page_size: records asked for per page.
        total: reads the vendor's total from a body (None when it gives none: then a short page
            ends the read).
        identity: names a record, so that a vendor that ignores the offset (the same page again)
            is caught by the guard.
    """

    def __init__(
        self,
        stream: str,
        page_size: int,
        *,
        offset_param: str = "offset",
        limit_param: str = "count",
        total: Callable[[Body], Any] = json_path("total_items"),
        identity: Callable[[Any], str] = repr,
    ) -> None:
        super().__init__(stream)
        self.page_size, self.offset = page_size, 0
        self.offset_param, self.limit_param = offset_param, limit_param
        self.total, self.identity = total, identity

    def init_request(self, request: Request) -> None:
        request.params.update({self.limit_param: self.page_size, self.offset_param: self.offset})

    def update_state(self, body: Body, records: Sequence[Any]) -> None:
        if not records:
            self.has_next_page = False
            return
        # A vendor that ignores `offset` would hand back the same page for ever.
        self._advance([self.identity(records[0]), self.identity(records[-1]), len(records)])
        self.offset += len(records)
        total = self.total(body)
        if isinstance(total, int):
            self.has_next_page = self.offset < total
        else:
            self.has_next_page = len(records) >= self.page_size

    def update_request(self, request: Request) -> None:
        request.params[self.offset_param] = self.offset


class NextLinkPaginator(Paginator):
    """The body names the next page's URL, which carries its own query.

    Parameters:
        link: where the URL is in the body, dotted (Graph `paging.next`).
        done: where a "no more pages" flag is (Salesforce `done`); a missing flag means done.
        origin: the scheme and host a full URL must point at: credentials go with every call,
            so they must only go back to the vendor's host.
        where: names the read in that error (default: the stream).
    """

    def __init__(
        self,
        stream: str,
        link: str,
        *,
        done: str | None = None,
        origin: str | None = None,
        where: str | None = None,
    ) -> None:
        super().__init__(stream)
        self.link, self._link = link, json_path(*link.split("."))
        self._done = json_path(*done.split(".")) if done else None
        self.origin = urlsplit(origin)[:2] if origin else None
        self.where = where or stream
        self.url: str | None = None

    def update_state(self, body: Body, records: Sequence[Any]) -> None:
        following = self._link(body)
        finished = self._done is not None and self._done(body) in (True, None)
        if finished or not isinstance(following, str) or not following:
            self.has_next_page, self.url = False, None
            return
        if self.origin is not None and urlsplit(following)[:2] != self.origin:
            raise SourceError(f"{self.where}: {self.link} points away from {self.origin[1]}")
        self.url = self._advance(following)

    def update_request(self, request: Request) -> None:
        assert self.url is not None
        request.path, request.params = self.url, {}


@dataclass(frozen=True)
class Window:
    """One search query: `key <op> ts`, and `tie_breaker > id_gt` when set (op: GTE, GT or EQ)."""

    op: Literal["GTE", "GT", "EQ"]
    ts: int
    id_gt: int | None = None


class CappedSearchPaginator(Paginator):
    """A search sorted by a timestamp that answers at most `cap` results per query.

    Before the cap the search starts again at the last timestamp read (`GTE`): the overlap is read
    twice, and `fresh` drops the records already read. When a whole capped window shares one
    timestamp it is drained by id (`EQ` that timestamp, ids `GT` the last), then the search goes
    on `GT` that timestamp. A vendor that refuses a deep page (the cap came before `cap`) is
    restarted the same way.

    Parameters:
        since: the first window's lower bound (`GTE`).
        cap: results one query may page through.
        token: reads the next offset from a body (None: the window is done).
        position: a record's (timestamp, id), None when it has none.
    """

    def __init__(
        self,
        stream: str,
        *,
        since: int,
        cap: int,
        token: Callable[[Body], Any],
        position: Callable[[Any], tuple[int, int] | None],
    ) -> None:
        super().__init__(stream)
        self.window: Window = Window("GTE", since)
        self.after = 0
        self.cap, self.token, self.position = cap, token, position
        self._last: tuple[int, int] | None = None  # (timestamp, id) of the window's last record
        self._read: dict[str, int | None] = {}  # id → timestamp, read in this run

    def fresh(self, record_id: str, ts: int | None) -> bool:
        """True the first time a record is read at this timestamp in this run (overlap, restart)."""
        if record_id in self._read and self._read[record_id] == ts:
            return False
        self._read[record_id] = ts
        return True

    def update_state(self, body: Body, records: Sequence[Any]) -> None:
        for record in records:
            self._last = self.position(record) or self._last
        following = self.token(body)
        if following in (None, ""):
            if self.window.op == "EQ":
                self._go_on(Window("GT", self.window.ts))
            else:
                self.has_next_page = False
        elif int(following) >= self.cap:
            if self._last is None:
                raise SourceError(f"{self.stream}: search results carry no dates")
            self._restart()
        else:
            self.after = int(following)

    def recover(self, error: RequestRejected) -> bool:
        if self.after == 0 or self._last is None:
            return False
        self._restart()
        return True

    def update_request(self, request: Request) -> None:
        """Nothing to write: `window` and `after` are read by the stream's request builder."""

    def _restart(self) -> None:
        """Go on past the cap from the last (timestamp, id) read."""
        assert self._last is not None
        ts, last_id = self._last
        query = self.window
        if query.op == "EQ":
            self._go_on(Window("EQ", query.ts, last_id))
        elif ts > query.ts or query.op == "GT":
            self._go_on(Window("GTE", ts))
        else:
            self._go_on(Window("EQ", query.ts))  # a whole window in one timestamp: drain it by id

    def _go_on(self, window: Window) -> None:
        if window == self.window:
            raise SourceError(f"{self.stream}: the search made no progress at {window}")
        self.window, self.after, self._last = window, 0, None


class Countdown:
    """How many records a paged read still holds, from the total its vendor states on each page.

    After each page `left` is the stated total less the records read so far (None when the
    vendor states none): Salesforce `totalSize`, Mailchimp `total_items`, HubSpot search `total`.

    Parameters:
        total: reads the stated total from a body, e.g. `json_path("totalSize")`.
        read: reads from a body how many records the query has answered up to and including this
            page (HubSpot search: the next page's offset), for a read that restarts its query;
            by default the records `paginate` has seen are counted.
    """

    def __init__(
        self, total: Callable[[Body], Any], *, read: Callable[[Body], Any] | None = None
    ) -> None:
        self.total, self.read = total, read
        self.counted = 0
        self.left: int | None = None

    def page(self, body: Body, records: int) -> None:
        """Count a page of `records` records and read the total its body states."""
        self.counted += records
        total = self.total(body)
        if not isinstance(total, int) or isinstance(total, bool):
            self.left = None
            return
        done = self.read(body) if self.read is not None else self.counted
        try:
            done = int(done) if done is not None else total
        except (TypeError, ValueError):
            done = self.counted
        self.left = max(total - done, 0)


def paginate(
    fetch: Callable[[Request], Body],
    request: Request,
    paginator: Paginator,
    records: Callable[[Body], list[Any]],
    countdown: Countdown | None = None,
) -> Iterator[list[Any]]:
    """Each page's records, from `request` on, as long as `paginator` finds a next page.

    `fetch` sends one request and returns its parsed body; `records` picks the page's records;
    `countdown`, when given, reads each page's stated total before the page is yielded.
    """
    paginator.init_request(request)
    while True:
        try:
            body = fetch(request)
        except RequestRejected as error:
            if paginator.recover(error):
                paginator.update_request(request)
                continue
            raise
        found = records(body)
        paginator.update_state(body, found)
        if countdown is not None:
            countdown.page(body, len(found))
        yield found
        if not paginator.has_next_page:
            return
        paginator.update_request(request)


class Bookmark(Generic[V]):
    """A replication key's high-water mark: where the stream's next read starts.

    `seen` moves it forward, never back: to the largest value seen when the vendor's order is
    unknown or newest first, to the last one when the read is `ascending` (the vendor's order,
    ties broken as it sorts, is then the authority). Values are ints, datetimes or tuples.

    Example: `mark = Bookmark(saved)`; `mark.seen(record_time)` per record; the stream's cursor
    function saves `mark.value` when `mark.moved`.
    """

    def __init__(self, saved: V | None, *, ascending: bool = False) -> None:
        self.saved: V | None = saved
        self.value: V | None = saved
        self.ascending = ascending

    def seen(self, value: V | None) -> None:
        if value is None:
            return
        if self.ascending or self.value is None or self.value < value:
            self.value = value

    @property
    def moved(self) -> bool:
        return self.value != self.saved

    def start(self, overlap: Any, floor: V | None = None) -> V | None:
        """Where this read starts: the saved mark less `overlap` (late changes are not missed),
        never before `floor` (a configured start); None (read everything) with neither."""
        if self.saved is None:
            return floor
        since = cast(V, self.saved - overlap)
        return since if floor is None else max(since, floor)


def itemized(
    pages: Iterable[Sequence[Any]],
    items: Callable[[Any], Iterable[Item]],
    mark: Bookmark[V],
    key: Callable[[Any], V | None],
    *,
    floor: V | None = None,
    newest_first: bool = False,
) -> Iterator[list[Item]]:
    """Each page's items; every record's replication key (`key`) moves `mark`.

    Records older than `floor` (the bookmark less the overlap, for a vendor that cannot filter)
    are dropped; `newest_first`, the first of them ends the read. A record without a key is kept,
    so that the mapping can quarantine it.
    """
    for page in pages:
        found: list[Item] = []
        for record in page:
            value = key(record)
            if floor is not None and value is not None and value < floor:
                if newest_first:
                    yield found
                    return
                continue
            mark.seen(value)
            found.extend(items(record))
        yield found


class Marks(Generic[V]):
    """Bookmarks per partition (a form, an audience), saved as one cursor `{key: {id: mark}}`.

    A partition's pages carry the cursor only at its end (`bookmarked` without `every_page`), with
    the marks of the partitions read before it, so a crash re-reads only the partition it was in.

    Parameters:
        key: the cursor's key (`forms`, `lists`).
        cursor: the saved cursor.
        load, dump: a mark as the cursor stores it → a comparable value, and back.
    """

    def __init__(
        self,
        key: str,
        cursor: Cursor | None,
        *,
        load: Callable[[Any], V | None],
        dump: Callable[[V], Any] = lambda value: value,
    ) -> None:
        self.key, self.load, self.dump = key, load, dump
        self.saved: dict[str, Any] = {str(k): v for k, v in ((cursor or {}).get(key) or {}).items()}

    def bookmark(self, partition: str) -> Bookmark[V]:
        """The partition's bookmark, as saved."""
        saved = self.saved.get(partition)
        return Bookmark(self.load(saved) if saved is not None else None)

    def cursor(self, partition: str, mark: Bookmark[V]) -> Callable[[], Cursor | None]:
        """The cursor function of a partition's read: every mark, this one as `mark` stands."""

        def cursor() -> Cursor | None:
            if mark.value is None or self.dump(mark.value) == self.saved.get(partition):
                return None
            self.saved[partition] = self.dump(mark.value)
            return {self.key: dict(self.saved)}

        return cursor


def bookmarked(
    batches: Iterable[Sequence[Item]],
    cursor: Callable[[], Cursor | None],
    *,
    every_page: bool = False,
    left: Callable[[], int | None] = lambda: None,
) -> Iterator[Page]:
    """The pages of `batches`, each carrying the cursor to resume after it (None: unchanged).

    `cursor()` is the stream's bookmark as a cursor, read after each batch (None: not moved).
    `every_page`: the read is in the replication key's order, so a page saves the cursor whenever
    it differs from the one the page before saved (a crash re-reads at most one page).
    Otherwise only the last page saves it, because a crash mid-read (newest first, or no known
    order) must read everything again: pages are held one behind so that the last carries the
    cursor, and empty ones are skipped.
    `left()` is how many records the read still holds after each batch (a `Countdown`'s `left`),
    read as the batch arrives; None when the vendor does not say.
    """
    if every_page:
        last: Cursor | None = None
        for items in batches:
            now = cursor()
            yield Page(items, now if now != last else None, left())
            last = now
        return
    held: tuple[Sequence[Item], int | None] | None = None
    for items in batches:
        if not items:
            continue
        if held is not None:
            yield Page(held[0], None, held[1])
        held = (items, left())
    final = cursor()
    if held is not None or final is not None:
        yield Page(held[0] if held else [], final, held[1] if held else left())
