"""Soak: the team setup (PostgreSQL, Redis, two workers, the scheduler, `leadhub serve`) under a
burst of webhook deliveries, with flaky vendors and a worker killed twice.

    sandboxes (2 % 429, 2 % 500) ◀── 2 workers ◀── Redis ◀── scheduler (each source every minute)
         │                               │                 ◀── leadhub serve ◀── 2,000 deliveries
         └── a clean run afterwards: every source pulled into a fresh store, scored once

The burst is 1,500 new Lead Ads leads delivered once, 500 of those deliveries repeated, and
deliveries with a bad signature; one worker is killed (SIGKILL) half-way through the burst and
the other a few seconds after it. Measured: queue depth over time, seconds from the burst's end
until every queue is empty and every lead scored and pushed, scheduled pulls run against pulls
due, records lost and scores differing against the clean run, duplicate contacts written to the
CRM, dead letters, and the API's latency while the burst runs.

The Redis database given is flushed: give the benchmark one of its own.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
import yaml

from bench.sandboxes import MODEL_FILE, RequestCounter, missing

SEED = 23
PEOPLE = 800
VENDORS = ("facebook_leads", "hubspot", "mailchimp")
NEW_LEADS, REPEATS, BAD_SIGNATURES = 1500, 500, 100
SENDERS = 8  # deliveries in flight at once
FAULTS = {"rate_limit": 0.02, "server_error": 0.02}
SCHEDULE = "* * * * *"
PERIOD = timedelta(minutes=1)
MIN_SCHEDULED = 240.0  # seconds the scheduler runs at least: a few ticks after the burst
DRAIN_LIMIT = 300.0
TOKEN = "soak-api-token"
ROW_KEYS = ("deliveries", "answered", "refused_bad_signature", "max_queue_depth",
            "drain_seconds", "target_drain_seconds", "pulls_due", "pulls_run", "pulls_missed",
            "records_lost", "scores_differing", "duplicate_crm_writes", "dead_letters",
            "api_p50_ms", "api_p95_ms", "target_api_p95_ms", "workers_killed",
            "status")  # fmt: skip


def run(pg_url: str | None, redis_url: str | None) -> dict[str, Any]:
    """The soak's figures (one row); `queue_depth` holds the series, one sample a second."""
    if not pg_url or not redis_url:
        return _row(status="needs --postgres and --redis (LEADHUB_BENCH_REDIS_URL)")
    for vendor in VENDORS:
        if reason := missing(vendor):
            return _row(status=f"{vendor}: {reason}")
    from bench.pg import fresh_schema

    with fresh_schema(pg_url) as url, tempfile.TemporaryDirectory(prefix="leadhub-soak-") as tmp:
        return Soak(Path(tmp), url, redis_url).run()


def _row(**values: Any) -> dict[str, Any]:
    return {key: values.get(key) for key in ROW_KEYS}


def _leadhub() -> list[str]:
    script = Path(sys.executable).parent / "leadhub"
    return (
        [str(script)]
        if script.exists()
        else [sys.executable, "-c", "from core.cli import app; app()"]
    )


