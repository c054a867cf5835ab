"""The what-if page: a pasted or uploaded model file previewed against the seeded store.

The candidate below changes two rules of the seed's model; what that does to each seeded lead
is worked out by hand (see `tests.web.seed` for the leads):

    Pricing page 25 → 40   lead 4 (referral +5, two views): 55 warm → 85 hot, newly qualified
                           leads 5, 6, 7 (one view): 25, 30, 25 → 40, 45, 40, still warm
    Request a quote 50 → 20  leads 0-3 (director +30, referral +5 on 0 and 2): 85/80 hot →
                           55/50 warm, below release_below 60: no longer qualified
    leads 8-11             unchanged, cold
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from core.store.ingest import HISTORY
from core.store.store import Store
from core.store.tables import Score, table
from core.web.app import create_app
from core.web.dashboard import MAX_MODEL_FILE
from tests.web import seed
from tests.web.conftest import TOKEN, Client, settings


def candidate() -> str:
    model: dict[str, Any] = copy.deepcopy(seed.MODEL)
    model["engagement"]["rules"][0]["points"] = 20  # Request a quote
    model["engagement"]["rules"][1]["points"] = 40  # Pricing page
    return yaml.safe_dump({"models": [model]}, sort_keys=False)


@pytest.fixture
def web(seeded_once: Store, tmp_path: Path) -> Client:
    return Client(
        create_app(seeded_once, seed.hub(tmp_path), settings()),
        {"Authorization": f"Bearer {TOKEN}"},
    )


def stored(store: Store) -> tuple[list[Any], int]:
    score = table(Score)
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(score).order_by(score.c.id)).all()
        history = conn.execute(sa.select(sa.func.count()).select_from(HISTORY)).scalar_one()
    return [tuple(r) for r in rows], int(history)


def matrix(html: str) -> dict[str, dict[str, str]]:
    """The tier-move table as {now: {after: cell}}."""
    table_html = re.search(r'<table class="moves"[^>]*>(.*?)</table>', html, re.S)
    assert table_html is not None
    head, *rows = re.findall(r"<tr>(.*?)</tr>", table_html.group(1), re.S)
    columns = re.findall(r'<th class="num">([^<]+)</th>', head)
    found = {}
    for row in rows:
        name = re.search(r'<span class="badge"[^>]*>([^<]+)</span>', row)
        assert name is not None
        cells = re.findall(r"<td[^>]*>([^<]+)</td>", row)
        found[name.group(1)] = dict(zip(columns, cells, strict=True))
    return found


def check_comparison(html: str) -> None:
    moves = matrix(html)
    assert moves["hot"] == {"hot": "0", "warm": "4", "cold": "·"}
    assert moves["warm"] == {"hot": "1", "warm": "3", "cold": "·"}
    assert moves["cold"] == {"hot": "·", "warm": "·", "cold": "4"}
    assert "5 of 12 leads change tier" in html
    assert "<b>4 → 1</b><span>qualified</span>" in html
    newly = re.search(r'<div id="newly-default">(.*?)</div>\s*<div id="dropped', html, re.S)
    assert newly is not None and re.findall(r"lead\d+@acme\.example", newly.group(1)) == [
        "lead4@acme.example"
    ]
    dropped = html[html.index('id="dropped-default"') :]
    assert sorted(set(re.findall(r"lead\d+@acme\.example", dropped))) == [
        f"lead{i}@acme.example" for i in range(4)
    ]
    rules = {
        m[0]: m[1:]
        for m in re.findall(
            r'<tr class="rule-use"><td>([^<]+?) <span.*?</td>\s*'
            r'<td class="num">(\d+)</td>\s*<td class="num[^"]*">(\d+)</td>\s*'
            r'<td class="num">([^<]+)</td>\s*<td class="num">([^<]+)</td>',
            html,
            re.S,
        )
    }
    # leads now, after, points now, after: 5 pricing views and 4 quote requests in all
    assert rules["Pricing page"] == ("4", "4", "+125", "+200")
    assert rules["Request a quote"] == ("4", "4", "+200", "+80")
    assert rules["Director"] == ("4", "4", "+120", "+120")
    # Conversion: decided leads 0, 1 (won), 4 (won), 8, 9 (lost), scored just before closing.
    assert 'id="conversion-default"' in html


def test_pasted_model_shows_the_comparison_and_writes_nothing(
    seeded_once: Store, web: Client
) -> None:
    before = stored(seeded_once)
    form = web.get("/whatif")
    assert form.status_code == 200 and 'id="whatif-form"' in form.text
    response = web.request("POST", "/whatif", data={"model": candidate()})
    assert response.status_code == 200, response.text
    check_comparison(response.text)
    assert stored(seeded_once) == before


def test_uploaded_model_file_gives_the_same_comparison(seeded_once: Store, web: Client) -> None:
    before = stored(seeded_once)
    files = {"file": ("candidate.yaml", candidate().encode(), "application/yaml")}
    response = web.request("POST", "/whatif", files=files, data={"model": ""})
    assert response.status_code == 200, response.text
    check_comparison(response.text)
    assert stored(seeded_once) == before


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "paste a model file"),
        ("models: [", "invalid YAML"),
        (
            "models:\n  - name: default\n    fit:\n      rules:\n"
            "        - {name: Big, field: job_title, equals: x, points: lots}\n",
            "Big",
        ),
    ],
)
def test_a_model_file_that_does_not_work_comes_back_with_its_problems(
    web: Client, text: str, problem: str
) -> None:
    response = web.request("POST", "/whatif", data={"model": text})
    assert response.status_code == 422
    assert 'id="problems"' in response.text and problem in response.text


def test_oversized_or_non_form_posts_are_refused(web: Client) -> None:
    big = web.request("POST", "/whatif", data={"model": "x" * (MAX_MODEL_FILE + 1)})
    assert big.status_code == 413
    json_body = web.request("POST", "/whatif", json={"model": candidate()})
    assert json_body.status_code == 415
