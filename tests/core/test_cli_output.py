"""What the command line prints: `check` naming each key, one-line errors for a store or broker
that cannot be used, output for pipes and files, ISO 8601 times, and `explain`'s details."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner, Result

from core.cli import app

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
LONG_EMAIL = "ivo.bergstrom-lindqvist.procurement@a-rather-long-company-name.example"


def leadhub(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`leadhub ARGS` in a fresh process whose stdout is a pipe, as in `leadhub … | cat`."""
    environ = {
        k: v for k, v in os.environ.items() if k != "COLUMNS" and not k.startswith("LEADHUB_")
    }
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, "-c", "from core.cli import app; app()", *args],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )


def hub_dir(tmp_path: Path, model: str | None = None, hub_extra: str = "") -> Path:
    (tmp_path / "leads.csv").write_text(
        f"email,job_title,company_size\n{LONG_EMAIL},Director of Procurement,500\n",
        encoding="utf-8",
    )
    (tmp_path / "activities.csv").write_text(
        f"lead,type,occurred_at\n{LONG_EMAIL},webinar_attended,2026-01-01T00:00:00Z\n",
        encoding="utf-8",
    )
    (tmp_path / "models.yaml").write_text(
        model
        or "models:\n  - name: default\n    fit:\n      rules:\n"
        "        - {name: Director, field: job_title, contains: director, points: 20}\n"
        "    engagement:\n      rules:\n"
        "        - {name: Webinar, event: webinar_attended, points: 15}\n"
        "      decay:\n        inactivity: [{days: 30, minus: 5}, {days: 90, minus: 50}]\n"
        "    tiers: [{name: hot, min: 15}, {name: cold}]\n"
        "    qualified: {total: 15}\n",
        encoding="utf-8",
    )
    (tmp_path / "leadhub.yaml").write_text(
        "sources:\n  crm:\n    connector: csv\n    leads: leads.csv\n"
        f"    activities: activities.csv\nscoring: models.yaml\n{hub_extra}",
        encoding="utf-8",
    )
    return tmp_path


def invoke(tmp_path: Path, *args: str) -> Result:
    db = f"sqlite:///{tmp_path / 'leadhub.db'}"
    return runner.invoke(app, ["-c", str(tmp_path / "leadhub.yaml"), "--database-url", db, *args])


# -- check ----------------------------------------------------------------------------------------


BAD_MODELS = {
    "unknown event": (
        "- {name: Webinar, event: webinar_atended, points: 15}",
        "models[0].engagement.rules[0] (Webinar).event",
        "did you mean 'webinar_attended'?",
    ),
    "unknown field": (
        "- {name: Webinar, event: webinar_attended, points: 15}\n    fit:\n      rules:\n"
        "        - {name: Size, field: compnay_size, gt: 100, points: 10}",
        "models[0].fit.rules[0] (Size).field",
        "did you mean 'company_size'?",
    ),
    "negative cap": (
        "- {name: Webinar, event: webinar_attended, points: 15}\n      max: -10",
        "models[0].engagement.max",
        "-10 is below zero",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_MODELS))
def test_check_exits_2_naming_the_key_of_a_model_that_does_nothing_or_harm(
    tmp_path: Path, case: str
) -> None:
    rule, key, hint = BAD_MODELS[case]
    model = f"models:\n  - name: default\n    engagement:\n      rules:\n        {rule}\n"
    hub_dir(tmp_path, model)
    result = invoke(tmp_path, "check")
    assert result.exit_code == 2, result.output
    assert f"models.yaml: {key}: " in result.output and hint in result.output


def test_check_json_lists_every_problem_with_its_key(tmp_path: Path) -> None:
    model = (
        "models:\n  - name: default\n    tiers: [{name: warm, min: 10}]\n"
        "    engagement:\n      rules:\n        - {name: W, event: webinar_atended, points: 5}\n"
    )
    hub_dir(tmp_path, model)
    (tmp_path / "leads.csv").unlink()
    result = invoke(tmp_path, "check", "--json")
    assert result.exit_code == 2
    report = json.loads(result.output)
    assert report["ok"] is False
    keys = {(p["file"], p["key"]) for p in report["problems"] if p["severity"] == "error"}
    models = str(tmp_path / "models.yaml")
    assert keys == {
        (None, "sources.crm.leads"),
        (models, "models[0].tiers[0] (warm).min"),
        (models, "models[0].engagement.rules[0] (W).event"),
    }


def test_check_json_of_a_misspelt_hub_file_names_the_key_and_suggests(tmp_path: Path) -> None:
    hub_dir(tmp_path)
    (tmp_path / "leadhub.yaml").write_text(
        "sorces: {}\nsources:\n  crm:\n    conector: csv\n    leads: leads.csv\n",
        encoding="utf-8",
    )
    result = invoke(tmp_path, "check", "--json")
    assert result.exit_code == 2
    problems = {p["key"]: p["message"] for p in json.loads(result.output)["problems"]}
    assert problems == {
        "sorces": "unknown section (did you mean 'sources'?)",
        "sources.crm.conector": "unknown key (did you mean 'connector'?)",
    }


def test_check_ok_on_a_sound_hub(tmp_path: Path) -> None:
    hub_dir(tmp_path)
    result = invoke(tmp_path, "check", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["ok"] is True


# -- one-line errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("postgresql://leadhub:s3cret@127.0.0.1:1/leadhub", 1),  # nothing listens on port 1
        ("sqlite:////nonexistent-dir/sub/leadhub.db", 1),
        ("postgress://127.0.0.1/leadhub", 2),  # misspelt scheme
        ("leadhub.db", 2),  # not a URL at all
    ],
)
def test_a_store_that_cannot_be_used_is_one_line_naming_the_setting(
    tmp_path: Path, url: str, code: int
) -> None:
    hub_dir(tmp_path)
    result = leadhub("--database-url", url, "leads", cwd=tmp_path)
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "LEADHUB_DATABASE_URL" in lines[0] and "--database-url" in lines[0]
    assert "Traceback" not in result.stderr and "s3cret" not in result.stderr


