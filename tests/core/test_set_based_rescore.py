"""The set-based full rescore gives every lead exactly the reference engine's score.

Hypothesis generates models (fit operators, engagement rules with type, URL glob, `where`,
window, per-day cap, limit, negative points; decay steps and expiry; clamps, tiers, grade,
qualified with release) and activity histories. A full rescore stores scores through the
set-based path; `scoring.engine.score_lead`, run on the same inputs, is the oracle. A second
round at a later moment, with more activity, checks hysteresis against the stored state.
A second strategy aims at where expiry meets the per-day caps: expiry moments, window starts
and `now` mid-day, bursts of alike activities on one UTC day either side of them (to the
second and the microsecond), caps below a day's count and limits on top; three hand-computed
cases pin the arithmetic.
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
from scoring.engine import Activity, QualifiedState, reason, score_lead
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
def models(
    draw: st.DrawFn,
    rules: st.SearchStrategy[dict[str, Any]] = engagement_rules,
    decay: st.SearchStrategy[dict[str, Any]] = decays,
) -> ScoringModel:
    fit = [
        {"name": f"F{i}", "points": draw(POINTS), **rule}
        for i, rule in enumerate(draw(st.lists(fit_rules, max_size=5)))
    ]
    engagement = [
        {"name": f"E{i}", **rule}
        for i, rule in enumerate(draw(st.lists(rules, min_size=1, max_size=6)))
    ]
    data: dict[str, Any] = {
        "name": "m",
        "fit": {"rules": fit, **draw(bounds)},
        "engagement": {"rules": engagement, "decay": draw(decay), **draw(bounds)},
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
    _check_rounds(shared_store, model, data, (NOW, NOW + timedelta(days=3, hours=5)))


def _check_rounds(
    store: Store, model: ScoringModel, data: list[Any], moments: tuple[datetime, ...]
) -> dict[int, Any]:
    """A full rescore at each of `moments` (the later histories added after the first) stores,
    for every lead, the engine's score given the previous round's state; the last round's rows."""
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
    stored: dict[int, Any] = {}
    for round_no, round_now in enumerate(moments, start=2):
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
            assert got.reason == want.reason == reason(got.ledger)
            assert got.ledger == [scorer.entry_dict(e) for e in want.ledger]
            previous[lead_id] = QualifiedState(want.qualified, want.qualified_at)
        if tallyable(model):
            # The same full rescore again scores no lead: the database finds every stored
            # score computed from the inputs it would be computed from now.
            assert _scored_again(store, [model], round_now) == 0
        # More activity before the next round.
        _add(store, lead_ids, [d[2] for d in data], round_no)
        for lead_id, d in zip(lead_ids, data, strict=True):
            histories_now[lead_id] += d[2]
    return stored


def _scored_again(store: Store, models: list[ScoringModel], now: datetime) -> int:
    """How many scores a full rescore under `models` at `now` computes."""
    from scoring.tallied import TallyScorer

    calls = []
    real = TallyScorer.score_key

    def counting(self: TallyScorer, *args: Any) -> Any:
        calls.append(1)
        return real(self, *args)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(TallyScorer, "score_key", counting)
        scorer.score(store, models, full=True, now=now)
    return len(calls)


