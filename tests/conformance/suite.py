"""The conformance suite every connector's source passes.

A connector's tests call `check_source(store, case)`: records validate, a replayed read changes
nothing, cursors only move forward, bad payloads are quarantined (and the rest still lands).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from connectors.base.contract import Cursor, Invalid, Source
from core.pipeline.pull import pull_source
from core.records import ActivityRecord, LeadRecord, OutcomeRecord
from core.store.store import Store

RECORD_TYPES = (LeadRecord, ActivityRecord, OutcomeRecord)


@dataclass
class SourceCase:
    """How to exercise one connector's source.

    Parameters:
        name: the source name used in the store.
        make_source: a fresh source over the same vendor data (called several times).
        cursor_order: maps a cursor to a comparable value that must never go down; None
            checks only that a stream never hands back the same cursor twice in a row.
        expect_quarantined: how many bad payloads the data holds.
    """

    name: str
    make_source: Callable[[], Source]
    cursor_order: Callable[[Cursor], Any] | None = None
    expect_quarantined: int = 0


def _read_all(source: Source) -> dict[str, list[Any]]:
    pages: dict[str, list[Any]] = {}
    for stream in source.streams():
        pages[stream.name] = list(stream.read(None))
    return pages


def check_records_validate(case: SourceCase) -> None:
    for stream, pages in _read_all(case.make_source()).items():
        for page in pages:
            for item in page.items:
                assert isinstance(item, (*RECORD_TYPES, Invalid)), f"{stream}: {item!r}"
                if isinstance(item, Invalid):
                    assert item.reason, f"{stream}: quarantined item without a reason"
                else:
                    assert type(item).model_validate(item.model_dump()) == item
                    assert item.source == case.name, f"{stream}: record of source {item.source}"


def check_cursors_move_forward(case: SourceCase) -> None:
    for stream, pages in _read_all(case.make_source()).items():
        cursors = [p.cursor for p in pages if p.cursor is not None]
        for before, after in pairwise(cursors):
            if case.cursor_order is None:
                assert before != after, f"{stream}: cursor repeated: {before}"
            else:
                assert case.cursor_order(after) >= case.cursor_order(before), (
                    f"{stream}: cursor went back from {before} to {after}"
                )


def check_replay_changes_nothing(store: Store, case: SourceCase) -> None:
    first = pull_source(store, case.name, case.make_source())
    assert first.ok, first.error
    assert first.counts.created > 0, "the source read no records"
    assert first.counts.quarantined == case.expect_quarantined
    tables = {t: store.count(t) for t in ("lead", "identity", "activity", "outcome")}
    again = pull_source(store, case.name, case.make_source())
    assert again.ok and again.counts.created == 0 and again.counts.updated == 0
    replay = pull_source(store, case.name, case.make_source(), full=True)
    assert replay.ok, replay.error
    assert (replay.counts.created, replay.counts.updated) == (0, 0), "a replay changed the store"
    assert {t: store.count(t) for t in tables} == tables


def check_source(store: Store, case: SourceCase) -> None:
    """Run the whole suite against one source."""
    check_records_validate(case)
    check_cursors_move_forward(case)
    check_replay_changes_nothing(store, case)
