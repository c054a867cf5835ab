"""Declared paging: the paginators on hand-built page sequences, the bookmark, the guard.

Each test's oracle is the sequence it builds by hand: which requests a vendor would be sent, in
which order, and which records come back, written out in the test.
"""

from __future__ import annotations

from typing import Any

import pytest

from connectors.base.contract import Invalid, Item, Page
from connectors.base.paging import (
    Bookmark,
    CappedSearchPaginator,
    CursorPaginator,
    Marks,
    NextLinkPaginator,
    OffsetPaginator,
    PaginationGuard,
    Request,
    Window,
    bookmarked,
    itemized,
    json_path,
    listed,
    paginate,
)
from core.errors import PaginationError, RequestRejected, SourceError


class Vendor:
    """Answers requests with the next body of a hand-written list, and records what was asked."""

    def __init__(self, *bodies: Any) -> None:
        self.bodies = list(bodies)
        self.asked: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, request: Request) -> Any:
        self.asked.append((request.path, dict(request.params)))
        return self.bodies.pop(0)


# -- cursor ---------------------------------------------------------------------------------------


def test_a_cursor_in_the_body_is_sent_back_until_there_is_none() -> None:
    vendor = Vendor(
        {"results": [1, 2], "paging": {"next": {"after": "2"}}},
        {"results": [], "paging": {"next": {"after": "5"}}},  # an empty page that goes on
        {"results": [3]},
    )
    paginator = CursorPaginator("crm.contacts", json_path("paging", "next", "after"))
    pages = list(paginate(vendor, Request("/contacts", {"limit": 2}), paginator, listed("results")))
    assert pages == [[1, 2], [], [3]]
    assert vendor.asked == [
        ("/contacts", {"limit": 2}),
        ("/contacts", {"limit": 2, "after": "2"}),
        ("/contacts", {"limit": 2, "after": "5"}),
    ]


def test_a_cursor_resumes_at_a_saved_token() -> None:
    vendor = Vendor({"results": [7]})
    paginator = CursorPaginator("crm.contacts", json_path("paging", "next", "after"), start="6")
    assert list(paginate(vendor, Request("/contacts"), paginator, listed("results"))) == [[7]]
    assert vendor.asked == [("/contacts", {"after": "6"})]


def test_a_cursor_that_repeats_is_an_error_not_a_loop() -> None:
    vendor = Vendor(
        {"results": [1], "paging": {"next": {"after": "A"}}},
        {"results": [2], "paging": {"next": {"after": "B"}}},
        {"results": [3], "paging": {"next": {"after": "A"}}},
    )
    paginator = CursorPaginator("crm.contacts", json_path("paging", "next", "after"))
    read: list[list[Any]] = []
    with pytest.raises(PaginationError, match=r"crm\.contacts.*A.*second time"):
        read.extend(paginate(vendor, Request("/c"), paginator, listed("results")))
    assert read == [[1], [2]]  # the third page's token was refused before it was handed on
    assert len(vendor.asked) == 3


# -- offset ---------------------------------------------------------------------------------------


def members(*ids: int) -> list[dict[str, Any]]:
    return [{"id": i} for i in ids]


def test_offset_paging_stops_at_the_total() -> None:
    vendor = Vendor(
        {"members": members(1, 2), "total_items": 5},
        {"members": members(3, 4), "total_items": 5},
        {"members": members(5), "total_items": 5},
    )
    paginator = OffsetPaginator("lists", 2, identity=lambda m: str(m["id"]))
    pages = list(paginate(vendor, Request("/m", {"fields": "x"}), paginator, listed("members")))
    assert pages == [members(1, 2), members(3, 4), members(5)]
    assert [params for _, params in vendor.asked] == [
        {"fields": "x", "count": 2, "offset": 0},
        {"fields": "x", "count": 2, "offset": 2},
        {"fields": "x", "count": 2, "offset": 4},
    ]


