"""The HubSpot connector against its sandbox over real HTTP: the conformance suite, the search
cap at volume, budgets and 429 policies, OAuth rotation, write-back, 207s and tasks.

The sandbox and the connector share one fake clock, so rate limits are honoured (and counted by
the sandbox) without the tests waiting for them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from starlette.applications import Starlette
from starlette.routing import Mount

from connectors.base.contract import QualifiedItem, WriteItem
from connectors.hubspot import HubSpotDestination, HubSpotSource
from connectors.hubspot.sandbox.app import (
    MOUNT_PREFIX,
    OAUTH_CLIENT_ID,
    OAUTH_CLIENT_SECRET,
    OAUTH_REFRESH_TOKEN,
    SANDBOX_SERVICE_KEY,
    SANDBOX_TOKEN,
    create_app,
    demo_blocks,
)
from connectors.hubspot.sandbox.data import FORM_GUID
from connectors.hubspot.settings import HubSpotSettings
from connectors.sandbox.conformance import recording
from connectors.sandbox.server import serve
from connectors.sandbox.world import World
from core.errors import RateLimited
from core.http import LocalRateBudget
from core.pipeline.outbox import DestinationSettings, push
from core.pipeline.pull import pull_source
from core.records import LeadRecord
from core.store.ingest import IDENTITY
from core.store.store import Store
from tests.conformance.suite import SourceCase, check_source
from tests.connectors.hubspot.payloads import FakeTime
from tests.writeback.conftest import set_scores

pytestmark = pytest.mark.e2e
WORLD = World.build(seed=11, people=300)
BROKEN = sum(1 for p in WORLD.people if p.in_hubspot and p.key in WORLD.malformed)


class Sandbox:
    def __init__(self, url: str, t: FakeTime) -> None:
        self.url, self.t = url, t
        self.http = httpx.Client(base_url=f"{url}/__sandbox")

    def state(self, **params: Any) -> dict[str, Any]:
        answer: dict[str, Any] = self.http.get("/state", params=params).json()
        return answer

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {SANDBOX_TOKEN}"}
        return httpx.request(method, f"{self.url}{path}", headers=headers, **kwargs)

    def block(self, **settings: Any) -> HubSpotSettings:
        base: dict[str, Any] = {
            "connector": "hubspot",
            "base_url": self.url,
            "token": SANDBOX_TOKEN,
            "form_ids": [FORM_GUID],
            "email_events_lookback_days": 3650,
        }
        if "oauth" in settings:
            del base["token"]
        return HubSpotSettings.model_validate({**base, **settings})

    def clocked(self, block: HubSpotSettings) -> dict[str, Any]:
        """The fake clock and a burst budget on it, for a source or destination."""
        t = self.t
        budget = LocalRateBudget(block.burst_rate, 10.0, clock=t, sleep=t.sleep)
        return {"sleep": t.sleep, "clock": t, "budget": budget}

    def source(self, base_dir: Path, **settings: Any) -> HubSpotSource:
        block = self.block(**settings)
        return HubSpotSource("hubspot", block, base_dir=base_dir, **self.clocked(block))


def running(world: World = WORLD, **options: Any) -> Iterator[Sandbox]:
    t = FakeTime(start=1_796_000_000.0)  # 2026-12-01: after every world event
    app = Starlette(routes=[Mount(MOUNT_PREFIX, app=create_app(world, clock=t, **options))])
    with serve(app) as root:
        yield Sandbox(root + MOUNT_PREFIX, t)


@pytest.fixture(autouse=True)
def conforming_requests() -> Iterator[None]:
    """Every request the connector sends conforms to HubSpot's schema facts (the sandbox
    records each one against `connectors.hubspot.sandbox.conformance.OPERATIONS`)."""
    with recording() as seen:
        yield
    assert [(c.method, c.path, c.problems) for c in seen if c.problems] == []


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    yield from running()


def read_leads(source: HubSpotSource) -> list[LeadRecord]:
    """Every lead record of every stream, read from the beginning."""
    return [
        i
        for st in source.streams()
        for p in st.read(None)
        for i in p.items
        if isinstance(i, LeadRecord)
    ]


def hubspot_leads(store: Store) -> list[int]:
    with store.engine.connect() as conn:
        return list(
            conn.execute(
                sa.select(IDENTITY.c.lead_id)
                .where(IDENTITY.c.system == "hubspot")
                .order_by(IDENTITY.c.lead_id)
            ).scalars()
        )


# -- source --------------------------------------------------------------------------------------


def test_the_source_passes_the_conformance_suite(
    store: Store, sandbox: Sandbox, tmp_path: Path
) -> None:
    assert BROKEN >= 1
    case = SourceCase("hubspot", lambda: sandbox.source(tmp_path), expect_quarantined=BROKEN)
    check_source(store, case)


def test_25000_contacts_changed_since_the_last_sync_all_arrive(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    contacts = next(s for s in sandbox.source(tmp_path).streams() if s.name == "contacts")
    first = list(contacts.read(None))
    bookmark = first[-1].cursor
    assert bookmark is not None and bookmark["phase"] == "search"
    assert sandbox.http.post("/generate", json={"count": 25_000}).status_code == 201
    started = sandbox.t.now

    pages = list(contacts.read(bookmark))
    ids = [i.external_id for p in pages for i in p.items if isinstance(i, LeadRecord)]
    assert len(ids) == len(set(ids)) == 25_000  # none lost at the 10,000 cap, none twice
    state = sandbox.state()
    assert state["errors"] == {}  # the search restarted before the cap, never into its 400
    searches = state["calls"]["POST objects/contacts/search"]
    assert searches >= 25_000 // 200
    assert state["rate_limited"] == {}  # the connector kept to 5 searches a second itself
    assert sandbox.t.now - started >= searches / 5 - 1
    marks = [p.cursor["since"] for p in pages if p.cursor]
    assert marks == sorted(marks)


def test_the_dated_api_version_and_a_service_key_work_too(sandbox: Sandbox, tmp_path: Path) -> None:
    source = sandbox.source(tmp_path, api_version="2026-03", token=SANDBOX_SERVICE_KEY)
    assert len(read_leads(source)) > 100
    assert sandbox.state()["calls"]["GET objects/contacts"] >= 2


def test_a_bad_token_names_the_setting(store: Store, sandbox: Sandbox, tmp_path: Path) -> None:
    result = pull_source(store, "hubspot", sandbox.source(tmp_path, token="pat-na1-revoked-0042"))
    assert result.error and "`sources.hubspot.token`" in result.error
    assert "401" in result.error and "pat-na1-revoked-0042" not in result.error


def test_oauth_refreshes_and_the_rotated_refresh_token_carries_to_the_next_run(
    tmp_path: Path,
) -> None:
    oauth = {
        "client_id": OAUTH_CLIENT_ID,
        "client_secret": OAUTH_CLIENT_SECRET,
        "refresh_token": OAUTH_REFRESH_TOKEN,
    }
    for sandbox in running(token_ttl=1800):
        assert read_leads(sandbox.source(tmp_path, oauth=oauth))
        [token_file] = (tmp_path / ".leadhub").glob("hubspot-oauth-*.json")
        saved = json.loads(token_file.read_text())
        assert saved["refresh_token"].startswith("na1-5a9d-0000-refresh-rotated-")
        # The configured refresh token is dead now (rotated); the next run must use the saved one.
        sandbox.t.now += 3600
        assert read_leads(sandbox.source(tmp_path, oauth=oauth))
        assert sandbox.state()["refreshes"] == 2


def test_the_usage_headers_keep_a_too_high_tier_within_the_portal_burst(tmp_path: Path) -> None:
    for sandbox in running(burst_limit=10):
        # The block claims a bigger tier than the portal has; the usage headers pace it.
        source = sandbox.source(tmp_path, rate_limit_tier="enterprise", page_size=10)
        assert read_leads(source)
        assert sandbox.state()["calls"]["GET objects/contacts"] > 10
        assert sandbox.state()["rate_limited"] == {}
        assert 10.0 in sandbox.t.sleeps


def test_secondly_429s_on_search_are_waited_out_and_every_change_arrives(tmp_path: Path) -> None:
    for sandbox in running(search_rate=2):
        contacts = next(s for s in sandbox.source(tmp_path).streams() if s.name == "contacts")
        bookmark = list(contacts.read(None))[-1].cursor
        sandbox.http.post("/generate", json={"count": 2_000})
        pages = list(contacts.read(bookmark))
        leads = [i for p in pages for i in p.items if isinstance(i, LeadRecord)]
        assert len({lead.external_id for lead in leads}) == 2_000
        assert sandbox.state()["rate_limited"]["SECONDLY"] >= 1
        assert 1.0 in sandbox.t.sleeps


def test_the_daily_budget_stops_the_sync_with_a_clear_error(tmp_path: Path) -> None:
    for sandbox in running(daily_limit=3):
        with pytest.raises(RateLimited) as stopped:
            read_leads(sandbox.source(tmp_path, page_size=10))
        assert "DAILY request budget is spent" in str(stopped.value)
        assert "`account_timezone`" in str(stopped.value)
        state = sandbox.state()
        assert state["daily_used"] == 3 and state["rate_limited"] == {}  # stopped before a 429


# -- destination ---------------------------------------------------------------------------------


def destination(
    sandbox: Sandbox, tmp_path: Path, hub: dict[str, Any] | None = None, **config: Any
) -> tuple[DestinationSettings, HubSpotDestination]:
    cfg = DestinationSettings.model_validate(
        {
            "name": "hubspot_out",
            "connector": "hubspot",
            "system": "hubspot",
            "fields": {"total": "leadhub_score", "tier": "leadhub_tier"},
            **config,
        }
    )
    block = sandbox.block(**(hub or {}))
    dest = HubSpotDestination(cfg.name, block, cfg, base_dir=tmp_path, **sandbox.clocked(block))
    return cfg, dest


def contacts(sandbox: Sandbox, n: int) -> list[tuple[str, str]]:
    """(id, email) of the first `n` contacts with a well-formed email."""
    params = {"limit": 100, "properties": "email"}
    listed = sandbox.api("GET", "/crm/v3/objects/contacts", params=params).json()["results"]
    found = [(c["id"], c["properties"]["email"]) for c in listed]
    return [(i, e) for i, e in found if "@" in e][:n]


def test_1000_changed_scores_take_exactly_10_batch_calls(
    store: Store, sandbox: Sandbox, tmp_path: Path
) -> None:
    assert sandbox.http.post("/generate", json={"count": 1_000}).status_code == 201
    assert pull_source(store, "hubspot", sandbox.source(tmp_path)).ok
    leads = hubspot_leads(store)
    set_scores(store, leads[-1_000:], 80)  # hot
    cfg, dest = destination(sandbox, tmp_path)

    result = push(store, cfg, dest)
    assert result.ok, result.error
    assert result.accepted == 1_000 and result.parked == 0
    state = sandbox.state()
    assert state["batch_sizes"]["update"] == [100] * 10
    assert state["calls"]["POST objects/contacts/batch/update"] == 10
    # prepare() made the properties it writes, in the leadhub group.
    assert state["properties"]["leadhub_score"]["type"] == "number"
    assert state["properties"]["leadhub_tier"]["type"] == "enumeration"
    assert {state["properties"][p]["groupName"] for p in ("leadhub_score", "leadhub_tier")} == {
        "leadhub"
    }
    assert "leadhub" in state["groups"]
    with store.engine.connect() as conn:
        ext = conn.execute(
            sa.select(IDENTITY.c.external_id).where(
                IDENTITY.c.lead_id == leads[-1], IDENTITY.c.system == "hubspot"
            )
        ).scalar()
    written = sandbox.state(contact=ext)["contact"]["properties"]
    assert (written["leadhub_score"], written["leadhub_tier"]) == ("80", "hot")

    # A warm push (a new process, the same hub folder): the property check is remembered, so
    # 1,000 changed scores take exactly the 10 batch calls and nothing else.
    before = sandbox.state()["calls"]
    set_scores(store, leads[-1_000:], 90)
    result = push(store, cfg, destination(sandbox, tmp_path)[1])
    assert result.ok and result.accepted == 1_000, result.error
    spent = call_diff(before, sandbox.state()["calls"])
    assert spent == {"POST objects/contacts/batch/update": 10}


def call_diff(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: n - before.get(k, 0) for k, n in after.items() if n != before.get(k, 0)}


def test_a_property_deleted_in_hubspot_is_recreated_by_the_next_push(
    store: Store, sandbox: Sandbox, tmp_path: Path
) -> None:
    assert pull_source(store, "hubspot", sandbox.source(tmp_path)).ok
    leads = hubspot_leads(store)[:30]
    set_scores(store, leads, 75)
    cfg, dest = destination(sandbox, tmp_path)
    assert push(store, cfg, dest).accepted == 30

    assert sandbox.api("DELETE", "/crm/v3/properties/contacts/leadhub_score").status_code == 204
    set_scores(store, leads, 40)
    before = sandbox.state()["calls"]
    result = push(store, cfg, destination(sandbox, tmp_path)[1])
    # The remembered check skipped the property read; HubSpot refused the values.
    assert call_diff(before, sandbox.state()["calls"]) == {"POST objects/contacts/batch/update": 1}
    assert result.accepted == 0 and result.retrying == 30 and result.parked == 0
    assert not list((tmp_path / ".leadhub").glob("hubspot-properties-*"))

    later = datetime.now(UTC) + timedelta(hours=1)  # past the retry backoff
    result = push(store, cfg, destination(sandbox, tmp_path)[1], now=later)
    assert result.ok and result.accepted == 30, result.error
    state = sandbox.state()
    assert state["properties"]["leadhub_score"]["type"] == "number"
    assert state["calls"]["POST properties/contacts"] == 3  # score, tier, then score again
    with store.engine.connect() as conn:
        ext = conn.execute(
            sa.select(IDENTITY.c.external_id).where(
                IDENTITY.c.lead_id == leads[0], IDENTITY.c.system == "hubspot"
            )
        ).scalar()
    assert sandbox.state(contact=ext)["contact"]["properties"]["leadhub_score"] == "40"


def test_a_contact_deleted_in_hubspot_is_rejected_alone(
    store: Store, sandbox: Sandbox, tmp_path: Path
) -> None:
    assert pull_source(store, "hubspot", sandbox.source(tmp_path)).ok
    leads = hubspot_leads(store)[:20]
    with store.engine.connect() as conn:
        gone = conn.execute(
            sa.select(IDENTITY.c.external_id).where(
                IDENTITY.c.lead_id == leads[3], IDENTITY.c.system == "hubspot"
            )
        ).scalar()
    assert sandbox.api("DELETE", f"/crm/v3/objects/contacts/{gone}").status_code == 204
    set_scores(store, leads, 30)
    cfg, dest = destination(sandbox, tmp_path)

    result = push(store, cfg, dest)
    assert result.ok, result.error
    assert result.accepted == 19
    [(lead_id, reason)] = result.rejections
    assert lead_id == leads[3] and "OBJECT_NOT_FOUND" in reason


def test_a_contact_archived_in_hubspot_becomes_deleted_and_is_never_pushed_to(
    store: Store, sandbox: Sandbox, tmp_path: Path
) -> None:
    assert pull_source(store, "hubspot", sandbox.source(tmp_path)).ok
    leads = hubspot_leads(store)[:10]
    with store.engine.connect() as conn:
        gone = conn.execute(
            sa.select(IDENTITY.c.external_id).where(
                IDENTITY.c.lead_id == leads[0], IDENTITY.c.system == "hubspot"
            )
        ).scalar()
    assert sandbox.api("DELETE", f"/crm/v3/objects/contacts/{gone}").status_code == 204
    again = pull_source(store, "hubspot", sandbox.source(tmp_path))
    assert again.ok, again.error
    with store.engine.connect() as conn:
        deleted = conn.execute(
            sa.select(IDENTITY.c.deleted).where(
                IDENTITY.c.external_id == gone, IDENTITY.c.system == "hubspot"
            )
        ).scalar()
    assert deleted is True
    set_scores(store, leads, 55)
    cfg, dest = destination(sandbox, tmp_path)

    result = push(store, cfg, dest)
    assert result.ok, result.error
    assert result.accepted == 9 and result.rejections == []
    assert sandbox.state()["batch_sizes"]["update"] == [9]
    assert "leadhub_score" not in (sandbox.state(contact=gone)["contact"]["properties"])


def test_booleans_go_out_as_hubspots_true_and_false(sandbox: Sandbox, tmp_path: Path) -> None:
    # HubSpot's bool properties hold the strings "true" and "false" (shared/api/hubspot.md §2:
    # every property value is a string), and the qualified flag must keep its sense.
    (yes, _), (no, _) = contacts(sandbox, 2)
    fields = {"total": "leadhub_score", "qualified": "leadhub_qualified"}
    _, dest = destination(sandbox, tmp_path, fields=fields)
    dest.prepare()
    outcomes = dest.write([
        WriteItem(1, yes, {"leadhub_score": 91, "leadhub_qualified": True}),
        WriteItem(2, no, {"leadhub_score": 12, "leadhub_qualified": False}),
    ])  # fmt: skip
    assert [o.status for o in outcomes] == ["ok", "ok"]
    assert sandbox.state()["properties"]["leadhub_qualified"]["type"] == "bool"
    written = {c: sandbox.state(contact=c)["contact"]["properties"] for c in (yes, no)}
    assert written[yes]["leadhub_qualified"] == "true"
    assert written[no]["leadhub_qualified"] == "false"


def test_a_new_tier_is_added_to_the_enumeration_before_it_is_written(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    [(cid, _)] = contacts(sandbox, 1)
    _, dest = destination(sandbox, tmp_path)
    dest.prepare()
    assert [o["value"] for o in sandbox.state()["properties"]["leadhub_tier"]["options"]] == [
        "hot", "warm", "cold"
    ]  # fmt: skip
    # The model's tiers changed: "scorching" is not an option HubSpot would accept yet.
    [outcome] = dest.write([WriteItem(1, cid, {"leadhub_score": 99, "leadhub_tier": "scorching"})])
    assert outcome.status == "ok", outcome.reason
    options = sandbox.state()["properties"]["leadhub_tier"]["options"]
    assert [o["value"] for o in options] == ["hot", "warm", "cold", "scorching"]
    assert sandbox.state(contact=cid)["contact"]["properties"]["leadhub_tier"] == "scorching"


def test_upsert_never_recreates_a_contact_archived_in_hubspot(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    (gone_id, gone), (_, kept) = contacts(sandbox, 2)
    assert sandbox.api("DELETE", f"/crm/v3/objects/contacts/{gone_id}").status_code == 204
    _, dest = destination(sandbox, tmp_path, mode="upsert")
    dest.prepare()
    batch = [
        WriteItem(1, None, {"leadhub_score": 61}, email=gone),
        WriteItem(2, None, {"leadhub_score": 62}, email=kept),
        WriteItem(3, None, {"leadhub_score": 63}, email="brand.new@example.org"),
    ]
    outcomes = dest.write(batch)
    assert [o.status for o in outcomes] == ["rejected", "ok", "ok"]
    assert "archived" in outcomes[0].reason
    assert sandbox.state(email=gone)["contact"] is None  # no live contact with that email
    assert sandbox.state(email=kept)["contact"]["properties"]["leadhub_score"] == "62"
    assert sandbox.state(email="brand.new@example.org")["contact"]["properties"][
        "leadhub_score"
    ] == "63"  # fmt: skip

    # `protect_archived: false` skips the look-up: HubSpot then makes a new contact.
    _, unprotected = destination(sandbox, tmp_path / "2", {"protect_archived": False},
                                 mode="upsert")  # fmt: skip
    unprotected.prepare()
    [again] = unprotected.write(batch[:1])
    assert again.status == "ok"
    recreated = sandbox.state(email=gone)["contact"]
    assert recreated is not None and recreated["id"] != gone_id


def test_the_sandbox_answers_invalid_values_with_a_207(sandbox: Sandbox) -> None:
    [_, dst] = demo_blocks(sandbox.url)
    assert dst["hubspot_scores"]["base_url"] == sandbox.url
    made = sandbox.api(
        "POST",
        "/crm/v3/properties/contacts",
        json={
            "name": "leadhub_score",
            "label": "Score",
            "type": "number",
            "fieldType": "number",
            "groupName": "contactinformation",
        },
    )
    assert made.status_code == 201
    ids = sandbox.api("GET", "/crm/v3/objects/contacts", params={"limit": 2}).json()["results"]
    answer = sandbox.api(
        "POST",
        "/crm/v3/objects/contacts/batch/update",
        json={
            "inputs": [
                {
                    "id": ids[0]["id"],
                    "properties": {"leadhub_score": "high"},
                    "objectWriteTraceId": "1",
                },
                {
                    "id": ids[1]["id"],
                    "properties": {"leadhub_score": "42"},
                    "objectWriteTraceId": "2",
                },
            ]
        },
    )
    assert answer.status_code == 207
    body = answer.json()
    assert body["numErrors"] == 1 and [r["id"] for r in body["results"]] == [ids[1]["id"]]
    [err] = body["errors"]
    assert err["category"] == "VALIDATION_ERROR" and err["context"]["objectWriteTraceId"] == ["1"]
    assert err["errors"][0]["code"] == "INVALID_NUMBER"


def test_on_qualified_creates_a_task_on_the_contact(
    store: Store, sandbox: Sandbox, tmp_path: Path
) -> None:
    contact_id = sandbox.api("GET", "/crm/v3/objects/contacts").json()["results"][0]["id"]
    _, dest = destination(sandbox, tmp_path, on_qualified={"subject": "Call {name}"})
    item = QualifiedItem(1, contact_id, 1, "ada@example.com", {"total": 90}, "Call Ada", "fit")
    [outcome] = dest.on_qualified([item])
    assert outcome.status == "ok"
    [task] = sandbox.state()["tasks"]
    assert task["contacts"] == [contact_id]
    assert task["properties"]["hs_task_subject"] == "Call Ada"
    # the documented defaults (README: priority HIGH, task_type TODO)
    assert task["properties"]["hs_task_priority"] == "HIGH"
    assert task["properties"]["hs_task_type"] == "TODO"


def test_the_sandbox_keeps_hubspots_limits_and_error_shapes() -> None:
    for sandbox in running(burst_limit=2, search_rate=1, daily_limit=4):
        search = {"filterGroups": [], "limit": 200, "after": "10000"}
        past_cap = sandbox.api("POST", "/crm/v3/objects/contacts/search", json=search)
        assert past_cap.status_code == 400 and past_cap.json()["category"] == "VALIDATION_ERROR"
        secondly = sandbox.api("POST", "/crm/v3/objects/contacts/search", json=search)
        assert secondly.status_code == 429 and secondly.json()["policyName"] == "SECONDLY"

        listed = sandbox.api("GET", "/crm/objects/2026-03/contacts", params={"limit": 1})
        assert listed.headers["X-HubSpot-RateLimit-Max"] == "2"
        assert listed.headers["X-HubSpot-RateLimit-Remaining"] == "1"
        assert sandbox.api("GET", "/crm/v3/objects/contacts").status_code == 200
        burst = sandbox.api("GET", "/crm/v3/objects/contacts")
        assert burst.status_code == 429
        assert burst.json()["policyName"] == "TEN_SECONDLY_ROLLING"
        assert burst.json()["errorType"] == "RATE_LIMIT"
        sandbox.t.now += 10  # the window has passed: the fourth call of the day goes through
        assert sandbox.api("GET", "/crm/v3/objects/contacts").status_code == 200
        daily = sandbox.api("GET", "/crm/v3/objects/contacts")
        assert daily.status_code == 429 and daily.json()["policyName"] == "DAILY"

        refused = httpx.get(
            f"{sandbox.url}/crm/v3/objects/contacts",
            headers={"Authorization": "Bearer pat-na1-nope"},
        )
        assert refused.status_code == 401
        assert refused.json()["category"] == "INVALID_AUTHENTICATION"