def test_an_unreachable_broker_is_one_line_naming_the_setting(tmp_path: Path) -> None:
    hub_dir(tmp_path)
    db = f"sqlite:///{tmp_path / 'leadhub.db'}"
    env = {"LEADHUB_BROKER_URL": "redis://127.0.0.1:1/8", "LEADHUB_DATABASE_URL": db}
    result = leadhub("dlq", cwd=tmp_path, env=env)
    assert result.returncode == 1, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "LEADHUB_BROKER_URL" in result.stderr and "Traceback" not in result.stderr
    bad_scheme = leadhub("dlq", cwd=tmp_path, env={**env, "LEADHUB_BROKER_URL": "amqp://x"})
    assert bad_scheme.returncode == 2 and "LEADHUB_BROKER_URL" in bad_scheme.stderr


def test_status_without_a_broker_does_not_mention_one(tmp_path: Path) -> None:
    hub_dir(tmp_path)
    assert invoke(tmp_path, "sync").exit_code == 0
    result = invoke(tmp_path, "status")
    assert result.exit_code == 0, result.output
    assert "broker" not in result.output


# -- output for pipes, JSON, times ----------------------------------------------------------------


def test_leads_piped_shows_whole_emails(tmp_path: Path) -> None:
    hub_dir(tmp_path)
    db = f"sqlite:///{tmp_path / 'leadhub.db'}"
    for command in ("sync", "score"):
        assert leadhub("--database-url", db, command, cwd=tmp_path).returncode == 0
    result = leadhub("--database-url", db, "leads", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert LONG_EMAIL in result.stdout
    assert "…" not in result.stdout


def test_a_piped_preview_has_a_title_line_not_a_rule_as_wide_as_the_pipe(tmp_path: Path) -> None:
    # Piped, the console is as wide as a table needs; a rule would be a 100,000-character line.
    hub_dir(tmp_path)
    db = f"sqlite:///{tmp_path / 'leadhub.db'}"
    for command in ("sync", "score"):
        assert leadhub("--database-url", db, command, cwd=tmp_path).returncode == 0
    result = leadhub("--database-url", db, "preview", "models.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "default: candidate against the stored scores"
    assert max(len(line) for line in lines) < 200


def test_every_json_option_is_described() -> None:
    def walk(command: Any, path: str) -> list[tuple[str, str | None]]:
        found = [
            (path, getattr(p, "help", None))
            for p in command.params
            if "--json" in getattr(p, "opts", ())
        ]
        if hasattr(command, "list_commands"):  # a group: its commands, built as when run
            ctx = typer.Context(command)
            for name in command.list_commands(ctx):
                found += walk(command.get_command(ctx, name), f"{path} {name}")
        return found

    options = walk(typer.main.get_command(app), "leadhub")
    assert len(options) >= 12
    assert [path for path, text in options if not text] == []


def test_times_are_iso_8601_with_t_and_z(tmp_path: Path) -> None:
    hub_dir(tmp_path)
    assert invoke(tmp_path, "sync").exit_code == 0
    assert invoke(tmp_path, "score").exit_code == 0
    status = json.loads(invoke(tmp_path, "status", "--json").output)
    stamps = [t["last_run"] for t in status["targets"] if t["last_run"]]
    assert stamps and all(ISO.match(s) for s in stamps), stamps
    table = invoke(tmp_path, "status").output
    assert re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", table), table
    history = json.loads(invoke(tmp_path, "history", LONG_EMAIL, "--json").output)
    assert all(ISO.match(h["computed_at"]) for h in history)


# -- explain --------------------------------------------------------------------------------------


def test_explain_reports_when_the_lead_qualified_not_the_current_time(tmp_path: Path) -> None:
    hub_dir(tmp_path)
    assert invoke(tmp_path, "sync").exit_code == 0
    assert invoke(tmp_path, "score").exit_code == 0
    scored_by = datetime.now(UTC)
    explained = json.loads(invoke(tmp_path, "explain", LONG_EMAIL, "--json").output)
    [stored] = json.loads(invoke(tmp_path, "leads", "--json").output)
    # Fit 20 reaches `qualified: {total: 15}` whatever the decay: qualified at scoring time.
    assert explained["qualified"] is True and stored["qualified"] is True
    when = datetime.fromisoformat(explained["qualified_at"].replace("Z", "+00:00"))
    assert when <= scored_by
    assert explained["qualified_at"] == stored["qualified_at"]
    # Computed as of a moment without history: no one knows when it qualified.
    past = json.loads(
        invoke(tmp_path, "explain", LONG_EMAIL, "--as-of", "2026-01-02", "--json").output
    )
    assert past["qualified"] is True and past["qualified_at"] is None


def test_explain_says_when_decay_was_cut_at_zero_and_shows_no_missing_grade(
    tmp_path: Path,
) -> None:
    hub_dir(tmp_path)
    assert invoke(tmp_path, "sync").exit_code == 0
    # 100 days after the webinar: the 90-day step (-50) meets 15 points of engagement.
    result = invoke(tmp_path, "explain", LONG_EMAIL, "--as-of", "2026-04-11")
    assert result.exit_code == 0, result.output
    assert "Inactive 90+ days (the -50 step, cut at zero" in result.output
    assert "grade" not in result.output  # the model has no `grade:` block