# Where expiry meets the per-day caps. Models that expire after a fraction of a day (the expiry
# moment falls mid-day), rules with a per-day cap (mostly) below the bursts' sizes, windows that
# start mid-day, limits on top; `now` at any second of its day; bursts of alike activities on
# one UTC day around a moment where something changes (the expiry moment, a window's start,
# midnight), at it, a second or a microsecond either side, or hours away on the same day.
BOUNDARY_EVENTS = ("page_viewed", "form_submitted", "email_opened")
boundary_rules = st.fixed_dictionaries(
    {
        "event": st.sampled_from(BOUNDARY_EVENTS),
        "points": st.one_of(st.integers(1, 40), st.sampled_from([1.25, 3.33, -7])),
        "limit_per_day": st.integers(1, 3),
    },
    optional={
        "limit": st.integers(1, 5),
        "window_days": st.sampled_from([0.3, 0.5, 1, 1.75, 2.5, 4]),
        "url": st.just("*/pricing*"),
    },
)
boundary_decays = st.fixed_dictionaries(
    {"expire_after_days": st.sampled_from([0.25, 0.75, 1, 1.5, 2.6, 3])},
    optional={"inactivity": st.just([{"days": 1, "minus": 3}, {"days": 4, "minus": 50}])},
)
OFFSETS = st.one_of(
    st.sampled_from([-1, 0, 1]).map(lambda s: timedelta(seconds=s)),
    st.sampled_from([-1, 1]).map(lambda us: timedelta(microseconds=us)),
    st.integers(-6 * 3600, 6 * 3600).map(lambda s: timedelta(seconds=s)),
)


def _anchors(model: ScoringModel, moment: datetime) -> list[datetime]:
    """The moments around which counting changes, as of `moment`."""
    expire = model.engagement.decay.expire_after_days
    spans = [expire] + [r.window_days for r in model.engagement.rules]
    edges = [moment - timedelta(days=d) for d in spans if d is not None]
    midnights = [e.replace(hour=0, minute=0, second=0, microsecond=0) for e in edges]
    return [*edges, *midnights, moment]


@st.composite
def boundary_cases(draw: st.DrawFn) -> tuple[ScoringModel, list[Any], tuple[datetime, ...]]:
    model = draw(models(boundary_rules, boundary_decays))
    now = START + timedelta(seconds=draw(st.integers(0, 86399)))
    later = now + timedelta(seconds=draw(st.integers(3600, 4 * 86400)))
    anchors = _anchors(model, now) + _anchors(model, later)
    kinds = sorted({r.event for r in model.engagement.rules})

    def burst() -> list[tuple[str, datetime, Any]]:
        anchor = draw(st.sampled_from(anchors))
        kind = draw(st.sampled_from(kinds))
        props = PROPERTIES[draw(st.sampled_from([0, 1, 5, 7]))]
        same_day = draw(st.booleans())  # else a burst may cross midnight
        day = anchor.replace(hour=0, minute=0, second=0, microsecond=0)
        burst = []
        for offset in draw(st.lists(OFFSETS, min_size=2, max_size=6)):
            at = anchor + offset
            if same_day:
                at = min(max(at, day), day + timedelta(days=1, microseconds=-1))
            burst.append((kind, at, props))
        return burst

    def history(most: int) -> list[Any]:
        return [a for _ in range(draw(st.integers(0, most))) for a in burst()]

    data = [(draw(leads), history(4), history(2)) for _ in range(draw(st.integers(1, 4)))]
    return model, data, (now, later)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=boundary_cases())
def test_expiry_and_day_caps_at_a_day_boundary_match_the_engine(
    shared_store: Store, case: tuple[ScoringModel, list[Any], tuple[datetime, ...]]
) -> None:
    model, data, moments = case
    _check_rounds(shared_store, model, data, moments)


# Hand-computed cases. `now` is 2026-11-20 15:00 UTC.
HAND_NOW = datetime(2026, 11, 20, 15, tzinfo=UTC)
PLAIN_LEAD = {
    "email": "a@acme.example",
    "job_title": None,
    "company_size": None,
    "country": "US",
    "industry": None,
    "custom": {},
}


def _hand_model(rule: dict[str, Any], decay: dict[str, Any]) -> ScoringModel:
    return ScoringModel.model_validate(
        {"name": "m", "fit": {"rules": []}, "engagement": {"rules": [rule], "decay": decay}}
    )


def _views(*moments: str) -> list[Any]:
    return [("page_viewed", datetime.fromisoformat(m).replace(tzinfo=UTC), {}) for m in moments]


