"""The set-based full rescore gives every lead exactly the reference engine's score.

Hypothesis generates models (fit operators, engagement rules with type, URL glob, `where`,
window, per-day cap, limit, negative points; decay steps and expiry; clamps, tiers, grade,
qualified with release) and activity histories. A full rescore stores scores through the
set-based path; `scoring.engine.score_lead`, run on the same inputs, is the oracle. A second
round at a later moment, with more activity, checks hysteresis against the stored state.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.pipeline import score as scorer
from core.store.ingest import ACTIVITY, LEAD
from core.store.store import Store
from core.store.tables import Score, table
from scoring.engine import Activity, QualifiedState, score_lead
from scoring.model import ScoringModel
from scoring.tallied import tallyable

SCORE = table(Score)
NOW = datetime(2026, 11, 20, 15, 30, tzinfo=UTC)
EVENTS = ("page_viewed", "email_opened", "email_clicked", "form_submitted", "email_sent")
TITLES = ("VP Sales", "Student", "director of it", "", None)
POINTS = st.one_of(st.integers(-30, 50), st.sampled_from([0.5, 1.25, 3.33, -2.75]))

fit_rules = st.one_of(
    st.fixed_dictionaries(
        {"field": st.just("job_title"), "matches": st.sampled_from(["(?i)vp|director", "Stud"])}
    ),
    st.fixed_dictionaries({"field": st.just("job_title"), "contains": st.just("VP")}),
    st.fixed_dictionaries(
        {
            "field": st.sampled_from(["company_size", "custom.seats"]),
            "gt": st.sampled_from([10, 100, 250.5]),
        }
    ),
    st.fixed_dictionaries({"field": st.just("company_size"), "lte": st.just(50)}),
    st.fixed_dictionaries({"field": st.just("country"), "in": st.just(["US", "gb"])}),
    st.fixed_dictionaries({"field": st.just("country"), "not_in": st.just(["US"])}),
    st.fixed_dictionaries({"field": st.just("country"), "equals": st.just("us")}),
    st.fixed_dictionaries({"field": st.just("industry"), "exists": st.booleans()}),
    st.fixed_dictionaries(
        {"field": st.just("email"), "domain_in": st.just(["gmail.com", "rival.example"])}
    ),
    st.fixed_dictionaries({"field": st.just("custom.plan"), "in": st.just(["pro", 1])}),
)
engagement_rules = st.fixed_dictionaries(
    {"event": st.sampled_from(EVENTS), "points": POINTS},
    optional={
        "url": st.sampled_from(["*/pricing*", "*/careers*", "*"]),
        "where": st.sampled_from([{"form": "quote"}, {"form": ["quote", "demo"]}, {"n": 1}]),
        "limit": st.integers(1, 4),
        "limit_per_day": st.integers(1, 3),
        "window_days": st.sampled_from([1, 2.5, 7, 30]),
    },
)
decays = st.fixed_dictionaries(
    {},
    optional={
        "inactivity": st.sampled_from(
            [[{"days": 3, "minus": 5}], [{"days": 1, "minus": 2}, {"days": 10, "minus": 40}]]
        ),
        "expire_after_days": st.sampled_from([2, 5.5, 20]),
        "half_life_days": st.sampled_from([3, 10]),
    },
)
bounds = st.fixed_dictionaries({}, optional={"min": st.just(-10), "max": st.just(30)})
tiers = st.sampled_from(
    [
        [],
        [{"name": "hot", "min": 40}, {"name": "warm", "min": 10}, {"name": "cold"}],
        [{"name": "top", "min": 20.5}],
    ]
)
qualified = st.one_of(
    st.none(),
    st.just({"total": 30, "release_below": 10}),
    st.just({"grade": "B2"}),
    st.just({"fit": 10, "engagement": 5}),
)


@st.composite
def models(draw: st.DrawFn) -> ScoringModel:
    fit = [
        {"name": f"F{i}", "points": draw(POINTS), **rule}
        for i, rule in enumerate(draw(st.lists(fit_rules, max_size=5)))
    ]
    engagement = [
        {"name": f"E{i}", **rule}
        for i, rule in enumerate(draw(st.lists(engagement_rules, min_size=1, max_size=6)))
    ]
    data: dict[str, Any] = {
        "name": "m",
        "fit": {"rules": fit, **draw(bounds)},
        "engagement": {"rules": engagement, "decay": draw(decays), **draw(bounds)},
        "tiers": draw(tiers),
        **draw(bounds),
    }
    if draw(st.booleans()):
        data["segment"] = {"country": ["US", "GB"]}
    if draw(st.booleans()):
        data["grade"] = {"fit": {"A": 30, "B": 10}, "engagement": {"1": 20, "2": 5, "3": 1}}
    rule = draw(qualified)
    if rule is not None and ("grade" in data or "grade" not in rule):
        data["qualified"] = rule
    return ScoringModel.model_validate(data)


leads = st.fixed_dictionaries(
    {
        "email": st.sampled_from(["a@gmail.com", "b@acme.example", "c@mail.rival.example"]),
        "job_title": st.sampled_from(TITLES),
        "company_size": st.one_of(st.none(), st.integers(0, 400)),
        "country": st.sampled_from(["US", "gb", "FR", None]),
        "industry": st.sampled_from(["saas", " ", None]),
        "custom": st.sampled_from([{}, {"seats": "1,200"}, {"plan": ["pro", "x"]}, {"plan": 1}]),
    }
)


PROPERTIES = (
    {},
    {"url": "https://acme.example/pricing"},
    {"url": "https://acme.example/careers"},
    {"url": "/blog"},
    {"url": ""},
    {"form": "quote"},
    {"form": "Quote "},
    {"form": "demo", "url": "https://acme.example/pricing?x=1"},
    {"n": 1},
    {"n": "1", "form": "quote"},
)
START = NOW.replace(hour=0, minute=0)


def _burst(kind: str, day: int, seconds: list[int], props: int) -> list[tuple[str, datetime, Any]]:
    return [(kind, START - timedelta(days=day, seconds=-s), PROPERTIES[props]) for s in seconds]


# Bursts of one to five alike activities on one day (per-day caps bite), whole seconds, up to
# 40 days old, a few after NOW (which do not count).
bursts = st.builds(
    _burst,
    st.sampled_from(EVENTS),
    st.one_of(st.integers(0, 2), st.integers(-1, 40)),
    st.lists(st.integers(0, 86399), min_size=1, max_size=5),
    st.integers(0, len(PROPERTIES) - 1),
)
activities = st.lists(bursts, min_size=1, max_size=8).map(lambda b: [a for x in b for a in x])
later_activities = st.lists(bursts, max_size=2).map(lambda b: [a for x in b for a in x])

histories = st.lists(
    st.tuples(leads, activities, later_activities),
    min_size=1,
    max_size=5,
)


@pytest.fixture
def shared_store(db_url: str) -> Iterator[Store]:
    s = Store(db_url)
    yield s
    s.close()


def _reset(store: Store) -> None:
    with store.begin() as conn:
        for name in ("score_history", "score", "activity", "activity_signature", "lead", "meta"):
            conn.execute(sa.text(f"DELETE FROM {name}"))


def _add(store: Store, lead_ids: list[int], acts: list[list[Any]], start: int) -> None:
    rows = [
        {
            "source": "t",
            "external_id": f"{start}-{lead_id}-{n}",
            "lead_id": lead_id,
            "type": kind,
            "occurred_at": at,
            "properties": props,
        }
        for lead_id, history in zip(lead_ids, acts, strict=True)
        for n, (kind, at, props) in enumerate(history)
    ]
    if rows:
        with store.begin() as conn:
            conn.execute(ACTIVITY.insert(), rows)


def _expected(
    model: ScoringModel,
    fields: dict[str, Any],
    history: list[Any],
    now: datetime,
    previous: QualifiedState | None,
) -> Any:
    acts = [Activity(kind, at, props) for kind, at, props in history]
    return score_lead(fields, acts, model, now, previous)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(model=models(), data=histories)
def test_full_rescore_matches_the_engine_on_every_lead(
    shared_store: Store, model: ScoringModel, data: list[Any]
) -> None:
    store = shared_store
    _reset(store)
    with store.begin() as conn:
        lead_ids = [
            conn.execute(
                LEAD.insert().returning(LEAD.c.id),
                {
                    **fields,
                    "email": f"{i}{fields['email']}",
                    "created_at": NOW,
                    "updated_at": NOW,
                    "dirty": True,
                },
            ).scalar_one()
            for i, (fields, _, _) in enumerate(data)
        ]
    lead_fields = {}
    for lead_id, (fields, _, _) in zip(lead_ids, data, strict=True):
        lead_fields[lead_id] = {**fields, "email": store.leads([lead_id])[0]["email"]}
    histories_now = {lead_id: list(d[1]) for lead_id, d in zip(lead_ids, data, strict=True)}
    _add(store, lead_ids, [d[1] for d in data], 1)
    previous: dict[int, QualifiedState | None] = dict.fromkeys(lead_ids)
    later = NOW + timedelta(days=3, hours=5)
    for round_no, round_now in enumerate((NOW, later), start=2):
        scorer.score(store, [model], full=True, now=round_now)
        with store.engine.connect() as conn:
            stored = {r.lead_id: r for r in conn.execute(sa.select(SCORE))}
        for lead_id in lead_ids:
            fields = lead_fields[lead_id]
            want = _expected(model, fields, histories_now[lead_id], round_now, previous[lead_id])
            in_segment = not model.segment or str(fields["country"]).upper() in ("US", "GB")
            if not in_segment:
                assert lead_id not in stored
                continue
            got = stored[lead_id]
            assert (got.fit, got.engagement, got.total) == (
                want.fit,
                want.engagement,
                want.total,
            ), (tallyable(model), want.ledger, got.ledger)
            assert (got.tier, got.grade, got.qualified, got.qualified_at) == (
                want.tier,
                want.grade,
                want.qualified,
                want.qualified_at,
            )
            assert got.reason == want.reason
            assert got.ledger == [scorer.entry_dict(e) for e in want.ledger]
            previous[lead_id] = QualifiedState(want.qualified, want.qualified_at)
        # More activity before the second round.
        _add(store, lead_ids, [d[2] for d in data], round_no)
        for lead_id, d in zip(lead_ids, data, strict=True):
            histories_now[lead_id] += d[2]


def _stored(store: Store) -> dict[tuple[int, str], Any]:
    with store.engine.connect() as conn:
        return {(r.lead_id, r.model): r for r in conn.execute(sa.select(SCORE))}


def _assert_as_engine(
    store: Store,
    models: list[ScoringModel],
    now: datetime,
    before: dict[tuple[int, str], Any] | None = None,
) -> None:
    """Every stored score is the engine's, given the scores `before` (hysteresis)."""
    with store.engine.connect() as conn:
        ids = [r.id for r in conn.execute(sa.select(LEAD.c.id))]
        fields, acts = scorer.load_inputs(conn, ids)
        stored = {r.lead_id: r for r in conn.execute(sa.select(SCORE))}
    for lead_id, model, want in scorer.evaluate(fields, acts, models, now, before):
        got = stored[lead_id]
        assert (got.model, got.model_hash, got.fit, got.engagement, got.total) == (
            model.name,
            model.content_hash,
            want.fit,
            want.engagement,
            want.total,
        )
        assert (got.tier, got.grade, got.qualified, got.qualified_at, got.reason) == (
            want.tier,
            want.grade,
            want.qualified,
            want.qualified_at,
            want.reason,
        )
        assert got.ledger == [scorer.entry_dict(e) for e in want.ledger]


