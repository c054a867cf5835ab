"""A full rescore on PostgreSQL scores its ranges of leads on several connections side by side
(`LEADHUB_SCORE_CONNECTIONS`, two by default), once the first range has committed. What it
stores is what one connection would: every score the per-lead engine's, the report's kept
figures those computed from scratch, every dirty flag cleared, the run's counts and its progress
those of the whole pass. An error on one connection ends the pass with that error, the others
stop taking ranges, and every connection goes back to the pool. SQLite (one writer) scores them
one after another."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from pydantic import ValidationError

from core.pipeline import score as scorer
from core.settings import Settings
from core.store.ingest import LEAD
from core.store.store import Store
from core.store.tables import Score, table
from scoring.model import ScoringModel
from tests.analytics.test_summary import START, check, lead, models, outcome, quote, views

SCORE = table(Score)
LEADS = 60
RANGE = 10  # leads per range: six ranges


def _fill(store: Store) -> None:
    store.save_page("crm", "leads", [lead(i) for i in range(LEADS)], None)
    acts: list[Any] = []
    for i in range(LEADS):
        acts += views(i, START - timedelta(days=i % 11), i % 6)
        if i % 3 == 0:
            acts.append(quote(i, START - timedelta(days=i % 50)))
    store.save_page("crm", "acts", acts, None)
    store.save_page("crm", "outcomes", [outcome(i, "won", START) for i in range(0, LEADS, 7)], None)


def _fading() -> ScoringModel:
    """A model with half-life decay: scored by the per-lead engine in each range, beside the
    set-based models."""
    rule = {"name": "Pricing", "event": "page_viewed", "url": "*/pricing*", "points": 10}
    decay = {"half_life_days": 5}
    return ScoringModel.model_validate(
        {"name": "fading", "engagement": {"rules": [rule], "decay": decay}}
    )


def _stored(store: Store) -> dict[tuple[int, str], Any]:
    with store.engine.connect() as conn:
        return {(r.lead_id, r.model): r for r in conn.execute(sa.select(SCORE))}


def _assert_as_engine(
    store: Store, hub: list[ScoringModel], now: datetime, before: dict[tuple[int, str], Any]
) -> None:
    """Every stored score is the per-lead engine's (given the scores `before`), and there is no
    other."""
    with store.engine.connect() as conn:
        ids = [r.id for r in conn.execute(sa.select(LEAD.c.id))]
        fields, acts = scorer.load_inputs(conn, ids)
    stored = _stored(store)
    wanted = set()
    for lead_id, model, want in scorer.evaluate(fields, acts, hub, now, before):
        wanted.add((lead_id, model.name))
        got = stored[(lead_id, model.name)]
        outputs = want.outputs()
        assert {k: getattr(got, k) for k in outputs} == outputs, (lead_id, model.name)
        assert got.ledger == [scorer.entry_dict(e) for e in want.ledger]
        assert got.model_hash == model.content_hash
    assert set(stored) == wanted


def _dirty(store: Store) -> int:
    with store.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).where(LEAD.c.dirty)).scalar_one()


def _watch_ranges(
    monkeypatch: pytest.MonkeyPatch, meet: bool, fail_at: int | None = None
) -> list[tuple[str, int]]:
    """(thread name, first lead id) of each range as it is scored. `meet`: the second and the
    third range wait for each other (they must be scored at the same time, or the pass fails on
    the barrier's timeout). `fail_at`: that range (counted from 0) fails."""
    seen: list[tuple[str, int]] = []
    lock = threading.Lock()
    barrier = threading.Barrier(2, timeout=30)
    real: Callable[..., Any] = scorer._score_range

    def watched(conn: Any, plan: Any, low: int, *args: Any) -> Any:
        with lock:
            seen.append((threading.current_thread().name, low))
            n = len(seen) - 1
        if meet and n in (1, 2):
            barrier.wait()
        if n == fail_at:
            raise sa.exc.OperationalError("COPY", None, Exception("server closed the connection"))
        return real(conn, plan, low, *args)

    monkeypatch.setattr(scorer, "_score_range", watched)
    return seen


@pytest.fixture
def ranges(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scorer, "range_leads", lambda models: RANGE)
    monkeypatch.setenv("LEADHUB_SCORE_CONNECTIONS", "2")


def test_ranges_scored_side_by_side_store_what_the_engine_and_the_report_say(
    store: Store, monkeypatch: pytest.MonkeyPatch, ranges: None
) -> None:
    """A first full rescore, a model change (every lead with activity moves) and the same
    models a day later (only the leads whose inputs moved are scored again); a half-life model
    beside the set-based ones. On PostgreSQL the ranges after the first are scored on two
    threads at once; on SQLite one after another."""
    pg = store.dialect == "postgresql"
    _fill(store)
    hub = [*models(), _fading()]
    changed = [*models(hot=60, quote=70, pricing=16), _fading()]
    progress: list[tuple[int, int]] = []
    for now, changed_hub, full in (
        (START, hub, True),
        (START + timedelta(days=1), changed, False),
        (START + timedelta(days=2), changed, True),
    ):
        before = _stored(store)
        seen = _watch_ranges(monkeypatch, meet=pg)
        progress.clear()
        run = scorer.score(
            store, changed_hub, full=full, now=now, progress=lambda d, t: progress.append((d, t))
        )
        assert sorted(low for _, low in seen) == list(range(1, LEADS + 1, RANGE))
        threads = {name for name, _ in seen}
        if pg:
            assert len(threads) == 2 and seen[0][0] == threading.current_thread().name
        else:
            assert threads == {threading.current_thread().name}
        assert [d for d, _ in progress] == list(range(RANGE, LEADS + 1, RANGE))
        assert {t for _, t in progress} == {LEADS} and run.leads == LEADS
        after = _stored(store)
        moved = {k[0] for k, r in after.items() if _outputs(r) != _outputs(before.get(k))}
        assert run.changed == len(moved)
        assert _dirty(store) == 0
        _assert_as_engine(store, changed_hub, now, before)
        check(store, changed_hub)
    assert not [t for t in threading.enumerate() if t.name.startswith("leadhub-score")]
    assert store.engine.pool.checkedout() == 0  # type: ignore[attr-defined]


def _outputs(row: Any) -> tuple[Any, ...] | None:
    return None if row is None else tuple(getattr(row, k) for k in scorer.OUTPUTS)


def test_an_error_on_one_connection_ends_the_pass_and_the_next_pass_scores_the_rest(
    store: Store, monkeypatch: pytest.MonkeyPatch, ranges: None
) -> None:
    """The fourth range fails: the pass raises that error once both threads have ended; no
    range is taken after it; the ranges committed stay scored and the others keep their dirty
    flags; every connection is back in the pool. The next pass scores every lead as the engine
    says, and the report stays the one from scratch."""
    _fill(store)
    hub = models()
    real = scorer._score_range
    seen = _watch_ranges(monkeypatch, meet=False, fail_at=3)
    with pytest.raises(sa.exc.OperationalError, match="server closed"):
        scorer.score(store, hub, full=True, now=START)
    assert not [t for t in threading.enumerate() if t.name.startswith("leadhub-score")]
    assert store.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    # every range begun committed but the failing one; none was begun after it failed
    assert 4 <= len(seen) <= 5
    scored = {k[0] for k in _stored(store)}
    assert len(scored) == LEADS - _dirty(store) == (len(seen) - 1) * RANGE
    monkeypatch.setattr(scorer, "_score_range", real)
    run = scorer.score(store, hub, full=True, now=START)
    assert run.leads == LEADS and _dirty(store) == 0
    _assert_as_engine(store, hub, START, {})
    check(store, hub)


def test_a_range_holds_fewer_leads_the_more_models_score_them(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A range's memory is its rows, one per lead and model: a range holds as many leads as
    `FULL_CHUNK` rows allow under every model of the pass (progress moves one range at a
    time), and the scores are the engine's either way."""
    _fill(store)
    monkeypatch.setattr(scorer, "FULL_CHUNK", 30)
    progress: list[int] = []
    hub = [*models(), _fading()]  # two set-based models and one through the engine
    assert len(hub) == 3
    run = scorer.score(store, hub, full=True, now=START, progress=lambda d, t: progress.append(d))
    assert progress == list(range(10, LEADS + 1, 10)) and run.leads == LEADS
    _assert_as_engine(store, hub, START, {})

    progress.clear()
    before = _stored(store)
    later = START + timedelta(days=1)
    scorer.score(store, hub[:1], full=True, now=later, progress=lambda d, t: progress.append(d))
    assert progress == [30, 60]
    _assert_as_engine(store, hub[:1], later, before)


def test_the_number_of_connections_is_a_setting_of_at_least_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert Settings().score_connections == 2
    monkeypatch.setenv("LEADHUB_SCORE_CONNECTIONS", "1")
    assert Settings().score_connections == 1
    monkeypatch.setenv("LEADHUB_SCORE_CONNECTIONS", "0")
    with pytest.raises(ValidationError, match="score_connections"):
        Settings()


def test_ranges_side_by_side_compare_without_a_parallel_plan_on_postgresql(
    monkeypatch: pytest.MonkeyPatch, ranges: None
) -> None:
    """Under the models the scores were computed with, each connection finds which of its
    range's leads to score itself: without JIT and without a parallel plan (whose workers would
    each compute the range's whole aggregate, on cores the other connection is busy on); the
    settings end with the range's transaction."""
    from core.pipeline.tallies import RulePlan
    from tests.conftest import PG_URL, need_service, reset_postgres

    store = Store(reset_postgres(need_service(PG_URL, "PostgreSQL", "LEADHUB_TEST_DATABASE_URL")))
    _fill(store)
    hub = models()
    scorer.score(store, hub, full=True, now=START)
    real = RulePlan._ids
    seen: list[tuple[str, ...]] = []
    show = "SELECT current_setting('jit'), current_setting('max_parallel_workers_per_gather')"

    def watching(conn: Any, sql: str, params: Any) -> list[int]:
        ids = real(conn, sql, params)
        seen.append((threading.current_thread().name, *conn.execute(sa.text(show)).one()))
        return ids

    monkeypatch.setattr(RulePlan, "_ids", staticmethod(watching))
    scorer.score(store, hub, full=True, now=START + timedelta(days=1))
    assert len(seen) == LEADS // RANGE and len({name for name, *_ in seen}) == 2
    assert {(jit, workers) for _, jit, workers in seen} == {("off", "0")}
    with store.engine.connect() as conn:  # pooled connections come back as they went
        assert tuple(conn.execute(sa.text(show)).one()) == ("on", "2")
    store.close()
