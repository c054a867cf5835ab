"""Full and incremental rescore against one GROUP BY scan of the same activities.

The yardstick is the time the database takes to scan and group the activities once
(`SELECT lead_id, type, count(*), max(occurred_at) FROM activity GROUP BY lead_id, type`); the
full rescore is reported as a ratio to it (target: at most 2 times). Data is written straight
into the tables (not through a pull) so that generating a large store takes seconds.
"""

from __future__ import annotations

import random
import statistics
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench.memory import peak_mb
from core.pipeline import score as scorer
from core.records import ActivityRecord, LeadRecord
from core.store.ingest import ACTIVITY, LEAD
from core.store.signatures import signature_ids
from core.store.store import Store
from core.store.tables import Score, table
from scoring.model import ScoringModel, load_model_file

SCORE = table(Score)
MODEL_FILE = Path(__file__).resolve().parent.parent / "scoring" / "examples" / "default.yaml"
NOW = datetime(2026, 11, 20, tzinfo=UTC)
TITLES = ("Director of Sales", "VP Marketing", "Analyst", "Student", "Marketing Manager", "CEO")
URLS = (
    "https://example.com/",
    "https://example.com/pricing",
    "https://example.com/careers",
    "https://example.com/blog/a",
    "https://example.com/features",
)
TYPES = (
    ("page_viewed", 60),
    ("email_opened", 20),
    ("email_clicked", 8),
    ("email_sent", 8),
    ("webinar_attended", 2),
    ("form_submitted", 1),
    ("unsubscribed", 1),
)


@dataclass
class RescoreFigures:
    backend: str
    leads: int
    activities: int
    load_seconds: float
    scan_seconds: float
    full_rescore_seconds: float
    ratio_to_scan: float
    unchanged_rescore_seconds: float  # the same full rescore again: nothing to write
    unchanged_ratio: float  # to the scan
    next_day_rescore_seconds: float  # the daily decay pass: the full rescore a day later
    next_day_ratio: float  # to the scan
    next_day_changed: int  # leads whose outputs moved a day later
    model_change_seconds: float  # the full rescore after the model changes: every lead moves
    model_change_ratio: float  # to the scan
    model_change_changed: int  # leads whose outputs moved (not only their ledger)
    incremental_ms: float
    peak_rss_mb: float
    checked_leads: int  # leads whose stored score was compared with the per-lead engine's
    mismatches: int


def _fill(store: Store, leads: int, per_lead: int, seed: int = 1) -> None:
    rng = random.Random(seed)
    kinds = [t for t, _ in TYPES]
    weights = [w for _, w in TYPES]
    with store.begin() as conn:
        for start in range(0, leads, 10_000):
            conn.execute(
                LEAD.insert(),
                [
                    {
                        "email": f"lead{i}@company{i % 997}.com",
                        "job_title": rng.choice(TITLES),
                        "company_size": rng.randrange(1, 5000),
                        "country": rng.choice(("US", "GB", "IN")),
                        "custom": {},
                        "created_at": NOW,
                        "updated_at": NOW,
                        "dirty": True,
                    }
                    for i in range(start, min(leads, start + 10_000))
                ],
            )
    ids = [r.id for r in store.engine.connect().execute(sa.select(LEAD.c.id).order_by(LEAD.c.id))]
    batch: list[dict[str, Any]] = []
    n = 0
    signed: dict[tuple[str, str | None], int] = {}  # as an import signs them
    with store.begin() as conn:
        for lead_id in ids:
            for kind in rng.choices(kinds, weights, k=rng.randrange(0, per_lead * 2 + 1)):
                n += 1
                props: dict[str, Any] = {"url": rng.choice(URLS)} if kind == "page_viewed" else {}
                if kind == "form_submitted":
                    props = {"form": "request-quote"}
                key = (kind, props.get("url") or props.get("form"))
                if key not in signed:
                    signed[key] = signature_ids(conn, [(kind, props)])[0]
                batch.append(
                    {
                        "source": "bench",
                        "external_id": str(n),
                        "lead_id": lead_id,
                        "type": kind,
                        "properties": props,
                        "signature_id": signed[key],
                        "occurred_at": NOW - timedelta(minutes=rng.randrange(0, 180 * 1440)),
                    }
                )
                if len(batch) >= 20_000:
                    conn.execute(ACTIVITY.insert(), batch)
                    batch = []
        if batch:
            conn.execute(ACTIVITY.insert(), batch)


INCREMENTALS = 7
IMPORT_LEADS = 10_000  # leads imported through the ingest path (identities, upserts)
PAGE = 1000


def import_seconds(url: str, leads: int, per_lead: int, seed: int = 2) -> float:
    """Seconds to import `leads` leads and their activities page by page into an empty store at
    `url`, as a pull does: identity resolution, upserts, activity signatures."""
    rng = random.Random(seed)
    kinds = [t for t, _ in TYPES]
    weights = [w for _, w in TYPES]
    store = Store(url)
    started = time.perf_counter()
    n = 0
    for start in range(0, leads, PAGE):
        page: list[Any] = []
        for i in range(start, min(leads, start + PAGE)):
            email = f"import{i}@company{i % 997}.com"
            page.append(
                LeadRecord(
                    source="bench",
                    external_id=f"lead-{i}",
                    email=email,
                    job_title=rng.choice(TITLES),
                    company_size=rng.randrange(1, 5000),
                    country=rng.choice(("US", "GB", "IN")),
                )
            )
            for kind in rng.choices(kinds, weights, k=rng.randrange(0, per_lead * 2 + 1)):
                n += 1
                props: dict[str, Any] = {"url": rng.choice(URLS)} if kind == "page_viewed" else {}
                page.append(
                    ActivityRecord(
                        source="bench",
                        external_id=f"act-{n}",
                        lead=email,
                        type=kind,
                        occurred_at=NOW - timedelta(minutes=rng.randrange(0, 180 * 1440)),
                        properties=props,
                    )
                )
        store.save_page("bench", "import", page, {"page": start})
    seconds = time.perf_counter() - started
    store.close()
    return seconds