def test_every_lead_of_the_bench_data_scores_as_the_engine_says(store: Store) -> None:
    """The bench's generated store (the default model; enough leads that PostgreSQL writes
    them by COPY); the same full rescore again changes nothing; a changed model updates the
    leads it moves, again exactly as the engine scores them."""
    from bench.rescore import MODEL_FILE, _fill
    from bench.rescore import NOW as BENCH_NOW
    from scoring.model import load_model_file

    models = load_model_file(MODEL_FILE)
    _fill(store, 400, 10)
    first = scorer.score(store, models, full=True, now=BENCH_NOW)
    assert first.leads == first.changed == 400
    _assert_as_engine(store, models, BENCH_NOW)
    again = scorer.score(store, models, full=True, now=BENCH_NOW)
    assert (again.leads, again.changed) == (400, 0)
    with store.engine.connect() as conn:
        history = conn.execute(sa.text("SELECT count(*) FROM score_history")).scalar()
    assert history == 400
    data = models[0].model_dump()
    data["engagement"]["max"] = 35  # every lead's model hash, many leads' engagement
    changed = [ScoringModel.model_validate(data)]
    before = _stored(store)
    later = scorer.score(store, changed, now=BENCH_NOW)
    assert later.full_models == ["default"]
    assert later.changed > 0
    _assert_as_engine(store, changed, BENCH_NOW, before)
