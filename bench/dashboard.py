"""The dashboard and the read API on a large store: how long each page takes to answer.

A store of `leads` leads with about `per_lead` activities each is written straight into the
tables (COPY on PostgreSQL, executemany on SQLite): leads with channels and countries, a `crm`
identity for each and a `mailchimp` one for a third of them, won and lost outcomes for one lead
in twenty, and each activity signed as an import signs it. Every lead is then scored by the
full rescore (`core.pipeline.score.score(..., full=True)`) under the example model, which writes
the scores, the score history and the report's kept figures as a real store has them.

Each page is requested `repeats` times through the ASGI app in-process (no network); the figure
is the median, in milliseconds. The target is under 300 ms for every page.
"""

from __future__ import annotations

import csv
import io
import json
import random
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import httpx
import sqlalchemy as sa
from pydantic import SecretStr

from bench.rescore import MODEL_FILE, NOW, TITLES, TYPES, URLS
from core.config import HubConfig
from core.pipeline import score as scorer
from core.settings import Settings
from core.store.signatures import signature_ids
from core.store.store import Store
from core.web.app import create_app
from scoring.model import ScoringModel, load_model_file

CHANNELS = ("referral", "paid_search", "organic_search", "paid_social", "email", "events", None)
COUNTRIES = ("US", "GB", "IN", "DE", "FR")
TARGET_MS = 300.0
BATCH = 50_000


@dataclass
class PageFigure:
    backend: str
    leads: int
    activities: int
    page: str
    median_ms: float
    max_ms: float
    status: int


@dataclass
class LoadFigures:
    backend: str
    leads: int
    activities: int
    load_seconds: float
    rescore_seconds: float
    pages: list[PageFigure] = field(default_factory=list)


def _naive(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ")


def _signatures(store: Store) -> dict[tuple[str, str | None], int]:
    """The signature id of every (type, URL or form) the activities are drawn from, as an import
    signs them."""
    pairs: list[tuple[str, dict[str, Any]]] = []
    for kind, _ in TYPES:
        if kind == "page_viewed":
            pairs += [(kind, {"url": url}) for url in URLS]
        elif kind == "form_submitted":
            pairs.append((kind, {"form": "request-quote"}))
        else:
            pairs.append((kind, {}))
    with store.begin() as conn:
        ids = signature_ids(conn, pairs)
    return {(k, p.get("url") or p.get("form")): i for (k, p), i in zip(pairs, ids, strict=True)}


def _rows(
    leads: int, per_lead: int, signed: dict[tuple[str, str | None], int], seed: int
) -> dict[str, Callable[[], Iterator[tuple[Any, ...]]]]:
    """Generators of each table's rows, as tuples in the column order of `COLUMNS`."""
    rng = random.Random(seed)
    kinds = [t for t, _ in TYPES]
    weights = [w for _, w in TYPES]
    created = _naive(NOW - timedelta(days=200))

    def lead_rows() -> Iterator[tuple[Any, ...]]:
        for i in range(1, leads + 1):
            yield (
                i, f"lead{i}@company{i % 997}.com", f"First{i}", f"Last{i}", f"Company {i % 997}",
                rng.choice(TITLES), rng.randrange(1, 5000), rng.choice(COUNTRIES),
                rng.choice(CHANNELS), "{}", created, created, False,
            )  # fmt: skip

    def identity_rows() -> Iterator[tuple[Any, ...]]:
        n = 0
        for i in range(1, leads + 1):
            for system in ("crm", "mailchimp") if i % 3 == 0 else ("crm",):
                n += 1
                yield n, system, f"{system}-{i}", i, "{}", created, created, False

    def activity_rows() -> Iterator[tuple[Any, ...]]:
        n = 0
        for i in range(1, leads + 1):
            for kind in rng.choices(kinds, weights, k=rng.randrange(0, per_lead * 2 + 1)):
                n += 1
                url = rng.choice(URLS) if kind == "page_viewed" else None
                key = url or ("request-quote" if kind == "form_submitted" else None)
                props = {"url": url} if url else {"form": key} if key else {}
                at = _naive(NOW - timedelta(minutes=rng.randrange(0, 180 * 1440)))
                yield n, "bench", str(n), i, kind, at, json.dumps(props), signed[(kind, key)]

    def outcome_rows() -> Iterator[tuple[Any, ...]]:
        for n, i in enumerate(range(20, leads + 1, 20), start=1):
            status = "won" if rng.random() < 0.3 else "lost"
            closed = _naive(NOW - timedelta(days=rng.randrange(0, 120)))
            yield n, "crm", f"deal-{i}", i, status, closed, 1000.0

    return {
        "lead": lead_rows,
        "identity": identity_rows,
        "activity": activity_rows,
        "outcome": outcome_rows,
    }


COLUMNS = {
    "lead": "id, email, first_name, last_name, company, job_title, company_size, country, "
    "channel, custom, created_at, updated_at, dirty",
    "identity": "id, system, external_id, lead_id, data, record_updated_at, seen_at, deleted",
    "activity": "id, source, external_id, lead_id, type, occurred_at, properties, signature_id",
    "outcome": "id, source, external_id, lead_id, status, closed_at, amount",
}


def _batches(rows: Iterator[tuple[Any, ...]]) -> Iterator[list[tuple[Any, ...]]]:
    batch: list[tuple[Any, ...]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _load(store: Store, tables: dict[str, Callable[[], Iterator[tuple[Any, ...]]]]) -> None:
    """Write every table's rows with the database's bulk path."""
    raw = store.engine.raw_connection()
    try:
        cursor = raw.cursor()
        for name, rows in tables.items():
            columns = COLUMNS[name]
            if store.dialect == "postgresql":
                with cursor.copy(f"COPY {name} ({columns}) FROM STDIN WITH (FORMAT csv)") as copy:
                    for batch in _batches(rows()):
                        buffer = io.StringIO()
                        csv.writer(buffer).writerows(
                            [tuple("" if v is None else v for v in r) for r in batch]
                        )
                        copy.write(buffer.getvalue())
            else:
                marks = ", ".join("?" * len(columns.split(",")))
                for batch in _batches(rows()):
                    cursor.executemany(f"INSERT INTO {name} ({columns}) VALUES ({marks})", batch)
            raw.commit()
        if store.dialect == "postgresql":
            for name in tables:
                cursor.execute(
                    f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), "
                    f"(SELECT max(id) FROM {name}))"
                )
        raw.commit()
    finally:
        raw.close()
    _analyze(store)


def _analyze(store: Store) -> None:
    """Fresh planner statistics after a bulk write (PostgreSQL here runs no autovacuum), and on
    PostgreSQL the visibility map that index-only scans rely on."""
    with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("VACUUM ANALYZE" if store.dialect == "postgresql" else "ANALYZE"))