def test_offset_paging_without_a_total_stops_at_a_short_or_empty_page() -> None:
    short = Vendor({"members": members(1, 2)}, {"members": members(3)})
    paginator = OffsetPaginator("lists", 2, identity=lambda m: str(m["id"]))
    assert len(list(paginate(short, Request("/m"), paginator, listed("members")))) == 2
    assert len(short.asked) == 2

    empty = Vendor({"members": members(1, 2)}, {"members": []})
    paginator = OffsetPaginator("lists", 2, identity=lambda m: str(m["id"]))
    pages = list(paginate(empty, Request("/m"), paginator, listed("members")))
    assert pages == [members(1, 2), []]


def test_a_vendor_that_ignores_the_offset_is_caught() -> None:
    vendor = Vendor(*[{"members": members(1, 2), "total_items": 9}] * 3)
    paginator = OffsetPaginator("lists", 2, identity=lambda m: str(m["id"]))
    with pytest.raises(PaginationError, match="a second time"):
        list(paginate(vendor, Request("/m"), paginator, listed("members")))
    assert len(vendor.asked) == 2


# -- next link ------------------------------------------------------------------------------------


def test_a_next_link_is_followed_with_its_own_query_until_done() -> None:
    vendor = Vendor(
        {"records": [1], "done": False, "nextRecordsUrl": "/query/01g-2"},
        {"records": [], "done": False, "nextRecordsUrl": "/query/01g-4"},
        {"records": [2], "done": True, "nextRecordsUrl": "/query/01g-6"},  # done wins
    )
    paginator = NextLinkPaginator("query", "nextRecordsUrl", done="done")
    pages = list(
        paginate(vendor, Request("/query", {"q": "SELECT Id"}), paginator, listed("records"))
    )
    assert pages == [[1], [], [2]]
    assert vendor.asked == [
        ("/query", {"q": "SELECT Id"}),
        ("/query/01g-2", {}),
        ("/query/01g-4", {}),
    ]


def test_a_missing_done_flag_ends_the_read() -> None:
    vendor = Vendor({"records": [1], "nextRecordsUrl": "/query/01g-2"})
    paginator = NextLinkPaginator("query", "nextRecordsUrl", done="done")
    assert list(paginate(vendor, Request("/query"), paginator, listed("records"))) == [[1]]


def test_a_next_link_to_another_host_is_refused() -> None:
    vendor = Vendor(
        {"data": [1], "paging": {"next": "https://graph.example.com/v1/1/leads?after=a"}},
        {"data": [2], "paging": {"next": "https://elsewhere.example.net/steal?after=b"}},
    )
    paginator = NextLinkPaginator(
        "leads.1", "paging.next", origin="https://graph.example.com/v1", where="source 'fb'"
    )
    with pytest.raises(SourceError, match=r"source 'fb': paging\.next points away from graph"):
        list(paginate(vendor, Request("1/leads"), paginator, listed("data")))
    assert vendor.asked[1] == ("https://graph.example.com/v1/1/leads?after=a", {})


# -- search with a result cap ---------------------------------------------------------------------


class Search:
    """A search over (timestamp, id) records, sorted as HubSpot sorts, paged by offset.

    `cap`: a query answers at most this many results (a next offset at the cap is still given,
    as HubSpot does); `refuse_from`: offsets from here are refused with a 400 (a cap that came
    before the configured one); `ignore_ids`: the vendor drops the id filter (a bug).
    """

    def __init__(
        self,
        records: list[tuple[int, int]],
        page: int,
        *,
        refuse_from: int | None = None,
        ignore_ids: bool = False,
    ) -> None:
        self.records, self.page = records, page
        self.refuse_from, self.ignore_ids = refuse_from, ignore_ids
        self.windows: list[Window] = []

    def answer(self, window: Window, after: int) -> dict[str, Any]:
        if after == 0:
            self.windows.append(window)
        if self.refuse_from is not None and after >= self.refuse_from:
            raise RequestRejected("400 beyond the result cap", status=400)
        test = {"GTE": int.__ge__, "GT": int.__gt__, "EQ": int.__eq__}[window.op]
        found = [r for r in self.records if test(r[0], window.ts)]
        if window.id_gt is not None and not self.ignore_ids:
            found = [r for r in found if r[1] > window.id_gt]
        found.sort(key=(lambda r: r[1]) if window.op == "EQ" else (lambda r: r))
        chunk = found[after : after + self.page]
        more = after + self.page < len(found)
        body: dict[str, Any] = {"results": [{"ts": ts, "id": i} for ts, i in chunk]}
        if more:
            body["paging"] = {"next": {"after": str(after + self.page)}}
        return body