class Soak:
    def __init__(self, tmp: Path, db_url: str, redis_url: str) -> None:
        self.tmp, self.db_url, self.redis_url = tmp, db_url, redis_url
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.depth: list[tuple[float, int]] = []
        self.api_ms: list[float] = []
        self.api_errors = 0
        self.api_idle_ms: list[float] = []
        self.killed = 0

    # -- the whole run -----------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        import redis

        from connectors.sandbox.world import World

        self.redis = redis.Redis.from_url(self.redis_url)
        self.redis.flushdb()
        world = World.build(seed=SEED, people=PEOPLE)
        with ExitStack() as stack:
            self.hub, self.injector = stack.enter_context(_sandboxes(world))
            self.hub_path = self._hub_file()
            self.env = {**os.environ, "LEADHUB_CONFIG": str(self.hub_path),
                        "LEADHUB_DATABASE_URL": self.db_url, "LEADHUB_BROKER_URL": self.redis_url,
                        "LEADHUB_API_TOKEN": TOKEN}  # fmt: skip
            for key in [k for k in self.env if k.startswith("LEADHUB_JOBS_")]:
                del self.env[key]  # the defaults, as a team would run them
            stack.callback(self._stop_all)
            return self._soak(stack)

    def _soak(self, stack: ExitStack) -> dict[str, Any]:
        from core.jobs import actors  # noqa: F401  (declares the actors)
        from core.jobs.broker import configure, queues
        from core.settings import Settings
        from core.store.store import Store

        self.store = Store(self.db_url)  # migrated once here, before the workers start
        stack.callback(self.store.close)
        self.broker = configure(Settings(broker_url=self.redis_url, database_url=self.db_url))
        self.queues = [q for base in queues() for q in (base, f"{base}.DQ")]
        self.port = _free_port()
        self._start("serve", "serve", "--port", str(self.port))
        for name in ("worker-a", "worker-b"):
            self._start(name, "worker", "--processes", "1", "--threads", "4")
        self._wait(self._serving, 60, "leadhub serve")
        self._wait(lambda: self.redis.zcard("dramatiq:__heartbeats__") >= 2, 60, "two workers")
        # A hub that has been running: every source pulled, scored and pushed once.
        self._sync_all()
        monitor = threading.Event()
        threading.Thread(target=self._monitor, args=(monitor,), daemon=True).start()
        stack.callback(monitor.set)
        self.scheduled_from = datetime.now(UTC)
        self._start("scheduler", "scheduler")
        before = self._facebook_leads()
        idle = threading.Event()
        threading.Timer(10.0, idle.set).start()
        self._read_api(idle)  # the API with nothing else going on, for comparison
        self.api_idle_ms, self.api_ms = sorted(self.api_ms), []
        burst = self._burst()
        drain = self._wait_drained(burst["ended"], before + NEW_LEADS)
        left = MIN_SCHEDULED - (datetime.now(UTC) - self.scheduled_from).total_seconds()
        time.sleep(max(0.0, left))
        self._stop("scheduler")
        self.scheduled_to = datetime.now(UTC)
        self._wait(self._idle, DRAIN_LIMIT, "the last scheduled pulls")
        pulls = self._pulls()
        self._sync_all()  # the store sees the vendors' final state, as the clean run will
        monitor.set()
        compared = self._compare_with_clean_run()
        return self._figures(burst, drain, pulls, compared)

    # -- processes ------------------------------------------------------------------------------

    def _start(self, name: str, *args: str) -> None:
        log = (self.tmp / f"{name}.log").open("ab")
        self.procs[name] = subprocess.Popen(
            [*_leadhub(), *args], env=self.env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip

    def _kill(self, name: str) -> None:
        """SIGKILL a worker (its process group: the dramatiq parent and its worker process),
        then start it again, as a supervisor would."""
        proc = self.procs[name]
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        self.killed += 1
        self._start(name, "worker", "--processes", "1", "--threads", "4")

    def _stop(self, name: str) -> None:
        proc = self.procs.pop(name, None)
        if proc is None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def _stop_all(self) -> None:
        for name in list(self.procs):
            self._stop(name)

    # -- waiting ------------------------------------------------------------------------------

    @staticmethod
    def _wait(check: Any, timeout: float, what: str) -> float:
        started = time.monotonic()
        while not check():
            if time.monotonic() - started > timeout:
                raise TimeoutError(f"soak: {what} not done after {timeout:.0f} s")
            time.sleep(0.25)
        return time.monotonic() - started

    def _serving(self) -> bool:
        try:
            return httpx.get(f"{self._base}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    @property
    def _base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _depth(self) -> int:
        pipe = self.redis.pipeline()
        for queue in self.queues:
            pipe.hlen(f"dramatiq:{queue}.msgs")
        return int(sum(pipe.execute()))

    def _idle(self) -> bool:
        return self._depth() == 0

    def _facebook_leads(self) -> int:
        query = sa.text("SELECT count(*) FROM identity WHERE system = 'facebook'")
        with self.store.engine.connect() as conn:
            return int(conn.execute(query).scalar() or 0)

    def _settled(self, expected_leads: int) -> bool:
        """Queues empty, every delivered lead stored, nothing dirty, no outbox row waiting."""
        if not self._idle() or self._facebook_leads() < expected_leads:
            return False
        with self.store.engine.connect() as conn:
            dirty = conn.execute(sa.text("SELECT count(*) FROM lead WHERE dirty")).scalar()
            waiting = conn.execute(sa.text(
                "SELECT count(*) FROM outbox WHERE state = 'pending'")).scalar()  # fmt: skip
        return not dirty and not waiting

    def _monitor(self, stop: threading.Event) -> None:
        started = time.monotonic()
        while not stop.wait(1.0):
            try:
                self.depth.append((round(time.monotonic() - started), self._depth()))
            except Exception:  # a blip in Redis: the next sample will do
                continue

    def _sync_all(self) -> None:
        """Ask for a pull of every source and wait until it, its score and pushes are done."""
        from core.jobs.broker import request

        for name in yaml.safe_load(self.hub_path.read_text())["sources"]:
            request("pull", name)
        time.sleep(1)
        self._wait(self._idle, DRAIN_LIMIT, "a pull of every source")

    # -- the burst ------------------------------------------------------------------------------

    def _burst(self) -> dict[str, Any]:
        from connectors.facebook_leads.sandbox.world import leadgen_delivery
        from connectors.facebook_leads.webhook import SIGNATURE_HEADER, sign

        graph = self.hub.apps["facebook_leads"].state.sandbox
        secret = _app_secret()
        bodies = []
        for i in range(NEW_LEADS):
            lead = graph.submit(
                email=f"soak.lead{i}@soakco{i % 23}.com", full_name=f"Soak Lead{i}",
                job_title=random.Random(i).choice(["VP Marketing", "Engineer", "CEO"]),
                company_name=f"Soak Co {i % 23}", country="US",
            )  # fmt: skip
            bodies.append(json.dumps(leadgen_delivery(graph.page_id, [lead])).encode())
        rng = random.Random(SEED)
        sends = [(b, sign(secret, b)) for b in bodies]
        sends += [(b, sign(secret, b)) for b in rng.sample(bodies, REPEATS)]
        sends += [(b, sign("not-the-app-secret", b)) for b in rng.sample(bodies, BAD_SIGNATURES)]
        rng.shuffle(sends)
        answers: Counter[tuple[bool, int]] = Counter()
        done = threading.Event()
        api = threading.Thread(target=self._read_api, args=(done,), daemon=True)
        sent = 0
        lock = threading.Lock()

        def deliver(item: tuple[bytes, str], client: httpx.Client) -> None:
            nonlocal sent
            body, signature = item
            headers = {SIGNATURE_HEADER: signature, "Content-Type": "application/json"}
            status = client.post("/webhooks/facebook", content=body, headers=headers).status_code
            with lock:
                answers[(_signed(secret, body, signature), status)] += 1
                sent += 1
                if sent == len(sends) // 2:
                    threading.Thread(target=self._kill, args=("worker-a",)).start()

        started = time.monotonic()
        api.start()
        with (
            httpx.Client(base_url=self._base, timeout=30) as client,
            ThreadPoolExecutor(SENDERS) as pool,
        ):
            list(pool.map(lambda item: deliver(item, client), sends))
        ended = time.monotonic()
        done.set()
        api.join()
        threading.Timer(5.0, self._kill, args=("worker-b",)).start()
        return {"started": started, "ended": ended, "answers": answers, "sends": len(sends)}

    def _read_api(self, done: threading.Event) -> None:
        """The API's latency while the burst runs: the leads list, as the dashboard reads it."""
        headers = {"Authorization": f"Bearer {TOKEN}"}
        with httpx.Client(base_url=self._base, timeout=30, headers=headers) as client:
            while not done.is_set():
                started = time.perf_counter()
                try:
                    ok = client.get("/api/leads", params={"limit": 50}).status_code == 200
                except httpx.HTTPError:
                    ok = False
                self.api_ms.append(1000 * (time.perf_counter() - started))
                self.api_errors += not ok
                time.sleep(0.05)

    def _wait_drained(self, burst_ended: float, leads: int) -> float | None:
        time.sleep(6)  # the second kill is under way
        try:
            self._wait(lambda: self._settled(leads), DRAIN_LIMIT, "the burst's work")
        except TimeoutError:
            return None
        return time.monotonic() - burst_ended

    # -- figures --------------------------------------------------------------------------------

    def _pulls(self) -> dict[str, int]:
        """Scheduled pulls due while the scheduler ran, and how many of them no pull covered (a
        due tick is covered by a pull of its source that started after it, within two periods:
        a late pull still covers it)."""
        query = sa.text("SELECT target, started_at FROM sync_run WHERE kind = 'pull' "
                        "AND started_at >= :since ORDER BY started_at")  # fmt: skip
        since = self.scheduled_from.replace(tzinfo=None)
        with self.store.engine.connect() as conn:
            rows = [(t, _utc(s)) for t, s in conn.execute(query, {"since": since})]
        sources = yaml.safe_load(self.hub_path.read_text())["sources"]
        due, missed = 0, 0
        tick = self.scheduled_from.replace(second=0, microsecond=0) + timedelta(minutes=1)
        while tick <= self.scheduled_to:
            for name in sources:
                due += 1
                cover = [s for t, s in rows if t == name and tick <= s < tick + 2 * PERIOD]
                missed += not cover
            tick += timedelta(minutes=1)
        return {"due": due, "run": len(rows), "missed": missed}

    def _compare_with_clean_run(self) -> dict[str, Any]:
        """Every source pulled again (faults off) into a fresh store: what the soak's store lacks
        of it, and the leads whose score differs.

        Scores move with the clock (windows expire, inactivity decays), and the soak scores a
        lead when it changes, so each soak score is compared with the clean store scored at the
        moment the soak computed it (`computed_at`): the same records, the same clock.
        """
        from core.config import load_hub
        from core.pipeline import score as scorer
        from core.pipeline.pull import open_source, pull_source
        from core.store.store import Store

        self.injector.off()
        hub = load_hub(self.hub_path)
        clean = Store(f"sqlite:///{self.tmp / 'clean.db'}")
        try:
            for name in hub.sources:
                result = pull_source(clean, name, open_source(hub, name))
                if not result.ok:
                    raise RuntimeError(f"clean run: pull {name} failed: {result.error}")
            lost = sum(len(_keys(clean, t) - _keys(self.store, t)) for t in KEYED)
            extra = sum(len(_keys(self.store, t) - _keys(clean, t)) for t in KEYED)
            model = hub.models[0].name
            soak = _scores(self.store, model)
            by_time: dict[datetime, list[str]] = {}
            for email, (_, _, computed_at) in soak.items():
                by_time.setdefault(computed_at, []).append(email)
            scorer.score(clean, hub.models, full=True)
            unscored = [e for e in _scores(clean, model) if e not in soak]
            differing: list[tuple[Any, ...]] = [(e, None, "not scored") for e in unscored]
            for computed_at, emails in sorted(by_time.items()):
                scorer.score(clean, hub.models, full=True, now=_utc(computed_at))
                then = _scores(clean, model)
                wrong = [
                    e for e in emails if e not in then or not _same_score(soak[e][:2], then[e][:2])
                ]
                differing += [
                    (e, soak[e][:2], then[e][:2] if e in then else None,
                     _ledger_diff(self.store, clean, model, e), computed_at.isoformat())
                    for e in wrong
                ]  # fmt: skip
        finally:
            clean.close()
        return {"lost": lost, "extra": extra, "differing": len(differing),
                "differing_examples": differing[:5]}  # fmt: skip

    def _figures(
        self,
        burst: dict[str, Any],
        drain: float | None,
        pulls: dict[str, int],
        compared: dict[str, Any],
    ) -> dict[str, Any]:
        from core.jobs import deadletters
        from core.jobs.broker import queues

        answers = burst["answers"]
        signed_ok = answers[(True, 200)]
        refused = answers[(False, 403)]
        letters = deadletters.list_dead_letters(self.broker, queues(), self.store)
        api = sorted(self.api_ms)
        p95 = _percentile(api, 95) if api else None
        problems = []
        if drain is None or drain > 60:
            problems.append("drain")
        if pulls["missed"]:
            problems.append("pulls missed")
        if compared["lost"] or compared["differing"]:
            problems.append("differs from the clean run")
        duplicates = _duplicate_contacts(self.hub.apps["hubspot"])
        if duplicates or letters:
            problems.append("duplicates or dead letters")
        if p95 is None or p95 >= 500 or self.api_errors:
            problems.append("API p95")
        row = _row(
            deliveries=burst["sends"],
            answered=signed_ok,
            refused_bad_signature=refused,
            max_queue_depth=max((d for _, d in self.depth), default=0),
            drain_seconds=None if drain is None else round(drain, 1),
            target_drain_seconds=60,
            pulls_due=pulls["due"],
            pulls_run=pulls["run"],
            pulls_missed=pulls["missed"],
            records_lost=compared["lost"],
            scores_differing=compared["differing"],
            duplicate_crm_writes=duplicates,
            dead_letters=len(letters),
            api_p50_ms=round(_percentile(api, 50), 1) if api else None,
            api_p95_ms=None if p95 is None else round(p95, 1),
            target_api_p95_ms=500,
            workers_killed=self.killed,
            status="ok" if not problems else "missed: " + ", ".join(problems),
        )
        row["api_errors"] = self.api_errors
        idle = self.api_idle_ms
        row["api_idle_p50_p95_ms"] = (
            [round(_percentile(idle, 50), 1), round(_percentile(idle, 95), 1)] if idle else None
        )
        row["records_extra"] = compared["extra"]  # in the soak's store, not the clean one's
        row["differing_examples"] = compared["differing_examples"]  # (email, soak, clean)
        row["queue_depth"] = self.depth
        row["vendor_requests"] = self.hub.counter.total
        row["faults_injected"] = dict(self.injector.injected)
        return row

    def _hub_file(self) -> Path:
        from connectors.sandbox.demo import hub_blocks

        sources, destinations = hub_blocks(self.hub.base, list(VENDORS))
        for block in sources.values():
            block["schedule"] = SCHEDULE
        sources["facebook"]["verify_token"] = "soak-verify-token"
        for block in destinations.values():
            if block["connector"] == "hubspot":
                block["mode"] = "upsert"  # the new Lead Ads leads are created in the CRM
        shutil.copy(MODEL_FILE, self.tmp / "models.yaml")
        path = self.tmp / "leadhub.yaml"
        body = {"sources": sources, "destinations": destinations, "scoring": "models.yaml"}
        path.write_text(yaml.safe_dump(body, sort_keys=False), encoding="utf-8")
        return path


KEYED = {"identity": ("system", "external_id"), "activity": ("source", "external_id"),
         "outcome": ("source", "external_id")}  # fmt: skip


def _keys(store: Any, table: str) -> set[tuple[str, str]]:
    a, b = KEYED[table]
    with store.engine.connect() as conn:
        return {(x, y) for x, y in conn.execute(sa.text(f"SELECT {a}, {b} FROM {table}"))}


def _scores(store: Any, model: str) -> dict[str, tuple[Any, Any, datetime]]:
    """email → (total, tier, computed_at) of every scored lead with an email."""
    query = sa.text("SELECT lead.email, score.total, score.tier, score.computed_at FROM score "
                    "JOIN lead ON lead.id = score.lead_id WHERE score.model = :model "
                    "AND lead.email IS NOT NULL")  # fmt: skip
    with store.engine.connect() as conn:
        return {e: (t, tier, _utc(c)) for e, t, tier, c in conn.execute(query, {"model": model})}


def _ledger_diff(soak: Any, clean: Any, model: str, email: str) -> list[str]:
    """The ledger lines one store has and the other lacks, marked `soak:` or `clean:`."""
    query = sa.text("SELECT score.ledger FROM score JOIN lead ON lead.id = score.lead_id "
                    "WHERE score.model = :model AND lead.email = :email")  # fmt: skip

    def lines(store: Any) -> set[str]:
        with store.engine.connect() as conn:
            ledger = conn.execute(query, {"model": model, "email": email}).scalar()
        entries = json.loads(ledger) if isinstance(ledger, str) else ledger or []
        return {f"{e['name']} x{e['count']} = {e['points']}" for e in entries}

    mine, theirs = lines(soak), lines(clean)
    return [f"soak: {x}" for x in sorted(mine - theirs)] + [
        f"clean: {x}" for x in sorted(theirs - mine)
    ]


def _same_score(soak: tuple[Any, Any] | None, clean: tuple[Any, Any]) -> bool:
    if soak is None:
        return False
    (total_a, tier_a), (total_b, tier_b) = soak, clean
    if total_a is None or total_b is None:
        return total_a is total_b and tier_a == tier_b
    return abs(float(total_a) - float(total_b)) < 1e-6 and tier_a == tier_b


def _duplicate_contacts(app: Any) -> int:
    """Contacts beyond the first with one email on the CRM sandbox: a create sent twice."""
    emails = Counter(
        str(c.properties.get("email") or "").lower()
        for c in list(app.state.sandbox.portal.contacts.values())
    )
    return sum(n - 1 for email, n in emails.items() if email and n > 1)


def _signed(secret: str, body: bytes, signature: str) -> bool:
    from connectors.facebook_leads.webhook import signature_ok

    return signature_ok(secret, body, signature)


def _app_secret() -> str:
    from connectors.facebook_leads.sandbox.app import APP_SECRET

    return str(APP_SECRET)


def _utc(value: datetime | str) -> datetime:
    if isinstance(value, str):  # SQLite answers a raw query's timestamps as text
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _percentile(ordered: list[float], pct: float) -> float:
    rank = max(1, min(len(ordered), math.ceil(pct / 100 * len(ordered))))
    return ordered[rank - 1]


def _free_port() -> int:
    from connectors.sandbox.server import free_port

    return int(free_port())


@contextmanager
def _sandboxes(world: Any) -> Iterator[tuple[Any, Any]]:
    """Every vendor's sandbox on one server, behind the fault injector and a request counter."""
    from starlette.applications import Starlette

    from bench.sandboxes import SandboxHub, _create_app
    from connectors.sandbox.faults import FaultInjector
    from connectors.sandbox.hub import vendor_routes
    from connectors.sandbox.server import serve

    apps = {v: _create_app(v)(world) for v in VENDORS}
    routes = [route for v, a in apps.items() for route in vendor_routes(v, a)]
    injector = FaultInjector(
        Starlette(routes=routes),
        seed=SEED,
        rate_limit=FAULTS["rate_limit"],
        server_error=FAULTS["server_error"],
    )
    counter = RequestCounter(injector)
    with serve(counter) as base:
        yield SandboxHub(base, counter, apps), injector
