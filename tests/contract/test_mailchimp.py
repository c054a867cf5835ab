"""The official `mailchimp-marketing` client (3.0.80), unchanged but for its host, against our
Mailchimp sandbox over real HTTP: every call the connector makes and the neighbours another tool
of the user's would make. Where the client and the sandbox disagree, the sandbox is wrong.

The client builds `https://server.api.mailchimp.com/3.0` and swaps `server` for the data center;
its `api_client.host` is pointed at the sandbox instead (nothing else is touched). Errors come
back as `ApiClientError` with the status and the problem+json body as text (the client parses
only `application/json`, so a problem body stays a string).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from connectors.mailchimp.sandbox.app import LIST_ID, MOUNT_PREFIX, SANDBOX_API_KEY, create_app
from connectors.mailchimp.sandbox.data import subscriber_hash
from connectors.sandbox.server import serve
from connectors.sandbox.world import World

mailchimp_marketing = pytest.importorskip("mailchimp_marketing")
ApiClientError = mailchimp_marketing.api_client.ApiClientError

pytestmark = pytest.mark.e2e
WORLD = World.build(seed=11, people=200)
CALLS: Counter[str] = Counter()  # client calls per test, reported at the end of the module


class Sandbox:
    """The sandbox served over HTTP, and its test-only endpoints."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = httpx.Client(base_url=f"{url}/__sandbox")

    def state(self, **params: Any) -> dict[str, Any]:
        answer: dict[str, Any] = self.http.get("/state", params=params).json()
        return answer

    def calls(self) -> int:
        return sum(self.state()["calls"].values())


@pytest.fixture
def sandbox(request: pytest.FixtureRequest) -> Iterator[Sandbox]:
    app = Starlette(routes=[Mount(MOUNT_PREFIX, app=create_app(WORLD))])
    with serve(app) as root:
        box = Sandbox(root + MOUNT_PREFIX)
        yield box
        CALLS[request.node.name] = box.calls()


@pytest.fixture(scope="module", autouse=True)
def report_calls() -> Iterator[None]:
    yield
    print(f"\nmailchimp-marketing calls against the sandbox: {sum(CALLS.values())} "
          f"in {len(CALLS)} tests")  # fmt: skip


def client(sandbox: Sandbox, api_key: str = SANDBOX_API_KEY) -> Any:
    made = mailchimp_marketing.Client()
    made.set_config({"api_key": api_key, "server": "us6"})
    made.api_client.host = f"{sandbox.url}/3.0"  # the only change: where the API lives
    return made


def problem(exc: pytest.ExceptionInfo[Any]) -> dict[str, Any]:
    """The problem+json body of an `ApiClientError`, checked for the documented keys."""
    body: dict[str, Any] = json.loads(exc.value.text)
    assert {"type", "title", "status", "detail", "instance"} <= set(body)
    assert body["status"] == exc.value.status_code
    return body


def emails(sandbox: Sandbox, status: str = "subscribed") -> list[str]:
    members = sandbox.state(members=1)["members"]
    return [m["email_address"] for m in members
            if m["status"] == status and "@" in m["email_address"]]  # fmt: skip


# -- reading ---------------------------------------------------------------------------------------


def test_ping_and_root(sandbox: Sandbox) -> None:
    mc = client(sandbox)
    assert mc.ping.get() == {"health_status": "Everything's Chimpy!"}
    assert mc.root.get_root(fields=["account_name", "role"]) == {
        "account_name": "Sandbox", "role": "owner"}  # fmt: skip


def test_members_page_to_the_end_with_count_and_offset(sandbox: Sandbox) -> None:
    mc = client(sandbox)
    seen: list[str] = []
    offset, total = 0, None
    while total is None or offset < total:
        page = mc.lists.get_list_members_info(
            LIST_ID, count=40, offset=offset, sort_field="last_changed", sort_dir="ASC",
            fields=["members.id", "members.email_address", "members.last_changed", "total_items"],
        )  # fmt: skip
        total = page["total_items"]
        assert set(page) == {"members", "total_items"}
        seen += [m["id"] for m in page["members"]]
        offset += 40
    everyone = sandbox.state(members=1)["members"]
    assert total == len(everyone) > 40
    assert sorted(seen) == sorted(m["id"] for m in everyone)  # each member once
    since = mc.lists.get_list_members_info(
        LIST_ID, count=1000, status="unsubscribed", since_last_changed="2000-01-01T00:00:00+00:00"
    )
    assert {m["status"] for m in since["members"]} <= {"unsubscribed"}


