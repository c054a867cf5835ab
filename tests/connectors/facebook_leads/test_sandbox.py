"""End to end over real HTTP: the source against the Graph sandbox (conformance, throttling,
auth, filtering), and a lead submitted in the sandbox, delivered as a signed webhook, fetched,
stored, scored and pushed to a CRM."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from connectors.facebook_leads import FacebookLeadsSource
from connectors.facebook_leads.sandbox.app import (
    ACCESS_TOKEN,
    APP_SECRET,
    MOUNT_PREFIX,
    Fault,
    GraphSandbox,
    create_app,
)
from connectors.facebook_leads.sandbox.world import PAGE_ID, PLANS, deliver, leadgen_delivery
from connectors.facebook_leads.settings import FacebookLeadsSettings
from connectors.facebook_leads.webhook import WEBHOOK_PATH, WebhookReceiver
from connectors.sandbox.conformance import recording
from connectors.sandbox.server import serve
from connectors.sandbox.world import World
from core.pipeline.pull import pull_source
from core.store.store import Store
from tests.conformance.suite import SourceCase, check_source
from tests.connectors.facebook_leads.hub import wired

pytestmark = pytest.mark.e2e
WORLD = World.build(seed=7, people=200)
FB_PEOPLE = [p for p in WORLD.people if p.in_facebook]
BROKEN = [k for k in WORLD.malformed if WORLD.people[k].in_facebook]


@pytest.fixture(autouse=True)
def conforming_requests() -> Iterator[None]:
    """Every Graph request of these tests must fit the SDK's operation table."""
    with recording() as seen:
        yield
    assert [c for c in seen if c.vendor == "facebook_leads" and c.problems] == []


@contextmanager
def sandbox(**options: Any) -> Iterator[tuple[str, GraphSandbox]]:
    """The sandbox mounted under its prefix, as `leadhub sandbox` serves it; yields base_url."""
    app = create_app(WORLD, **options)
    with serve(Starlette(routes=[Mount(MOUNT_PREFIX, app=app)])) as url:
        yield url + MOUNT_PREFIX, app.state.sandbox


def block(base_url: str, **overrides: Any) -> FacebookLeadsSettings:
    values: dict[str, Any] = {
        "page_id": PAGE_ID, "access_token": ACCESS_TOKEN, "app_secret": APP_SECRET,
        "verify_token": "v-token", "base_url": base_url, "page_size": 10,
        "fields": {"number_of_employees": "company_size",
                   "which_plan_interests_you?": "product_interest"},
        **overrides,
    }  # fmt: skip
    return FacebookLeadsSettings.model_validate(values)


def source(
    base_url: str, waits: list[float] | None = None, **overrides: Any
) -> FacebookLeadsSource:
    sleep = waits.append if waits is not None else (lambda _: None)
    return FacebookLeadsSource("fb", block(base_url, **overrides), sleep=sleep)


def test_the_source_passes_the_conformance_suite_against_the_sandbox(store: Store) -> None:
    assert BROKEN, "the world should hold a malformed Facebook person"
    with sandbox(empty_pages=True, require_proof=True) as (url, graph):
        case = SourceCase(
            name="fb",
            make_source=lambda: source(url),
            cursor_order=lambda cursor: sum(cursor["forms"].values()),
            expect_quarantined=len(BROKEN),
        )
        check_source(store, case)
        assert graph.filters_ignored == 0
    assert store.count("lead") == len(FB_PEOPLE) - len(BROKEN)
    # A demo-form lead: its custom questions were mapped onto lead fields by `fields:`.
    person = next(p for p in FB_PEOPLE if p.key % 7 and p.key % 2 == 0 and p.key not in BROKEN)
    lead = store.lead_by_email(person.email)
    assert lead is not None
    assert lead["company_size"] == person.company.size
    assert lead["product_interest"] == PLANS[person.product_interest]


def test_a_throttled_read_waits_for_the_regain_time_and_then_completes(store: Store) -> None:
    fault = Fault(code=80005, match="/leads", regain_minutes=2)
    with sandbox(faults=[fault]) as (url, graph):
        waits: list[float] = []
        result = pull_source(store, "fb", source(url, waits))

        assert result.ok, result.error
        assert 120.0 in waits and graph.throttled == 1
        assert store.count("lead") == len(FB_PEOPLE) - len(BROKEN)


