"""The worked example of docs/model.md, scored: the totals a reader computes by hand in the doc.

The model, the leads, the activities, the moment and the expected totals are all read from the
doc itself, so the doc and this test cannot drift apart: the oracle is the hand calculation the
doc shows, not the engine.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from typer.testing import CliRunner

from connectors.base.contract import SourceContext
from connectors.csv import CsvConnector, CsvSettings
from core.cli import app
from core.records import ActivityRecord, LeadRecord
from scoring import Activity, parse_models, score_lead

DOC = Path(__file__).resolve().parents[2] / "docs" / "model.md"
TEXT = DOC.read_text(encoding="utf-8")


def block(name: str) -> str:
    """The fenced block right after `<!-- worked-example: NAME -->`."""
    match = re.search(
        rf"<!-- worked-example: {re.escape(name)} -->\n```\w*\n(.*?)```", TEXT, re.DOTALL
    )
    assert match, f"docs/model.md has no worked-example block {name!r}"
    return match.group(1)


def table(name: str) -> list[dict[str, str]]:
    """The markdown table right after `<!-- worked-example: NAME -->`, as rows of cells."""
    match = re.search(rf"<!-- worked-example: {re.escape(name)} -->\n((?:\|.*\n)+)", TEXT)
    assert match, f"docs/model.md has no worked-example table {name!r}"
    header, _rule, *rows = match.group(1).strip().splitlines()
    keys = [c.strip() for c in header.strip("|").split("|")]
    return [
        dict(zip(keys, (c.strip() for c in r.strip("|").split("|")), strict=True)) for r in rows
    ]


def as_of() -> str:
    match = re.search(r"leadhub leads --as-of (\S+)", TEXT)
    assert match, "docs/model.md shows no `leadhub leads --as-of` command"
    return match.group(1)


def expected() -> dict[str, dict[str, Any]]:
    return {
        row["lead"]: {
            "fit": float(row["fit"]),
            "engagement": float(row["engagement"]),
            "total": float(row["total"]),
            "tier": row["tier"],
            "qualified": row["qualified"] == "yes",
        }
        for row in table("totals")
    }


def records(tmp_path: Path) -> tuple[list[LeadRecord], list[ActivityRecord]]:
    """The doc's CSV files read by the CSV connector, as `leadhub sync` reads them."""
    (tmp_path / "leads.csv").write_text(block("leads.csv"), encoding="utf-8")
    (tmp_path / "activities.csv").write_text(block("activities.csv"), encoding="utf-8")
    settings = CsvSettings(leads=Path("leads.csv"), activities=Path("activities.csv"))
    source = CsvConnector().source(settings, SourceContext("docs", tmp_path))
    found = [
        item for stream in source.streams() for page in stream.read(None) for item in page.items
    ]
    leads = [r for r in found if isinstance(r, LeadRecord)]
    activities = [r for r in found if isinstance(r, ActivityRecord)]
    assert len(leads) + len(activities) == len(found), "a row of the doc's CSV was quarantined"
    return leads, activities


def scores(tmp_path: Path, spec: dict[str, Any]) -> dict[str, Any]:
    [model] = parse_models(spec)
    leads, activities = records(tmp_path)
    by_lead: dict[str, list[Activity]] = defaultdict(list)
    for a in activities:
        by_lead[a.lead].append(Activity(a.type, a.occurred_at, a.properties))
    now = datetime.fromisoformat(as_of().replace("Z", "+00:00"))
    return {
        lead.email: score_lead(lead.fields(), by_lead[lead.email or ""], model, now)
        for lead in leads
    }


def test_the_engine_gives_the_totals_computed_by_hand_in_the_doc(tmp_path: Path) -> None:
    found = scores(tmp_path, yaml.safe_load(block("models.yaml")))
    assert {
        email: {
            "fit": r.fit,
            "engagement": r.engagement,
            "total": r.total,
            "tier": r.tier,
            "qualified": r.qualified,
        }
        for email, r in found.items()
    } == expected()


def test_the_min_example_floors_only_the_negative_total(tmp_path: Path) -> None:
    spec = yaml.safe_load(block("models.yaml"))
    spec["models"][0]["min"] = 0
    found = scores(tmp_path, spec)
    floored = {row["lead"]: float(row["total"]) for row in table("totals with min 0")}
    want = {lead: floored.get(lead, row["total"]) for lead, row in expected().items()}
    assert {email: r.total for email, r in found.items()} == want
    assert any(e.name == "Total min 0" for e in found["eve@echo.example"].ledger)


def test_the_doc_example_through_sync_and_leads_as_of(tmp_path: Path, db_url: str) -> None:
    """What a reader runs: the files of the doc, `leadhub check`, `sync`, `leads --as-of`."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "leads.csv").write_text(block("leads.csv"), encoding="utf-8")
    (data / "activities.csv").write_text(block("activities.csv"), encoding="utf-8")
    (tmp_path / "models.yaml").write_text(block("models.yaml"), encoding="utf-8")
    hub = tmp_path / "leadhub.yaml"
    hub.write_text(
        "sources:\n  crm_export:\n    connector: csv\n    leads: data/leads.csv\n"
        "    activities: data/activities.csv\nscoring: models.yaml\n",
        encoding="utf-8",
    )
    runner = CliRunner()
    base = ["-c", str(hub), "--database-url", db_url]
    for args in (["check"], ["sync"]):
        result = runner.invoke(app, [*base, *args])
        assert result.exit_code == 0, result.output
    result = runner.invoke(app, [*base, "leads", "--as-of", as_of(), "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    got = {
        r["email"]: {k: r[k] for k in ("fit", "engagement", "total", "tier", "qualified")}
        for r in rows
    }
    assert got == expected()
