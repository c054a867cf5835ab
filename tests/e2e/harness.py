"""The reliability suite's world: vendor sandboxes behind fault injection, a recording CRM, hub
files pointing at them, a full cycle (pull → score → push) and snapshots to compare runs by.

A run is judged by what a user would see: the store's leads, identities, activities, outcomes,
scores, outbox and quarantine (without ids and clock times), and what the destinations hold —
the recording CRM's last values per email and the Mailchimp sandbox's members.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import shutil
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from connectors.sandbox.demo import hub_blocks
from connectors.sandbox.faults import FaultInjector
from connectors.sandbox.hub import combined_app
from connectors.sandbox.server import serve
from connectors.sandbox.world import World
from core.store.store import Store

ROOT = Path(__file__).resolve().parents[2]
MODEL_FILE = ROOT / "scoring" / "examples" / "default.yaml"
WORLD = World.build(seed=11, people=120)
NOW = WORLD.now + timedelta(days=2)  # the scorer's clock: fixed, so runs compare exactly
HOOK_SECRET = "crm-hook-signing-secret"
CRM_BATCH = 5  # records per request to the recording CRM
CORE_VENDORS = ("facebook_leads", "mailchimp")
OPTIONAL_VENDORS = ("hubspot", "salesforce")
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d")


# -- the recording CRM -----------------------------------------------------------------------------


@dataclass
class Recorder:
    """A webhook destination's receiver: verifies signatures, keeps the last values per email."""

    secret: str = HOOK_SECRET
    values: dict[str, dict[str, Any]] = field(default_factory=dict)
    deliveries: Counter[str] = field(default_factory=Counter)  # email → accepted deliveries
    refused: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def hook(self, request: Request) -> Response:
        body = await request.body()
        expected = "sha256=" + hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, request.headers.get("x-leadhub-signature-256", "")):
            self.refused += 1
            return JSONResponse({"error": "bad signature"}, 401)
        with self.lock:
            for record in json.loads(body)["records"]:
                # A lead without an email is known by the fields sent with it.
                key = record["email"] or json.dumps(record.get("lead"), sort_keys=True)
                self.values[key] = record["values"]
                self.deliveries[key] += 1
        return JSONResponse({})

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/hook", self.hook, methods=["POST"])])


# -- the sandboxes ---------------------------------------------------------------------------------


def installed_vendors() -> list[str]:
    """Facebook and Mailchimp, plus HubSpot and Salesforce once their sandboxes give demo blocks."""
    import importlib

    found = list(CORE_VENDORS)
    for vendor in OPTIONAL_VENDORS:
        try:
            module = importlib.import_module(f"connectors.{vendor}.sandbox")
        except ImportError:
            continue
        if callable(getattr(module, "create_app", None)) and callable(
            getattr(module, "demo_blocks", None)
        ):
            found.append(vendor)
    return found


@dataclass
class Sandboxes:
    """Every sandbox of `vendors` and the recording CRM, on one port, behind one FaultInjector."""

    base: str
    faults: FaultInjector
    apps: dict[str, Any]
    recorder: Recorder

    @property
    def hook_url(self) -> str:
        return f"{self.base}/recorder/hook"

    def mailchimp_members(self) -> dict[str, Any]:
        """Email → (status, merge fields, active tags) of every Mailchimp sandbox member."""
        app = self.apps.get("mailchimp")
        if app is None:
            return {}
        members = app.state.sandbox.audience.members.values()
        return {
            m.email: (m.status, json.dumps(m.merge_fields, sort_keys=True), sorted(m.tags))
            for m in members
        }

    def hubspot_contacts(self) -> dict[str, Any]:
        """Contact id → (email, score properties) of every live HubSpot sandbox contact."""
        app = self.apps.get("hubspot")
        if app is None:
            return {}
        contacts = app.state.sandbox.portal.contacts.values()
        return {c.id: (c.properties.get("email"), c.properties.get("leadhub_score"),
                       c.properties.get("leadhub_tier"))
                for c in contacts if c.live}  # fmt: skip

    def salesforce_leads(self) -> dict[str, Any]:
        """Lead id → (email, score fields) of every Salesforce sandbox Lead."""
        app = self.apps.get("salesforce")
        if app is None:
            return {}
        from connectors.salesforce.sandbox.app import SCORE_FIELDS

        rows = app.state.sandbox.org.records["Lead"].items()
        return {rid: (row.get("Email"), *(row.get(f) for f in SCORE_FIELDS.values()))
                for rid, row in rows}  # fmt: skip

    def destination_state(self) -> dict[str, Any]:
        """What the destinations hold: the CRM's values per email, the email tool's members, and
        the HubSpot and Salesforce sandboxes' records when they are served."""
        return {"crm": dict(sorted(self.recorder.values.items())),
                "mailchimp": self.mailchimp_members(), "hubspot": self.hubspot_contacts(),
                "salesforce": self.salesforce_leads()}  # fmt: skip


