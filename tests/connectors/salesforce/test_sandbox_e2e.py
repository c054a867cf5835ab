"""The Salesforce connector against its sandbox over real HTTP: a full pull into the store, score
pushes by sObject Collections and by Bulk API 2.0, new Leads and follow-up Tasks, the admin
message for missing fields, expired sessions, the daily allowance, JWT and rotated refresh tokens,
and the demo's hub-file blocks.

The sandbox is mounted under its prefix, as `leadhub sandbox` serves it.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from connectors.salesforce import SalesforceDestination, SalesforceSettings, SalesforceSource
from connectors.salesforce.sandbox.app import (
    CLIENT_ID,
    CLIENT_SECRET,
    MOUNT_PREFIX,
    REFRESH_TOKEN,
    SCORE_FIELDS,
    USERNAME,
    create_app,
    serving,
)
from connectors.sandbox.conformance import recording
from connectors.sandbox.server import serve
from connectors.sandbox.world import World
from core.pipeline.outbox import DestinationSettings, push
from core.pipeline.pull import pull_source
from core.store.ingest import IDENTITY, LEAD
from core.store.store import Store
from tests.conformance.suite import SourceCase, check_source
from tests.writeback.conftest import NOW, add_event, seed_leads, set_scores

pytestmark = pytest.mark.e2e
SMALL = World.build(seed=5, people=400)
PUSHED = 5000


@cache
def large() -> World:
    """About 6,700 Salesforce leads, more than 5,000 of them open (not converted or deleted)."""
    return World.build(seed=8, people=13_500)


class Sandbox:
    def __init__(self, url: str, app: Any) -> None:
        self.url, self.app = url, app
        self.http = httpx.Client(base_url=f"{url}/__sandbox")

    def state(self) -> dict[str, Any]:
        answer: dict[str, Any] = self.http.get("/state").json()
        return answer

    def leads(self, **params: str) -> list[dict[str, Any]]:
        answer: list[dict[str, Any]] = self.http.get("/records/Lead", params=params).json()
        return answer

    @property
    def org(self) -> Any:
        return self.app.state.sandbox.org


@pytest.fixture(autouse=True)
def conforming(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every request the connector sends conforms to Salesforce's published shapes (the table in
    `connectors/salesforce/sandbox/conformance.py`)."""
    with recording() as seen:
        yield
    if getattr(request.node, "rep_call", None) is None:
        return  # skipped before its body ran (a service it needs is absent): nothing was sent
    mine = [c for c in seen if c.vendor == "salesforce"]
    assert mine, "no request reached the sandbox"
    assert [c for c in mine if c.problems] == []


def running(world: World, **options: Any) -> Iterator[Sandbox]:
    app = create_app(world, **options)
    with serve(serving(app)) as root:
        yield Sandbox(root + MOUNT_PREFIX, app)


@pytest.fixture
def small() -> Iterator[Sandbox]:
    yield from running(SMALL)


@pytest.fixture
def lite(tmp_path: Path) -> Iterator[Store]:
    """A SQLite store, for tests about the vendor side (auth, limits, call counts): the store's
    own behaviour on PostgreSQL is covered by the write-back and pull tests."""
    store = Store(f"sqlite:///{tmp_path / 'lite.db'}")
    yield store
    store.close()


def settings(sandbox: Sandbox, tmp_path: Path, **overrides: Any) -> SalesforceSettings:
    block = {"connector": "salesforce", "login_url": sandbox.url, "client_id": CLIENT_ID,
             "client_secret": CLIENT_SECRET, "refresh_token": REFRESH_TOKEN,
             "token_file": str(tmp_path / "salesforce-oauth.json"), **overrides}  # fmt: skip
    return SalesforceSettings.model_validate(block)


def source(sandbox: Sandbox, tmp_path: Path, **overrides: Any) -> SalesforceSource:
    return SalesforceSource("salesforce", settings(sandbox, tmp_path, **overrides),
                            base_dir=tmp_path, sleep=lambda _: None)  # fmt: skip


def destination(
    sandbox: Sandbox, tmp_path: Path, **overrides: Any
) -> tuple[DestinationSettings, SalesforceDestination]:
    cfg = DestinationSettings.model_validate({
        "name": "salesforce_scores", "connector": "salesforce", "system": "salesforce",
        "fields": dict(SCORE_FIELDS)})  # fmt: skip
    block = settings(sandbox, tmp_path, bulk_poll_seconds=0.01, **overrides)
    return cfg, SalesforceDestination(cfg.name, block, cfg, base_dir=tmp_path,
                                      sleep=lambda _: None)  # fmt: skip