def test_a_capped_day_split_by_the_expiry_moment(shared_store: Store) -> None:
    """Expiry after 1.25 days: the expiry moment is 2026-11-19 09:00, mid-day. A cap of 2 a
    day keeps the latest two of each day: 12:00 and 11:00 on the 20th (10:00 is over the cap),
    09:00 (exactly 1.25 days old: still live) and 08:59:59 (expired) on the 19th, both views of
    the 18th (expired). `limit: 4` keeps the latest four of those: three live, one expired.
    4 x 10 = 40 points, 10 of them expired: engagement 30; the reason names the live three."""
    model = _hand_model(
        {"name": "Views", "event": "page_viewed", "points": 10, "limit_per_day": 2, "limit": 4},
        {"expire_after_days": 1.25},
    )
    acts = _views(
        "2026-11-20 10:00",
        "2026-11-20 11:00",
        "2026-11-20 12:00",
        "2026-11-19 08:00",
        "2026-11-19 08:59:59",
        "2026-11-19 09:00",
        "2026-11-18 20:00",
        "2026-11-18 21:00",
    )
    got = _check_rounds(shared_store, model, [(PLAIN_LEAD, acts, [])], (HAND_NOW,))
    (row,) = got.values()
    assert (row.engagement, row.total, row.reason) == (30, 30, "Views \N{MULTIPLICATION SIGN}3")
    assert row.ledger == [
        {"section": "engagement", "kind": "rule", "name": "Views", "count": 4, "points": 40,
         "live": 3},
        {"section": "engagement", "kind": "decay", "name": "Expired after 1.25 days",
         "count": 1, "points": -10},
    ]  # fmt: skip


def test_a_window_that_starts_mid_day_before_the_cap(shared_store: Store) -> None:
    """A half-day window from 03:00 on the 20th: of the views at 19th 20:00, 02:59:59, 03:00
    (exactly half a day old: in) and 14:00, the last two are in it and within the cap of 2 a
    day: 2 x 5 = 10 points. Expiry after 0.25 days (09:00) takes 03:00's 5: engagement 5,
    and the reason names the one live view."""
    model = _hand_model(
        {
            "name": "Views",
            "event": "page_viewed",
            "points": 5,
            "limit_per_day": 2,
            "window_days": 0.5,
        },
        {"expire_after_days": 0.25},
    )
    acts = _views("2026-11-19 20:00", "2026-11-20 02:59:59", "2026-11-20 03:00", "2026-11-20 14:00")
    got = _check_rounds(shared_store, model, [(PLAIN_LEAD, acts, [])], (HAND_NOW,))
    (row,) = got.values()
    assert (row.engagement, row.reason) == (5, "Views")
    assert [(e["name"], e["count"], e["points"], e.get("live")) for e in row.ledger] == [
        ("Views", 2, 10, 1),
        ("Expired after 0.25 days", 1, -5, None),
    ]