def _timed(
    app: Any, paths: list[tuple[str, str]], repeats: int
) -> list[tuple[str, float, float, int]]:
    headers = {"Authorization": f"Bearer {TOKEN}"}

    async def run() -> list[tuple[str, float, float, int]]:
        transport = httpx.ASGITransport(app=app)
        found = []
        async with httpx.AsyncClient(
            transport=transport, base_url="http://hub", headers=headers, timeout=600
        ) as client:
            for label, path in paths:
                times, status = [], 0
                for _ in range(repeats + 1):  # the first request warms caches; not counted
                    started = time.perf_counter()
                    response = await client.get(path)
                    times.append((time.perf_counter() - started) * 1000)
                    status = response.status_code
                times = times[1:]
                found.append((label, statistics.median(times), max(times), status))
        return found

    return anyio.run(run)


TOKEN = "bench-token-0123456789"


def pages(model: ScoringModel, leads: int) -> list[tuple[str, str]]:
    """The pages timed: (label, path)."""
    middle = leads // 2  # ids run from 1 to `leads`
    deep = max(0, leads - 25)
    last_page = max(1, (leads + 24) // 25)
    hot, cold = model.tiers[0].name, model.tiers[-1].name
    return [
        ("home /", f"/?model={model.name}"),
        ("report /api/report", f"/api/report?model={model.name}"),
        ("model page /models", f"/models/{model.name}"),
        ("lead list /leads", "/leads"),
        (f"/leads?tier={hot}", f"/leads?tier={hot}"),
        ("/leads?grade=A1", "/leads?grade=A1"),
        ("/leads?qualified=yes", "/leads?qualified=yes"),
        ("/leads?source=mailchimp", "/leads?source=mailchimp"),
        ("/leads?channel=referral", "/leads?channel=referral"),
        ("/leads?q=company 12 (search)", "/leads?q=company%2012"),
        ("/leads?q=LEAD4242@ (search, one lead)", "/leads?q=LEAD4242%40"),
        ("/leads?q=zq (search, 2 characters)", "/leads?q=zq"),
        ("/leads?q=z (1 character, none)", "/leads?q=z"),
        ("/leads?q=1 (1 character, common)", "/leads?q=1"),
        ("/leads?q=co (2 characters, every lead)", "/leads?q=co"),
        ("/leads?q=com (every lead)", "/leads?q=com"),
        ("/leads?q=nomatch-xyz (none)", "/leads?q=nomatch-xyz"),
        (f"/leads?q=co&tier={cold} (common, broad filter)", f"/leads?q=co&tier={cold}"),
        ("/leads deep page (last)", f"/leads?page={last_page}"),
        ("/api/leads", "/api/leads"),
        (f"/api/leads?tier={hot}", f"/api/leads?tier={hot}"),
        ("/api/leads?grade=A1", "/api/leads?grade=A1"),
        ("/api/leads?qualified=true", "/api/leads?qualified=true"),
        ("/api/leads?source=mailchimp", "/api/leads?source=mailchimp"),
        ("/api/leads?channel=referral", "/api/leads?channel=referral"),
        ("/api/leads?q=company 12 (search)", "/api/leads?q=company%2012"),
        ("/api/leads?q=zq (2 characters)", "/api/leads?q=zq"),
        ("/api/leads?q=com (every lead)", "/api/leads?q=com"),
        ("/api/leads?q=1&tier=… (common, filtered)", f"/api/leads?q=1&tier={hot}"),
        (
            f"/api/leads?q=co&tier={cold} (common, broad filter)",
            f"/api/leads?q=co&tier={cold}",
        ),
        (
            f"/api/leads?q=company 12&tier={cold} (some matches, broad filter)",
            f"/api/leads?q=company%2012&tier={cold}",
        ),
        ("/api/leads deep offset", f"/api/leads?limit=25&offset={deep}"),
        ("/api/leads deep keyset (after)", f"/api/leads?limit=25&after=s:0.0:{middle}"),
        ("lead page /leads/{id}", f"/leads/{middle}"),
        ("/api/leads/{id}", f"/api/leads/{middle}"),
    ]


def fill(url: str, leads: int, per_lead: int, seed: int = 1) -> LoadFigures:
    """Fill an empty store at `url`, then score every lead with the full rescore (which keeps
    the report's figures as it writes the scores)."""
    models = load_model_file(MODEL_FILE)
    store = Store(url)
    started = time.perf_counter()
    _load(store, _rows(leads, per_lead, _signatures(store), seed))
    load = time.perf_counter() - started
    started = time.perf_counter()
    scorer.score(store, models, full=True, now=NOW)
    rescore = time.perf_counter() - started
    _analyze(store)
    figures = LoadFigures(
        store.dialect, leads, store.count("activity"), round(load, 1), round(rescore, 1)
    )
    store.close()
    return figures


def measure(url: str, figures: LoadFigures, repeats: int = 7) -> LoadFigures:
    """Time every page on the filled store at `url`."""
    models = load_model_file(MODEL_FILE)
    store = Store(url)
    hub = HubConfig(path=Path("leadhub.yaml"), models=models)
    app = create_app(store, hub, Settings(api_token=SecretStr(TOKEN)))
    timed = _timed(app, pages(models[0], figures.leads), repeats)
    figures.pages = [
        PageFigure(
            store.dialect, figures.leads, figures.activities, label, round(median, 1),
            round(worst, 1), status,
        )
        for label, median, worst, status in timed
    ]  # fmt: skip
    store.close()
    return figures


def run(url: str, leads: int, per_lead: int, repeats: int = 7, seed: int = 1) -> LoadFigures:
    """Fill an empty store at `url`, build the report's figures, time every page."""
    return measure(url, fill(url, leads, per_lead, seed), repeats)


def main() -> None:
    """`python -m bench.dashboard URL LEADS [--fill-only | --measure-only]`: fill a store that is
    kept (a SQLite file or a PostgreSQL database/schema of your choosing), then time its pages;
    with `--fill-only`, only fill it; with `--measure-only`, time the pages of a store filled
    before."""
    import sys

    url, leads = sys.argv[1], int(sys.argv[2])
    if "--measure-only" in sys.argv:
        with Store(url).engine.connect() as conn:
            activities = int(conn.execute(sa.text("SELECT count(*) FROM activity")).scalar_one())
        figures = LoadFigures(Store(url).dialect, leads, activities, 0.0, 0.0)
    else:
        figures = fill(url, leads, 10)
        print(f"loaded in {figures.load_seconds} s, rescored in {figures.rescore_seconds} s")
        if "--fill-only" in sys.argv:
            return
    for page in measure(url, figures).pages:
        print(f"{page.backend:10} {page.leads:>9} {page.page:40} {page.median_ms:>8} ms"
              f" (max {page.max_ms}) {page.status}")  # fmt: skip


if __name__ == "__main__":
    main()