def test_over_the_rate_limit_the_sandbox_answers_80005_and_a_long_wait_fails_the_run(
    store: Store,
) -> None:
    with sandbox(rate_limit=3, rate_window=600) as (url, graph):
        result = pull_source(store, "fb", source(url, max_wait_seconds=30))
        raw = httpx.get(f"{url}/v25.0/{PAGE_ID}", params={"access_token": ACCESS_TOKEN})

    assert not result.ok and "(Graph error 80005)" in (result.error or "")
    assert raw.status_code == 400 and raw.json()["error"]["code"] == 80005
    usage = json.loads(raw.headers["X-Business-Use-Case-Usage"])[PAGE_ID][0]
    assert usage["estimated_time_to_regain_access"] >= 1 and graph.throttled >= 2


def test_a_5xx_from_the_sandbox_is_retried(store: Store) -> None:
    with sandbox(faults=[Fault(code=2, status=500, match="/leadgen_forms", times=2)]) as (url, _):
        assert pull_source(store, "fb", source(url)).ok


@pytest.mark.parametrize(
    ("options", "overrides", "expected"),
    [
        ({}, {"access_token": "expired-token"}, "sources.fb.access_token"),
        ({"require_proof": True}, {"app_secret": None}, "Graph error 100"),
        ({}, {"app_secret": "not-the-app-secret"}, "sources.fb.app_secret"),
    ],
)
def test_refused_credentials_fail_the_run_with_a_message_naming_the_setting(
    store: Store, options: dict[str, Any], overrides: dict[str, Any], expected: str
) -> None:
    with sandbox(**options) as (url, _):
        result = pull_source(store, "fb", source(url, **overrides))

    assert not result.ok and expected in (result.error or "")
    assert "expired-token" not in (result.error or "") and store.count("lead") == 0


def test_the_sandbox_ignores_a_filter_on_an_iso_date_as_meta_does() -> None:
    form = "7000000000001"
    with sandbox() as (url, graph):
        params: dict[str, Any] = {"access_token": ACCESS_TOKEN, "limit": 500}
        everything = httpx.get(f"{url}/v25.0/{form}/leads", params=params).json()["data"]
        iso = [{"field": "time_created", "operator": "GREATER_THAN", "value": "2026-10-01"}]
        ignored = httpx.get(
            f"{url}/v25.0/{form}/leads", params={**params, "filtering": json.dumps(iso)}
        ).json()["data"]

        assert ignored == everything and graph.filters_ignored == 1
        assert set(everything[0]) == {"id", "created_time"}  # Graph's default fields


def test_a_new_lead_is_read_by_the_next_incremental_pull(store: Store) -> None:
    with sandbox() as (url, graph):
        assert pull_source(store, "fb", source(url)).ok
        person = next(p for p in WORLD.people if not p.in_facebook)
        graph.submit(person.key)
        calls = len(graph.calls)

        again = pull_source(store, "fb", source(url))

        assert again.ok and store.lead_by_email(person.email) is not None
        filtered = [c for c in graph.calls[calls:] if c["path"].endswith("/leads")]
        assert filtered and all("filtering" in c["query"] for c in filtered)


def test_a_lead_delivered_by_webhook_lands_scored_in_the_crm(store: Store) -> None:
    handle, crm = wired(store)
    person = next(p for p in WORLD.people if not p.in_facebook)
    with sandbox() as (url, graph):
        fb = source(url)
        receiver = WebhookReceiver(fb, handle)
        with serve(receiver.app()) as hub:
            answer = httpx.post(
                f"{url}/__sandbox/leads",
                json={"person": person.key, "deliver_to": hub + WEBHOOK_PATH},
            )
            assert answer.status_code == 201 and answer.json()["delivered"] == 200
            assert receiver.wait_idle(10)
            forged = leadgen_delivery(PAGE_ID, [graph.leads[-1]])
            assert deliver(hub + WEBHOOK_PATH, forged, "not-the-app-secret").status_code == 403
            assert deliver(hub + WEBHOOK_PATH, forged, APP_SECRET).status_code == 200  # a retry

    [record] = crm.records.values()
    assert record["email"] == person.email and record["lead_score"] == 70.0
    assert receiver.stats.duplicates == 1 and receiver.stats.rejected == 1
    assert store.count("lead") == 1