def search_all(search: Search, cap: int, since: int = 0) -> list[int]:
    """The ids a stream keeps, in order: every page, duplicates dropped with `fresh`."""
    paginator = CappedSearchPaginator(
        "crm.contacts",
        since=since,
        cap=cap,
        token=json_path("paging", "next", "after"),
        position=lambda r: (r["ts"], r["id"]),
    )

    def fetch(request: Request) -> Any:
        return search.answer(paginator.window, paginator.after)

    kept = []
    for page in paginate(fetch, Request("/search"), paginator, listed("results")):
        kept += [r["id"] for r in page if paginator.fresh(str(r["id"]), r["ts"])]
    return kept


def test_past_the_cap_the_search_restarts_at_the_last_timestamp_and_drops_the_overlap() -> None:
    # cap 4, pages of 2: offsets 0 and 2 read ids 1-4; the next offset (4) is the cap, so the
    # search starts again GTE 200 (id 4's time), re-reads 3 and 4 (dropped), then 5 and 6.
    records = [(100, 1), (100, 2), (200, 3), (200, 4), (200, 5), (300, 6)]
    search = Search(records, page=2)
    assert search_all(search, cap=4) == [1, 2, 3, 4, 5, 6]
    assert search.windows == [Window("GTE", 0), Window("GTE", 200)]


def test_a_capped_window_in_one_timestamp_is_drained_by_id() -> None:
    # cap 2, pages of 1. GTE 0 stops at (100, 2) → GTE 100, which stops at (100, 2) again: the
    # whole window is one millisecond, so it is read EQ 100 by id, past the cap by id > 2,
    # and then the search goes on GT 100.
    records = [(100, 1), (100, 2), (100, 3), (200, 4)]
    search = Search(records, page=1)
    assert search_all(search, cap=2) == [1, 2, 3, 4]
    assert search.windows == [
        Window("GTE", 0),
        Window("GTE", 100),
        Window("EQ", 100),
        Window("EQ", 100, 2),
        Window("GT", 100),
    ]


def test_a_deep_page_refused_before_the_cap_restarts_the_search() -> None:
    search = Search([(100, 1), (200, 2), (300, 3)], page=1, refuse_from=2)
    assert search_all(search, cap=10_000) == [1, 2, 3]
    assert search.windows == [Window("GTE", 0), Window("GTE", 200)]


def test_a_refused_first_page_is_not_retried() -> None:
    search = Search([(100, 1)], page=1, refuse_from=0)
    with pytest.raises(RequestRejected):
        search_all(search, cap=10)


def test_a_search_that_cannot_get_past_the_cap_is_an_error() -> None:
    records = [(100, 1), (100, 2), (100, 3)]
    with pytest.raises(SourceError, match="made no progress"):
        search_all(Search(records, page=1, ignore_ids=True), cap=2)


def test_results_without_dates_cannot_pass_the_cap() -> None:
    paginator = CappedSearchPaginator(
        "crm.contacts", since=0, cap=1, token=json_path("after"), position=lambda r: None
    )
    vendor = Vendor({"results": [{}], "after": "1"})
    with pytest.raises(SourceError, match="carry no dates"):
        list(paginate(vendor, Request("/s"), paginator, listed("results")))


# -- bookmark -------------------------------------------------------------------------------------


def act(n: int) -> Item:
    return Invalid(raw=str(n), reason="a record of the page")


def test_a_bookmark_keeps_the_largest_value_or_the_last_when_ascending() -> None:
    newest = Bookmark(5)
    for value in (3, None, 9, 7):
        newest.seen(value)
    assert (newest.value, newest.moved) == (9, True)
    last = Bookmark(("2024-01-01T00:00:00Z", "b"), ascending=True)
    last.seen(("2024-01-01T00:00:00.500Z", "a"))  # sorts below as a string, yet came later
    assert last.value == ("2024-01-01T00:00:00.500Z", "a")
    assert Bookmark(100).start(30) == 70
    assert Bookmark(100).start(30, floor=80) == 80
    assert Bookmark[int](None).start(30, floor=80) == 80
    assert Bookmark[int](None).start(30) is None


