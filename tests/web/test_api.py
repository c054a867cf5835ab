"""The read API through the ASGI app: filters, sort, pagination, lead detail, report, OpenAPI."""

from __future__ import annotations

from typing import Any

import pytest

from core.store.store import Store
from scoring.engine import reason
from tests.web.conftest import Client


@pytest.fixture
def seeded(seeded_once: Store) -> Store:
    """The tests here only read: one seeded store per database serves them all."""
    return seeded_once


def leads(client: Client, **params: Any) -> dict[str, Any]:
    response = client.get("/api/leads", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def lead_id(store: Store, i: int) -> int:
    found = store.lead_by_email(f"lead{i}@acme.example")
    assert found is not None
    return int(found["id"])


def test_leads_best_first_with_tier_colour_and_total_count(authed: Client) -> None:
    body = leads(authed)
    assert (body["model"], body["total"], body["limit"], body["offset"]) == ("default", 12, 50, 0)
    totals = [item["total"] for item in body["items"]]
    assert totals == sorted(totals, reverse=True)
    top = body["items"][0]
    assert (top["total"], top["tier"], top["tier_color"], top["qualified"]) == (
        85,
        "hot",
        "#d7301f",
        True,
    )
    assert top["reason"].startswith("Request a quote")


@pytest.mark.parametrize(
    ("params", "count"),
    [
        ({"tier": "hot"}, 4),
        ({"tier": ["warm", "cold"]}, 8),
        ({"grade": "a1"}, 4),
        ({"grade": ["B1", "B2"]}, 2),
        ({"qualified": "true"}, 4),
        ({"qualified": "false"}, 8),
        ({"tier": "warm", "qualified": "false"}, 4),
        ({"tier": "none-such"}, 0),
        ({"q": "COMPANY 1"}, 3),  # Company 1, 10 and 11
        ({"q": "person4 test"}, 1),
        ({"q": "_"}, 0),  # a LIKE wildcard matches itself only
        ({"source": "crm"}, 12),
        ({"source": "other"}, 0),
        ({"channel": "referral"}, 6),  # the even ids
        ({"channel": "referral", "tier": "hot"}, 2),  # leads 0 and 2
    ],
)
def test_filters_narrow_the_list_and_the_count(
    authed: Client, params: dict[str, Any], count: int
) -> None:
    body = leads(authed, **params)
    assert body["total"] == len(body["items"]) == count


def test_sort_and_paginate(authed: Client) -> None:
    ascending = leads(authed, sort="total")["items"]
    assert [i["total"] for i in ascending] == sorted(i["total"] for i in ascending)
    by_email = [i["email"] for i in leads(authed, sort="email")["items"]]
    assert by_email == sorted(by_email)
    pages = [leads(authed, sort="email", limit=5, offset=o) for o in (0, 5, 10)]
    assert [len(p["items"]) for p in pages] == [5, 5, 2]
    assert all(p["total"] == 12 for p in pages)
    assert [i["email"] for p in pages for i in p["items"]] == by_email


@pytest.mark.parametrize(
    "params",
    [{"sort": "nonsense"}, {"limit": 0}, {"limit": 501}, {"offset": -1}, {"q": "x" * 201}],
)
def test_bad_parameters_are_422(authed: Client, params: dict[str, Any]) -> None:
    assert authed.get("/api/leads", params=params).status_code == 422


@pytest.mark.parametrize(
    "offset", ["10000001", "999999999999999999999", "-999999999999999999999", "1e3"]
)
def test_out_of_range_paging_is_422_naming_the_parameter(authed: Client, offset: str) -> None:
    response = authed.get("/api/leads", params={"offset": offset})
    assert response.status_code == 422
    assert "offset" in response.text


def test_the_deepest_offset_answers_an_empty_page(authed: Client) -> None:
    body = leads(authed, offset=10_000_000)
    assert (body["total"], body["items"], body["next"]) == (12, [], None)


@pytest.mark.parametrize("sort", ["-total", "total", "-fit", "engagement"])
def test_keyset_pages_follow_the_offset_pages(authed: Client, sort: str) -> None:
    everyone = [i["id"] for i in leads(authed, sort=sort)["items"]]
    walked, after = [], None
    for _ in range(10):
        params: dict[str, Any] = {"sort": sort, "limit": 5}
        if after:
            params["after"] = after
        body = leads(authed, **params)
        walked += [i["id"] for i in body["items"]]
        after = body["next"]
        if after is None:
            break
    assert walked == everyone and len(everyone) == 12


def test_keyset_pages_with_a_filter(authed: Client) -> None:
    first = leads(authed, tier="warm", sort="-total", limit=3)
    second = leads(authed, tier="warm", sort="-total", limit=3, after=first["next"])
    ids = [i["id"] for i in first["items"] + second["items"]]
    assert ids == [i["id"] for i in leads(authed, tier="warm", sort="-total")["items"]]
    assert len(ids) == 4 and second["next"] is None


@pytest.mark.parametrize(
    "params", [{"after": "s:x:1"}, {"after": "nonsense"}, {"after": "s:1:1", "sort": "email"}]
)
def test_a_bad_cursor_is_422(authed: Client, params: dict[str, Any]) -> None:
    response = authed.get("/api/leads", params=params)
    assert response.status_code == 422
    assert "after" in response.json()["detail"]


def test_unknown_model_is_404_naming_the_configured_ones(authed: Client) -> None:
    response = authed.get("/api/leads", params={"model": "other"})
    assert response.status_code == 404
    assert "configured: default" in response.json()["detail"]


def test_lead_detail_has_ledger_summing_to_total_and_history(authed: Client, seeded: Store) -> None:
    response = authed.get(f"/api/leads/{lead_id(seeded, 4)}")
    assert response.status_code == 200
    lead = response.json()
    assert (lead["email"], lead["company"], lead["channel"]) == (
        "lead4@acme.example",
        "Company 4",
        "referral",
    )
    [score] = lead["scores"]
    assert (score["model"], score["total"], score["tier"], score["grade"]) == (
        "default",
        55,
        "warm",
        "B1",
    )
    assert sum(e["points"] for e in score["ledger"]) == pytest.approx(score["total"])
    assert {e["name"] for e in score["ledger"]} >= {"Pricing page", "Referral"}
    assert [h["total"] for h in lead["history"]] == [30, 55]
    assert lead["history"][0]["computed_at"] < lead["history"][1]["computed_at"]
    assert [o["status"] for o in lead["outcomes"]] == ["won"]


def test_every_reason_shown_is_the_one_built_from_the_lead_ledger(
    authed: Client, seeded: Store
) -> None:
    """The list's reason and the lead's own are the reason built from its stored ledger. Lead 4
    (hand-computed): two pricing views, 2 x 25, and the referral's 5: "Pricing page x2,
    Referral"."""
    items = leads(authed)["items"]
    for item in items:
        [score] = authed.get(f"/api/leads/{item['id']}").json()["scores"]
        assert item["reason"] == score["reason"] == reason(score["ledger"])
    [score] = authed.get(f"/api/leads/{lead_id(seeded, 4)}").json()["scores"]
    assert score["reason"] == "Pricing page \u00d72, Referral"


def test_unknown_lead_is_404(authed: Client) -> None:
    response = authed.get("/api/leads/999999")
    assert response.status_code == 404
    assert "999999" in response.json()["detail"]


def test_report_counts_tiers_and_conversion(authed: Client) -> None:
    response = authed.get("/api/report")
    assert response.status_code == 200
    report = response.json()
    assert report["leads"] == 12
    tiers = {t["tier"]: (t["leads"], t["color"]) for t in report["tiers"]}
    assert tiers == {"hot": (4, "#d7301f"), "warm": (4, "#fc8d59"), "cold": (4, "#4575b4")}
    decided = sum(b["decided"] for b in report["conversion"])
    converted = sum(b["converted"] for b in report["conversion"])
    assert (decided, converted) == (5, 3)
    channels = {c["name"]: c["leads"] for c in report["channels"]}
    assert channels == {"referral": 6, "paid_social": 6}  # facebook_ads, stored canonical


def test_openapi_lists_the_routes_and_both_auth_schemes(client: Client) -> None:
    doc = client.get("/openapi.json").json()
    assert {"/api/leads", "/api/leads/{lead_id}", "/api/report", "/healthz", "/metrics"} <= set(
        doc["paths"]
    )
    dashboard = {"/", "/leads", "/models/{name}", "/whatif"}
    assert not dashboard & set(doc["paths"])  # the dashboard is HTML, not API
    schemes = doc["components"]["securitySchemes"]
    assert {s["scheme"] for s in schemes.values()} == {"bearer", "basic"}
    listing = doc["paths"]["/api/leads"]["get"]
    params = {p["name"] for p in listing["parameters"]}
    assert params == {
        *("model", "tier", "grade", "qualified", "q", "source", "channel"),
        *("sort", "limit", "offset", "after"),
    }
    assert listing["security"]
    item = doc["components"]["schemas"]["LeadSummary"]["properties"]
    assert {"total", "tier", "grade", "qualified", "reason"} <= set(item)


def test_openapi_says_when_the_lead_list_total_is_a_lower_bound(client: Client) -> None:
    fields = client.get("/openapi.json").json()["components"]["schemas"]["LeadList"]["properties"]
    assert fields["total_exact"]["type"] == "boolean"
    assert "lower bound" in fields["total_exact"]["description"]
    assert "total_exact" in fields["total"]["description"]


@pytest.mark.parametrize(
    ("path", "schema"),
    [
        ("/api/leads", "LeadList"),
        ("/api/leads/{lead_id}", "LeadDetail"),
        ("/api/report", "ReportOut"),
        ("/healthz", "Health"),
    ],
)
def test_openapi_names_each_response_schema(client: Client, path: str, schema: str) -> None:
    answers = client.get("/openapi.json").json()["paths"][path]["get"]["responses"]
    assert json_schema(answers["200"])["$ref"] == f"#/components/schemas/{schema}"
    if path.startswith("/api/"):
        for status in ("401", "404"):
            assert json_schema(answers[status])["$ref"] == "#/components/schemas/Problem"


def test_responses_have_exactly_the_documented_fields(authed: Client, seeded: Store) -> None:
    doc = authed.get("/openapi.json").json()
    lead = lead_id(seeded, 4)
    for path, url in [
        ("/api/leads", "/api/leads"),
        ("/api/leads/{lead_id}", f"/api/leads/{lead}"),
        ("/api/report", "/api/report"),
        ("/api/leads/{lead_id}", "/api/leads/999999"),
    ]:
        response = authed.get(url)
        documented = doc["paths"][path]["get"]["responses"][str(response.status_code)]
        assert_matches(doc, json_schema(documented), response.json(), url)


def json_schema(answer: dict[str, Any]) -> dict[str, Any]:
    schema: dict[str, Any] = answer["content"]["application/json"]["schema"]
    return schema


def assert_matches(doc: dict[str, Any], schema: dict[str, Any], value: Any, where: str) -> None:
    """`value` has the documented properties (no more, every required one), recursively."""
    if "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    options = schema.get("anyOf", [schema])
    if value is None:
        assert {"type": "null"} in options, f"{where}: null is not documented"
        return
    schema = next((o for o in options if o != {"type": "null"}), schema)
    if "$ref" in schema:
        assert_matches(doc, schema, value, where)
    elif schema.get("type") == "object" and "properties" in schema:
        assert set(value) == set(schema["properties"]), where
        assert set(schema.get("required", [])) <= set(value), where
        for key, sub in schema["properties"].items():
            assert_matches(doc, sub, value[key], f"{where}.{key}")
    elif schema.get("type") == "array":
        assert isinstance(value, list), where
        for i, element in enumerate(value):
            assert_matches(doc, schema["items"], element, f"{where}[{i}]")