def count(store: Store, sql: str) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(sa.text(sql)).scalar() or 0)


# -- pull ----------------------------------------------------------------------------------------


@pytest.fixture
def paged_by_50() -> Iterator[Sandbox]:
    yield from running(SMALL, page_size=50)


def test_a_pull_hears_each_query_count_down_to_nothing_left(
    lite: Store, paged_by_50: Sandbox, tmp_path: Path
) -> None:
    """Each page of a query says how many rows it still holds (`totalSize` less the rows read):
    the Lead query's rows less 50 a page (an org that pages by 50), down to none."""
    sandbox = paged_by_50
    heard: list[tuple[str, int | None]] = []
    result = pull_source(
        lite, "salesforce", source(sandbox, tmp_path, skip_own_writes=False),
        progress=lambda stream, _, left: heard.append((stream, left)),
    )  # fmt: skip
    assert result.ok, result.error
    rows = len(sandbox.org.records["Lead"])  # `queryAll`: deleted and merged rows too
    assert rows > 100
    lefts = [left for stream, left in heard if stream == "leads"]
    assert lefts == [max(rows - 50 * (n + 1), 0) for n in range(-(-rows // 50))]
    for stream in {stream for stream, _ in heard}:
        assert [left for s, left in heard if s == stream][-1] == 0, stream


def test_a_full_pull_lands_leads_activities_and_outcomes_then_reads_only_changes(
    store: Store, small: Sandbox, tmp_path: Path
) -> None:
    first = pull_source(store, "salesforce", source(small, tmp_path))
    assert first.ok, first.error
    org = small.org
    leads = org.records["Lead"].values()
    assert count(store, "select count(*) from identity where system = 'salesforce'") == len(leads)
    emails = {r["Email"] for r in leads if r["Email"] and not r["IsDeleted"]}
    assert len(emails) > 150
    with store.engine.connect() as conn:
        stored = set(conn.execute(sa.select(LEAD.c.email).where(LEAD.c.email.is_not(None)))
                     .scalars())  # fmt: skip
    assert emails <= stored
    won = sum(1 for r in org.records["Opportunity"].values() if r["IsWon"])
    assert won and count(store, "select count(*) from outcome where status = 'won'") == won
    converted = sum(1 for r in leads if r["IsConverted"])
    assert count(store, "select count(*) from outcome") >= converted
    with store.engine.connect() as conn:
        kinds = set(
            conn.execute(
                sa.text("select distinct type from activity where source = 'salesforce'")
            ).scalars()
        )
    assert {"webinar_registered", "webinar_attended", "custom:call_completed"} <= kinds
    calls_before = sum(small.state()["calls"].values())

    again = pull_source(store, "salesforce", source(small, tmp_path))
    assert again.ok and (again.counts.created, again.counts.updated) == (0, 0)
    lead = next(r for r in leads if r["Email"] and not r["IsConverted"] and not r["IsDeleted"])
    small.http.post("/touch", json={"object": "Lead", "id": lead["Id"],
                                    "values": {"Title": "Chief Revenue Officer"}})  # fmt: skip
    third = pull_source(store, "salesforce", source(small, tmp_path))
    assert third.ok and third.counts.updated == 1 and third.counts.created == 0
    with store.engine.connect() as conn:
        title = conn.execute(sa.select(LEAD.c.job_title).where(
            sa.func.lower(LEAD.c.email) == lead["Email"].lower())).scalar()  # fmt: skip
    assert title == "Chief Revenue Officer"
    assert sum(small.state()["calls"].values()) - calls_before < 20  # incremental: few calls


def test_the_source_passes_the_conformance_suite(
    store: Store, small: Sandbox, tmp_path: Path
) -> None:
    case = SourceCase("salesforce", lambda: source(small, tmp_path),
                      cursor_order=lambda c: (c["modstamp"], c["id"]))  # fmt: skip
    check_source(store, case)


def test_outages_are_retried_and_the_pull_completes(lite: Store, tmp_path: Path) -> None:
    faults = [{"path": "/query", "status": 503, "code": "SERVER_UNAVAILABLE", "times": 2},
              {"path": "/queryAll", "status": 500, "code": "UNKNOWN_EXCEPTION"}]  # fmt: skip
    for sandbox in running(SMALL, faults=faults):
        result = pull_source(lite, "salesforce", source(sandbox, tmp_path))
        assert result.ok, result.error
        assert sandbox.state()["faults_left"] == []


def test_an_expired_session_mid_pull_is_renewed_once_and_the_pull_completes(
    lite: Store, tmp_path: Path
) -> None:
    for sandbox in running(SMALL, lifetime_calls=3):
        result = pull_source(lite, "salesforce", source(sandbox, tmp_path))
        assert result.ok, result.error
        state = sandbox.state()
        assert state["session_refusals"] >= 2
        assert state["auth"]["issued"]["refresh_token"] == state["session_refusals"] + 1


def test_the_pull_stops_at_the_limit_share_and_names_the_setting(
    lite: Store, tmp_path: Path
) -> None:
    for sandbox in running(SMALL, daily_limit=1000, api_usage=850):
        result = pull_source(lite, "salesforce", source(sandbox, tmp_path, limit_share=0.8))
        assert result.error and "sources.salesforce.limit_share" in result.error
        assert sandbox.state()["api_usage"] < 860  # it stopped at once, not after every stream


def test_a_used_up_daily_allowance_stops_the_pull_with_request_limit_exceeded(
    lite: Store, tmp_path: Path
) -> None:
    for sandbox in running(SMALL, daily_limit=1000, api_usage=1000):
        result = pull_source(lite, "salesforce", source(sandbox, tmp_path))
        assert result.error and "REQUEST_LIMIT_EXCEEDED" in result.error
        assert "daily API requests" in result.error
        assert sandbox.state()["limit_refusals"] >= 1


def test_jwt_bearer_login_is_checked_and_pulls(lite: Store, tmp_path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()  # fmt: skip
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    for sandbox in running(SMALL, jwt_public_key=public.decode()):
        jwt_source = source(sandbox, tmp_path, auth_flow="jwt", username=USERNAME,
                            private_key=pem, refresh_token=None, client_secret=None,
                            campaign_members=False, tasks_and_events=False)  # fmt: skip
        result = pull_source(lite, "salesforce", jwt_source)
        assert result.ok, result.error
        assert sandbox.state()["auth"]["issued"] == {"jwt": 1}
        stranger = source(sandbox, tmp_path, auth_flow="jwt", username="someone@else.example",
                          private_key=pem, refresh_token=None, client_secret=None)  # fmt: skip
        refused = pull_source(lite, "salesforce", stranger)
        assert refused.error and "user hasn't approved this consumer" in refused.error


def test_a_rotated_refresh_token_is_kept_and_used_by_the_next_run(
    lite: Store, tmp_path: Path
) -> None:
    for sandbox in running(SMALL, rotate_refresh_tokens=True):
        only_leads = {"campaign_members": False, "tasks_and_events": False}
        assert pull_source(lite, "salesforce", source(sandbox, tmp_path, **only_leads)).ok
        again = pull_source(lite, "salesforce", source(sandbox, tmp_path, **only_leads))
        assert again.ok, again.error
        auth = sandbox.state()["auth"]
        assert (
            auth["issued"]["rotated_refresh_token"] == 2 and "invalid_grant" not in auth["refused"]
        )
        assert REFRESH_TOKEN not in (tmp_path / "salesforce-oauth.json").read_text()


# -- push ----------------------------------------------------------------------------------------


def seed_open_leads(store: Store, sandbox: Sandbox, n: int) -> list[int]:
    """`n` of the org's open Leads as store leads with their Salesforce identities."""
    open_leads = [r for r in sandbox.org.records["Lead"].values()
                  if not r["IsConverted"] and not r["IsDeleted"]][:n]  # fmt: skip
    assert len(open_leads) == n
    now = datetime(2026, 11, 1, tzinfo=UTC)
    rows = [{"email": f"sf{i}@example.com", "first_name": r["FirstName"],
             "last_name": r["LastName"], "company": r["Company"], "custom": {},
             "created_at": now, "updated_at": now, "dirty": False}
            for i, r in enumerate(open_leads)]  # fmt: skip
    with store.begin() as conn:
        conn.execute(LEAD.insert(), rows)
        mine = LEAD.c.email.in_([r["email"] for r in rows])
        ids = list(conn.execute(sa.select(LEAD.c.id).where(mine).order_by(LEAD.c.id)).scalars())
        conn.execute(IDENTITY.insert(), [
            {"system": "salesforce", "external_id": r["Id"], "lead_id": lead_id, "data": {},
             "record_updated_at": now, "seen_at": now, "deleted": False}
            for lead_id, r in zip(ids, open_leads, strict=True)])  # fmt: skip
    return ids


def salesforce_id(store: Store, lead_id: int) -> str | None:
    with store.engine.connect() as conn:
        found = conn.execute(sa.select(IDENTITY.c.external_id).where(
            IDENTITY.c.system == "salesforce", IDENTITY.c.lead_id == lead_id)).scalar()  # fmt: skip
    return None if found is None else str(found)


@pytest.fixture
def big() -> Iterator[Sandbox]:
    yield from running(large())


def test_5000_changed_leads_go_out_in_exactly_25_collection_calls(
    lite: Store, big: Sandbox, tmp_path: Path
) -> None:
    leads = seed_open_leads(lite, big, PUSHED)
    set_scores(lite, leads, 82.0)
    cfg, sf = destination(big, tmp_path, bulk_threshold=PUSHED)
    started = time.monotonic()
    result = push(lite, cfg, sf)
    assert result.ok, result.error
    assert result.accepted == PUSHED and result.parked == 0
    state = big.state()
    assert state["collection_sizes"] == [200] * 25
    assert state["calls"]["PATCH /composite/sobjects"] == 25 and state["jobs"] == []
    written = [r for r in big.org.records["Lead"].values() if r["Lead_Score__c"] is not None]
    assert len(written) == PUSHED
    assert {(r["Lead_Score__c"], r["Lead_Tier__c"]) for r in written} == {(82, "hot")}
    assert time.monotonic() - started < 30

    again = push(lite, cfg, sf)  # nothing changed: nothing is sent
    assert again.ok and again.attempted == 0
    assert big.state()["calls"]["PATCH /composite/sobjects"] == 25


def test_above_the_bulk_threshold_5000_leads_go_in_one_bulk_job(
    lite: Store, big: Sandbox, tmp_path: Path
) -> None:
    leads = seed_open_leads(lite, big, PUSHED)
    set_scores(lite, leads, 35.0)
    cfg, sf = destination(big, tmp_path)  # bulk_threshold: 2000
    result = push(lite, cfg, sf)
    assert result.ok, result.error
    assert result.accepted == PUSHED
    state = big.state()
    [job] = state["jobs"]
    assert (job["object"], job["operation"], job["state"]) == ("Lead", "update", "JobComplete")
    assert (job["rows"], job["failed"]) == (PUSHED, 0) and job["columns"][0] == "Id"
    assert "PATCH /composite/sobjects" not in state["calls"]
    assert state["calls"]["PUT /jobs/ingest/{job}/batches"] == 1
    scores = {r["Lead_Score__c"] for r in big.org.records["Lead"].values()
              if r["Lead_Score__c"] is not None}  # fmt: skip
    assert scores == {35}


def test_a_session_ending_during_a_bulk_job_is_renewed_and_the_job_completes(
    lite: Store, tmp_path: Path
) -> None:
    for sandbox in running(SMALL, lifetime_calls=3, bulk_session_error=True):
        leads = seed_open_leads(lite, sandbox, 60)
        set_scores(lite, leads, 64.0)
        cfg, sf = destination(sandbox, tmp_path, bulk_threshold=50)
        result = push(lite, cfg, sf)
        assert result.ok, result.error
        assert result.accepted == 60
        state = sandbox.state()
        assert state["session_refusals"] >= 1 and state["auth"]["issued"]["refresh_token"] >= 2
        [job] = state["jobs"]
        assert (job["state"], job["rows"]) == ("JobComplete", 60)


def test_upsert_creates_new_leads_and_a_qualified_lead_gets_a_follow_up_task(
    lite: Store, tmp_path: Path
) -> None:
    for sandbox in running(SMALL):
        [known] = seed_open_leads(lite, sandbox, 1)
        fresh = seed_leads(lite, 2, system=None, start=900)  # from another source: no Lead yet
        set_scores(lite, [known, *fresh], 91.0, qualified=True, qualified_at=NOW)
        add_event(lite, known, "qualified")
        cfg = DestinationSettings.model_validate(
            {
                "name": "salesforce_scores",
                "connector": "salesforce",
                "system": "salesforce",
                "mode": "upsert",
                "fields": {"total": "Lead_Score__c", "tier": "Lead_Tier__c"},
                "lead_fields": {"company": "Company", "last_name": "LastName"},
                "on_qualified": {"subject": "Call {name} (score {total:.0f})", "priority": "High"},
            }
        )
        sf = SalesforceDestination(cfg.name, settings(sandbox, tmp_path), cfg, base_dir=tmp_path,
                                   sleep=lambda _: None)  # fmt: skip
        result = push(lite, cfg, sf)
        assert result.ok, result.error
        assert (result.accepted, result.created, result.actions) == (3, 2, 1)
        made = sandbox.leads(email="lead900@example.com")
        assert len(made) == 1 and made[0]["Company"] == "Co 900"
        assert made[0]["Lead_Score__c"] == 91 and made[0]["Status"] == "Open - Not Contacted"
        assert salesforce_id(lite, fresh[0]) == made[0]["Id"]  # the next push updates it
        [task] = [t for t in sandbox.org.records["Task"].values()
                  if t["Subject"].startswith("Call ")]  # fmt: skip
        assert (task["WhoId"], task["Priority"]) == (salesforce_id(lite, known), "High")
        assert task["Subject"].endswith("(score 91)") and task["Status"] == "Not Started"


def test_missing_custom_fields_stop_the_push_with_the_admin_message(
    store: Store, tmp_path: Path
) -> None:
    for sandbox in running(SMALL, custom_fields=["Lead_Score__c"]):
        leads = seed_open_leads(store, sandbox, 3)
        set_scores(store, leads, 75.0)
        cfg, sf = destination(sandbox, tmp_path)
        result = push(store, cfg, sf)
        assert result.error and result.accepted == 0
        for name in ("Lead_Tier__c", "Lead_Grade__c", "Lead_Qualified__c", "Lead_Score_Reason__c"):
            assert name in result.error
        assert "Lead_Score__c (" not in result.error  # the one that exists is not asked for
        assert "admin must create them" in result.error
        assert "destinations.salesforce_scores" in result.error
        assert sandbox.state()["collection_sizes"] == []  # nothing was written


def test_converted_leads_are_parked_with_the_reason_and_the_rest_are_written(
    store: Store, small: Sandbox, tmp_path: Path
) -> None:
    assert pull_source(store, "salesforce", source(small, tmp_path, campaign_members=False,
                                                   tasks_and_events=False)).ok  # fmt: skip
    with store.engine.connect() as conn:
        leads = list(
            conn.execute(
                sa.select(IDENTITY.c.lead_id).where(
                    IDENTITY.c.system == "salesforce", IDENTITY.c.deleted.is_(False)
                )
            ).scalars()
        )
    set_scores(store, leads, 71.0, reason="Director at a 500-person company; " + "x" * 400)
    cfg, sf = destination(small, tmp_path)
    result = push(store, cfg, sf)
    assert result.ok, result.error
    converted = [r for r in small.org.records["Lead"].values()
                 if r["IsConverted"] and not r["IsDeleted"]]  # fmt: skip
    assert converted and result.parked == len(converted)
    assert result.accepted == len(leads) - len(converted)
    assert all("converted" in reason for _, reason in result.rejections)
    reasons = {r["Lead_Score_Reason__c"] for r in small.org.records["Lead"].values()
               if r["Lead_Score__c"] == 71}  # fmt: skip
    assert len(reasons) == 1 and len(reasons.pop()) <= 255  # cut to the field's length


# -- the demo ------------------------------------------------------------------------------------


def test_the_demo_blocks_pull_score_and_push_through_a_hub_file(
    lite: Store, tmp_path: Path
) -> None:
    from connectors.sandbox.demo import hub_blocks
    from core.cli.demo import MODEL
    from core.config import load_hub
    from core.pipeline import pull as pipeline
    from core.pipeline import score as scorer
    from core.pipeline.outbox import push_configured

    app = create_app(SMALL)
    with serve(serving(app)) as root:
        sources, destinations = hub_blocks(root, ["salesforce"])
        assert set(sources) == {"salesforce"} and set(destinations) == {"salesforce_scores"}
        shutil.copyfile(MODEL, tmp_path / "models.yaml")
        body = {"sources": sources, "destinations": destinations, "scoring": "models.yaml"}
        (tmp_path / "leadhub.yaml").write_text(yaml.safe_dump(body), encoding="utf-8")
        hub = load_hub(tmp_path / "leadhub.yaml")
        pulled = pipeline.pull(lite, hub, "salesforce")
        assert pulled.ok and pulled.counts.created > 100, pulled.error
        assert scorer.score(lite, hub.models).leads > 100
        pushed = push_configured(lite, hub, "salesforce_scores")
        assert pushed.ok and pushed.accepted > 100, pushed.error
        scored = [r for r in app.state.sandbox.org.records["Lead"].values()
                  if r["Lead_Score__c"] is not None]  # fmt: skip
        assert len(scored) == pushed.accepted
        assert all(r["Lead_Tier__c"] and r["Lead_Grade__c"] for r in scored)
