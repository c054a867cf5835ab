"""The lead list, the model page and the lead timeline through the ASGI app, on SQLite and
PostgreSQL (search, the ledger aggregates and paging are SQL of each dialect).

The expected leads come from the seed's definition (`tests.web.seed`), worked out here by hand
or by plain Python over the seed's fields, never through the code under test.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from core.store.store import Store
from core.web.app import create_app
from tests.web import seed
from tests.web.conftest import TOKEN, Client, settings

EMAILS = [f"lead{i}@acme.example" for i in range(12)]
HOT = {f"lead{i}@acme.example" for i in range(4)}  # directors with a quote request: 80 or 85


@pytest.fixture
def web(seeded_once: Store, tmp_path: Path) -> Client:
    return Client(
        create_app(seeded_once, seed.hub(tmp_path), settings()),
        {"Authorization": f"Bearer {TOKEN}"},
    )


def listed(web: Client, params: dict[str, str | list[str]]) -> tuple[list[str], str]:
    """The emails of the rows on a /leads page, in order, and the page."""
    response = web.get("/leads", params=params)
    assert response.status_code == 200, response.text
    html = response.text
    rows = re.findall(r'<tr class="lead-row">(.*?)</tr>', html, re.S)
    return [re.search(r"lead\d+@acme\.example", r).group(0) for r in rows], html  # type: ignore[union-attr]


def test_search_matches_email_name_and_company_in_any_case(web: Client) -> None:
    by_company = [e for i, e in enumerate(EMAILS) if "company 1" in f"Company {i}".lower()]
    found, _ = listed(web, {"q": "COMPANY 1"})
    assert sorted(found) == sorted(by_company) and len(by_company) == 3  # 1, 10 and 11
    found, _ = listed(web, {"q": "person7 test"})  # first and last name together
    assert found == ["lead7@acme.example"]
    found, _ = listed(web, {"q": "lead11@"})
    assert found == ["lead11@acme.example"]
    found, html = listed(web, {"q": "nobody%"})  # a LIKE wildcard is matched literally
    assert found == [] and "No lead matches" in html


def test_filters_by_tier_grade_qualified_source_and_channel(web: Client) -> None:
    assert set(listed(web, {"tier": "hot"})[0]) == HOT
    assert set(listed(web, {"grade": "a1"})[0]) == HOT  # fit ≥ 30 and engagement ≥ 50
    assert set(listed(web, {"qualified": "yes"})[0]) == HOT
    assert set(listed(web, {"qualified": "no"})[0]) == set(EMAILS) - HOT
    assert len(listed(web, {"source": "crm"})[0]) == 12
    assert listed(web, {"source": "elsewhere"})[0] == []
    referral = {e for i, e in enumerate(EMAILS) if i % 2 == 0}
    assert set(listed(web, {"channel": "referral"})[0]) == referral
    both = listed(web, {"channel": "referral", "tier": ["hot", "warm"]})[0]
    warm = {f"lead{i}@acme.example" for i in range(4, 8)}  # a pricing view or two: 25 to 55
    assert set(both) == referral & (HOT | warm)
    found, html = listed(web, {"tier": "", "grade": "", "q": ""})  # the form's "any"
    assert len(found) == 12 and "12 leads" in html


def test_sorting_and_paging_keep_the_other_parameters(web: Client) -> None:
    by_email = sorted(EMAILS)
    page2, html = listed(web, {"sort": "email", "order": "asc", "size": "5", "page": "2"})
    assert page2 == by_email[5:10]
    assert "page 2 of 3" in html and "6\u201310" in html
    last, _ = listed(web, {"sort": "email", "order": "asc", "size": "5", "page": "3"})
    assert last == by_email[10:]
    desc, _ = listed(web, {"sort": "email", "order": "desc", "size": "5"})
    assert desc == by_email[::-1][:5]
    scores, _ = listed(web, {"sort": "score", "order": "desc"})
    assert set(scores[:4]) == HOT

    _, html = listed(web, {"channel": "referral", "size": "2", "q": "test"})
    following = re.search(r'<a rel="next" href="([^"]+)"', html)
    assert following is not None
    params = parse_qs(urlsplit(following.group(1).replace("&amp;", "&")).query)
    assert params["page"] == ["2"] and params["channel"] == ["referral"]
    assert params["size"] == ["2"] and params["q"] == ["test"]


@pytest.mark.parametrize(
    "params",
    [
        {"page": "2"},  # 12 leads fit on the first page of 25
        {"page": str(10**12)},
        {"page": "0"},
        {"page": "x"},
        {"size": "100000"},
        {"sort": "password"},
        {"order": "sideways"},
        {"tier": "lukewarm"},
        {"grade": "Z9"},
        {"qualified": "maybe"},
        {"q": "x" * 201},
        {"model": "nope"},
    ],
)
def test_bad_or_out_of_range_parameters_answer_4xx_not_500(
    web: Client, params: dict[str, str]
) -> None:
    response = web.get("/leads", params=params)
    assert response.status_code == (404 if "model" in params else 422), response.text


def test_page_two_of_the_default_page_size(seeded_once: Store, web: Client) -> None:
    """Page 2 exists once there are more leads than a page holds: 12 leads, pages of 5."""
    found, html = listed(web, {"page": "2", "size": "5"})
    assert len(found) == 5 and "page 2 of 3" in html


def test_model_page_counts_rule_firings_and_points_from_the_seed(web: Client) -> None:
    response = web.get("/models/default")
    assert response.status_code == 200, response.text
    rows = {}
    for row in re.findall(r'<tr class="rule-row">(.*?)</tr>', response.text, re.S):
        name = re.search(r"<td>([^<]+)<div", row)
        assert name is not None
        cells = re.findall(r'<td class="num[^"]*">([^<]*)</td>', row)
        rows[name.group(1).strip()] = cells
    # points, leads fired for, matches, points awarded
    assert rows["Director"] == ["+30", "4", "4", "+120"]  # leads 0-3
    assert rows["Referral"] == ["+5", "6", "6", "+30"]  # even ids
    assert rows["Request a quote"] == ["+50", "4", "4", "+200"]
    assert rows["Pricing page"] == ["+25", "4", "5", "+125"]  # lead 4 viewed pricing twice
    tiers = re.findall(
        r'<span class="badge"[^>]*>(\w+)</span></td>\s*<td class="num">[^<]*</td>\s*'
        r'<td class="num">(\d+)</td>',
        response.text,
    )
    assert tiers == [("hot", "4"), ("warm", "4"), ("cold", "4")]
    assert "total ≥ 70" in response.text and "released below 60" in response.text
    assert web.get("/models/nope").status_code == 404


def test_lead_timeline_is_newest_first_with_properties_and_rule_points(
    seeded_once: Store, web: Client
) -> None:
    lead = seeded_once.lead_by_email("lead4@acme.example")
    assert lead is not None
    html = web.get(f"/leads/{lead['id']}").text
    moments = re.findall(r'<li class="moment">(.*?)</li>', html, re.S)
    assert len(moments) == 2
    stamps = [re.search(r"<time>([^<]+)</time>", m).group(1) for m in moments]  # type: ignore[union-attr]
    assert stamps == [
        f"{seed.NOW:%Y-%m-%d %H:%M}",
        f"{seed.NOW - timedelta(days=2):%Y-%m-%d %H:%M}",
    ]
    for m in moments:
        assert "page_viewed" in m and "url: /pricing" in m and "Pricing page +25" in m
