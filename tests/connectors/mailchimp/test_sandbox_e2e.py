"""The Mailchimp connector against its sandbox over real HTTP: incremental engagement, write-back.

The sandbox is mounted under its prefix, as `leadhub sandbox` serves it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from starlette.applications import Starlette
from starlette.routing import Mount

from connectors.mailchimp import (
    MailchimpDestination,
    MailchimpDestinationSettings,
    MailchimpSource,
    MailchimpSourceSettings,
)
from connectors.mailchimp.sandbox.app import (
    LIST_ID,
    MOUNT_PREFIX,
    SANDBOX_API_KEY,
    SANDBOX_OAUTH_TOKEN,
    create_app,
)
from connectors.sandbox.conformance import Checked, recording
from connectors.sandbox.server import serve
from connectors.sandbox.world import World
from core.pipeline.outbox import DestinationSettings, push
from core.pipeline.pull import pull_source
from core.store.ingest import IDENTITY
from core.store.store import Store
from tests.writeback.conftest import set_scores

pytestmark = pytest.mark.e2e


@pytest.fixture
def refusals_expected() -> None:
    """Taken by a test that sends requests the published schema refuses, on purpose."""


@pytest.fixture(autouse=True)
def conforming_requests(request: pytest.FixtureRequest) -> Iterator[list[Checked]]:
    """Every request the sandbox saw in the test holds to the conformance table."""
    with recording() as seen:
        yield seen
    if "refusals_expected" not in request.fixturenames:
        assert [(c.method, c.path, c.problems) for c in seen if c.problems] == []


SMALL = World.build(seed=5, people=150)
LARGE = World.build(seed=3, people=3000)  # about 2,100 Mailchimp members


class Sandbox:
    def __init__(self, url: str) -> None:
        self.url = url
        self.http = httpx.Client(base_url=f"{url}/__sandbox")

    def state(self, **params: Any) -> dict[str, Any]:
        answer: dict[str, Any] = self.http.get("/state", params=params).json()
        return answer


def running(world: World, **options: Any) -> Iterator[Sandbox]:
    app = Starlette(routes=[Mount(MOUNT_PREFIX, app=create_app(world, **options))])
    with serve(app) as root:
        yield Sandbox(root + MOUNT_PREFIX)


@pytest.fixture
def small() -> Iterator[Sandbox]:
    yield from running(SMALL, latency=0.001)


@pytest.fixture
def large() -> Iterator[Sandbox]:
    yield from running(LARGE, latency=0.002)


def source(url: str, **settings: Any) -> MailchimpSource:
    block: dict[str, Any] = {"api_key": SANDBOX_API_KEY, "base_url": url, "list_ids": [LIST_ID],
                             "lookback_days": 365, **settings}  # fmt: skip
    if "access_token" in settings:
        del block["api_key"], block["base_url"]
    return MailchimpSource("mailchimp", MailchimpSourceSettings.model_validate(block),
                           now=lambda: SMALL.now, sleep=lambda _: None)  # fmt: skip


# -- source --------------------------------------------------------------------------------------


def test_a_second_sync_after_new_activity_pulls_only_the_new_events(
    store: Store, small: Sandbox
) -> None:
    first = pull_source(store, "mailchimp", source(small.url, overlap_seconds=0))
    assert first.ok, first.error
    assert first.counts.created > 100
    served = small.state()["counters"]["activity_served"]
    [one, two] = [p.email for p in SMALL.people if p.in_mailchimp and p.key not in SMALL.malformed][
        :2
    ]
    titles = [c["title"] for c in small.state()["campaigns"]]
    new = [{"email": one, "action": "open", "campaign": titles[0]},
           {"email": one, "action": "click", "campaign": titles[0], "url": "https://example.com/pricing"},
           {"email": two, "action": "open", "campaign": titles[-1]}]  # fmt: skip
    assert small.http.post("/activity", json=new).status_code == 201
    calls_before = small.state()["calls"]

    again = pull_source(store, "mailchimp", source(small.url, overlap_seconds=0))
    assert again.ok, again.error
    assert (again.counts.created, again.counts.updated) == (3, 0)
    state = small.state()
    assert state["counters"]["activity_served"] - served == 3  # only the new events came back
    key = "GET /3.0/reports/{campaign_id}/email-activity"
    assert state["calls"][key] - calls_before[key] == len(titles)  # one page per campaign
    with store.engine.connect() as conn:
        kinds = conn.execute(sa.text(
            "select type from activity where source = 'mailchimp' order by id desc limit 3"
        )).scalars().all()  # fmt: skip
    assert sorted(kinds) == ["email_clicked", "email_opened", "email_opened"]


def test_the_default_overlap_rereads_but_stores_nothing_twice(store: Store, small: Sandbox) -> None:
    assert pull_source(store, "mailchimp", source(small.url)).ok
    again = pull_source(store, "mailchimp", source(small.url))
    assert again.ok and (again.counts.created, again.counts.updated) == (0, 0)


def test_oauth_finds_the_api_through_the_metadata_endpoint(store: Store, small: Sandbox) -> None:
    oauth = source(small.url, access_token=SANDBOX_OAUTH_TOKEN,
                   metadata_url=f"{small.url}/oauth2/metadata")  # fmt: skip
    result = pull_source(store, "mailchimp", oauth)
    assert result.ok, result.error
    refused = source(small.url, access_token="revoked-token-123",
                     metadata_url=f"{small.url}/oauth2/metadata")  # fmt: skip
    failed = pull_source(store, "mailchimp", refused)
    assert failed.error and "invalid_token" in failed.error
    assert "sources.mailchimp.access_token" in failed.error


def test_a_wrong_key_names_the_setting(store: Store, small: Sandbox) -> None:
    result = pull_source(store, "mailchimp", source(small.url, api_key="ffff-us6"))
    assert result.error and "API Key Invalid" in result.error
    assert "`sources.mailchimp.api_key`" in result.error and "ffff-us6" not in result.error


def test_429_and_bodiless_403_back_off_and_the_sync_completes(store: Store) -> None:
    faults = [{"path": "/3.0/lists/*/members", "status": 429, "times": 2},
              {"path": "/3.0/reports/*/email-activity", "status": 403, "body": "empty"},
              {"path": "/3.0/campaigns", "status": 502, "body": "html"}]  # fmt: skip
    for sandbox in running(SMALL, faults=faults):
        result = pull_source(store, "mailchimp", source(sandbox.url))
        assert result.ok, result.error
        assert sandbox.state()["faults_left"] == []


# -- destination -----------------------------------------------------------------------------------


def destination(url: str, **config: Any) -> tuple[DestinationSettings, MailchimpDestination]:
    cfg = DestinationSettings.model_validate({
        "name": "mailchimp_out", "connector": "mailchimp", "system": "mailchimp",
        "fields": {"total": "LSCORE", "tier": "tags"}, **config})  # fmt: skip
    block = MailchimpDestinationSettings(api_key=SANDBOX_API_KEY, base_url=url, list_id=LIST_ID,
                                         tag_prefix="score-")  # fmt: skip
    return cfg, MailchimpDestination(cfg.name, block, cfg, sleep=lambda _: None)


def mailchimp_leads(store: Store) -> list[int]:
    with store.engine.connect() as conn:
        return list(conn.execute(
            sa.select(IDENTITY.c.lead_id).where(IDENTITY.c.system == "mailchimp")
            .order_by(IDENTITY.c.lead_id)).scalars())  # fmt: skip


SEGMENT_BATCH = "POST /3.0/lists/{list_id}/segments/{segment_id}"


def test_2000_changed_members_take_4_batch_calls_and_tags_move_by_segment(
    store: Store, large: Sandbox
) -> None:
    members = source(large.url, campaign_unsubscribes=False)
    pulled = pull_source(store, "mailchimp", members)
    assert pulled.ok, pulled.error
    leads = mailchimp_leads(store)[:2000]
    assert len(leads) == 2000
    set_scores(store, leads, 80)  # hot
    cfg, mc = destination(large.url)

    result = push(store, cfg, mc)
    assert result.ok, result.error
    assert result.accepted == 2000
    state = large.state()
    assert state["batch_sizes"] == [500, 500, 500, 500]
    assert "LSCORE" in {f["tag"] for f in state["merge_fields"]}  # prepare() created it
    assert state["rate_limited"] == 0 and state["max_in_flight"] <= 10
    calls = state["calls"]
    assert calls["POST /3.0/lists/{list_id}/segments"] == 1  # score-hot did not exist
    assert calls[SEGMENT_BATCH] == 4  # one per batch: everyone enters score-hot
    assert "POST /3.0/lists/{list_id}/members/{subscriber_hash}/tags" not in calls
    events = state["tag_events"]
    assert len(events) == 2000 and {(e["tag"], e["status"], e["via"]) for e in events} == {
        ("score-hot", "active", "segment")}  # fmt: skip

    # 1,000 members change tier: 2 batch calls and 2 segment calls per batch, not 1,000 tag calls.
    moved = leads[:1000]
    set_scores(store, moved, 20)  # hot → cold
    result = push(store, cfg, mc)
    assert result.ok and result.accepted == 1000
    state = large.state()
    assert state["batch_sizes"][4:] == [500, 500]
    assert state["calls"][SEGMENT_BATCH] - calls[SEGMENT_BATCH] == 4
    assert state["calls"]["POST /3.0/lists/{list_id}/segments"] == 2  # score-cold made once
    # The ids were read at the first push, and again only because score-cold was missing.
    assert state["calls"]["GET /3.0/lists/{list_id}/segments"] == 2
    switches = state["tag_events"][2000:]
    assert len(switches) == 2000 and {(e["tag"], e["status"]) for e in switches} == {
        ("score-cold", "active"), ("score-hot", "inactive")}  # fmt: skip
    with store.engine.connect() as conn:
        query = sa.text("select email from lead where id = :i")
        first, kept = (conn.execute(query, {"i": i}).scalar() for i in (moved[0], leads[1500]))
    member = large.state(email=first)["member"]
    assert [t["name"] for t in member["tags"]] == ["score-cold"]
    assert member["merge_fields"]["LSCORE"] == 20
    assert [t["name"] for t in large.state(email=kept)["member"]["tags"]] == ["score-hot"]


def test_tags_are_static_segments_in_the_documented_shapes(
    small: Sandbox, refusals_expected: None
) -> None:
    api = httpx.Client(base_url=f"{small.url}/3.0/lists/{LIST_ID}", auth=("any", SANDBOX_API_KEY))
    members = small.state(members=1)["members"]
    emails = [m["email_address"] for m in members if "@" in m["email_address"]][:3]
    made = api.post("/segments", json={"name": "score-hot", "static_segment": emails[:1]}).json()
    assert {k: made[k] for k in ("name", "member_count", "type", "list_id")} == {
        "name": "score-hot", "member_count": 1, "type": "static", "list_id": LIST_ID}  # fmt: skip
    body = {"members_to_add": [*emails[1:], "nobody@example.com", "not-an-email"],
            "members_to_remove": emails[:1]}  # fmt: skip
    answer = api.post(f"/segments/{made['id']}", json=body).json()
    assert (answer["total_added"], answer["total_removed"], answer["error_count"]) == (2, 1, 1)
    assert [m["email_address"] for m in answer["members_added"]] == emails[1:]
    assert answer["errors"] == [{"email_addresses": ["not-an-email"],
                                 "error": "Invalid email address"}]  # fmt: skip
    listed = api.get("/segments", params={"type": "static", "count": 1000}).json()
    assert [(s["id"], s["name"], s["member_count"]) for s in listed["segments"]] == [
        (made["id"], "score-hot", 2)]  # fmt: skip
    assert api.get("/segments", params={"type": "saved"}).json()["segments"] == []
    tags = small.state(email=emails[1])["member"]["tags"]
    assert tags == [{"id": made["id"], "name": "score-hot"}]
    too_many = api.post(f"/segments/{made['id']}", json={"members_to_add": ["a@b.co"] * 501})
    assert too_many.status_code == 400  # the published schema: at most 500 emails per list
    assert [e["field"] for e in too_many.json()["errors"]] == ["body members_to_add"]
    assert api.post("/segments/999", json={"members_to_add": emails}).status_code == 404
    twice = api.post("/segments", json={"name": "Score-Hot", "static_segment": []})
    assert twice.status_code == 400


def test_the_sandbox_refuses_an_eleventh_simultaneous_connection() -> None:
    from concurrent.futures import ThreadPoolExecutor

    for sandbox in running(SMALL, latency=1.0):
        url = f"{sandbox.url}/3.0/campaigns"

        def call(_: int, url: str = url) -> httpx.Response:
            return httpx.get(url, auth=("any", SANDBOX_API_KEY))

        with ThreadPoolExecutor(15) as pool:
            answers = list(pool.map(call, range(15)))
        limited = [a for a in answers if a.status_code == 429]
        assert limited and all(
            a.headers["content-type"] == "application/problem+json" for a in limited
        )
        assert sandbox.state()["max_in_flight"] == 10


def lead_of(store: Store, email: str) -> int:
    with store.engine.connect() as conn:
        lead: int = conn.execute(sa.text("select id from lead where email = :e"),
                                 {"e": email}).scalar_one()  # fmt: skip
    return lead


def subscribed_emails(sandbox: Sandbox, n: int) -> list[str]:
    members = sandbox.state(members=1)["members"]
    return [m["email_address"] for m in members
            if m["status"] == "subscribed" and "@" in m["email_address"]][:n]  # fmt: skip


def test_update_mode_never_resubscribes_or_re_adds_members_who_left_since_the_pull(
    store: Store, small: Sandbox
) -> None:
    assert pull_source(store, "mailchimp", source(small.url)).ok
    stays, unsubscribes, archived = subscribed_emails(small, 3)
    # After the pull: one member unsubscribes, another is archived (deleted) in Mailchimp.
    small.http.post("/members", json={"email": unsubscribes, "status": "unsubscribed"})
    small.http.post("/members", json={"email": archived, "status": "archived"})
    leads = [lead_of(store, e) for e in (stays, unsubscribes, archived)]
    set_scores(store, leads, 80)
    cfg, mc = destination(small.url, fields={"total": "LSCORE"})  # update mode, the default

    result = push(store, cfg, mc)

    assert result.error is None
    after = {e: small.state(email=e)["member"] for e in (stays, unsubscribes, archived)}
    assert after[stays]["status"] == "subscribed" and after[stays]["merge_fields"]["LSCORE"] == 80
    # The score reaches the unsubscribed member; the subscription stays as the member left it.
    assert after[unsubscribes]["status"] == "unsubscribed"
    assert after[unsubscribes]["merge_fields"]["LSCORE"] == 80
    # Mailchimp re-added the archived address as unsubscribed; the push archived it again.
    assert after[archived]["status"] == "archived"
    assert result.accepted == 2 and result.parked == 1
    [(parked, reason)] = result.rejections
    assert parked == leads[2] and "no longer a member" in reason
    calls = small.state()["calls"]
    assert calls["DELETE /3.0/lists/{list_id}/members/{subscriber_hash}"] == 1


def test_the_score_is_a_number_merge_field_and_unchanged_scores_cost_no_call(
    store: Store, small: Sandbox
) -> None:
    assert pull_source(store, "mailchimp", source(small.url)).ok
    emails = subscribed_emails(small, 5)
    leads = [lead_of(store, e) for e in emails]
    set_scores(store, leads, 64)
    cfg, mc = destination(small.url)
    assert push(store, cfg, mc).accepted == 5
    state = small.state()
    [lscore] = [f for f in state["merge_fields"] if f["tag"] == "LSCORE"]
    assert lscore["type"] == "number"
    # The sandbox refuses a non-number for a number merge field, as Mailchimp does.
    assert small.state(email=emails[0])["member"]["merge_fields"]["LSCORE"] == 64

    again = push(store, cfg, mc)
    assert again.attempted == 0
    assert sum(small.state()["calls"].values()) == sum(state["calls"].values())


def test_a_new_destination_in_the_same_process_does_not_read_the_merge_fields_again(
    store: Store, small: Sandbox
) -> None:
    assert pull_source(store, "mailchimp", source(small.url)).ok
    emails = subscribed_emails(small, 4)
    leads = [lead_of(store, e) for e in emails]
    set_scores(store, leads[:2], 50)
    cfg, first = destination(small.url)
    assert push(store, cfg, first).accepted == 2
    set_scores(store, leads[2:], 50)
    _, second = destination(small.url)  # as the push job opens one per run
    assert push(store, cfg, second).accepted == 2
    assert small.state()["calls"]["GET /3.0/lists/{list_id}/merge-fields"] == 1
