"""The Mailchimp destination passes the destination conformance suite against its sandbox.

The decoders are Mailchimp's documented merge-field and tag forms (shared/api/mailchimp.md;
Marketing API "List merge fields"): a `number` merge field holds a JSON number, a `text` one a
string of at most 255 characters, "" is empty; a tag is a name on the member (the tier's tag is
`tag_prefix` + tier). Mailchimp has no boolean or date-time merge type that takes a time, so the
qualified flag and its time are text: `yes`/`no` and ISO 8601.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from connectors.base.settings import DestinationSettings
from connectors.mailchimp import MailchimpDestination, MailchimpDestinationSettings
from connectors.mailchimp.sandbox.app import LIST_ID, MOUNT_PREFIX, SANDBOX_API_KEY, create_app
from connectors.mailchimp.sandbox.data import render_member
from connectors.sandbox.faults import FaultInjector
from connectors.sandbox.server import serve
from connectors.sandbox.world import World
from core.store.store import Store
from tests.conformance import destination as suite

pytestmark = pytest.mark.e2e
WORLD = World.build(seed=31, people=160)
PREFIX = "score-"


def number(raw: Any) -> float | None:
    if raw in (None, ""):
        return None
    assert isinstance(raw, (int, float)) and not isinstance(raw, bool), f"{raw!r}: not a number"
    return float(raw)


def text(raw: Any) -> str | None:
    assert isinstance(raw, str), f"{raw!r} is not a text merge value"
    return raw or None


def yes_no(raw: Any) -> bool:
    assert raw in ("yes", "no"), f"{raw!r} is neither yes nor no"
    return bool(raw == "yes")


def tier_tag(raw: Any) -> str | None:
    tiers = [t.removeprefix(PREFIX) for t in raw or [] if t.startswith(PREFIX)]
    assert len(tiers) <= 1, f"the member holds several tier tags: {raw}"
    return tiers[0] if tiers else None


class MailchimpHarness(suite.DestinationHarness):
    block: Mapping[str, Any] = {
        "connector": "mailchimp", "system": "mailchimp",
        "fields": {"total": "LSCORE", "fit": "LFIT", "engagement": "LENGAGE", "tier": "tags",
                   "grade": "LGRADE", "qualified": "LQUAL", "qualified_at": "LQUALAT",
                   "reason": "LREASON"},
    }  # fmt: skip
    decoders = {"total": number, "fit": number, "engagement": number, "tier": tier_tag,
                "grade": text, "qualified": yes_no,
                "qualified_at": lambda raw: suite.iso_datetime(text(raw)),
                "reason": text}  # fmt: skip
    reason_limit = 255  # a text merge field holds 255 characters
    gone = ("archived",)

    def __init__(self, url: str, app: Any, faults: FaultInjector) -> None:
        self.url, self.faults = url, faults
        self.audience = app.state.sandbox.audience
        members = self.audience.members.values()
        live = sorted((m for m in members if m.status == "subscribed"), key=lambda m: m.id)
        self._fresh = iter(live)
        self.http = httpx.Client(base_url=f"{url}/__sandbox")

    def destination(self, config: DestinationSettings) -> MailchimpDestination:
        block = MailchimpDestinationSettings(
            api_key=SANDBOX_API_KEY, base_url=self.url, list_id=LIST_ID, tag_prefix=PREFIX
        )
        return MailchimpDestination(config.name, block, config, sleep=lambda _: None)

    def records(self, n: int) -> list[tuple[str, str]]:
        return [(m.email.lower(), m.id) for m in itertools.islice(self._fresh, n)]

    def stored(self, record_id: str) -> Mapping[str, Any] | None:
        member = self.audience.members.get(record_id)
        if member is None:
            return None
        shown = render_member(member, LIST_ID, self.audience.tag_ids)
        return {**shown["merge_fields"], "tags": [t["name"] for t in shown["tags"]],
                "status": shown["status"]}  # fmt: skip

    def holding(self, email: str) -> int:
        return sum(1 for m in self.audience.members.values() if m.email.lower() == email.lower())

    def calls(self) -> int:
        return sum(self.http.get("/state").json()["calls"].values())

    def fail(self, kind: suite.Failure | None) -> None:
        self.faults.off() if kind is None else self.faults.configure(**{kind: 1.0})

    def refuse(self, record_id: str) -> str:
        # Permanently deleted since the last pull: an update for the address is refused.
        email = self.audience.members.pop(record_id).email
        return str(email)

    def make_gone(self, store: Store, lead_id: int, record_id: str, kind: suite.Gone) -> None:
        assert kind == "archived"
        email = self.audience.members[record_id].email
        answer = self.http.post("/members", json={"email": email, "status": "archived"})
        assert answer.json()["status"] == "archived"
        suite.mark_deleted(store, "mailchimp", record_id)  # what the next pull records


@pytest.fixture
def harness() -> Iterator[MailchimpHarness]:
    app = create_app(WORLD)
    faults = FaultInjector(app)
    with serve(Starlette(routes=[Mount(MOUNT_PREFIX, app=faults)])) as root:
        yield MailchimpHarness(root + MOUNT_PREFIX, app, faults)


def test_one_outcome_per_item_in_order(store: Store, harness: MailchimpHarness) -> None:
    suite.check_outcomes_match_the_batch(store, harness)


def test_429_and_5xx_are_retried(store: Store, harness: MailchimpHarness) -> None:
    suite.check_failures_are_retried(store, harness)


def test_every_output_type_is_stored_in_mailchimps_format(
    store: Store, harness: MailchimpHarness
) -> None:
    suite.check_encodings(store, harness)


def test_archived_members_are_never_written(store: Store, harness: MailchimpHarness) -> None:
    suite.check_gone_records_are_left_alone(store, harness, "archived")


def test_unchanged_values_make_no_calls(store: Store, harness: MailchimpHarness) -> None:
    suite.check_unchanged_values_make_no_calls(store, harness)