def test_a_read_in_no_known_order_saves_its_bookmark_with_its_last_page_only() -> None:
    mark = Bookmark(1)

    def batches() -> Any:
        for values in ([2, 5], [], [4]):  # an empty page is skipped
            for v in values:
                mark.seen(v)
            yield [act(v) for v in values]

    pages = list(bookmarked(batches(), lambda: {"mark": mark.value} if mark.moved else None))
    assert pages == [Page([act(2), act(5)], None), Page([act(4)], {"mark": 5})]


def test_an_unmoved_bookmark_saves_nothing_and_a_moved_one_alone_still_saves() -> None:
    assert list(bookmarked(iter([[], [act(1)]]), lambda: None)) == [Page([act(1)], None)]
    assert list(bookmarked(iter([[]]), lambda: {"mark": 3})) == [Page([], {"mark": 3})]


def test_an_ascending_read_saves_the_bookmark_on_every_page_it_moved() -> None:
    mark = Bookmark(10)

    def batches() -> Any:
        for values in ([], [12], [], [15]):
            for v in values:
                mark.seen(v)
            yield [act(v) for v in values]

    pages = list(bookmarked(batches(), lambda: {"mark": mark.value}, every_page=True))
    assert [p.cursor for p in pages] == [{"mark": 10}, {"mark": 12}, None, {"mark": 15}]


def test_itemized_moves_the_bookmark_and_drops_what_is_older_than_the_floor() -> None:
    pages = [[{"t": 50}, {"t": None}, {"t": 20}], [{"t": 70}]]
    mark = Bookmark(40)
    any_order = list(
        itemized(pages, lambda r: [act(r["t"] or 0)], mark, lambda r: r["t"], floor=30)
    )
    # 20 is below the floor and dropped; the record without a time is kept for quarantine
    assert any_order == [[act(50), act(0)], [act(70)]]
    assert mark.value == 70

    newest_first = [[{"t": 90}, {"t": 60}], [{"t": 25}, {"t": 80}], [{"t": 10}]]
    mark = Bookmark(40)
    read = list(
        itemized(
            newest_first,
            lambda r: [act(r["t"])],
            mark,
            lambda r: r["t"],
            floor=30,
            newest_first=True,
        )
    )
    assert read == [[act(90), act(60)], []]  # 25 ends the read: 80 and the third page are not read
    assert mark.value == 90


def test_marks_save_each_partition_at_its_end_with_those_read_before() -> None:
    marks = Marks("forms", {"forms": {"a": 100, "b": 50}}, load=int)
    pages: list[Page] = []
    for form, times in (("a", [120, 90]), ("b", [40]), ("c", [7])):
        mark = marks.bookmark(form)

        def batches(mark: Bookmark[int] = mark, times: list[int] = times) -> Any:
            for t in times:
                mark.seen(t)
                yield [act(t)]

        pages += bookmarked(batches(), marks.cursor(form, mark))
    assert [p.cursor for p in pages] == [
        None,
        {"forms": {"a": 120, "b": 50}},
        None,  # b did not move: its page saves nothing
        {"forms": {"a": 120, "b": 50, "c": 7}},
    ]


def test_marks_compare_as_stored() -> None:
    # A mark that moved by less than the stored precision saves nothing (as Mailchimp's seconds).
    marks = Marks("lists", {"lists": {"x": "10"}}, load=float, dump=lambda v: str(int(v)))
    mark = marks.bookmark("x")
    mark.seen(10.4)
    assert mark.moved and marks.cursor("x", mark)() is None
    mark.seen(11.0)
    assert marks.cursor("x", mark)() == {"lists": {"x": "11"}}


# -- the guard ------------------------------------------------------------------------------------


def test_pagination_guard_stops_a_repeated_cursor() -> None:
    guard = PaginationGuard("hubspot.contacts")
    for cursor in ["100", "200", {"after": "300", "since": 1}, None, None]:
        guard.check(cursor)
    with pytest.raises(PaginationError, match=r"hubspot\.contacts.*200"):
        guard.check("200")
    with pytest.raises(PaginationError):
        guard.check({"since": 1, "after": "300"})  # same cursor, other key order