@contextmanager
def sandboxes(
    vendors: Sequence[str],
    world: World = WORLD,
    *,
    options: dict[str, dict[str, Any]] | None = None,
    seed: int = 0,
    latency: float = 0.0,
    timeout_delay: float = 1.5,
) -> Iterator[Sandboxes]:
    """Serve the sandboxes of `vendors` and a recording CRM over HTTP, faults off to begin with."""
    hub, apps = combined_app(world, options)
    apps = {name: app for name, app in apps.items() if name in vendors}
    recorder = Recorder()
    routes = [Mount("/recorder", app=recorder.app()), Mount("/", app=hub)]
    injector = FaultInjector(Starlette(routes=routes), seed=seed, timeout_delay=timeout_delay,
                             latency=latency)  # fmt: skip
    with serve(injector) as base:
        yield Sandboxes(base, injector, apps, recorder)


# -- hub files -------------------------------------------------------------------------------------


def hub_config(
    sandboxes: Sandboxes, vendors: Sequence[str], **tweaks: dict[str, Any]
) -> dict[str, Any]:
    """The hub file's content: each vendor's demo blocks with small pages (many requests, so
    many chances for a fault), plus the recording CRM as a webhook destination."""
    sources, destinations = hub_blocks(sandboxes.base, list(vendors))
    small = {"facebook": {"page_size": 3}, "mailchimp": {"page_size": 8},
             "mailchimp_scores": {"batch_size": 6}}  # fmt: skip
    for name, block in (*sources.items(), *destinations.items()):
        block.update(small.get(name, {}))
        block.update(tweaks.get(name, {}))
    destinations["crm"] = {
        "connector": "webhook",
        "url": sandboxes.hook_url,
        "secret": HOOK_SECRET,
        "mode": "upsert",
        "batch_size": CRM_BATCH,
        "fields": {"total": "score", "tier": "tier", "grade": "grade"},
        **tweaks.get("crm", {}),
    }
    return {"sources": sources, "destinations": destinations, "scoring": "models.yaml"}