def test_expired_matches_still_fill_the_days_cap(shared_store: Store) -> None:
    """The cap keeps the most recent matches of a day, live or expired: with expiry after 28
    hours (the 19th 11:00), the views at 12:00 and 11:30 fill that day's cap of 2 and 10:00
    and 09:00 are not counted, so nothing expires: 2 x 4 = 8 points. A cap of 3 counts 10:00
    too and expires it: 12 points, 4 expired."""
    rule = {"name": "Views", "event": "page_viewed", "points": 4, "limit_per_day": 2}
    acts = _views("2026-11-19 09:00", "2026-11-19 10:00", "2026-11-19 11:30", "2026-11-19 12:00")
    model = _hand_model(rule, {"expire_after_days": 28 / 24})
    got = _check_rounds(shared_store, model, [(PLAIN_LEAD, acts, [])], (HAND_NOW,))
    (row,) = got.values()
    assert (row.engagement, row.reason) == (8, "Views \N{MULTIPLICATION SIGN}2")
    model = _hand_model({**rule, "limit_per_day": 3}, {"expire_after_days": 28 / 24})
    got = _check_rounds(shared_store, model, [(PLAIN_LEAD, acts, [])], (HAND_NOW,))
    (row,) = got.values()
    assert (row.engagement, row.reason) == (8, "Views \N{MULTIPLICATION SIGN}2")
    assert [(e["name"], e["count"], e["points"], e.get("live")) for e in row.ledger] == [
        ("Views", 3, 12, 2),
        ("Expired after 1.16667 days", 1, -4, None),
    ]


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
        stored = {(r.lead_id, r.model): r for r in conn.execute(sa.select(SCORE))}
    expected = list(scorer.evaluate(fields, acts, models, now, before))
    assert set(stored) == {(lead_id, model.name) for lead_id, model, _ in expected}
    for lead_id, model, want in expected:
        got = stored[(lead_id, model.name)]
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
        assert got.reason == reason(got.ledger)


def _pricing_model(points: float, fit: list[dict[str, Any]] | None = None) -> ScoringModel:
    """Model "m": pricing views worth `points` each for 30 days (and the `fit` rules)."""
    pricing = {
        "name": "Pricing", "event": "page_viewed", "url": "*/pricing*", "points": points,
        "window_days": 30,
    }  # fmt: skip
    return ScoringModel.model_validate(
        {"name": "m", "fit": {"rules": fit or []}, "engagement": {"rules": [pricing]}}
    )


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


