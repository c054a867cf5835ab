"""The scoring commands end to end on the example hub: sync, score, leads, explain, history."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from core.cli import app

runner = CliRunner()


@pytest.fixture
def hub(tmp_path: Path, db_url: str) -> list[str]:
    assert runner.invoke(app, ["init", "--dir", str(tmp_path)]).exit_code == 0
    base = ["-c", str(tmp_path / "leadhub.yaml"), "--database-url", db_url]
    result = runner.invoke(app, [*base, "sync"])
    assert result.exit_code == 0, result.output
    return base


def run(args: list[str]) -> str:
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return result.output


def test_leads_json_ranks_scored_leads(hub: list[str]) -> None:
    assert "scored 40 lead(s)" in run([*hub, "score"])
    rows = json.loads(run([*hub, "leads", "--top", "5", "--json"]))
    assert len(rows) == 5
    assert set(rows[0]) >= {
        "email",
        "model",
        "fit",
        "engagement",
        "total",
        "tier",
        "grade",
        "qualified",
        "reason",
    }
    totals = [r["total"] for r in rows]
    assert totals == sorted(totals, reverse=True)


def test_explain_ledger_adds_up_to_the_total(hub: list[str]) -> None:
    run([*hub, "score"])
    for row in json.loads(run([*hub, "leads", "--top", "10", "--json"])):
        explained = json.loads(run([*hub, "explain", row["email"], "--json"]))
        assert sum(e["points"] for e in explained["ledger"]) == pytest.approx(explained["total"])


def test_as_of_ignores_later_activity_and_stores_nothing(hub: list[str]) -> None:
    before = json.loads(run([*hub, "leads", "--as-of", "2026-08-01", "--json"]))
    assert all(r["engagement"] == 0 for r in before)
    assert json.loads(run([*hub, "leads", "--json"]))[0]["total"] is None  # nothing scored yet


def test_model_file_change_rescores_everyone_and_unchanged_does_not(
    hub: list[str], tmp_path: Path
) -> None:
    assert "full rescore" in run([*hub, "score"])
    assert "scored 0 lead(s)" in run([*hub, "score"])
    model = tmp_path / "models.yaml"
    model.write_text(model.read_text().replace("points: 25", "points: 26", 1))
    out = run([*hub, "score"])
    assert "scored 40 lead(s) (full rescore: default)" in out


def test_history_and_unknown_email(hub: list[str]) -> None:
    run([*hub, "score"])
    top = json.loads(run([*hub, "leads", "--top", "1", "--json"]))[0]
    history = json.loads(run([*hub, "history", top["email"], "--json"]))
    assert history and history[-1]["total"] == top["total"]
    missing = runner.invoke(app, [*hub, "explain", "nobody@nowhere.test"])
    assert missing.exit_code == 2 and "no lead with email" in missing.output
