"""`leadhub demo` on a fresh directory: sandboxes up, pulled, scored, pushed, ranked."""

from __future__ import annotations

import json
from pathlib import Path

import sqlalchemy as sa
from typer.testing import CliRunner

from core.cli import app

runner = CliRunner()


def test_demo_runs_the_whole_loop_against_the_sandboxes(tmp_path: Path) -> None:
    result = runner.invoke(app, ["demo", "--dir", str(tmp_path), "--port", "0", "--people", "120"])
    assert result.exit_code == 0, result.output
    for vendor in ("hubspot", "salesforce", "facebook", "mailchimp"):
        assert f"pulled {vendor}" in result.output
    assert "leads — model default" in result.output
    # the CRM and email records themselves now carry the scores leadhub wrote
    assert "what landed on the sandbox records" in result.output
    assert "leadhub_score=" in result.output and "LSCORE=" in result.output
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'leadhub.db'}")
    with engine.connect() as conn:
        scored = conn.execute(sa.text("SELECT count(*) FROM score")).scalar_one()
        sent = conn.execute(sa.text("SELECT count(*) FROM outbox WHERE state = 'sent'")).scalar()
        leads = conn.execute(sa.text("SELECT count(*) FROM lead")).scalar_one()
    engine.dispose()
    assert leads > 50 and scored == leads
    assert sent and sent > 0  # scores landed on the sandbox CRM records
    # the hub file it wrote is valid and the store answers the next commands it suggests
    base = ["-c", str(tmp_path / "leadhub.yaml"), "--database-url",
            f"sqlite:///{tmp_path / 'leadhub.db'}"]  # fmt: skip
    assert runner.invoke(app, [*base, "check"]).exit_code == 0
    top = json.loads(runner.invoke(app, [*base, "leads", "--top", "3", "--json"]).stdout)
    assert len(top) == 3 and top[0]["total"] >= top[2]["total"]