def write_hub(directory: Path, content: dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(MODEL_FILE, directory / "models.yaml")
    path = directory / "leadhub.yaml"
    path.write_text(yaml.safe_dump(content, sort_keys=False), encoding="utf-8")
    return path


# -- the cycle -------------------------------------------------------------------------------------


@dataclass
class CycleReport:
    rounds: int = 0
    errors: list[str] = field(default_factory=list)


def full_cycle(
    store: Store, hub_path: Path, *, max_rounds: int = 1, pull: bool = True, push: bool = True
) -> CycleReport:
    """Pull every source, score, push every destination, as the scheduler would: a step that
    fails is run again next round (a push round later than the outbox's longest backoff).
    `pull`/`push` False leaves that step out (the score always runs)."""
    from core.config import load_hub
    from core.pipeline import outbox
    from core.pipeline import pull as pipeline
    from core.pipeline import score as scorer
    from core.pipeline.delivery import MAX_BACKOFF

    hub = load_hub(hub_path)
    report = CycleReport()
    pulls = set(hub.sources) if pull else set()
    pushes = set(hub.destinations) if push else set()
    while report.rounds == 0 or ((pulls or pushes) and report.rounds < max_rounds):
        later = NOW + (MAX_BACKOFF + timedelta(minutes=1)) * report.rounds
        report.rounds += 1
        for name in sorted(pulls):
            result = pipeline.pull(store, hub, name)
            if result.ok:
                pulls.discard(name)
            else:
                report.errors.append(f"pull {name}: {result.error}")
        scorer.score(store, hub.models, now=NOW)
        if pulls:
            continue  # push once every pull has finished, as the jobs chain does
        for name in sorted(pushes):
            done = outbox.push_configured(store, hub, name, now=later)
            if done.ok and not outbox.outbox_rows(store, name, states=("pending", "retry")):
                pushes.discard(name)
            else:
                report.errors.append(f"push {name}: {done.error}")
    if pulls or pushes:
        raise AssertionError(
            f"the cycle did not complete in {max_rounds} rounds: {report.errors[-5:]}"
        )
    return report


# -- snapshots -------------------------------------------------------------------------------------

QUERIES = {
    "leads": "SELECT email, first_name, last_name, phone, company, job_title, country, city, "
    "channel, company_size, custom FROM lead",
    "identities": "SELECT i.system, i.external_id, l.email FROM identity i "
    "JOIN lead l ON l.id = i.lead_id",
    "activities": "SELECT a.source, a.external_id, l.email, a.type, a.occurred_at, a.properties "
    "FROM activity a JOIN lead l ON l.id = a.lead_id",
    "outcomes": "SELECT o.source, o.external_id, l.email, o.status FROM outcome o "
    "JOIN lead l ON l.id = o.lead_id",
    "scores": "SELECT l.email, s.model, s.fit, s.engagement, s.total, s.tier, s.grade, "
    "s.qualified, s.reason FROM score s JOIN lead l ON l.id = s.lead_id",
    "outbox": "SELECT o.destination, l.email, o.state, o.desired, o.sent FROM outbox o "
    "JOIN lead l ON l.id = o.lead_id",
    "quarantine": "SELECT source, stream, record_ref, reason FROM quarantine",
}


def snapshot(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    """The store's content without ids and clock times; duplicates stay (lists, not sets)."""
    with store.engine.connect() as conn:
        return {
            name: sorted(
                (tuple(_plain(v) for v in row) for row in conn.execute(sa.text(sql))), key=repr
            )
            for name, sql in QUERIES.items()
        }


def _plain(value: Any) -> Any:
    # Raw SQL skips the column types: SQLite hands back JSON and timestamps as text.
    if isinstance(value, str) and value[:1] in "{[":
        with suppress(ValueError):
            value = json.loads(value)
    if isinstance(value, str) and TIMESTAMP.match(value):
        value = datetime.fromisoformat(value)
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, default=str)
    if isinstance(value, datetime):
        return (value.astimezone(UTC) if value.tzinfo else value).replace(tzinfo=None).isoformat()
    return round(value, 6) if isinstance(value, float) else value


def differences(expected: dict[str, Any], actual: dict[str, Any]) -> dict[str, Any]:
    """Per part, a few rows missing and a few extra, for a readable assertion message."""
    found: dict[str, Any] = {}
    for name in expected.keys() | actual.keys():
        want, got = expected.get(name), actual.get(name)
        if want == got:
            continue
        if isinstance(want, list) and isinstance(got, list):
            missing, extra = Counter(map(repr, want)), Counter(map(repr, got))
            found[name] = {"missing": list((missing - extra).elements())[:3],
                           "extra": list((extra - missing).elements())[:3],
                           "counts": (len(want), len(got))}  # fmt: skip
        elif isinstance(want, dict) and isinstance(got, dict):
            keys = sorted(k for k in want.keys() | got.keys() if want.get(k) != got.get(k))
            found[name] = {k: (want.get(k), got.get(k)) for k in keys[:3]} | {"n": len(keys)}
        else:
            found[name] = (want, got)
    return found


# -- fast retries ----------------------------------------------------------------------------------


def fast_http(monkeypatch: Any, *, timeout: float = 1.0, max_sleep: float = 0.02) -> None:
    """Every HttpClient made from now on waits at most `max_sleep` between retries and gives up
    on an answer after `timeout` s: the retry logic runs as in production, only faster."""
    from core import http

    original = http.HttpClient.__init__

    def sleep(seconds: float) -> None:
        time.sleep(min(seconds, max_sleep))

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        kwargs["sleep"] = sleep
        given = kwargs.get("timeout", 30.0)
        kwargs["timeout"] = min(given, timeout) if isinstance(given, int | float) else timeout
        original(self, *args, **kwargs)

    monkeypatch.setattr(http.HttpClient, "__init__", init)


def wait_for(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.005)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