def _scan(store: Store) -> float:
    query = sa.text(
        "SELECT lead_id, type, count(*), max(occurred_at) FROM activity GROUP BY lead_id, type"
    )
    best = float("inf")
    for _ in range(2):
        started = time.perf_counter()
        # streamed (on PostgreSQL a server-side cursor): the client holds a batch of groups at a
        # time, not all of them, so the bench's peak memory stays the rescore's
        streamed = {"stream_results": True, "yield_per": 10_000}
        with store.engine.connect().execution_options(**streamed) as conn:
            for _row in conn.execute(query):
                pass
        best = min(best, time.perf_counter() - started)
    return best


def run(
    url: str, leads: int, per_lead: int, models: list[ScoringModel] | None = None
) -> RescoreFigures:
    """Fill an empty store at `url`, then time the scan, a full rescore, the same again, the
    same a day later (the decay pass), the full rescore after a model change, and one-lead
    rescores (under the changed models)."""
    models = models or load_model_file(MODEL_FILE)
    store = Store(url)
    started = time.perf_counter()
    _fill(store, leads, per_lead)
    load = time.perf_counter() - started
    activities = store.count("activity")
    scan = _scan(store)
    started = time.perf_counter()
    scorer.score(store, models, full=True, now=NOW)
    full = time.perf_counter() - started
    started = time.perf_counter()
    scorer.score(store, models, full=True, now=NOW)
    again = time.perf_counter() - started
    started = time.perf_counter()
    next_day = scorer.score(store, models, full=True, now=NOW + timedelta(days=1))
    day = time.perf_counter() - started
    models = changed_models(models)
    started = time.perf_counter()
    remodelled = scorer.score(store, models, now=NOW)
    change = time.perf_counter() - started
    # one new activity for one lead, then the incremental pass that follows a pull; the median
    # of a few such passes, each for another lead
    passes = []
    for n in range(INCREMENTALS):
        i = (n * 7919 + 7) % leads
        store.save_page(
            "bench",
            "acts",
            [
                ActivityRecord(
                    source="bench",
                    external_id=f"incremental-{n}",
                    lead=f"lead{i}@company{i % 997}.com",
                    type="page_viewed",
                    occurred_at=NOW,
                    properties={"url": "https://example.com/pricing"},
                )
            ],
            None,
        )
        started = time.perf_counter()
        run_one = scorer.score(store, models, now=NOW)
        passes.append(time.perf_counter() - started)
        assert run_one.leads == 1, run_one
    incremental = statistics.median(passes)
    rss = peak_mb()
    checked, mismatches = _verify(store, models, leads)
    store.close()
    return RescoreFigures(
        store.dialect,
        leads,
        activities,
        round(load, 2),
        round(scan, 3),
        round(full, 2),
        round(full / scan, 2),
        round(again, 2),
        round(again / scan, 2),
        round(day, 2),
        round(day / scan, 2),
        next_day.changed,
        round(change, 2),
        round(change / scan, 2),
        remodelled.changed,
        round(incremental * 1000, 2),
        round(rss, 1),
        checked,
        mismatches,
    )


def changed_models(models: list[ScoringModel]) -> list[ScoringModel]:
    """The models with one point more for every engagement rule: a change of the model file
    that moves the ledger of every lead with counted activity (and the score of those below
    the engagement cap)."""
    changed = []
    for model in models:
        rules = tuple(
            rule.model_copy(update={"points": rule.points + 1}) for rule in model.engagement.rules
        )
        engagement = model.engagement.model_copy(update={"rules": rules})
        changed.append(model.model_copy(update={"engagement": engagement}))
    return changed


VERIFY_ALL = 100_000  # above this many leads, every 100th lead is checked


def _verify(store: Store, models: list[ScoringModel], leads: int) -> tuple[int, int]:
    """Compare stored scores with the per-lead reference engine's, given each stored state:
    (leads checked, leads whose fit, engagement, total, tier, grade, qualified, reason or
    ledger differ)."""
    with store.engine.connect() as conn:
        ids = [r.id for r in conn.execute(sa.select(LEAD.c.id).order_by(LEAD.c.id))]
    if leads > VERIFY_ALL:
        ids = ids[::100]
    checked = mismatches = 0
    keys = ("fit", "engagement", "total", "tier", "grade", "qualified", "reason")
    for start in range(0, len(ids), 1000):
        chunk = ids[start : start + 1000]
        with store.engine.connect() as conn:
            fields, acts = scorer.load_inputs(conn, chunk)
            stored = {
                (r.lead_id, r.model): r
                for r in conn.execute(sa.select(SCORE).where(SCORE.c.lead_id.in_(chunk)))
            }
        for lead_id, model, want in scorer.evaluate(fields, acts, models, NOW, stored):
            got = stored[(lead_id, model.name)]
            checked += 1
            outputs = want.outputs()
            ledger = [scorer.entry_dict(e) for e in want.ledger]
            if any(getattr(got, k) != outputs[k] for k in keys) or got.ledger != ledger:
                mismatches += 1
    return checked, mismatches


def as_dict(figures: RescoreFigures) -> dict[str, Any]:
    return asdict(figures)