def test_activity_stored_while_a_full_rescore_runs_is_scored(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pull page committed after the full rescore has matched the stored activity kinds
    against the rules, but before it scores the lead's range: the lead's meeting (a kind never
    seen before) counts, in that pass or in the pass the pull's request runs next."""
    from core.records import ActivityRecord
    from core.store.ingest import Ingest

    model = ScoringModel.model_validate(
        {
            "name": "m",
            "fit": {"rules": []},
            "engagement": {
                "rules": [
                    {"name": "Views", "event": "page_viewed", "points": 10},
                    {"name": "Meeting", "event": "meeting_booked", "points": 30},
                ]
            },
        }
    )
    at = NOW - timedelta(days=1)

    def page(kind: str, key: str) -> None:
        record = ActivityRecord(
            source="web", external_id=key, lead="ann@x.com", type=kind, occurred_at=at
        )
        with store.begin() as conn:
            Ingest(conn).activities("web", [record])

    page("page_viewed", "v1")
    real_ranges = scorer.ranges

    def ranges_after_a_page(*args: Any) -> Any:
        page("meeting_booked", "m1")  # between the plan's load and the first range
        return real_ranges(*args)

    monkeypatch.setattr(scorer, "ranges", ranges_after_a_page)
    first = scorer.score(store, [model], now=NOW)
    monkeypatch.undo()
    assert first.full_models == ["m"]
    scorer.score(store, [model], now=NOW)  # the score the pull requested
    (row,) = _stored(store).values()
    assert (row.engagement, row.reason) == (40, "Meeting, Views")
    _assert_as_engine(store, [model], NOW)


def test_a_full_rescore_scores_only_the_leads_whose_inputs_moved(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full rescore under unchanged models (the daily decay pass) scores a lead again only
    when it is dirty or its inputs moved (tallies, inactivity step); the others keep their
    stored scores, which are the engine's. A score the engine wrote after an incremental pass
    is not taken for one computed from the stored inputs: when its activity leaves the window
    and the tallies are back to what they were, the lead is scored again."""
    from core.records import ActivityRecord, LeadRecord
    from scoring.tallied import TallyScorer

    vp = {"name": "VP", "field": "job_title", "contains": "VP", "points": 5}
    model = _pricing_model(25, [vp])

    def view(lead: str, key: str, at: datetime) -> ActivityRecord:
        return ActivityRecord(
            source="web", external_id=key, lead=lead, type="page_viewed", occurred_at=at,
            properties={"url": "https://x.io/pricing"},
        )  # fmt: skip

    people = [LeadRecord(source="crm", external_id=f"p{i}", email=f"p{i}@x.com") for i in range(3)]
    store.save_page("crm", "leads", people, None)
    store.save_page(
        "web",
        "acts",
        [view("p0@x.com", "a", NOW - timedelta(days=40)), view("p1@x.com", "b", NOW)],
        None,
    )
    scorer.score(store, [model], now=NOW)
    _assert_as_engine(store, [model], NOW)
    store.save_page("web", "acts", [view("p0@x.com", "c", NOW - timedelta(days=1))], None)
    run = scorer.score(store, [model], now=NOW)  # the incremental pass: the engine's path
    assert (run.leads, run.changed) == (1, 1)
    assert {k[0]: r.engagement for k, r in _stored(store).items()} == {1: 25, 2: 25, 3: 0}

    scored: list[int] = []
    real = TallyScorer.score_key

    def counting(self: TallyScorer, *args: Any) -> Any:
        scored.append(1)
        return real(self, *args)

    monkeypatch.setattr(TallyScorer, "score_key", counting)
    # 36 days on, both of lead 1's views are out of the window, as its first one was when the
    # first full rescore stored its inputs; lead 2's view left it too; lead 3 has none
    later = NOW + timedelta(days=36)
    before = _stored(store)
    scorer.score(store, [model], full=True, now=later)
    assert len(scored) == 2
    _assert_as_engine(store, [model], later, before)
    assert {k[0]: r.engagement for k, r in _stored(store).items()} == {1: 0, 2: 0, 3: 0}
    scored.clear()
    scorer.score(store, [model], full=True, now=later + timedelta(hours=1))
    assert scored == []  # nothing moved
    store.save_page("crm", "leads", [people[2].model_copy(update={"job_title": "VP"})], None)
    before = _stored(store)
    scorer.score(store, [model], full=True, now=later + timedelta(hours=2))
    assert len(scored) == 1  # the lead the pull marked
    _assert_as_engine(store, [model], later + timedelta(hours=2), before)
    assert _stored(store)[(3, "m")].fit == 5


def test_with_two_models_only_the_leads_whose_inputs_moved_are_scored_again(store: Store) -> None:
    """Each model's inputs are compared with its own stored score (its own rule numbers,
    inactivity steps and per-day caps): a lead is scored again, under both models, when its
    inputs moved under either."""
    from core.records import ActivityRecord, LeadRecord

    clicks = {"name": "Clicks", "event": "email_clicked", "points": 3, "limit_per_day": 2}
    pricing = {"name": "Pricing", "event": "page_viewed", "url": "*/pricing*", "points": 25}
    first = ScoringModel.model_validate(
        {
            "name": "first",
            "engagement": {
                "rules": [pricing, clicks],
                "decay": {"inactivity": [{"days": 3, "minus": 5}]},
            },
        }
    )
    second = ScoringModel.model_validate(
        {"name": "second", "engagement": {"rules": [{**clicks, "points": 1}], "max": 10}}
    )
    models = [first, second]

    def act(lead: str, key: str, kind: str, at: datetime) -> ActivityRecord:
        props = {"url": "https://x.io/pricing"} if kind == "page_viewed" else {}
        return ActivityRecord(
            source="web", external_id=key, lead=lead, type=kind, occurred_at=at, properties=props
        )

    people = [LeadRecord(source="crm", external_id=f"p{i}", email=f"p{i}@x.com") for i in range(4)]
    store.save_page("crm", "leads", people, None)
    day = timedelta(days=1)
    history = [
        act("p0@x.com", "a", "email_clicked", NOW - day),
        act("p0@x.com", "b", "email_clicked", NOW - day),
        act("p0@x.com", "c", "email_clicked", NOW - day),
        act("p1@x.com", "d", "page_viewed", NOW - 5 * day),
        act("p2@x.com", "e", "email_clicked", NOW - 2 * day),
    ]
    store.save_page("web", "acts", history, None)
    scorer.score(store, models, full=True, now=NOW)
    assert _scored_again(store, models, NOW) == 0
    # one more click for lead 3 (stored as a pull would, then its dirty flag cleared: only
    # its inputs tell)
    store.save_page("web", "acts", [act("p2@x.com", "f", "email_clicked", NOW)], None)
    with store.begin() as conn:
        conn.execute(LEAD.update().values(dirty=False))
    assert _scored_again(store, models, NOW) == 2  # lead 3, under both models
    stored = _stored(store)
    assert (stored[(3, "first")].engagement, stored[(3, "second")].engagement) == (6, 2)
    # two and a half days on, lead 1 (last active a day before NOW) reaches the inactivity step
    # of `first`; lead 2 had reached it already, lead 3 was active at NOW, lead 4 never was
    assert _scored_again(store, models, NOW + 2.5 * day) == 2
    assert _stored(store)[(1, "first")].engagement == 6 - 5
    assert _scored_again(store, models, NOW + 2.5 * day) == 0


def test_leads_outside_a_segment_are_not_scored_again_until_their_fields_move(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under unchanged models, a lead outside a model's segment (it has no score there) is
    left out of a full rescore like a lead whose score holds: only a move of its fields (a
    pull marks it dirty) can bring it in, and then it is scored and counted."""
    from core.records import ActivityRecord, LeadRecord

    everyone = _pricing_model(10)
    pricing = {
        "name": "Pricing", "event": "page_viewed", "url": "*/pricing*", "points": 7,
        "window_days": 30,
    }  # fmt: skip
    us = ScoringModel.model_validate(
        {"name": "us", "segment": {"country": "US"}, "engagement": {"rules": [pricing]}}
    )
    models = [everyone, us]
    countries = ["US", "FR", "FR", None]
    people = [
        LeadRecord(source="crm", external_id=f"p{i}", email=f"p{i}@x.com", country=country)
        for i, country in enumerate(countries)
    ]
    store.save_page("crm", "leads", people, None)
    twenty_days_ago = NOW - timedelta(days=20)
    url = {"url": "https://x.io/pricing"}
    views = [
        ActivityRecord(
            source="web",
            external_id=f"v{i}",
            lead=f"p{i}@x.com",
            type="page_viewed",
            occurred_at=twenty_days_ago,
            properties=url,
        )
        for i in range(len(people))
    ]
    store.save_page("web", "acts", views, None)
    scorer.score(store, models, full=True, now=NOW)
    assert sorted(_stored(store)) == [(1, "m"), (1, "us"), (2, "m"), (3, "m"), (4, "m")]
    _assert_as_engine(store, models, NOW)

    read: list[int] = []
    real = scorer._lead_fields

    def reading(*args: Any) -> Any:
        fields = real(*args)
        read.extend(fields)
        return fields

    monkeypatch.setattr(scorer, "_lead_fields", reading)
    run = scorer.score(store, models, full=True, now=NOW + timedelta(hours=1))
    assert read == []  # the French leads and the one without a country stay out
    assert (run.leads, run.changed) == (4, 0)

    # lead 2 moves to the US, lead 1 leaves it: both are read and scored, nobody else
    moved = [people[1].model_copy(update={"country": "US"})]
    moved.append(people[0].model_copy(update={"country": "FR"}))
    store.save_page("crm", "leads", moved, None)
    before = _stored(store)
    scorer.score(store, models, full=True, now=NOW + timedelta(hours=2))
    assert sorted(read) == [1, 2]
    assert sorted(_stored(store)) == [(1, "m"), (2, "m"), (2, "us"), (3, "m"), (4, "m")]
    _assert_as_engine(store, models, NOW + timedelta(hours=2), before)

    # 11 days on, every view has left its 30-day window: each lead is scored again under "m",
    # and lead 2 under "us" too; still no score for the others under "us"
    read.clear()
    later = NOW + timedelta(days=11)
    before = _stored(store)
    scorer.score(store, models, full=True, now=later)
    assert sorted(read) == [1, 2, 3, 4]
    assert sorted(_stored(store)) == [(1, "m"), (2, "m"), (2, "us"), (3, "m"), (4, "m")]
    assert {r.engagement for r in _stored(store).values()} == {0}
    _assert_as_engine(store, models, later, before)


def _pricing_views(store: Store, leads: int) -> tuple[ScoringModel, Any]:
    """`leads` leads, each with a pricing view 20 days before NOW, under a model whose views
    count for 30 days; and a function that stores another view for a lead."""
    from core.records import ActivityRecord, LeadRecord

    model = _pricing_model(10)

    def view(lead: int, key: str, at: datetime) -> ActivityRecord:
        return ActivityRecord(
            source="web", external_id=key, lead=f"p{lead}@x.com", type="page_viewed",
            occurred_at=at, properties={"url": "https://x.io/pricing"},
        )  # fmt: skip

    people = [
        LeadRecord(source="crm", external_id=f"p{i}", email=f"p{i}@x.com") for i in range(leads)
    ]
    store.save_page("crm", "leads", people, None)
    store.save_page(
        "web", "acts", [view(i, f"v{i}", NOW - timedelta(days=20)) for i in range(leads)], None
    )
    return model, view


def test_a_page_stored_after_the_next_range_was_compared_is_scored(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The leads to score are found a range ahead, on another connection: a page committed
    after that read, before the range is scored, marks its lead dirty, and the lead is scored
    with the page's activity in the same pass (its tallies are read after the range's
    dirty flags are cleared)."""
    from core.pipeline.tallies import Lookahead

    model, view = _pricing_views(store, 6)
    scorer.score(store, [model], full=True, now=NOW)
    assert {r.engagement for r in _stored(store).values()} == {10}
    monkeypatch.setattr(scorer, "FULL_CHUNK", 2)  # three ranges of two leads
    monkeypatch.setenv("LEADHUB_SCORE_CONNECTIONS", "1")  # in turn, compared a range ahead
    found: list[list[int]] = []
    real = Lookahead._find

    def then_a_page(self: Lookahead, *args: Any) -> list[int]:
        ids = real(self, *args)
        found.append(ids)
        if len(found) == 2:  # the second range compared: lead p3 (id 4) gets another view
            store.save_page("web", "acts", [view(3, "late", NOW - timedelta(hours=1))], None)
        return ids

    monkeypatch.setattr(Lookahead, "_find", then_a_page)
    later = NOW + timedelta(hours=2)
    run = scorer.score(store, [model], full=True, now=later)
    assert found == [[], [], []]  # nothing left the window: the comparison finds no lead
    assert (run.leads, run.changed) == (6, 1)
    engagement = {k[0]: r.engagement for k, r in _stored(store).items()}
    assert engagement == {1: 10, 2: 10, 3: 10, 4: 20, 5: 10, 6: 10}
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).where(LEAD.c.dirty)).scalar() == 0
    _assert_as_engine(store, [model], later)


def test_a_failed_lookahead_fails_the_pass_and_gives_its_connection_back(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An error on the lookahead's connection ends the pass with that error: the ranges
    scored before it stay scored, the others keep their flags and scores, no connection is
    left checked out, and the next pass scores what is left."""
    from core.pipeline.tallies import RulePlan

    model, _ = _pricing_views(store, 6)
    scorer.score(store, [model], full=True, now=NOW)
    monkeypatch.setattr(scorer, "FULL_CHUNK", 2)
    monkeypatch.setenv("LEADHUB_SCORE_CONNECTIONS", "1")  # in turn, compared a range ahead
    real = RulePlan._ids
    calls: list[int] = []

    def failing(conn: Any, sql: str, params: Any) -> list[int]:
        calls.append(1)
        if len(calls) == 3:
            raise sa.exc.OperationalError(sql, None, Exception("server closed the connection"))
        return real(conn, sql, params)

    monkeypatch.setattr(RulePlan, "_ids", staticmethod(failing))
    later = NOW + timedelta(days=11)  # every view has left the window
    with pytest.raises(sa.exc.OperationalError, match="server closed"):
        scorer.score(store, [model], full=True, now=later)
    assert store.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    # the third range's candidates were being found while the second was scored
    engagement = {k[0]: r.engagement for k, r in _stored(store).items()}
    assert engagement == {1: 0, 2: 0, 3: 0, 4: 0, 5: 10, 6: 10}
    monkeypatch.undo()
    run = scorer.score(store, [model], full=True, now=later)
    assert (run.leads, run.changed) == (6, 2)
    _assert_as_engine(store, [model], later)


def test_the_range_queries_run_without_jit_on_postgresql() -> None:
    """PostgreSQL costs a range's aggregate high (every activity of 20,000 leads) and compiled
    it with JIT on every range: most of the query's time. The range's transaction turns JIT
    off; the setting ends with it, so the pooled connection goes back as it came."""
    from core.pipeline.tallies import RulePlan
    from tests.conftest import PG_URL, need_service, reset_postgres

    store = Store(reset_postgres(need_service(PG_URL, "PostgreSQL", "LEADHUB_TEST_DATABASE_URL")))

    model = ScoringModel.model_validate(
        {"name": "m", "engagement": {"rules": [{"name": "V", "event": "page_viewed", "points": 1}]}}
    )
    plan = RulePlan([model], NOW)
    with store.engine.connect() as conn:
        with conn.begin():
            plan.load(conn)
            assert conn.execute(sa.text("SHOW jit")).scalar_one() == "on"
            plan.candidates(conn, 1, 100)
            assert conn.execute(sa.text("SHOW jit")).scalar_one() == "off"
        assert conn.execute(sa.text("SHOW jit")).scalar_one() == "on"
        conn.rollback()
        with conn.begin():
            plan.tallies(conn, 1, 100)
            assert conn.execute(sa.text("SHOW jit")).scalar_one() == "off"
            plan.drop(conn)
    store.close()


def test_the_lookahead_runs_serial_and_without_jit_on_postgresql(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The comparison found a range ahead runs beside the scoring of the range before: without
    JIT, and without a parallel plan (whose workers would take the core the scoring runs on);
    the settings end with its transaction."""
    from core.pipeline.tallies import RulePlan
    from tests.conftest import PG_URL, need_service, reset_postgres

    store = Store(reset_postgres(need_service(PG_URL, "PostgreSQL", "LEADHUB_TEST_DATABASE_URL")))
    model, _ = _pricing_views(store, 3)
    scorer.score(store, [model], full=True, now=NOW)
    real = RulePlan._ids
    seen: list[tuple[str, str]] = []
    show = "SELECT current_setting('jit'), current_setting('max_parallel_workers_per_gather')"

    def watching(conn: Any, sql: str, params: Any) -> list[int]:
        ids = real(conn, sql, params)
        seen.append(tuple(conn.execute(sa.text(show)).one()))  # type: ignore[arg-type]
        return ids

    monkeypatch.setattr(RulePlan, "_ids", staticmethod(watching))
    scorer.score(store, [model], full=True, now=NOW + timedelta(days=1))
    assert seen == [("off", "0")]
    with store.engine.connect() as conn:  # pooled connections come back as they went
        assert tuple(conn.execute(sa.text(show)).one()) == ("on", "2")
    store.close()
