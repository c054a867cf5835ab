"""Declared paging: the paginators on hand-built page sequences, and the repeated-cursor guard."""

from __future__ import annotations

import pytest

from connectors.base.paging import PaginationGuard
from core.errors import PaginationError


def test_pagination_guard_stops_a_repeated_cursor() -> None:
    guard = PaginationGuard("hubspot.contacts")
    for cursor in ["100", "200", {"after": "300", "since": 1}, None, None]:
        guard.check(cursor)
    with pytest.raises(PaginationError, match=r"hubspot\.contacts.*200"):
        guard.check("200")
    with pytest.raises(PaginationError):
        guard.check({"since": 1, "after": "300"})  # same cursor, other key order
