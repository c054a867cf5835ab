"""A scoring pass (and the what-if over every lead) holds Python's cyclic garbage collector off
while it scores a range of leads, and gives it back as it found it: on after the pass (also a
failed one), off for a process that had turned it off, and on only when the last of concurrent
passes ends."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from core.pipeline import score as scorer
from core.records import ActivityRecord, LeadRecord
from core.store.store import Store
from scoring.model import ScoringModel

NOW = datetime(2026, 11, 20, 15, 30, tzinfo=UTC)


def _model(half_life: bool) -> ScoringModel:
    """Pricing views worth 10 points; with `half_life`, a model only the per-lead engine
    scores (the other path of a full rescore)."""
    decay = {"half_life_days": 10} if half_life else {}
    rule = {"name": "Pricing", "event": "page_viewed", "url": "*/pricing*", "points": 10}
    return ScoringModel.model_validate(
        {"name": "m", "engagement": {"rules": [rule], "decay": decay}}
    )


def _leads(store: Store, count: int) -> None:
    people = [
        LeadRecord(source="crm", external_id=f"p{i}", email=f"p{i}@x.com") for i in range(count)
    ]
    views = [
        ActivityRecord(
            source="web", external_id=f"v{i}", lead=f"p{i}@x.com", type="page_viewed",
            occurred_at=NOW - timedelta(days=2), properties={"url": "https://x.io/pricing"},
        )
        for i in range(count)
    ]  # fmt: skip
    store.save_page("crm", "leads", people, None)
    store.save_page("web", "acts", views, None)


@pytest.fixture
def collector_on() -> Iterator[None]:
    """The collector on at the start, and on again after the test whatever it did."""
    gc.enable()
    yield
    gc.enable()


def _flags_when_scores_are_written(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Whether the collector was on, each time a pass writes a range's or a chunk's scores
    (`write_changes`, the one place score rows are written)."""
    seen: list[bool] = []
    real = scorer.write_changes

    def recording(*args: Any, **kwargs: Any) -> None:
        seen.append(gc.isenabled())
        real(*args, **kwargs)

    monkeypatch.setattr(scorer, "write_changes", recording)
    return seen


@pytest.mark.parametrize("half_life", [False, True], ids=["set-based", "per-lead engine"])
def test_the_collector_is_off_while_a_full_rescore_scores_and_on_after_it(
    store: Store, collector_on: None, monkeypatch: pytest.MonkeyPatch, half_life: bool
) -> None:
    model = _model(half_life)
    _leads(store, 5)
    monkeypatch.setattr(scorer, "FULL_CHUNK", 2)  # three ranges on the set-based path
    monkeypatch.setattr(scorer, "CHUNK", 2)  # three chunks through the engine
    flags = _flags_when_scores_are_written(monkeypatch)
    run = scorer.score(store, [model], full=True, now=NOW)
    assert (run.leads, run.changed) == (5, 5)
    assert flags == [False, False, False]
    assert gc.isenabled()


def test_the_collector_is_off_while_the_incremental_pass_scores_and_on_after_it(
    store: Store, collector_on: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pull that marks more leads dirty than a chunk holds: each chunk is scored with the
    collector off."""
    model = _model(False)
    count = scorer.CHUNK + 1
    _leads(store, count)
    scorer.score(store, [model], now=NOW)  # the first pass: the model is new
    later = [
        ActivityRecord(
            source="web", external_id=f"w{i}", lead=f"p{i}@x.com", type="page_viewed",
            occurred_at=NOW, properties={"url": "https://x.io/pricing"},
        )
        for i in range(count)
    ]  # fmt: skip
    store.save_page("web", "acts", later, None)
    flags = _flags_when_scores_are_written(monkeypatch)
    run = scorer.score(store, [model], now=NOW)
    assert run.full_models == []
    assert (run.leads, run.changed) == (count, count)
    assert flags == [False, False]
    assert gc.isenabled()


def test_the_collector_is_off_while_a_what_if_scores_and_on_after_it(
    store: Store, collector_on: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`leadhub preview` scores every lead in memory, a chunk at a time, as a full rescore
    does."""
    from core.pipeline.preview import preview
    from tests.web import seed

    seed.seed(store)  # twelve leads
    monkeypatch.setattr(scorer, "CHUNK", 5)
    seen: list[bool] = []
    real = scorer.evaluate

    def recording(*args: Any, **kwargs: Any) -> Any:
        seen.append(gc.isenabled())
        return real(*args, **kwargs)

    monkeypatch.setattr(scorer, "evaluate", recording)
    report = preview(store, seed.hub(tmp_path), [_model(False)], now=NOW)
    assert report.leads == 12
    assert seen == [False, False, False]
    assert gc.isenabled()


def test_a_failed_pass_turns_the_collector_back_on(
    store: Store, collector_on: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    _leads(store, 3)

    def failing(*args: Any, **kwargs: Any) -> None:
        assert not gc.isenabled()  # failing where the scores are written, mid-range
        raise RuntimeError("disk full")

    monkeypatch.setattr(scorer, "write_changes", failing)
    with pytest.raises(RuntimeError, match="disk full"):
        scorer.score(store, [_model(False)], full=True, now=NOW)
    assert gc.isenabled()


def test_a_process_that_turned_the_collector_off_finds_it_off_after_a_pass(
    store: Store, collector_on: None
) -> None:
    _leads(store, 3)
    gc.disable()
    run = scorer.score(store, [_model(False)], full=True, now=NOW)
    assert run.changed == 3
    assert not gc.isenabled()


def test_concurrent_passes_turn_the_collector_back_on_when_the_last_one_ends(
    collector_on: None,
) -> None:
    """Two passes in two threads: the first to end leaves the collector off for the other;
    the last to end turns it on."""
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    seen: dict[str, bool] = {}

    def first() -> None:
        with scorer.collector_paused():
            first_in.set()
            second_in.wait(5)
        seen["after the first"] = gc.isenabled()
        first_out.set()

    def second() -> None:
        first_in.wait(5)
        with scorer.collector_paused():
            second_in.set()
            first_out.wait(5)
            seen["while the second runs"] = gc.isenabled()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert seen == {"after the first": False, "while the second runs": False}
    assert gc.isenabled()
