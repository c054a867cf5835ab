"""The dashboard pages through the ASGI app: what a sales-ops person sees, and empty states."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from core.config import HubConfig
from core.pipeline import score as scorer
from core.records import LeadRecord
from core.store.store import Store
from core.web.app import create_app
from core.web.dashboard import column_chart, number, percent
from scoring.model import parse_models
from tests.web import seed
from tests.web.conftest import TOKEN, Client, settings

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """The pages read through the same queries as the API: SQLite is enough here."""
    return f"sqlite:///{tmp_path / 'leadhub.db'}"


def app_client(store: Store, hub: HubConfig) -> Client:
    return Client(create_app(store, hub, settings()), AUTH)


def page(client: Client, path: str, status: int = 200) -> str:
    response = client.get(path)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("text/html")
    return response.text


def test_overview_shows_tiers_charts_top_leads_and_conversion(authed: Client) -> None:
    html = page(authed, "/")
    for element in ("chart-tiers", "chart-scores", "chart-conversion", "top-leads", "channels"):
        assert f'id="{element}"' in html
    assert html.count('class="lead-row"') == 12
    assert html.count("#d7301f") >= 5  # the hot tier: its share, legend, columns, badges
    assert "Person0 Test" in html and "Request a quote, Director, Referral" in html
    assert "60%" in html  # 3 of the 5 decided leads converted


def test_lead_page_shows_ledger_history_and_outcomes(authed: Client, seeded: Store) -> None:
    lead = seeded.lead_by_email("lead4@acme.example")
    assert lead is not None
    html = page(authed, f"/leads/{lead['id']}")
    assert "Person4 Test" in html and "Pricing page" in html
    assert 'id="chart-history-default"' in html
    assert len(re.findall(r'<circle class="point"', html)) == 2
    assert ">+50<" in html and ">+5<" in html and ">55<" in html  # ledger lines and total
    assert ">won<" in html


def test_unknown_lead_is_a_404_page(authed: Client) -> None:
    assert "no lead with id 424242" in page(authed, "/leads/424242", 404)


def test_without_outcomes_conversion_waits(store: Store, tmp_path: Path) -> None:
    store.save_page(
        "crm", "leads", [LeadRecord(source="crm", external_id="1", email="a@b.io")], None
    )
    scorer.score(store, seed.models(), now=seed.NOW)
    html = page(app_client(store, seed.hub(tmp_path)), "/")
    assert "No outcomes yet" in html and 'id="chart-conversion"' not in html
    assert html.count('class="lead-row"') == 1


def test_before_scoring_the_page_says_what_to_run(store: Store, tmp_path: Path) -> None:
    store.save_page(
        "crm", "leads", [LeadRecord(source="crm", external_id="1", email="a@b.io")], None
    )
    assert "leadhub score" in page(app_client(store, seed.hub(tmp_path)), "/")


def test_without_models_the_page_says_how_to_add_one(store: Store, tmp_path: Path) -> None:
    html = page(app_client(store, HubConfig(path=tmp_path / "leadhub.yaml")), "/")
    assert "No scoring model is configured" in html


def test_lead_fields_are_escaped(store: Store, tmp_path: Path) -> None:
    record = LeadRecord(
        source="crm", external_id="1", email="x@y.io", first_name="<script>alert(1)</script>"
    )
    store.save_page("crm", "leads", [record], None)
    scorer.score(store, seed.models(), now=seed.NOW)
    html = page(app_client(store, seed.hub(tmp_path)), "/")
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html


def test_unknown_model_is_404(authed: Client) -> None:
    assert authed.get("/", params={"model": "nope"}).status_code == 404


def test_number_and_percent_as_shown() -> None:
    assert [number(v, 1) for v in (-0.04, -0.0, 0.04, -1.25, 35.0)] == [
        "0.0", "0.0", "0.0", "-1.2", "35.0",
    ]  # fmt: skip
    assert number(-0.4) == "0" and number(None) == "\u2013"
    assert [percent(v) for v in (0.0, 1 / 250, 0.005, 1 / 3, 0.996, 1.0)] == [
        "0%", "<1%", "0%", "33%", ">99%", "100%",
    ]  # fmt: skip


def test_small_shares_and_negative_averages_are_not_shown_as_0_or_minus_0(
    store: Store, tmp_path: Path
) -> None:
    """250 leads, one of them hot (0.4%: "<1%", not "0%"); the cold channel's average is
    -0.04, shown as 0, not -0."""
    model = {
        **seed.MODEL,
        "fit": {
            "rules": [
                {"name": "Director", "field": "job_title", "matches": "(?i)director", "points": 90},
                {"name": "Cold", "field": "channel", "equals": "cold", "points": -0.04},
            ]
        },
    }
    leads = [
        LeadRecord(
            source="crm",
            external_id=str(i),
            email=f"l{i}@x.io",
            job_title="Director" if i == 0 else "Analyst",
            channel="cold" if i else "referral",
        )
        for i in range(250)
    ]
    store.save_page("crm", "leads", leads, None)
    models = parse_models({"models": [model]})
    scorer.score(store, models, now=seed.NOW)
    html = page(app_client(store, HubConfig(path=tmp_path / "h.yaml", models=models)), "/")
    assert "<b>hot</b> 1 (&lt;1%)" in html
    assert "avg -0" not in html and "· avg 0</span>" in html  # the cold tier's legend
    cold = re.search(
        r"<td>cold</td>\s*<td class=\"num\">249</td>\s*<td class=\"num\">([^<]+)<", html
    )
    assert cold is not None and cold.group(1) == "0.0"


def test_edge_columns_keep_their_values_inside_the_chart() -> None:
    values = [(str(i), 1.0, "100% of 12", "#000", "") for i in range(10)]
    chart = column_chart(values, width=560)
    first, middle, last = chart.columns[0], chart.columns[4], chart.columns[-1]
    assert (first.anchor, first.value_x) == ("start", first.x)
    assert middle.anchor == "middle" and middle.value_x == middle.x + middle.width / 2
    assert (last.anchor, last.value_x) == ("end", last.x + last.width)
    assert last.value_x <= chart.width
