"""A full cycle — scheduled pulls of two sources, scoring, pushes — on two worker processes and a
scheduler (Redis, PostgreSQL) leaves the same store and the same pushed values as the in-process
run (stub broker, SQLite) of the same hub file.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import redis
import sqlalchemy as sa

from core.store.store import Store
from tests.jobs.conftest import QUEUES, ROOT, Processes, wait_for, write_hub

pytestmark = pytest.mark.e2e
SECRET = "full-cycle-signing-secret"


class Receiver:
    """A webhook endpoint on 127.0.0.1 that keeps the last values pushed for each email."""

    def __init__(self) -> None:
        self.values: dict[str, dict[str, Any]] = {}
        values, lock = self.values, threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with lock:
                    for record in body["records"]:
                        values[record["email"]] = record["values"]
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receivers() -> Iterator[Callable[[], Receiver]]:
    started: list[Receiver] = []

    def start() -> Receiver:
        started.append(Receiver())
        return started[-1]

    yield start
    for receiver in started:
        receiver.close()


EXAMPLES = ROOT / "connectors" / "csv" / "examples"
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d")


def csv_files(directory: Path) -> None:
    """Two sources' files: the CRM export (leads, outcomes) and web activity keyed by email,
    so the two meet in the store only through identity resolution."""
    (directory / "crm").mkdir(parents=True)
    (directory / "web").mkdir()
    for name in ("leads.csv", "outcomes.csv"):
        shutil.copy(EXAMPLES / name, directory / "crm" / name)
    with (EXAMPLES / "leads.csv").open(newline="", encoding="utf-8") as f:
        emails = {row["external_id"]: row["email"] for row in csv.DictReader(f)}
    with (EXAMPLES / "activities.csv").open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    with (directory / "web" / "activities.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({**row, "lead": emails.get(row["lead"], row["lead"])} for row in rows)


def hub_file(directory: Path, hook_url: str, schedule: str | None) -> Path:
    directory.mkdir(exist_ok=True)
    csv_files(directory)
    shutil.copy(ROOT / "scoring" / "examples" / "default.yaml", directory / "models.yaml")
    sources = {
        "crm": {"connector": "csv", "leads": "crm/leads.csv", "outcomes": "crm/outcomes.csv",
                "page_size": 10, "schedule": schedule},
        "web": {"connector": "csv", "activities": "web/activities.csv", "page_size": 50,
                "schedule": schedule},
    }  # fmt: skip
    destinations = {
        "chat": {
            "connector": "webhook",
            "url": hook_url,
            "secret": SECRET,
            "mode": "upsert",
            "fields": {"total": "score", "tier": "tier", "grade": "grade", "reason": "why"},
        }
    }
    return write_hub(
        directory / "leadhub.yaml", sources, destinations=destinations, scoring="models.yaml"
    )


def snapshot(store: Store) -> dict[str, Any]:
    """The store's content without ids and timestamps, which differ between any two runs."""
    queries = {
        "leads": "SELECT email, first_name, job_title, company, country, dirty FROM lead",
        "identities": "SELECT i.system, i.external_id, l.email FROM identity i "
        "JOIN lead l ON l.id = i.lead_id",
        "activities": "SELECT a.source, a.external_id, l.email, a.type, a.occurred_at "
        "FROM activity a JOIN lead l ON l.id = a.lead_id",
        "outcomes": "SELECT o.source, o.external_id, l.email, o.status FROM outcome o "
        "JOIN lead l ON l.id = o.lead_id",
        "scores": "SELECT l.email, s.model, s.fit, s.engagement, s.total, s.tier, s.grade, "
        "s.qualified, s.reason FROM score s JOIN lead l ON l.id = s.lead_id",
        "outbox": "SELECT o.destination, l.email, o.state, o.sent FROM outbox o "
        "JOIN lead l ON l.id = o.lead_id",
        "pulls": "SELECT target, status, created FROM sync_run WHERE kind = 'pull' AND created > 0",
    }
    with store.engine.connect() as conn:
        return {
            name: sorted(tuple(_plain(v) for v in row) for row in conn.execute(sa.text(sql)))
            for name, sql in queries.items()
        }


def _plain(value: Any) -> Any:
    # Raw SQL skips the column types: SQLite hands back JSON and timestamps as text.
    if isinstance(value, str) and value.startswith("{"):
        value = json.loads(value)
    if isinstance(value, str) and TIMESTAMP.match(value):
        value = datetime.fromisoformat(value)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    if isinstance(value, datetime):
        return value.replace(tzinfo=None).isoformat()  # naive UTC on every backend
    return round(value, 6) if isinstance(value, float) else value


def run_in_process(directory: Path, hook_url: str, monkeypatch: Any) -> Store:
    from core.jobs import actors as jobs
    from core.jobs.broker import configure, reset_context
    from core.settings import Settings

    hub = hub_file(directory, hook_url, schedule=None)
    monkeypatch.setenv("LEADHUB_CONFIG", str(hub))
    monkeypatch.setenv("LEADHUB_DATABASE_URL", f"sqlite:///{directory / 'leadhub.db'}")
    configure(Settings(broker_url=None))
    for source in ("crm", "web"):
        jobs.pull.send(source)
    jobs.run_until_idle(timeout=60)
    reset_context()
    return Store(f"sqlite:///{directory / 'leadhub.db'}")


def all_sent(store: Store, leads: int) -> bool:
    """Every lead is in the store, scored and accepted by the destination."""
    with store.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT state, count(*) FROM outbox GROUP BY state"))
        states = {state: n for state, n in rows}
        stored = conn.execute(sa.text("SELECT count(*) FROM lead")).scalar()
    return stored == leads and states == {"sent": leads}


def test_workers_and_a_scheduler_leave_what_the_in_process_run_leaves(
    tmp_path: Path,
    redis_url: str,
    pg_url: str,
    processes: Processes,
    receivers: Callable[[], Receiver],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    embedded_hook = receivers()
    expected = run_in_process(tmp_path / "embedded", embedded_hook.url, monkeypatch)
    leads = expected.count("lead")
    assert leads >= 40 and all_sent(expected, leads)

    cluster_hook = receivers()
    hub = hub_file(tmp_path / "cluster", cluster_hook.url, schedule="* * * * * *")
    Store(pg_url).close()  # migrate once here, not racing in every worker
    env = {"LEADHUB_BROKER_URL": redis_url, "LEADHUB_DATABASE_URL": pg_url,
           "LEADHUB_CONFIG": str(hub)}  # fmt: skip
    processes.leadhub("worker", "-p", "2", "-t", "2", env=env, name="workers")
    scheduler = processes.leadhub("scheduler", env=env, name="scheduler")
    store = Store(pg_url, migrate=False)
    wait_for(lambda: all_sent(store, leads), 60, "every lead scored and pushed by the workers")
    # Both sources tick every second; wait until the web activity has been pulled and scored too.
    target = snapshot(expected)
    deadline = time.monotonic() + 60
    while snapshot(store) != target and time.monotonic() < deadline:
        time.sleep(0.5)
    processes.stop(scheduler)
    client = redis.Redis.from_url(redis_url)
    wait_for(lambda: not any(client.hlen(f"dramatiq:{q}.msgs") for q in QUEUES),
             20, "the last ticks to be done")  # fmt: skip

    assert snapshot(store) == snapshot(expected)
    assert cluster_hook.values == embedded_hook.values
    assert len(cluster_hook.values) == leads
    store.close()
    expected.close()