def test_with_the_worlds_clock_set_the_client_pages_the_members_who_had_joined(
    sandbox: Sandbox,
) -> None:
    """The demo's replay sets the world's clock: the audience pages, total included, as it
    stood then, and a member who joined later is not found by its hash."""
    everyone = sandbox.state(members=1)["members"]
    joined = sorted(datetime.fromisoformat(m["timestamp_opt"]) for m in everyone)
    clock = joined[len(joined) // 2]
    shown = sorted(m["id"] for m in everyone if datetime.fromisoformat(m["timestamp_opt"]) <= clock)
    later = next(m for m in everyone if datetime.fromisoformat(m["timestamp_opt"]) > clock)
    mc = client(sandbox)
    WORLD.clock = clock
    try:
        seen: list[str] = []
        offset, total = 0, None
        while total is None or offset < total:
            page = mc.lists.get_list_members_info(LIST_ID, count=40, offset=offset)
            total = page["total_items"]
            seen += [m["id"] for m in page["members"]]
            offset += 40
        assert total == len(shown) and sorted(seen) == shown
        with pytest.raises(ApiClientError) as refused:
            mc.lists.get_list_member(LIST_ID, later["id"])
        assert refused.value.status_code == 404
    finally:
        WORLD.clock = None
    assert mc.lists.get_list_member(LIST_ID, later["id"])["id"] == later["id"]


def test_get_a_member_by_subscriber_hash(sandbox: Sandbox) -> None:
    mc = client(sandbox)
    email = emails(sandbox)[0]
    member = mc.lists.get_list_member(LIST_ID, subscriber_hash(email))
    assert (member["id"], member["email_address"], member["status"]) == (
        subscriber_hash(email), email, "subscribed")  # fmt: skip
    with pytest.raises(ApiClientError) as missing:
        mc.lists.get_list_member(LIST_ID, subscriber_hash("nobody@example.com"))
    assert missing.value.status_code == 404
    assert problem(missing)["title"] == "Resource Not Found"


def test_campaigns_and_the_reports_the_connector_reads(sandbox: Sandbox) -> None:
    mc = client(sandbox)
    listed = mc.campaigns.list(status="sent", count=1000, sort_field="send_time", sort_dir="ASC",
                               list_id=LIST_ID)  # fmt: skip
    campaigns = listed["campaigns"]
    assert listed["total_items"] == len(campaigns) == len(sandbox.state()["campaigns"])
    sends = [c["send_time"] for c in campaigns]
    assert sends == sorted(sends)
    opens = clicks = 0
    for campaign in campaigns:
        activity = mc.reports.get_email_activity_for_campaign(campaign["id"], count=1000)
        assert activity["campaign_id"] == campaign["id"]
        actions = [a["action"] for row in activity["emails"] for a in row["activity"]]
        opens, clicks = opens + actions.count("open"), clicks + actions.count("click")
        later = mc.reports.get_email_activity_for_campaign(
            campaign["id"], count=1000, since="2999-01-01T00:00:00+00:00"
        )
        assert later["emails"] == []  # `since` keeps only events after it
        unsubscribed = mc.reports.get_unsubscribed_list_for_campaign(campaign["id"], count=1000)
        assert all(u["campaign_id"] == campaign["id"] for u in unsubscribed["unsubscribes"])
    assert opens > 0 and clicks > 0


# -- writing ---------------------------------------------------------------------------------------


def test_batch_subscribe_update_and_its_validation(sandbox: Sandbox) -> None:
    mc = client(sandbox)
    known = emails(sandbox)[0]
    body = {"members": [{"email_address": known, "status_if_new": "unsubscribed",
                         "merge_fields": {"COMPANY": "Acme"}},
                        {"email_address": "new.person@example.com", "status_if_new": "pending"}],
            "update_existing": True, "sync_tags": False}  # fmt: skip
    answer = mc.lists.batch_list_members(LIST_ID, body, skip_merge_validation=True)
    assert (answer["total_updated"], answer["total_created"], answer["error_count"]) == (1, 1, 0)
    [updated], [created] = answer["updated_members"], answer["new_members"]
    assert (updated["email_address"], updated["status"]) == (known, "subscribed")
    assert updated["merge_fields"]["COMPANY"] == "Acme"
    assert (created["email_address"], created["status"]) == ("new.person@example.com", "pending")

    # The published schema: every member needs `status` or `status_if_new`.
    bare = {"members": [{"email_address": known, "merge_fields": {}}], "update_existing": True}
    with pytest.raises(ApiClientError) as refused:
        mc.lists.batch_list_members(LIST_ID, bare)
    body400 = problem(refused)
    assert (refused.value.status_code, body400["title"]) == (400, "Invalid Resource")
    assert [e["field"] for e in body400["errors"]] == ["body members/0"]
    with pytest.raises(ApiClientError) as too_many:
        mc.lists.batch_list_members(
            LIST_ID,
            {
                "members": [
                    {"email_address": f"p{i}@example.com", "status": "subscribed"}
                    for i in range(501)
                ]
            },
        )
    assert too_many.value.status_code == 400


def test_merge_fields_list_and_create(sandbox: Sandbox) -> None:
    mc = client(sandbox)
    listed = mc.lists.get_list_merge_fields(LIST_ID, count=1000)
    tags = [f["tag"] for f in listed["merge_fields"]]
    assert {"FNAME", "LNAME", "ADDRESS", "PHONE"} <= set(tags)
    assert listed["total_items"] == len(tags)
    made = mc.lists.add_list_merge_field(LIST_ID, {"name": "Lead score", "type": "number",
                                                   "tag": "LSCORE", "required": False,
                                                   "public": False})  # fmt: skip
    assert (made["tag"], made["type"], made["list_id"]) == ("LSCORE", "number", LIST_ID)
    assert isinstance(made["merge_id"], int)
    with pytest.raises(ApiClientError) as twice:
        mc.lists.add_list_merge_field(LIST_ID, {"name": "Lead score", "type": "number",
                                                "tag": "LSCORE"})  # fmt: skip
    assert twice.value.status_code == 400 and "already exists" in problem(twice)["detail"]
    with pytest.raises(ApiClientError) as bad_type:
        mc.lists.add_list_merge_field(LIST_ID, {"name": "Score", "type": "integer"})
    assert bad_type.value.status_code == 400


def test_tags_as_static_segments_and_member_tags(sandbox: Sandbox) -> None:
    mc = client(sandbox)
    first, second, third = emails(sandbox)[:3]
    made = mc.lists.create_segment(LIST_ID, {"name": "score-hot", "static_segment": [first]})
    assert (made["name"], made["type"], made["member_count"]) == ("score-hot", "static", 1)
    moved = mc.lists.batch_segment_members(
        {"members_to_add": [second, third], "members_to_remove": [first]}, LIST_ID, made["id"]
    )
    assert (moved["total_added"], moved["total_removed"], moved["error_count"]) == (2, 1, 0)
    listed = mc.lists.list_segments(LIST_ID, type="static", count=1000)
    assert [(s["id"], s["member_count"]) for s in listed["segments"]] == [(made["id"], 2)]
    tags = mc.lists.get_list_member_tags(LIST_ID, subscriber_hash(second))
    assert [t["name"] for t in tags["tags"]] == ["score-hot"]
    answer = mc.lists.update_list_member_tags(
        LIST_ID, subscriber_hash(second),
        {"tags": [{"name": "score-hot", "status": "inactive"},
                  {"name": "score-warm", "status": "active"}], "is_syncing": False},
    )  # fmt: skip
    assert answer.status_code == 204  # no body: the client hands back the response
    tags = mc.lists.get_list_member_tags(LIST_ID, subscriber_hash(second))
    assert [t["name"] for t in tags["tags"]] == ["score-warm"]
    with pytest.raises(ApiClientError) as gone:
        mc.lists.batch_segment_members({"members_to_add": [first]}, LIST_ID, 999)
    assert gone.value.status_code == 404


def test_an_archived_member_is_archived_by_delete(sandbox: Sandbox) -> None:
    mc = client(sandbox)
    email = emails(sandbox)[0]
    mc.lists.delete_list_member(LIST_ID, subscriber_hash(email))
    assert mc.lists.get_list_member(LIST_ID, subscriber_hash(email))["status"] == "archived"


# -- errors ----------------------------------------------------------------------------------------


def test_a_wrong_key_is_401_problem_json(sandbox: Sandbox) -> None:
    with pytest.raises(ApiClientError) as refused:
        client(sandbox, api_key="ffffffffffffffffffffffffffffffff-us6").ping.get()
    assert refused.value.status_code == 401
    assert problem(refused)["title"] == "API Key Invalid"


def test_an_unknown_route_is_404_problem_json(sandbox: Sandbox) -> None:
    mc = client(sandbox)
    with pytest.raises(ApiClientError) as missing:
        mc.api_client.call_api("/lists/nowhere/at/all", "GET")
    assert problem(missing)["title"] == "Resource Not Found"
    with pytest.raises(ApiClientError) as unknown_list:
        mc.lists.get_list_members_info("not-a-list", count=10)
    assert unknown_list.value.status_code == 404 and problem(unknown_list)


def test_too_many_connections_is_429_problem_json(sandbox: Sandbox) -> None:
    fault = {"path": "/3.0/lists/*/members", "status": 429, "times": 1}
    assert sandbox.http.post("/faults", json={"faults": [fault]}).status_code == 201
    mc = client(sandbox)
    with pytest.raises(ApiClientError) as limited:
        mc.lists.get_list_members_info(LIST_ID, count=10)
    assert limited.value.status_code == 429 and problem(limited)["status"] == 429
    assert len(mc.lists.get_list_members_info(LIST_ID, count=10)["members"]) == 10


def test_a_query_outside_the_schema_is_400(sandbox: Sandbox) -> None:
    mc = client(sandbox)
    with pytest.raises(ValueError, match="less than or equal to `1000`"):
        mc.lists.get_list_members_info(LIST_ID, count=1001)  # the client's own check
    with pytest.raises(ApiClientError) as refused:
        mc.lists.get_list_members_info(LIST_ID, count=10, sort_dir="sideways")
    assert refused.value.status_code == 400 and problem(refused)["title"] == "Invalid Resource"
    with pytest.raises(ApiClientError) as bad_enum:
        mc.campaigns.list(status="delivered")
    assert bad_enum.value.status_code == 400
