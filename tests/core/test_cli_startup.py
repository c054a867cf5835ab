"""`leadhub --help` and `leadhub leads` start without the heavy libraries.

What each command loads is read from `sys.modules` of a fresh interpreter after it ran, not
timed: the times are measured by hand (`time leadhub leads`) and reported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from typer.testing import CliRunner

from core.cli import app
from core.cli.leads import ModelView, configured_models
from core.cli.terminal import Invocation
from core.settings import Settings
from core.store import db, reader
from core.store import store as store_queries
from core.store.store import Store
from core.store.tables import Lead, Score, table, utcnow

runner = CliRunner()

# What a light command must not load: the store's ORM and migrations, the HTTP client, the
# settings library, the jobs, the web app, scikit-learn, and leadhub's own heavy modules.
HEAVY = (
    "sqlalchemy",
    "sqlmodel",
    "alembic",
    "httpx",
    "pydantic_settings",
    "dramatiq",
    "redis",
    "fastapi",
    "sklearn",
    "core.config",
    "core.store.store",
    "core.pipeline",
    "connectors",
)


def loaded_after(args: list[str], env: dict[str, str] | None = None) -> tuple[str, list[str]]:
    """Run `leadhub *args` in a fresh interpreter: its output, and the heavy modules it loaded."""
    code = (
        "import sys\n"
        "from core.cli import app\n"
        "try:\n"
        f"    app({args!r})\n"
        "except SystemExit as exit:\n"
        "    assert not exit.code, exit.code\n"
        f"heavy = {HEAVY!r}\n"
        "found = sorted(m for m in sys.modules if any(m == h or m.startswith(h + '.') "
        "for h in heavy))\n"
        "print(' '.join(found), file=sys.stderr)\n"
    )
    environ = {**os.environ, **(env or {})}
    command = [sys.executable, "-c", code]
    result = subprocess.run(command, capture_output=True, text=True, env=environ)
    assert result.returncode == 0, result.stderr
    return result.stdout, result.stderr.split()


def test_the_command_list_loads_no_heavy_module() -> None:
    output, heavy = loaded_after(["--help"])
    assert "leads" in output and "Leads ranked by score" in output
    assert heavy == []


@pytest.fixture
def scored(tmp_path: Path) -> dict[str, str]:
    """The example hub, synced and scored into SQLite; the environment that names both."""
    env = {
        "LEADHUB_CONFIG": str(tmp_path / "leadhub.yaml"),
        "LEADHUB_DATABASE_URL": f"sqlite:///{tmp_path / 'leadhub.db'}",
    }
    assert runner.invoke(app, ["init", "--dir", str(tmp_path)]).exit_code == 0
    base = ["-c", env["LEADHUB_CONFIG"], "--database-url", env["LEADHUB_DATABASE_URL"]]
    for command in ("sync", "score"):
        result = runner.invoke(app, [*base, command])
        assert result.exit_code == 0, result.output
    return env


def test_leads_loads_no_heavy_module_and_lists_what_the_store_holds(
    scored: dict[str, str],
) -> None:
    output, heavy = loaded_after(["leads", "--json"], scored)
    assert heavy == []
    store = Store(scored["LEADHUB_DATABASE_URL"])
    expected = store_queries.ranked_leads(store, "default")
    store.close()
    rows = json.loads(output)
    assert [(r["email"], r["total"], r["tier"]) for r in rows] == [
        (e["email"], e["total"], e["tier"]) for e in expected
    ]
    assert rows[0]["model"] == "default" and rows[0]["qualified"] is True
    assert rows[0]["qualified_at"].endswith("Z")  # ISO 8601 UTC, as the full path prints it


def test_leads_piped_shows_whole_emails_without_heavy_modules(scored: dict[str, str]) -> None:
    output, heavy = loaded_after(["leads", "--top", "3"], scored)
    assert heavy == []
    store = Store(scored["LEADHUB_DATABASE_URL"])
    best = store_queries.ranked_leads(store, "default", 3)
    store.close()
    assert "leads — model default" in output
    for row in best:
        assert row["email"] in output  # whole, not cut to 80 columns


def test_leads_as_of_and_a_store_to_migrate_take_the_full_path(tmp_path: Path) -> None:
    # A store one migration behind: the reader declines, the full path migrates and answers.
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = db.create_engine(url)
    db.upgrade(engine, "0003")
    engine.dispose()
    assert reader.ranked_leads(url, "default") is None
    assert runner.invoke(app, ["init", "--dir", str(tmp_path)]).exit_code == 0
    base = ["-c", str(tmp_path / "leadhub.yaml"), "--database-url", url]
    result = runner.invoke(app, [*base, "leads", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == []
    assert reader.ranked_leads(url, "default") == []  # migrated to the newest schema now
    result = runner.invoke(app, [*base, "leads", "--as-of", "2026-01-01", "--json"])
    assert result.exit_code == 0, result.output


def test_the_reader_ranks_as_the_store_does(store: Store) -> None:
    now = utcnow()
    with store.begin() as conn:
        conn.execute(
            table(Lead).insert(),
            [{"email": f"p{i}@x.com", "created_at": now, "updated_at": now} for i in range(6)],
        )
    ids = [lead["id"] for lead in store.leads()]
    score = table(Score)
    with store.begin() as conn:
        conn.execute(
            score.insert(),
            [
                {
                    "lead_id": lead_id,
                    "model": "default",
                    "model_hash": "h",
                    "total": total,
                    "tier": "hot" if total >= 50 else None,
                    "qualified": total >= 50,
                    "qualified_at": now if total >= 50 else None,
                    "computed_at": now,
                    "predictive": 0.5 if total else None,
                }
                for lead_id, total in zip(ids[:4], (10, 60, -5, 60), strict=True)
            ],
        )
    for model, top in (("default", None), ("default", 3), ("", None)):
        expected = store_queries.ranked_leads(store, model, top)
        assert reader.ranked_leads(store.url, model, top) == expected


def test_the_reader_knows_the_newest_migration() -> None:
    scripts = ScriptDirectory(str(db.MIGRATIONS))
    assert reader.schema_head() == scripts.get_current_head()


def test_a_store_not_created_yet_is_left_to_the_store(tmp_path: Path) -> None:
    assert reader.ranked_leads(f"sqlite:///{tmp_path / 'none.db'}", "default") is None
    assert not (tmp_path / "none.db").exists()


def test_the_invocation_reads_the_environment_as_the_settings_do(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for key in list(os.environ):
        if key.upper().startswith("LEADHUB_"):
            monkeypatch.delenv(key)
    defaults, settings = Invocation.from_environment(), Settings()
    assert (defaults.database_url, defaults.broker_url) == (
        settings.database_url,
        settings.broker_url,
    )
    assert (defaults.config, defaults.log_level) == (settings.config, settings.log_level)
    monkeypatch.setenv("leadhub_database_url", "sqlite:///x.db")
    monkeypatch.setenv("LEADHUB_CONFIG", "hub/leadhub.yaml")
    monkeypatch.setenv("LEADHUB_BROKER_URL", "redis://localhost/1")
    read, settings = Invocation.from_environment(), Settings()
    assert (read.database_url, read.config, read.broker_url) == (
        settings.database_url,
        settings.config,
        settings.broker_url,
    )


def test_the_light_reading_of_the_hub_file_takes_only_what_is_plain(tmp_path: Path) -> None:
    hub = tmp_path / "leadhub.yaml"
    hub.write_text(
        "scoring:\n  models:\n    - name: inbound\n      tiers: [{name: hot, min: 50, color: red},"
        " {name: cold}]\n    - name: partners\n",
        encoding="utf-8",
    )
    assert configured_models(hub) == [ModelView("inbound", {"hot": "red"}), ModelView("partners")]
    hub.write_text("scoring: ${MODEL_FILE}\n", encoding="utf-8")
    assert configured_models(hub) is None  # the full reader interpolates, and says what is unset
    hub.write_text("scoring: models.yaml\n", encoding="utf-8")
    assert configured_models(hub) is None  # no such file: the full reader names it
    hub.write_text("sources: {}\n", encoding="utf-8")
    assert configured_models(hub) == []


def test_leads_for_a_model_the_hub_file_lacks_names_the_ones_it_has(
    scored: dict[str, str],
) -> None:
    base = ["-c", scored["LEADHUB_CONFIG"], "--database-url", scored["LEADHUB_DATABASE_URL"]]
    result = runner.invoke(app, [*base, "leads", "--model", "defualt"])
    assert result.exit_code == 2
    assert "no model named 'defualt' (configured: default)" in result.output
